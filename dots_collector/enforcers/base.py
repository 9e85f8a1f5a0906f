"""What an enforcer is on top of a BPF object (bpfobject.py): its source
lives in this directory, its ring buffer is small (denials and notices
only), it has no monitoring uid filter (rules name their uids), and its
records travel in a monitor's signal ("exec_blocked" in ProcessEvents,
"connect_blocked" in NetworkEvents)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from ..bpfobject import BpfObject

HERE = Path(__file__).resolve().parent
#: enforcer ring buffers carry denials and notices only: small
DEFAULT_KIB_PER_CPU = 16


class Enforcer(BpfObject):
    """Base of the in-kernel enforcers."""

    kind: ClassVar[str] = "enforcer"
    source_dir: ClassVar[Path] = HERE
    default_kib_per_cpu: ClassVar[int] = DEFAULT_KIB_PER_CPU

    def reconcile(self) -> int:
        """Remove kernel entries no rule of this process made (maps kept
        pinned from a collector that crashed); returns how many."""
        return 0
