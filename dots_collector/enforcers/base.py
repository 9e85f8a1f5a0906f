"""What every enforcer shares with a monitor (one BPF object, a ring buffer
of events, a lost counter) and what differs: its source lives here, it
ignores the monitoring uid filter (rules name their uids), and its records
travel in another monitor's signal ("exec_blocked" in ProcessEvents,
"connect_blocked" in NetworkEvents)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..monitors.base import HERE as MONITORS_DIR
from ..monitors.base import Monitor

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
#: enforcer ring buffers carry denials and notices only: small
DEFAULT_KIB_PER_CPU = 16


class Enforcer(Monitor):
    """Base of the in-kernel enforcers."""

    def __init__(self, kib_per_cpu: int = DEFAULT_KIB_PER_CPU, **kw: Any) -> None:
        super().__init__(kib_per_cpu=kib_per_cpu, **kw)

    @property
    def source(self) -> Path:
        return HERE / f"{self.name}.bpf.c"

    def program_text(self) -> str:
        common = (MONITORS_DIR / "common.h").read_text()
        return self.source.read_text().replace('#include "common.h"', common, 1)

    def close(self) -> None:
        if self.bpf is not None:
            self.bpf.cleanup()
            self.bpf = None
            log.info("enforcer %s detached", self.name)

    def set_uids(self, uids: Any) -> None:
        """Enforcers follow their rules' uids, not the monitoring filter."""

    def readers(self) -> list[tuple[int, Callable[[], None]]]:
        """File descriptors the event loop watches, with what to call when
        one is readable."""
        return [(self.ring_fd, self.consume)]

    def state(self) -> dict[str, Any]:
        """What the enforcer holds, for GetEnforcement."""
        return {}
