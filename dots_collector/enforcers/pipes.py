"""What waits in a pipe a process reads from, copied without taking it
(tee(2)): the program a child pipes into an interpreter (``cat game.py |
python3``, a shell's here-document, ``python3 <(cat game.py)``) is in
the pipe from the writer's write until the interpreter reads it, ~5 ms
after its exec for python. The judge can be slower than that (a new
file to hash first), so the thread that reads the kernel's notices
starts a watch at the interpreter's notice, PipeWatch's thread copies
what comes at every write, and the judge is told when the watch is over.
Why this module is over 300 lines: the watch's thread, its epoll and
the bounds on what it holds belong together."""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import re
import select
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

SPLICE_F_NONBLOCK = 2
#: the most copied out of one pipe (a pipe holds 64 KiB unless its owner
#: made it larger, up to 1 MiB for a user): a longer script piped in is
#: judged by its first 256 KiB
MAX_PEEK = 256 << 10
#: interpreter starts whose pipes are watched at once (older ones are
#: dropped: the judge took them long ago, or never will); with MAX_PEEK,
#: the most memory the copies can hold (16 MiB, for a moment)
MAX_WATCHES = 64
#: how long the copies of a watch that is over wait for the judge (a new
#: file's notice is watched before the judge knows it is an interpreter:
#: if it is not, nobody asks)
STALE_S = 10.0
#: how long a pipe whose writer is still there is watched after the judge
#: took the start's copies (prolong)
PROLONG_S = 60.0
#: prolonged watches at once (each holds a pidfd and its pipes open)
MAX_PROLONGED = 64

_libc = ctypes.CDLL(None, use_errno=True)
_tee = _libc.tee
_tee.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint)
_tee.restype = ctypes.c_ssize_t

#: how a process names its own open files on a command line
_OWN_FD = re.compile(r"/(?:dev/fd|proc/self/fd|proc/thread-self/fd)/(\d+)")
_STDIO = {"/dev/stdin": 0}


def own_fd(arg: str) -> int | None:
    """The fd an argument like ``/dev/fd/63`` or ``/dev/stdin`` names in
    the process that was given it (None: an ordinary path)."""
    if arg in _STDIO:
        return _STDIO[arg]
    m = _OWN_FD.fullmatch(arg)
    return int(m.group(1)) if m else None


def is_pipe(pid: int, fd: int) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(f"/proc/{pid}/fd/{fd}").st_mode)
    except OSError:
        return False


def peek(pid: int, fd: int) -> bytes:
    """What waits in ``pid``'s pipe ``fd`` now, left there for it."""
    src = _open_pipe(pid, fd)
    if src is None:
        return b""
    try:
        return _copy(src)
    finally:
        os.close(src)


def _open_pipe(pid: int, fd: int) -> int | None:
    """Our own reading end on ``pid``'s pipe ``fd`` (None: gone, or not a
    pipe). Non-blocking: a pipe nobody writes to is not waited on."""
    if not is_pipe(pid, fd):
        return None
    try:
        return os.open(f"/proc/{pid}/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None


def _copy(src: int) -> bytes:
    """All that waits in the pipe ``src`` (empty if it cannot be copied)."""
    try:
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b""  # out of file descriptors: the judge looks again later
    try:
        try:
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, MAX_PEEK)
        except OSError:
            pass  # a pipe of the default size: 64 KiB are copied
        copied = _tee(src, w, MAX_PEEK, SPLICE_F_NONBLOCK)
        if copied <= 0:
            return b""
        chunks, left = [], copied
        while left > 0:
            chunk = os.read(r, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(r)
        os.close(w)


@dataclass(frozen=True)
class Piped:
    """What a watch saw of one pipe."""

    copy: bytes  # the most it held at once
    ended: bool  # its every writer had closed it: nothing more was to come


#: what is told the copies when a watch is over
Done = Callable[[dict[int, Piped]], None]


@dataclass
class _Watch:
    deadline: float
    fd_of: dict[int, int] = field(default_factory=dict)  # our fd on a pipe -> the process's
    copies: dict[int, bytes] = field(default_factory=dict)  # the process's fd -> longest copy
    ended: set[int] = field(default_factory=set)  # its fds whose every writer had closed them
    on_end: Done | None = None
    pidfd: int = -1  # a prolonged watch's process: it ends, untold, when that exits
    told: bool = False  # on_end was called

    def seen(self) -> dict[int, Piped]:
        return {fd: Piped(copy, fd in self.ended) for fd, copy in self.copies.items()}


class PipeWatch:
    """The pipes of an interpreter's start, copied from its notice on:
    again at every write (epoll, edge-triggered), until every writer has
    closed them or the watch's time is up; then the judge is told, from
    the watch's own thread (it never waits on a pipe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watches: OrderedDict[tuple[int, int], _Watch] = OrderedDict()
        self._prolonged: dict[int, _Watch] = {}  # by pidfd
        self._of_fd: dict[int, _Watch] = {}  # our fds (pipes, pidfds) in the epoll
        self._epoll: select.epoll | None = None
        self._wake_fd = -1  # wakes the thread: a new deadline, or close()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Until started, a watch is one look at the notice."""
        self._epoll = select.epoll()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self._wake_fd, select.EPOLLIN)
        self._thread = threading.Thread(target=self._run, name="dots-exec-pipes", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stopping = True
        if self._thread is not None:
            os.eventfd_write(self._wake_fd, 1)
            self._thread.join(timeout=10)
            self._thread = None
        with self._lock:
            for watch in [*self._watches.values(), *self._prolonged.values()]:
                watch.on_end = None
                self._finish(watch)
            self._watches.clear()
            if self._epoll is not None:
                self._epoll.close()
                os.close(self._wake_fd)
                self._epoll, self._wake_fd = None, -1

    def watch(self, pid: int, ts_ns: int, fds: list[int], wait_s: float) -> None:
        """Copy what ``pid``'s pipes ``fds`` hold now, and what comes
        into them for ``wait_s``."""
        watch = self._open(pid, fds, wait_s)
        if not watch.fd_of:
            return  # no pipe: nothing to watch
        with self._lock:
            self._watches[(pid, ts_ns)] = watch
            while len(self._watches) > MAX_WATCHES:
                old = self._watches.popitem(last=False)[1]
                old.on_end = None
                self._finish(old)
            if self._epoll is None or self._stopping:
                self._finish(watch)
                return
            self._register(watch)

    def when_done(self, pid: int, ts_ns: int, on_end: Done) -> bool:
        """``on_end`` gets what the start's pipes held, by its fd, once
        their watch is over: at once if it is, else from the watch's
        thread. False: the start was not watched."""
        with self._lock:
            watch = self._watches.get((pid, ts_ns))
            if watch is None:
                return False
            if watch.fd_of:
                watch.on_end = on_end
                return True
            del self._watches[(pid, ts_ns)]
        on_end(watch.seen())
        return True

    def prolong(self, pid: int, fds: list[int], on_end: Done) -> bool:
        """Watch ``pid``'s pipes ``fds`` on, while it lives, for up to
        PROLONG_S: ``on_end`` gets what they held once every writer has
        closed them or the time is up, not if ``pid`` exited first.
        False: it could not be watched (gone already, or MAX_PROLONGED
        are watched already)."""
        if self._epoll is None or self._stopping or len(self._prolonged) >= MAX_PROLONGED:
            return False
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return False
        watch = self._open(pid, fds, PROLONG_S)
        watch.on_end, watch.pidfd = on_end, pidfd
        with self._lock:
            if not watch.fd_of or self._stopping:
                watch.on_end = None
                self._finish(watch)
                return False
            self._prolonged[pidfd] = watch
            self._of_fd[pidfd] = watch
            self._epoll.register(pidfd, select.EPOLLIN)
            self._register(watch)
        return True

    # --- the watch's thread and its helpers ---------------------------------------
    @staticmethod
    def _open(pid: int, fds: list[int], wait_s: float) -> _Watch:
        watch = _Watch(time.monotonic() + wait_s)
        for fd in dict.fromkeys(fds):
            src = _open_pipe(pid, fd)
            if src is None:
                continue
            watch.fd_of[src] = fd
            watch.copies[fd] = _copy(src)
        return watch

    def _register(self, watch: _Watch) -> None:
        """(lock held)"""
        for src in watch.fd_of:
            self._of_fd[src] = watch
            self._epoll.register(src, select.EPOLLIN | select.EPOLLET)
        os.eventfd_write(self._wake_fd, 1)  # a new deadline

    def _finish(self, watch: _Watch) -> None:
        """(lock held) close the watch's fds; its copies stay."""
        for src in list(watch.fd_of):
            self._close(watch, src)
        if watch.pidfd >= 0:
            self._prolonged.pop(watch.pidfd, None)
            if self._of_fd.pop(watch.pidfd, None) is not None:
                self._epoll.unregister(watch.pidfd)
            os.close(watch.pidfd)
            watch.pidfd = -1

    def _close(self, watch: _Watch, src: int) -> None:
        if self._of_fd.pop(src, None) is not None:
            self._epoll.unregister(src)
        os.close(src)
        del watch.fd_of[src]

    def _run(self) -> None:
        """The watch's thread. A turn that fails is logged and the next
        one goes on: a thread that died would leave every program piped in
        unjudged."""
        while not self._stopping:
            try:
                self._turn()
            except Exception:
                log.exception("pipe watch: a turn failed")
                time.sleep(0.1)

    def _turn(self) -> None:
        with self._lock:
            due = [w.deadline if w.fd_of else w.deadline + STALE_S
                   for w in [*self._watches.values(), *self._prolonged.values()]]
        timeout = max(0.0, min(due) - time.monotonic()) if due else None
        ready = self._epoll.poll(timeout)
        over: list[_Watch] = []
        with self._lock:
            for fd, events in ready:
                if fd == self._wake_fd:
                    os.eventfd_read(self._wake_fd)
                    continue
                watch = self._of_fd.get(fd)
                if watch is None:
                    continue
                if fd == watch.pidfd:  # the process exited: nothing to judge
                    watch.on_end = None
                    self._finish(watch)
                    continue
                self._copied(watch, fd, events)
                if not watch.fd_of:
                    over.append(watch)
            now = time.monotonic()
            over += [w for w in [*self._watches.values(), *self._prolonged.values()]
                     if w.fd_of and w.deadline <= now]
            told: list[tuple[Done, dict[int, Piped]]] = []
            for watch in over:
                self._finish(watch)
                if watch.on_end is not None:
                    told.append((watch.on_end, watch.seen()))
                    watch.on_end = None
                    watch.told = True
            # told: the judge has them; the others wait for when_done,
            # a while
            for key in [k for k, w in self._watches.items()
                        if w.told or (not w.fd_of and w.deadline + STALE_S <= now)]:
                del self._watches[key]
        for on_end, seen in told:
            on_end(seen)

    def _copied(self, watch: _Watch, src: int, events: int) -> None:
        """(lock held) a write into the pipe ``src``, or its last writer gone."""
        fd = watch.fd_of[src]
        copy = _copy(src)
        if len(copy) > len(watch.copies.get(fd, b"")):
            watch.copies[fd] = copy
        if events & select.EPOLLHUP:  # no writer left: nothing more comes
            watch.ended.add(fd)
            self._close(watch, src)
