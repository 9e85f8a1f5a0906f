"""Batches kept until the policy daemon acknowledges them.

Every batch gets an id, increasing within one collector instance. The
policy daemon stores a batch and its id in one transaction, then acks; after
a crash it asks for a replay of what followed the last id it stored. The
retained set is bounded: past ``max_events`` the oldest batches are dropped
and counted, so a policy daemon that is gone for long cannot make the root
daemon grow without limit.

A sink whose receiver never acknowledges (``--stdout``) gets a retainer that
keeps nothing (``keep=False``): its batches still get ids, but holding
100,000 rows for nobody grew the collector by 12 MiB in a 48,750-event
file storm (54 MiB resident at its end instead of 42; issue 14's note)."""

from __future__ import annotations

import uuid
from collections import OrderedDict

from .batcher import Row


class Retainer:
    def __init__(self, max_events: int = 100_000, keep: bool = True) -> None:
        self.instance = uuid.uuid4().hex  # ids restart with each collector instance
        self.max_events = max_events
        self.keep = keep
        self.next_id = 1
        self._batches: OrderedDict[int, tuple[str, list[Row]]] = OrderedDict()
        self._events = 0
        self.dropped_unacked = 0
        self.acked_upto = 0

    def add(self, monitor: str, records: list[Row]) -> int:
        batch_id = self.next_id
        self.next_id += 1
        if not self.keep:
            return batch_id
        self._batches[batch_id] = (monitor, records)
        self._events += len(records)
        while self._events > self.max_events and len(self._batches) > 1:
            _, (_, old) = self._batches.popitem(last=False)
            self._events -= len(old)
            self.dropped_unacked += len(old)
        return batch_id

    def ack(self, upto: int) -> None:
        """Forget every batch up to and including ``upto``."""
        self.acked_upto = max(self.acked_upto, upto)
        while self._batches:
            first = next(iter(self._batches))
            if first > upto:
                break
            _, records = self._batches.pop(first)
            self._events -= len(records)

    def after(self, batch_id: int) -> list[tuple[int, str, list[Row]]]:
        return [(i, m, r) for i, (m, r) in self._batches.items() if i > batch_id]

    @property
    def retained_events(self) -> int:
        return self._events
