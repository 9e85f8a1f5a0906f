"""Is a child really away? What the kernel saw, which the child cannot fake
away: logind's idle and locked hints are set by the session's owner, so a
child may flag its session locked and go on playing. A child counts as
active over an interval when, during it:

* the collector reported an exec, network traffic or disk I/O of its uid
  (:meth:`Activity.note_records`, fed with every stored batch), or
* its processes used more than ``CPU_THRESHOLD`` of one CPU, read from
  ``/proc/<pid>/stat`` (utime + stime, kernel-kept; processes that
  started during the interval count with all their CPU time).

``CPU_THRESHOLD`` is 2 % of one CPU (0.1 s of CPU in a 5 s tick): an idle
desktop's own helpers stay under it; a game, a video or a busy loop do
not. A child whose desktop is busier than that while away is counted, which
is the side this errs on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from dots_common.records import Record

from .clock import SystemClock

CPU_THRESHOLD = 0.02  # fraction of one CPU
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: record types that are the child's doing (not merely a process running)
ACTIVE_TYPES = {"process": {"exec", "exec_blocked"}, "network": None, "disk": None}


def cpu_ticks(uids: set[int], proc: str = "/proc") -> dict[int, dict[int, int]]:
    """uid -> pid -> utime + stime (clock ticks) of the uids' processes."""
    out: dict[int, dict[int, int]] = {uid: {} for uid in uids}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            uid = entry.stat(follow_symlinks=False).st_uid
            if uid not in uids:
                continue
            with open(f"{proc}/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        out[uid][int(entry.name)] = int(fields[11]) + int(fields[12])  # utime, stime
    return out


class Activity:
    def __init__(self, proc: str = "/proc",
                 boottime: Callable[[], float] = SystemClock().boottime) -> None:
        """``boottime``: the real elapsed time (CPU time is real time too,
        whatever clock the screen-time tests run on)."""
        self.proc = proc
        self.boottime = boottime
        self._ticks: dict[int, dict[int, int]] | None = None
        self._last_boot: float | None = None
        self._noted: set[int] = set()

    def note_records(self, monitor: str, records: Iterable[Record]) -> None:
        """The collector's events of a stored batch."""
        if monitor not in ACTIVE_TYPES:
            return
        types = ACTIVE_TYPES[monitor]
        for r in records:
            if types is None or getattr(r, "type", None) in types:
                self._noted.add(r.uid)

    def active_since_last(self, uids: Iterable[int]) -> set[int]:
        """The uids active since the previous call. The first call only
        takes the CPU baseline."""
        wanted = set(uids)
        boot = self.boottime()
        noted, self._noted = self._noted & wanted, set()
        ticks = cpu_ticks(wanted, self.proc)
        before, self._ticks = self._ticks, ticks
        last, self._last_boot = self._last_boot, boot
        if before is None or last is None or boot <= last:
            return noted
        budget = CPU_THRESHOLD * (boot - last) * CLK_TCK
        busy = set()
        for uid, pids in ticks.items():
            old = before.get(uid, {})
            used = sum(t - old.get(pid, 0) for pid, t in pids.items() if t >= old.get(pid, 0))
            if used > budget:
                busy.add(uid)
        return noted | busy
