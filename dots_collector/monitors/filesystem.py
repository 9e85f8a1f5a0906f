"""Filesystem monitor loader: open / unlink / rename events, and read / write
bytes aggregated in the kernel per (pid, fd) (see filesystem.bpf.c).

A file closed less than ``short_file_s`` (1 s) after its open is one event
at its close: "open_read" / "open_write" (its open and the bytes it read
or wrote; both: "open_read" and a "write"), or "open" when it moved no
bytes. Most opens are such, and a burst of them costs half the records.
The open of a file that stays open longer is reported by ``periodic()``
once it is that old (ts_ns: the open), or with its first event when its
close comes before such a look. A failed open is reported at once.

Byte counts of an fd arrive as one "read" and/or one "write" event when the
fd is closed or its process exits. For files that stay open, ``periodic()``
reports what they read or wrote since the previous report once that report
is older than ``tick_interval``. Every read/write event therefore carries
the bytes *since the previous report of that fd*: summing them gives the
total, and a file opened, written and closed within one interval gives
exactly one event with all its bytes.

The kernel always reports totals and user space never writes the counters
(a read-then-reset from user space would lose the bytes added in between):
user space remembers what it already reported per (pid, fd, open time) and
subtracts it.
"""

from __future__ import annotations

import collections
import ctypes
import os
import struct
import time
from collections.abc import Iterable
from typing import Any

from dots_common.records import FileEvent

from .base import DEFAULT_RINGBUF_KIB_PER_CPU, Monitor, cstr

# struct file_event (filesystem.bpf.c), then new_path for a rename. Only a
# rename is sent whole; the other events end after their path's NUL.
EVENT = struct.Struct("<QQQqIIII16s256s")
HEAD = struct.Struct("<QQQqIIII16s")
PATH_LEN = 256
TYPES = ("open", "read", "write", "unlink", "rename", "open_read", "open_write")
EV_OPEN, EV_READ, EV_WRITE, EV_UNLINK, EV_RENAME, EV_OPEN_READ = 0, 1, 2, 3, 4, 5
#: on a flushed fd's first record: the kernel never sent its open
OPEN_UNSENT = 0x100
#: seconds between "read"/"write" reports of a file that stays open
BYTES_INTERVAL = 5.0

PREFIX_LEN = 64  # filesystem.bpf.c: prefixes are shorter than this
MAX_PREFIXES = 16  # filesystem.bpf.c
#: never reported: pseudo filesystems, and the family daemons' own state
DEFAULT_EXCLUDED_PREFIXES: tuple[str, ...] = ("/proc", "/sys", "/dev", "/var/lib/dots")
#: periodic() looks at the map at most this often, however often it is called


class FilesystemMonitor(Monitor):
    name = "filesystem"
    record_type = FileEvent
    #: a look at the open files every second: opens to announce
    tick_interval = 1.0

    def __init__(self, kib_per_cpu: int = DEFAULT_RINGBUF_KIB_PER_CPU,
                 extra_cflags: Iterable[str] = (),
                 excluded_prefixes: Iterable[str] = DEFAULT_EXCLUDED_PREFIXES,
                 max_tracked_fds: int = 4096, short_file_s: float = 1.0) -> None:
        super().__init__(kib_per_cpu, extra_cflags)
        self.excluded_prefixes = normalize_prefixes(excluded_prefixes)
        self.max_tracked_fds = max_tracked_fds
        self.short_ns = int(short_file_s * 1e9)
        self.bytes_interval = BYTES_INTERVAL
        # (pid, fd, open time) -> [read, written already reported, last
        # report (boot ns), whether its open was reported]
        self._reported: dict[tuple[int, int, int], list[int]] = {}
        # generations the kernel flushed (closed fds), so a scan racing with
        # the close does not report them again
        self._closed: collections.deque[tuple[int, int, int]] = collections.deque(maxlen=4096)

    @classmethod
    def options(cls, config: Any) -> dict[str, Any]:
        return {"excluded_prefixes": config.excluded_prefixes}

    def cflags(self) -> list[str]:
        return [*super().cflags(), f"-DMAX_TRACKED_FDS={self.max_tracked_fds}",
                f"-DSHORT_NS={self.short_ns}ULL"]

    def after_load(self) -> None:
        self.bpf[b"self_tgid"][ctypes.c_int(0)] = ctypes.c_uint32(os.getpid())
        self.set_excluded_prefixes(self.excluded_prefixes)

    def set_excluded_prefixes(self, prefixes: Iterable[str]) -> None:
        """Replace the kernel's list of never-reported path prefixes."""
        prefixes = normalize_prefixes(prefixes)
        table = self.bpf[b"excluded"]
        for i in range(MAX_PREFIXES):
            leaf = table.Leaf()
            if i < len(prefixes):
                raw = prefixes[i].encode()
                leaf.len = len(raw)
                leaf.s = raw
            table[ctypes.c_int(i)] = leaf
        self.excluded_prefixes = prefixes

    @property
    def untracked_fds(self) -> int:
        """fds whose bytes were not counted because the fd table was full."""
        return self.bpf[b"fs_stats"][ctypes.c_int(0)].value

    # --- ring buffer ----------------------------------------------------------
    def decode_rows(self, buf: bytes, spans: list[tuple[int, int]]) -> list[tuple]:
        """FileEvent rows: type, pid, uid, comm, path, flags, result, bytes,
        ts_ns, new_path."""
        unpack, head = HEAD.unpack_from, HEAD.size
        longest = head + PATH_LEN
        reported, closed = self._reported, self._closed
        texts = self.texts
        out = []
        append = out.append
        for off, size in spans:
            (ts_ns, nbytes, gen, result, kind, pid, uid, flags, comm) = unpack(buf, off)
            path = texts[buf[off + head:off + (size if size < longest else longest)]]
            new_path = ""
            if kind == EV_RENAME:
                new_path = cstr(buf[off + longest:off + longest + PATH_LEN])
            elif gen:               # an fd's flush (a failed or untracked open has none)
                key = (pid, result, gen)
                done = reported.get(key)
                closed.append(key)
                announced = done is not None and done[3]
                if kind & OPEN_UNSENT:
                    kind &= ~OPEN_UNSENT
                    if not announced:   # no look at the open files came first
                        append(("open", pid, uid, texts[comm], path, flags, result, 0, gen, ""))
                        if done is not None:
                            done[3] = True
                    if kind == EV_OPEN:
                        continue
                elif announced and kind >= EV_OPEN_READ:
                    kind -= 4       # a look caught it between its record and delete
                elif announced and kind == EV_OPEN:
                    continue
                if kind != EV_OPEN:
                    # the kernel sends totals at close/exit: subtract what
                    # periodic() already reported for this fd
                    at = (kind - 1) & 1
                    if done is not None:
                        nbytes -= done[at]
                        done[at] += nbytes
                    if nbytes <= 0 and kind < EV_OPEN_READ:
                        continue
            append((TYPES[kind], pid, uid, texts[comm], path, flags, result, nbytes,
                    ts_ns, new_path))
        return out

    # --- long-lived files and dead processes ----------------------------------
    def periodic(self, final: bool = False) -> list[FileEvent]:
        """The open of every fd opened ``short_file_s`` ago or more and not
        reported yet; bytes of fds still open whose last report is older
        than ``bytes_interval``; fds of processes that died without the
        kernel flushing them (fd beyond the exit scan, leader exited first)
        are reported one last time and removed. ``final`` (at shutdown)
        reports every open and every fd with unreported bytes, whatever its
        age.

        The map is scanned at most once per second however often this is
        called (the tests' drain loop calls it every few milliseconds)."""
        if not self.scan_due(final):
            return []
        now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        interval_ns = 0 if final else int(self.bytes_interval * 1e9)
        announce_before = now if final else now - self.short_ns
        table = self.bpf[b"fds"]
        closed = set(self._closed)
        alive: dict[int, bool] = {}
        seen: set[tuple[int, int, int]] = set()
        dead_keys = []
        out: list[FileEvent] = []
        for k, v in table.items():
            key = (k.tgid, k.fd, v.gen)
            if key in closed:
                continue
            seen.add(key)
            if k.tgid not in alive:
                alive[k.tgid] = os.path.exists(f"/proc/{k.tgid}")
            done = self._reported.get(key)
            if done is None:
                done = self._reported[key] = [0, 0, v.gen, not v.opened]
            if not done[3]:
                if alive[k.tgid] and v.gen > announce_before:
                    continue
                done[3] = True
                if self.wants(v.uid):
                    out.append(FileEvent(type="open", pid=k.tgid, uid=v.uid, comm=cstr(bytes(v.comm)),
                                         path=cstr(bytes(v.path)), flags=v.flags, result=k.fd,
                                         bytes=0, ts_ns=v.gen))
            if alive[k.tgid] and now - done[2] < interval_ns:
                continue
            if not alive[k.tgid]:
                dead_keys.append(k)
            done[2] = now
            if not self.wants(v.uid):
                done[0], done[1] = v.rbytes, v.wbytes
                continue
            for kind, total in ((EV_READ, v.rbytes), (EV_WRITE, v.wbytes)):
                delta = total - done[kind - 1]
                if delta > 0:
                    done[kind - 1] = total
                    out.append(FileEvent(type=TYPES[kind], pid=k.tgid, uid=v.uid,
                                         comm=comm_of(k.tgid, v.comm), path=cstr(bytes(v.path)),
                                         flags=v.flags, result=k.fd, bytes=delta, ts_ns=now))
        for k in dead_keys:
            try:
                del table[k]
            except KeyError:
                pass
        for key in [key for key in self._reported if key not in seen]:
            del self._reported[key]
        hi = self.bpf[b"fd_hi"]
        for tgid in [k for k in hi.keys() if not os.path.exists(f"/proc/{k.value}")]:
            try:
                del hi[tgid]
            except KeyError:
                pass
        self.delivered += len(out)
        return out


def comm_of(pid: int, stored: bytes) -> str:
    """The process's name now (it may have exec'd since the open), else the
    name it had at the open."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return cstr(f.read().rstrip(b"\n"))
    except OSError:
        return cstr(bytes(stored))


def normalize_prefixes(prefixes: Iterable[str]) -> tuple[str, ...]:
    """Absolute, without a trailing slash, shorter than the kernel's slot,
    at most MAX_PREFIXES, no duplicates."""
    out: list[str] = []
    for prefix in prefixes:
        p = prefix.rstrip("/")
        if not p.startswith("/"):
            raise ValueError(f"excluded prefix {prefix!r} must be an absolute path other than /")
        if len(p.encode()) >= PREFIX_LEN:
            raise ValueError(f"excluded prefix {prefix!r} is longer than {PREFIX_LEN - 1} bytes")
        if p not in out:
            out.append(p)
    if len(out) > MAX_PREFIXES:
        raise ValueError(f"at most {MAX_PREFIXES} excluded prefixes")
    return tuple(out)
