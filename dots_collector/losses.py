"""What the collector says about events that did not come through.

* Lost events, counted (a full ring buffer, a disk completion the kernel
  did not show): logged with their causes and sent on (``Sink.lost``,
  the bus's ``EventsLost``) whenever a monitor's count grows.
* Runs of a monitor's programs the kernel skipped (their
  recursion_misses, ``BpfObject.skipped``): a watched user's events among
  them are lost without a count, and they are not part of ``lost`` (the
  runs of unwatched users count too). Logged as a warning when they grow;
  interrupt-context probes are raw tracepoints to keep them at 0.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from .monitors.base import Monitor

log = logging.getLogger("dots.collector")

#: looks at the lost counters between two looks at the skipped runs
#: (those take one syscall per program, ~75 in all)
SKIPPED_EVERY = 10


class LostSink(Protocol):
    def lost(self, monitor: str, total: int) -> None: ...


class LossWatch:
    def __init__(self, sink: LostSink) -> None:
        self.sink = sink
        self.lost_seen: dict[str, int] = {}
        self.skipped_seen: dict[str, int] = {}
        self._looks = 0

    def check(self, monitors: Mapping[str, Monitor], enforcers_lost: Mapping[str, int]) -> None:
        """Look at the lost counters (and every SKIPPED_EVERY looks, at the
        skipped runs); report what grew."""
        causes = {name: monitor.lost_causes() for name, monitor in monitors.items()}
        causes.update({name: {"ring buffer full": n} for name, n in enforcers_lost.items()})
        for name, by_cause in causes.items():
            total = sum(by_cause.values())
            if total > self.lost_seen.get(name, 0):
                why = ", ".join(f"{cause}: {n}" for cause, n in by_cause.items() if n)
                log.warning("monitor %s lost %d events (%d in all; %s)",
                            name, total - self.lost_seen.get(name, 0), total, why)
                self.lost_seen[name] = total
                self.sink.lost(name, total)
        if self._looks % SKIPPED_EVERY == 0:
            self.check_skipped(monitors)
        self._looks += 1

    def check_skipped(self, monitors: Mapping[str, Monitor]) -> dict[str, int]:
        """Each monitor's skipped runs now; a warning for those that grew."""
        now = {}
        for name, monitor in monitors.items():
            try:
                now[name] = monitor.skipped
            except OSError as e:  # a program gone with a pin removed under us
                log.debug("monitor %s: cannot read its programs' counters: %s", name, e)
                continue
            if now[name] > self.skipped_seen.get(name, 0):
                log.log(logging.WARNING if monitor.skips_lose_events else logging.INFO,
                        "monitor %s: the kernel skipped %d runs of its programs (%d in all); %s",
                        name, now[name] - self.skipped_seen.get(name, 0), now[name],
                        "a watched user's events among them are lost uncounted"
                        if monitor.skips_lose_events else "its totals miss what they counted")
                self.skipped_seen[name] = now[name]
        return now
