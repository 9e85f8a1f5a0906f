"""What the collector keeps in memory: batches only for a receiver that
acknowledges them (the bus), and a garbage collector that leaves the
startup heap alone but still collects what the events leave behind.

The real Collector with its real sinks; no BPF needed."""

from __future__ import annotations

import gc
import io
import json
import weakref

import pytest

from dots_collector.__main__ import settle_heap
from dots_collector.config import CollectorConfig
from dots_collector.core import Collector
from dots_collector.stdout import JsonLinesSink
from dots_common.records import ProcessEvent


def rows(n: int) -> list[tuple]:
    return [tuple(ProcessEvent(type="exec", pid=1000 + i, ppid=1, uid=1001, gid=1001, comm="sh",
                               path="/bin/sh", exit_code=0, ts_ns=i).to_dbus()) for i in range(n)]


class AckingSink:
    """A receiver that acknowledges batches (the bus's contract)."""

    replayable = True

    def __init__(self) -> None:
        self.ids: list[int] = []

    def publish(self, monitor: str, batch_id: int, rows: list[tuple]) -> None:
        self.ids.append(batch_id)

    def lost(self, monitor: str, total: int) -> None:
        pass


def test_printed_batches_are_not_kept_for_a_replay_nobody_can_ask_for():
    out = io.StringIO()
    collector = Collector(CollectorConfig(rules_file="", batch_max_events=100), JsonLinesSink(out))
    collector.batcher.extend("process", rows(1000))
    lines = out.getvalue().splitlines()
    assert len(lines) == 1000 and json.loads(lines[-1])["pid"] == 1999
    status = collector.status()
    assert status["retained_events"] == 0
    assert status["last_batch"] == 10, "batches are still numbered"


def test_batches_for_the_bus_are_kept_until_acknowledged():
    sink = AckingSink()
    collector = Collector(CollectorConfig(rules_file="", batch_max_events=100), sink)
    collector.batcher.extend("process", rows(1000))
    assert sink.ids == list(range(1, 11))
    assert collector.status()["retained_events"] == 1000
    collector.ack(collector.retainer.instance, 4)
    assert collector.status()["retained_events"] == 600
    assert collector.replay(collector.retainer.instance, 4) == 6
    assert sink.ids[10:] == list(range(5, 11))


@pytest.fixture
def restored_gc():
    yield
    gc.unfreeze()


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_a_settled_heap_leaves_the_startup_objects_alone_and_still_collects_cycles(restored_gc):
    settle_heap()
    assert gc.get_freeze_count() > 1000, "what was loaded is out of the collector's way"
    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle made after loading
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None, "cycles made afterwards are still collected"
