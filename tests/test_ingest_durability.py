"""kill -9 of the ingesting daemon: after a restart every batch it had
acknowledged is in the database, nothing is stored twice, nothing is lost."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.helpers import REPO, VENV_PYTHON, as_user, popen_as, uid_of, wait_for

pytestmark = [pytest.mark.bpf, pytest.mark.bus]

N = 3000
GENERATOR = ("import os\n"
             f"for _ in range({N}):\n"
             "    os.waitpid(os.posix_spawn('/usr/bin/true', ['true'], {}), 0)\n")


def start_link(database: Path, child: int) -> subprocess.Popen:
    proc = subprocess.Popen(as_user("dots-policyd", [VENV_PYTHON, str(REPO / "tests" / "link_runner.py"),
                                                      str(database), str(child)]),
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def stored(database: Path) -> tuple[list[str], int]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        ids = [r[0] for r in db.execute("SELECT batch_id FROM ingested_batch")]
        events = db.execute("SELECT count(*) FROM process_event").fetchone()[0]
    return ids, events


def generator_events(database: Path, generator_pid: int) -> dict[str, int]:
    """The generator's own events, by type; duplicates would show as
    several rows with one (pid, type, ts_ns)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT type, pid, ts_ns FROM process_event WHERE "
            "(type = 'fork' AND ppid = ?) OR (type = 'exec' AND path = '/usr/bin/true') "
            "OR (type = 'exit' AND comm = 'true')", (generator_pid,)).fetchall()
    assert len(rows) == len(set(rows)), "an event was stored twice"
    counts: dict[str, int] = {}
    for kind, _, _ in rows:
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def test_kill_9_while_ingesting_loses_and_duplicates_nothing(collector_daemon, child_user):
    child = uid_of(child_user)
    workdir = Path(tempfile.mkdtemp(prefix="dots-durable-"))
    os.chown(workdir, uid_of("dots-policyd"), -1)
    database = workdir / "dots.db"

    collector_daemon.root.call("org.dots.Collector1", "/org/dots/Collector1", "org.dots.Collector1",
                               "SetMonitoredUids", "au", [[child]])
    link = start_link(database, child)
    generator = popen_as(child_user, ["/usr/bin/python3", "-c", GENERATOR])
    # setpriv and env exec into python3: the generator keeps the pid it started with
    wait_for(lambda: len(stored(database)[0]) >= 5, timeout=60, what="some batches stored")
    link.send_signal(signal.SIGKILL)
    link.wait()

    status = collector_daemon.status()
    instance, acked = status["instance"], status["acked_upto"]
    ids, _ = stored(database)
    ours = sorted(int(i.split(":")[1]) for i in ids if i.startswith(instance + ":"))
    assert acked > 0
    assert set(range(ours[0], acked + 1)) <= set(ours), "every acknowledged batch is stored"

    link = start_link(database, child)
    assert generator.wait(timeout=120) == 0
    expected = {"fork": N, "exec": N, "exit": N}

    def missing() -> int:
        """Events of the generator not stored yet."""
        got = generator_events(database, generator.pid)
        assert all(got.get(k, 0) <= n for k, n in expected.items()), f"stored twice: {got}"
        return sum(expected.values()) - sum(got.values())

    # an event the kernel dropped (ring buffer full on a loaded machine) is
    # counted as lost and cannot be stored: it is not waited for
    lost = lambda: collector_daemon.status()["lost"]["process"]  # noqa: E731
    try:
        wait_for(lambda: missing() <= lost(), timeout=60,
                 what="every event of the generator to be stored")
        wait_for(lambda: collector_daemon.status()["retained_events"] == 0, timeout=30,
                 what="every batch to be acknowledged")
    finally:
        link.terminate()
        link.wait(timeout=30)
    ids, events = stored(database)
    status = collector_daemon.status()
    print(f"\ndurability: {len(ids)} batches, {events} events stored; collector delivered "
          f"{status['delivered']['process']}, lost {status['lost']['process']}")
    assert len(ids) == len(set(ids))
    assert status["dropped_unacked"] == 0
    assert missing() <= status["lost"]["process"], \
        "nothing lost past the kernel (whose losses are counted), nothing twice"
