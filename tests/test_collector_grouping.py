"""The file monitor's batches on the bus: identical events of a batch
travel as one struct with their count (dots_collector/grouping.py; the
contract: FileEvents in dbus/org.dots.Collector1.xml). Its own module: the
collector here runs the file monitor, and only one collector may own the
name at a time."""

from __future__ import annotations

import pytest

import os
import signal
import sqlite3
import tempfile
from pathlib import Path

from tests.helpers import run_as, uid_of, wait_for
from tests.test_ingest_durability import start_link

pytestmark = [pytest.mark.bpf, pytest.mark.bus]

DEST = ("org.dots.Collector1", "/org/dots/Collector1", "org.dots.Collector1")
from dots_common.names import POLICYD_USER as POLICYD  # noqa: E402


@pytest.fixture(scope="module")
def file_collector(system_bus):
    from tests.fixtures.collector import CollectorDaemon

    daemon = CollectorDaemon(system_bus, monitors="filesystem")
    yield daemon
    daemon.stop()


def test_identical_file_events_travel_as_one_struct_with_their_count(file_collector, bus_client,
                                                                       child_user):
    """A child opening one file again and again: the FileEvents structs
    carry each group once with its count (the sum is every open), first
    and last time; a replay sends the same structs."""
    from dots_common.records import batch_field_names

    fields = batch_field_names("filesystem")
    at = {name: i for i, name in enumerate(fields)}
    policyd = bus_client(POLICYD)
    policyd.call(*DEST, "SetMonitoredUids", "au", [[uid_of(child_user)]])
    listener = policyd.listen("org.dots.Collector1", "org.dots.Collector1")
    n = 400
    run_as(child_user, ["/bin/sh", "-c", f"for i in $(seq {n}); do : < /etc/hostname; done; "
                                         ": < /etc/passwd"])

    def mine(structs):
        return [e for e in structs if e[at["type"]] == "open" and e[at["path"]] == "/etc/hostname"
                and e[at["comm"]] == "sh"]

    listener.wait_until(lambda l: any(e[at["path"]] == "/etc/passwd" for e in l.events("FileEvents")),
                        what="the last open")
    signals = [s for s in listener.finish() if s["member"] == "FileEvents"]
    assert all(s["signature"] == "tay" for s in signals), "packed (the listener unpacks them)"
    structs = mine([e for s in signals for e in s["body"][1]])
    assert sum(e[at["count"]] for e in structs) == n, "every open counted once"
    assert len(structs) <= len(signals), "one struct per group and batch"
    assert all(e[at["ts_ns"]] <= e[at["last_ts_ns"]] for e in structs)
    assert any(e[at["count"]] > 1 and e[at["ts_ns"]] < e[at["last_ts_ns"]] for e in structs)

    status = file_collector.status()
    again = policyd.listen("org.dots.Collector1", "org.dots.Collector1")
    first = signals[0]["body"][0]
    replayed_n = policyd.call(*DEST, "ReplayBatches", "st", [status["instance"], first - 1])["ok"][0]
    again.wait_until(lambda l: len(l.signals) >= replayed_n, what="the replay")
    replayed = {s["body"][0]: s["body"][1] for s in again.finish()}
    assert all(replayed[s["body"][0]] == s["body"][1] for s in signals), "same ids, same structs"


def opens_stored(database: Path, path: str) -> tuple[int, int]:
    """(rows, events) of the child's shell opening ``path``."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows, events = db.execute("SELECT count(*), coalesce(sum(count), 0) FROM file_event "
                                  "WHERE type = 'open' AND comm = 'sh' AND path = ?", (path,)).fetchone()
    return rows, events


def test_grouped_events_are_stored_with_their_count_once_across_a_kill_9(file_collector, child_user):
    """Through the policy daemon's link into SQLite: one row per group, the
    counts add up to every open; a kill -9 of the ingesting daemon and its
    restart (replay) neither lose nor double a group."""
    child = uid_of(child_user)
    workdir = Path(tempfile.mkdtemp(prefix="dots-grouped-"))
    os.chown(workdir, uid_of("dots-policyd"), -1)
    database = workdir / "dots.db"
    file_collector.root.call(*DEST, "SetMonitoredUids", "au", [[child]])
    status = file_collector.status()
    file_collector.root.call(*DEST, "AckBatches", "st", [status["instance"], status["last_batch"]])

    n, rounds = 3000, 6
    link = start_link(database, child)
    try:
        for i in range(rounds):
            run_as(child_user, ["/bin/sh", "-c", f"for i in $(seq {n}); do : < /etc/hostname; done"])
            if i == rounds // 2:
                link.send_signal(signal.SIGKILL)
                link.wait()
                link = start_link(database, child)
        # an open the kernel dropped (ring buffer full on a busy machine) is
        # counted as lost: it cannot be stored, and must not be waited for
        lost = lambda: file_collector.status()["lost"].get("filesystem", 0)  # noqa: E731
        wait_for(lambda: opens_stored(database, "/etc/hostname")[1] >= n * rounds - lost(),
                 timeout=60, what="every open stored")
        wait_for(lambda: file_collector.status()["retained_events"] == 0, timeout=30,
                 what="every batch acknowledged")
    finally:
        link.terminate()
        link.wait(timeout=30)
    rows, events = opens_stored(database, "/etc/hostname")
    status = file_collector.status()
    assert status["dropped_unacked"] == 0
    lost = status["lost"].get("filesystem", 0)
    assert n * rounds - lost <= events <= n * rounds, \
        "every open delivered stored once: nothing lost past the kernel, nothing twice"
    assert rows < events / 10, "identical opens stored as groups"
