"""Group rows (events) into batches per monitor: a batch goes out when it holds
``max_events`` records or ``max_delay`` seconds after its first record,
whichever comes first — never one signal per event."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: one event: a tuple in its record type's field order (core.Sink)
Row = tuple

Flush = Callable[[str, list[Row]], None]


class Batcher:
    def __init__(self, flush: Flush, max_events: int = 1024, max_delay: float = 0.1) -> None:
        self._flush = flush
        self.max_events = max_events
        self.max_delay = max_delay
        self._pending: dict[str, list[Row]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.batches_sent = 0

    def add(self, monitor: str, record: Row) -> None:
        batch = self._pending.setdefault(monitor, [])
        batch.append(record)
        if len(batch) >= self.max_events:
            self.flush(monitor)
        elif monitor not in self._timers:
            loop = asyncio.get_running_loop()
            self._timers[monitor] = loop.call_later(self.max_delay, self.flush, monitor)

    def extend(self, monitor: str, records: list[Row]) -> None:
        """add() for a whole read of a ring buffer: full batches go out at
        once, the rest waits for more or for its timer."""
        if not records:
            return
        batch = self._pending.setdefault(monitor, [])
        room = self.max_events - len(batch)
        batch.extend(records[:room])
        rest = records[room:]
        if len(batch) >= self.max_events:
            self.flush(monitor)
        while len(rest) >= self.max_events:
            self.batches_sent += 1
            self._flush(monitor, rest[:self.max_events])
            rest = rest[self.max_events:]
        if rest:
            self._pending[monitor] = rest
        if monitor in self._pending and monitor not in self._timers:
            loop = asyncio.get_running_loop()
            self._timers[monitor] = loop.call_later(self.max_delay, self.flush, monitor)

    def flush(self, monitor: str) -> None:
        timer = self._timers.pop(monitor, None)
        if timer is not None:
            timer.cancel()
        batch = self._pending.pop(monitor, None)
        if batch:
            self.batches_sent += 1
            self._flush(monitor, batch)

    def flush_all(self) -> None:
        for monitor in list(self._pending):
            self.flush(monitor)
