"""Process monitor on the real kernel, driven by a real test user."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.helpers import run_as, uid_of

from dots_common.records import ProcessEvent

pytestmark = pytest.mark.bpf


def test_exec_and_exit_of_a_child_user(load_monitor, child_user):
    uid = uid_of(child_user)
    run = load_monitor("process", uids=[uid])
    done = run_as(child_user, ["/bin/sh", "-c", "/usr/bin/true; exit 7"])
    assert done.returncode == 7

    sh_exec = run.wait_for(lambda r: r.type == "exec" and r.path == "/bin/sh" and r.uid == uid,
                           what="exec of /bin/sh")
    true_exec = run.wait_for(lambda r: r.type == "exec" and r.path == "/usr/bin/true",
                             what="exec of /usr/bin/true")
    assert isinstance(true_exec, ProcessEvent)
    assert true_exec.uid == uid and true_exec.comm == "true"
    assert true_exec.ppid == sh_exec.pid, "the shell is the parent of true"
    sh_exit = run.wait_for(lambda r: r.type == "exit" and r.pid == sh_exec.pid, what="exit of sh")
    assert sh_exit.exit_code == 7
    assert sh_exit.ts_ns > sh_exec.ts_ns
    execs_of_true = [r for r in run.records if r.type == "exec" and r.path == "/usr/bin/true"]
    assert len(execs_of_true) == 1, "one complete event per exec"


def test_killed_process_reports_the_signal(load_monitor, child_user):
    uid = uid_of(child_user)
    run = load_monitor("process", uids=[uid])
    run_as(child_user, ["/bin/sh", "-c", "kill -KILL $$"])
    exit_event = run.wait_for(lambda r: r.type == "exit" and r.uid == uid and r.comm == "sh",
                              what="exit of the killed shell")
    assert exit_event.exit_code == -9


def test_uid_filter_drops_other_users_in_the_kernel(load_monitor, child_user, other_user):
    uid = uid_of(child_user)
    run = load_monitor("process", uids=[uid])
    run_as(other_user, ["/usr/bin/env", "DOTS_MARK=other", "/usr/bin/true"])
    run_as(child_user, ["/usr/bin/env", "/usr/bin/true"])  # a marker that must arrive
    run.wait_for(lambda r: r.type == "exec" and r.uid == uid and r.path == "/usr/bin/true",
                 what="the child's marker exec")
    other = uid_of(other_user)
    assert not [r for r in run.records if r.uid == other]
    assert run.monitor.lost == 0


def test_monitoring_nobody_reports_nothing(load_monitor, child_user):
    uid = uid_of(child_user)
    run = load_monitor("process", uids=[uid])
    run.monitor.monitor_nobody()
    run_as(child_user, ["/usr/bin/env", "DOTS_MARK=unseen", "/usr/bin/id"])
    run.monitor.set_uids([uid])
    run_as(child_user, ["/usr/bin/true"])  # the marker that must arrive
    run.wait_for(lambda r: r.type == "exec" and r.path == "/usr/bin/true", what="the marker")
    assert not [r for r in run.records if r.path == "/usr/bin/id"]


def test_an_exec_record_takes_the_length_of_its_path_and_long_paths_arrive_whole(
        load_monitor, child_user):
    """Exec records carry only their path's bytes: a short path costs the
    ring a short record, a 200-character one arrives whole, and one longer
    than the record's 255 characters arrives cut there."""
    top = Path(tempfile.mkdtemp(prefix="dots-exec-len-", dir="/tmp"))
    try:
        top.chmod(0o755)
        medium = top / ("m" * 60) / ("m" * 60) / ("m" * 40)
        long = top / ("l" * 120) / ("l" * 120) / ("l" * 60)
        programs = []
        for d in (medium, long):
            d.mkdir(parents=True)
            program = d / "true"
            shutil.copy("/usr/bin/true", program)
            program.chmod(0o755)
            programs.append(str(program))
        for d in top.rglob("*"):
            if d.is_dir():
                d.chmod(0o755)
        assert 180 < len(programs[0]) < 255 < len(programs[1])

        uid = uid_of(child_user)
        run = load_monitor("process", uids=[uid])
        submitted = run.monitor.bpf[b"submitted"]
        def ring_totals() -> tuple[int, int]:
            per_cpu = submitted[0]
            return sum(c.records for c in per_cpu), sum(c.bytes for c in per_cpu)

        def ring_bytes(record: ProcessEvent) -> int:
            """What a record takes in the ring: the 48-byte head, an exec's
            path with its NUL (256 bytes at most), the 8-byte header, padding."""
            data = 48 + (min(len(record.path) + 1, 256) if record.type == "exec" else 0)
            return (data + 8 + 7) & ~7

        for program in ["/usr/bin/true", *programs]:
            seen, (records0, bytes0) = len(run.records), ring_totals()
            assert run_as(child_user, [program]).returncode == 0
            event = run.wait_for(lambda r, p=program: r.type == "exec" and r.uid == uid
                                 and p.startswith(r.path) and len(r.path) >= min(len(p), 255),
                                 what=f"exec of a {len(program)}-character path")
            assert event.path == program[:255]
            run.wait_for(lambda r, pid=event.pid: r.type == "exit" and r.pid == pid,
                         what="its exit")
            # what the ring took for this run's records (setpriv's env and
            # the program's execs, the exit) is their heads and their paths
            window = run.records[seen:]
            records, nbytes = (a - b for a, b in zip(ring_totals(), (records0, bytes0)))
            assert records == len(window)
            assert nbytes == sum(ring_bytes(r) for r in window), [(r.type, r.path) for r in window]
    finally:
        shutil.rmtree(top)
