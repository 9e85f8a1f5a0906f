"""cgroup v2 attachment through BPF links.

A link (BPF_LINK_CREATE) rather than BPF_PROG_ATTACH: the program stays
attached exactly as long as the collector holds the link's fd, so a
collector that stops, crashes or is killed leaves no stale rules in the
kernel, and links always coexist with other programs on the same cgroup
(multi-attach) instead of replacing them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os


def cgroup2_mount(mounts: str = "/proc/mounts") -> str:
    """Where the cgroup v2 hierarchy is mounted (unified or hybrid)."""
    with open(mounts) as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                return fields[1].replace("\\040", " ")
    raise RuntimeError("no cgroup2 hierarchy is mounted (see /proc/mounts)")


@functools.lru_cache(maxsize=1)
def _libbpf() -> ctypes.CDLL:
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    lib = ctypes.CDLL(name, use_errno=True)
    lib.bpf_link_create.restype = ctypes.c_int
    lib.bpf_link_create.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    return lib


def link_create(prog_fd: int, target_fd: int, attach_type: int) -> int:
    """Attach prog to target (a cgroup directory fd); returns the link fd.
    Closing it detaches the program."""
    fd = _libbpf().bpf_link_create(prog_fd, target_fd, attach_type, None)
    if fd < 0:
        err = -fd if fd < -1 else ctypes.get_errno()
        raise OSError(err, f"bpf_link_create(attach type {attach_type}): {os.strerror(err)}")
    return fd
