"""Group rows (events) into batches per monitor: a batch goes out when it holds
``max_events`` records, or at the collector's tick once it is about
``max_delay`` seconds old — never one signal per event.

No timer per batch: the collector's one periodic tick (ticker.py) calls
flush_due(). On this kind of VM every wake-up of the event loop costs
~0.1–0.2 ms of CPU, as much as decoding a few dozen events, so batches
ride on the wake-up that reads the ring buffers anyway.
"""

from __future__ import annotations

import time
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
        #: monitor -> monotonic time its pending batch got its first row
        self._since: dict[str, float] = {}
        self.batches_sent = 0

    @property
    def waiting(self) -> bool:
        """Whether any row waits for its batch to go out."""
        return bool(self._since)

    def add(self, monitor: str, record: Row) -> None:
        self.extend(monitor, [record])

    def extend(self, monitor: str, records: list[Row]) -> None:
        """Rows of one monitor (a whole read of its ring buffer): full
        batches go out at once, the rest waits for more or for its tick."""
        if not records:
            return
        batch = self._pending.get(monitor)
        if batch is None:
            batch = self._pending[monitor] = []
            self._since[monitor] = time.monotonic()
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
            self._since[monitor] = time.monotonic()

    def flush_due(self, tick: float, now: float | None = None) -> None:
        """Send every batch that would be older than ``max_delay`` at the
        next tick (``tick`` seconds from now): no row waits much longer
        than ``max_delay`` (at most one tick more)."""
        now = time.monotonic() if now is None else now
        for monitor in [m for m, t in self._since.items() if now + tick - t > self.max_delay]:
            self.flush(monitor)

    def flush(self, monitor: str) -> None:
        self._since.pop(monitor, None)
        batch = self._pending.pop(monitor, None)
        if batch:
            self.batches_sent += 1
            self._flush(monitor, batch)

    def flush_all(self) -> None:
        for monitor in list(self._pending):
            self.flush(monitor)
