"""Process monitor loader: fork / exec / exit with ppid, uid, gid, comm,
executable path and exit code (see process.bpf.c)."""

from __future__ import annotations

import ctypes
import os
import struct

from dots_common.records import ProcessEvent

from .base import Monitor

# struct event_head, then for exec the path (process.bpf.c)
HEAD = struct.Struct("<QIIIIIi16s")
PATH_LEN = 256
TYPES = ("fork", "exec", "exit")


class ProcessMonitor(Monitor):
    name = "process"
    record_type = ProcessEvent

    def after_load(self) -> None:
        self.seed_parents()

    def seed_parents(self) -> None:
        """Fill the pid -> ppid map with the processes that already run, so
        their exec and exit events carry a ppid too."""
        parents = self.bpf[b"parents"]
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            ppid = read_ppid(int(entry.name))
            if ppid is not None:
                parents[ctypes.c_uint32(int(entry.name))] = ctypes.c_uint32(ppid)

    def decode_rows(self, buf: bytes, spans: list[tuple[int, int]]) -> list[tuple]:
        """ProcessEvent rows: type, pid, ppid, uid, gid, comm, path,
        exit_code, ts_ns."""
        unpack, head = HEAD.unpack_from, HEAD.size
        texts = self.texts
        out = []
        for off, size in spans:
            ts_ns, kind, pid, ppid, uid, gid, exit_code, comm = unpack(buf, off)
            path = ""
            if kind == 1:
                # the path up to its NUL (the record ends after it),
                # decoded once per distinct path
                start = off + head
                stop = off + min(size, head + PATH_LEN)
                end = buf.find(b"\0", start, stop)
                path = texts[buf[start:end if end >= 0 else stop]]
                if not path.startswith("/"):
                    path = absolute_exe(pid, path)
            out.append((TYPES[kind], pid, ppid, uid, gid, texts[comm], path, exit_code, ts_ns))
        return out


def read_ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # comm may hold spaces and parentheses: fields resume after the last ')'
    return int(stat[stat.rindex(b")") + 2:].split()[1])


def absolute_exe(pid: int, given: str) -> str:
    """execve() got a relative path: the process's /proc exe link has the
    absolute one while it lives; otherwise keep what was given."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return given
