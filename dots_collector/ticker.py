"""The collector's one timer: everything periodic, and dozing while idle.

On this kind of VM each wake-up of the event loop costs ~0.1-0.2 ms of CPU,
so separate timers (drain, batches, lost counters, each monitor's
periodic()) would cost more than the events they carry at a few thousand
events/s. One timer on a fixed grid does it all: it reads what is below
each ring buffer's wake-up threshold, sends the batches that are due,
looks at the lost counters every second and runs a monitor's periodic()
when that is due.

With nothing read for IDLE_AFTER seconds the timer stops (dozes) until the
next event, a monitor's periodic work or ``idle_wait`` seconds, whichever
comes first: an idle collector wakes about once a second instead of ten
times. The kernel wakes it at the next commit (common.h `doze`), so a
dozing collector reports an event as soon as a ticking one would.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from dots_common.records import Record

from .batcher import Batcher
from .monitors.base import Monitor

log = logging.getLogger("dots.collector")

#: seconds between ticks while events come
TICK = 0.1
#: seconds with nothing read before the timer stops
IDLE_AFTER = 1.0
#: seconds between looks at the lost counters
LOST_CHECK_INTERVAL = 1.0


class Ticker:
    def __init__(self, monitors: dict[str, Monitor], batcher: Batcher,
                 add_record: Callable[[str, Record], None], check_lost: Callable[[], None],
                 idle_wait: float, on_more: Callable[[], None] = lambda: None) -> None:
        """``on_more``: called when a monitor's consume() left records for
        another call (the collector runs it again soon, not at the next tick)."""
        self.monitors = monitors
        self.batcher = batcher
        self.add_record = add_record
        self.check_lost = check_lost
        self.idle_wait = idle_wait
        self.on_more = on_more
        #: how many times the timer stopped (tests, status)
        self.dozes = 0
        #: False once a ring's doze flag could not be set: tick on for good
        #: (trying again on every tick would log ten warnings a second)
        self.can_doze = True

    async def run(self, woken: asyncio.Event) -> None:
        """Tick until cancelled; ``woken`` is set whenever a ring buffer
        woke the loop or a record joined a batch (it ends a doze)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        due = {name: start + m.tick_interval for name, m in self.monitors.items() if m.tick_interval}
        lost_due = start + LOST_CHECK_INTERVAL
        seen, quiet_since = self._rows_read(), start
        n = 0
        while True:
            # on a fixed grid, so a slow tick does not push the next ones back;
            # after a stall of more than a tick (the loop blocked, the
            # process stopped), the grid starts again from now: one tick
            # reads everything, the missed ones are not run back to back
            n += 1
            await asyncio.sleep(max(0.0, start + n * TICK - loop.time()))
            now = loop.time()
            if now - (start + n * TICK) > TICK:
                start, n = now, 0
            self._tick(now, due)
            if now >= lost_due:
                lost_due = now + LOST_CHECK_INTERVAL
                self.check_lost()
            read = self._rows_read()
            if read != seen or self.batcher.waiting:
                seen, quiet_since = read, now
            elif self.can_doze and now - quiet_since >= IDLE_AFTER:
                await self._doze(woken, min([now + self.idle_wait, *due.values()]) - now)
                # back on the grid, the lost counters looked at first; still
                # quiet (a doze that timed out), the next tick dozes again
                start, n = loop.time(), 0
                lost_due = start

    def consume_all(self) -> None:
        for name, monitor in self.monitors.items():
            try:
                if monitor.consume():
                    self.on_more()
            except Exception:
                log.exception("monitor %s failed on a read", name)

    def _tick(self, now: float, due: dict[str, float]) -> None:
        for name, monitor in self.monitors.items():
            try:
                if monitor.consume():  # what is below its wake-up threshold
                    self.on_more()
                if name in due and (now >= due[name] or monitor.sample_soon):
                    due[name] = now + (monitor.tick_interval or 0)
                    for record in monitor.periodic():
                        self.add_record(name, record)
                    # a busy monitor may ask for its next sample sooner
                    due[name] = min(due[name], now + (monitor.tick_interval or 0))
            except Exception:  # one monitor's failure must not stop the others
                log.exception("monitor %s failed on a tick", name)
        self.batcher.flush_due(TICK)

    def _rows_read(self) -> int:
        return sum(m.delivered for m in self.monitors.values())

    def _set_doze(self, on: bool) -> bool:
        try:
            for monitor in self.monitors.values():
                monitor.doze(on)
        except (OSError, KeyError) as e:
            log.warning("cannot set the ring buffers' doze flag (%s): ticking on", e)
            self.can_doze = False
            return False
        return True

    async def _doze(self, woken: asyncio.Event, timeout: float) -> None:
        """Sleep up to ``timeout`` seconds, or until a ring buffer wakes us."""
        before = self._rows_read()
        if not self._set_doze(True):
            return
        try:
            # a record committed before the flag was set woke nobody
            self.consume_all()
            if self._rows_read() != before or self.batcher.waiting:
                return
            woken.clear()
            self.dozes += 1
            log.debug("dozing for up to %.1f s", timeout)
            try:
                await asyncio.wait_for(woken.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        finally:
            self._set_doze(False)
