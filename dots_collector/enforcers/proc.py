"""What /proc says about a process the exec enforcer judges: its start
time (to prove a pid is still the process a notice was about), command
line, directory, and the files it has mapped executable."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from .identity import kernel_dev

CLK_TCK = os.sysconf("SC_CLK_TCK")


def boottime_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def _stat(pid: int) -> list[bytes] | None:
    """/proc/PID/stat's fields after the command name (state first)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2:].split()


def started_before(pid: int, ts_ns: int) -> bool:
    """The process now at ``pid`` existed at ``ts_ns`` (CLOCK_BOOTTIME):
    with a pidfd held, this proves it is the process a notice was about."""
    fields = _stat(pid)
    return fields is not None and int(fields[19]) * 1_000_000_000 // CLK_TCK <= ts_ns


def kill_if_started_before(pid: int, ts_ns: int) -> bool:
    """SIGKILL through a pidfd, so a recycled pid is never hit."""
    from .kill import kill_pid

    return kill_pid(pid, lambda p: started_before(p, ts_ns))


def exe_key(pid: int) -> tuple[int, int] | None:
    """The kernel (dev, ino) of the executable ``pid`` runs (None: gone,
    a zombie or a kernel thread)."""
    try:
        st = os.stat(f"/proc/{pid}/exe")
    except OSError:
        return None
    return kernel_dev(st.st_dev), st.st_ino


def parent(pid: int) -> int | None:
    fields = _stat(pid)
    return None if fields is None else int(fields[1])


def comm(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().rstrip(b"\n").decode("utf-8", "replace")
    except OSError:
        return None


def cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode("utf-8", "surrogateescape") for a in f.read().split(b"\0")[:-1]]


def environ(pid: int) -> list[bytes]:
    """The values of the environment ``pid`` was started with."""
    with open(f"/proc/{pid}/environ", "rb") as f:
        return [entry.partition(b"=")[2] for entry in f.read().split(b"\0")[:-1]]


def cwd(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/cwd")


@dataclass(frozen=True, slots=True)
class Mapping:
    """One file mapped executable: kernel (dev, ino) and where to open it."""

    kdev: int
    ino: int
    map_file: str  # /proc/PID/map_files/START-END (opens the mapped file itself)
    name: str  # the path /proc/PID/maps shows


def executable_mappings(pid: int, executable_only: bool = True) -> list[Mapping]:
    """Files mapped by ``pid`` (executable ones unless told otherwise), one
    entry per file."""
    out: dict[tuple[int, int], Mapping] = {}
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            lines = f.read().decode("utf-8", "surrogateescape").splitlines()
    except OSError:
        return []
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) < 5 or (executable_only and "x" not in parts[1]):
            continue
        ino = int(parts[4])
        if not ino:
            continue
        major, minor = (int(x, 16) for x in parts[3].split(":"))
        key = ((major << 20) | minor, ino)
        if key not in out:
            out[key] = Mapping(key[0], ino, f"/proc/{pid}/map_files/{parts[0]}",
                               parts[5] if len(parts) > 5 else "")
    return list(out.values())
