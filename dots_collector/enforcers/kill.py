"""Kill a uid's processes, all of them or those running one program (the
per-app limit), without ever hitting a recycled pid."""

from __future__ import annotations

import logging
import os
import select
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .identity import HashCache, Identity, IdentityError

log = logging.getLogger(__name__)

NOBODY_GID = 65534

#: seconds the helper that became the uid may take; the uid can stop it
#: (SIGSTOP: it is theirs now), so it is never waited for longer
HELPER_TIMEOUT = 2.0


def _become_and_kill(uid: int) -> None:  # pragma: no cover - runs in the forked child
    """In the helper: drop to ``uid`` and kill(-1, SIGKILL)."""
    os.setgroups([])
    os.setresgid(NOBODY_GID, NOBODY_GID, NOBODY_GID)
    os.setresuid(uid, uid, uid)
    os.kill(-1, signal.SIGKILL)


def _reap(helper: int, timeout: float) -> int | None:
    """The helper's wait status, or None if it did not end in time (then it
    is killed: as root, whatever state the uid left it in)."""
    pidfd = os.pidfd_open(helper)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if poller.poll(timeout * 1000):
            return os.waitpid(helper, 0)[1]
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    finally:
        os.close(pidfd)
    os.waitpid(helper, 0)  # SIGKILL ends even a stopped process at once
    return None


def owned_by(pid: int, uid: int) -> bool:
    """The process's real uid is ``uid`` (a setuid program the user started
    counts; a root daemon that briefly took the user's euid does not)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Uid:"):
                    return int(line.split()[1]) == uid
    except OSError:
        pass
    return False


def processes_of(uid: int) -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and owned_by(int(entry.name), uid):
            yield int(entry.name)


@dataclass(frozen=True, slots=True)
class Running:
    """The uid's processes at ``ts_ns`` (CLOCK_BOOTTIME), taken before a
    rule goes into force, so that the sweep that follows the rule judges
    only what ran before it: a process started after it was judged by the
    kernel at its exec, or is still in the hands of the root program that
    starts it for the uid (setpriv, su, login, sshd between setuid and
    exec), which is not the child's doing."""

    uid: int
    ts_ns: int
    pids: list[int]


def running(uid: int) -> Running:
    ts_ns = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    return Running(uid, ts_ns, list(processes_of(uid)))


def kill_pid(pid: int, still: Callable[[int], bool]) -> bool:
    """SIGKILL through a pidfd, after checking ``still(pid)`` with the pidfd
    held: the signal reaches the process that was checked, or nothing."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        if not still(pid):
            return False
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        return True
    except OSError:
        return False
    finally:
        os.close(pidfd)


def kill_user_processes(uid: int) -> int:
    """Kill every process of ``uid``; returns how many there were.

    kill(-1, SIGKILL) from a helper that became ``uid`` reaches every
    process of the uid in one pass under the kernel's task list lock, so a
    fork loop cannot outrun it. Whatever is left (the helper was itself
    killed first, or CAP_SETUID/CAP_SETGID are missing) is killed one by
    one as root. The helper is the uid's once it dropped to it, so the uid
    may SIGSTOP it: it is waited for HELPER_TIMEOUT at most, never blocking
    the collector's event loop for longer."""
    before = list(processes_of(uid))
    if not before:
        return 0
    helper = os.fork()
    if helper == 0:  # pragma: no cover - runs in the forked child
        try:
            _become_and_kill(uid)
        except BaseException:
            os._exit(1)
        os._exit(0)
    status = _reap(helper, HELPER_TIMEOUT)
    if status is None:
        log.warning("the kill helper as uid %d did not finish in %g s (stopped by the user?): "
                    "killing its processes one by one", uid, HELPER_TIMEOUT)
    elif status != 0:
        log.warning("kill(-1) as uid %d failed (status %#x): killing its processes one by one",
                    uid, status)
    for pid in processes_of(uid):
        kill_pid(pid, lambda p: owned_by(p, uid))
    return len(before)


def runs(pid: int, program: Identity, cache: HashCache) -> bool:
    """The process runs ``program``: same inode (hard links too) or same
    content (copies; hashed once per file, then cached)."""
    try:
        st = os.stat(f"/proc/{pid}/exe")
        if (st.st_dev, st.st_ino) == (program.dev, program.ino):
            return True
        return cache.of_process(pid).sha256 == program.sha256
    except (OSError, IdentityError):
        return False


def kill_executable(uid: int, program: Identity, cache: HashCache) -> int:
    """Kill uid's processes running ``program``; returns how many."""
    def still(pid: int) -> bool:
        return owned_by(pid, uid) and runs(pid, program, cache)

    return sum(kill_pid(pid, still) for pid in processes_of(uid) if runs(pid, program, cache))
