"""The collector's timer dozes while nothing comes, and anything that joins a
batch ends the doze: records read from a ring buffer (the kernel's wake-up,
test_collector_idle.py) and records made elsewhere (an enforcer's report, a
monitor's map scan), which must not wait for the doze to time out; and
after a stall the timer does not run the ticks it missed back to back.

The real Collector and Ticker on a real asyncio loop; the monitor is a
stand-in with an eventfd for a ring buffer (no BPF needed here)."""

from __future__ import annotations

import asyncio
import os
import time

from dots_collector import ticker
from dots_collector.config import CollectorConfig
from dots_collector.core import Collector
from dots_common.records import ProcessEvent


class QuietMonitor:
    """Reads nothing: a ring buffer that stays empty."""

    name = "process"
    tick_interval = None
    skipped = 0  # runs the kernel skipped (BpfObject.skipped)
    skips_lose_events = True

    def __init__(self) -> None:
        self.ring_fd = os.eventfd(0, os.EFD_NONBLOCK)
        self.delivered = 0
        self.dozing: list[bool] = []

    def consume(self) -> None:
        pass

    def periodic(self, final: bool = False) -> list:
        return []

    def doze(self, on: bool) -> None:
        self.dozing.append(on)

    def lost_causes(self) -> dict[str, int]:
        return {"ring buffer full": 0}

    def close(self) -> None:
        os.close(self.ring_fd)


class ListSink:
    def __init__(self) -> None:
        self.batches: list[tuple[str, list[tuple]]] = []

    def publish(self, monitor: str, batch_id: int, rows: list[tuple]) -> None:
        self.batches.append((monitor, rows))

    def lost(self, monitor: str, total: int) -> None:
        pass


async def until(condition, timeout: float) -> None:
    """Wait on the loop for ``condition`` (polled), failing after timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_record_made_while_dozing_goes_out_without_waiting_for_the_doze(monkeypatch):
    monkeypatch.setattr(ticker, "IDLE_AFTER", 0.2)
    sink = ListSink()
    collector = Collector(CollectorConfig(rules_file="", idle_wait_ms=60000), sink)
    monitor = QuietMonitor()
    collector.monitors = {"process": monitor}
    record = ProcessEvent(type="exec_blocked", pid=4242, ppid=1, uid=1001, gid=1001,
                          comm="game", path="/home/child/game", exit_code=0, ts_ns=1)

    async def scenario() -> None:
        stop = asyncio.Event()
        run = asyncio.create_task(collector.run(stop))
        # quiet: the timer stops, the ring's doze flag set (for a minute)
        await until(lambda: monitor.dozing[-1:] == [True], timeout=10)
        # an enforcer reports (no ring buffer of the monitors involved)
        collector.add_record("process", record)
        await until(lambda: sink.batches, timeout=10)  # the doze would last a minute
        first = monitor.dozing.index(True)
        assert monitor.dozing[first + 1] is False, "the doze ended and the flag was cleared"
        stop.set()
        await run

    asyncio.run(scenario())
    assert sink.batches == [("process", [tuple(record.to_dbus())])]


class FlaglessMonitor(QuietMonitor):
    """A ring whose doze flag cannot be written (its map is gone, say)."""

    def doze(self, on: bool) -> None:
        raise OSError(9, "Bad file descriptor")


def test_a_doze_flag_that_cannot_be_set_leaves_the_timer_ticking(monkeypatch, caplog):
    monkeypatch.setattr(ticker, "IDLE_AFTER", 0.2)
    sink = ListSink()
    collector = Collector(CollectorConfig(rules_file="", idle_wait_ms=60000), sink)
    collector.monitors = {"process": FlaglessMonitor()}
    record = ProcessEvent(type="exec", pid=4243, ppid=1, uid=1001, gid=1001,
                          comm="sh", path="/bin/sh", exit_code=0, ts_ns=2)

    async def scenario() -> None:
        stop = asyncio.Event()
        run = asyncio.create_task(collector.run(stop))
        await until(lambda: "doze flag" in caplog.text, timeout=10)
        await asyncio.sleep(1.0)  # ten ticks in which a doze would be tried again
        # still ticking: a batch goes out on the timer (no wake-up involved)
        collector.batcher.add("process", tuple(record.to_dbus()))
        await until(lambda: sink.batches, timeout=10)
        stop.set()
        await run

    asyncio.run(scenario())
    assert caplog.text.count("cannot set the ring buffers' doze flag") == 1
    assert sink.batches == [("process", [tuple(record.to_dbus())])]


class CountingMonitor(QuietMonitor):
    """Notes when the timer reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[float] = []

    def consume(self) -> None:
        self.reads.append(time.monotonic())


def test_after_a_stall_the_timer_does_not_run_the_missed_ticks_back_to_back(monkeypatch):
    monkeypatch.setattr(ticker, "IDLE_AFTER", 3600.0)  # no dozing here
    collector = Collector(CollectorConfig(rules_file=""), ListSink())
    monitor = CountingMonitor()
    collector.monitors = {"process": monitor}

    async def scenario() -> float:
        stop = asyncio.Event()
        run = asyncio.create_task(collector.run(stop))
        await until(lambda: len(monitor.reads) >= 3, timeout=10)
        time.sleep(1.0)  # the loop stalls for ten ticks
        resumed = time.monotonic()
        await asyncio.sleep(3 * ticker.TICK)
        stop.set()
        await run
        return resumed

    resumed = asyncio.run(scenario())
    after = [t - resumed for t in monitor.reads if t >= resumed]
    burst = [t for t in after if t < ticker.TICK / 2]
    assert len(burst) <= 1, f"{len(burst)} reads within {ticker.TICK / 2} s of the stall's end"
    assert 2 <= len(after) <= 5, f"then one read a tick: {after}"
