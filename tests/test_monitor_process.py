"""Process monitor on the real kernel, driven by a real test user."""

from __future__ import annotations

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
