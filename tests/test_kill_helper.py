"""Issue 12: the collector never blocks on a child's process. The helper it
forks to kill a child's processes becomes the child's uid, so the child
may SIGSTOP it; the collector must neither hang on it nor leave the
child's processes alive."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from dots_collector.enforcers import kill
from tests.helpers import popen_as, uid_of, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (setresuid, kill)")


def _stopped_by_the_child(uid: int) -> None:
    """What the helper suffers when the child stops it as soon as it is
    theirs: it drops to the uid and is stopped before it can kill."""
    os.setgroups([])
    os.setresgid(kill.NOBODY_GID, kill.NOBODY_GID, kill.NOBODY_GID)
    os.setresuid(uid, uid, uid)
    os.kill(os.getpid(), signal.SIGSTOP)


def test_a_stopped_kill_helper_neither_hangs_the_collector_nor_spares_the_child(
        child_user, monkeypatch):
    uid = uid_of(child_user)
    sleeper = popen_as(child_user, ["/bin/sleep", "600"])
    try:
        wait_for(lambda: kill.owned_by(sleeper.pid, uid), what="the child's process")
        monkeypatch.setattr(kill, "_become_and_kill", _stopped_by_the_child)
        result: list[int] = []
        worker = threading.Thread(target=lambda: result.append(kill.kill_user_processes(uid)),
                                  daemon=True)
        worker.start()
        worker.join(timeout=60)  # liveness, not speed: the old code waited forever here
        assert not worker.is_alive(), "kill_user_processes hung on the stopped helper"
        assert result and result[0] >= 1
        wait_for(lambda: sleeper.poll() is not None, what="the child's process killed")
        assert sleeper.returncode == -signal.SIGKILL
    finally:
        sleeper.kill()
        sleeper.wait()
