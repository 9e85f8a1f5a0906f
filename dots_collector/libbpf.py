"""The few bpf(2) operations the collector needs, through Debian's libbpf
(libbpf1) by ctypes: pin and open pinned objects, read and write map
elements, ask a map what it is, and attach programs through BPF links.

No bcc here: the long-running collector imports this module and never
bcc, so LLVM (bcc's compiler, ~200 MiB resident) stays in the short-lived
loader (loader.py). libbpf 1.x returns -errno from every call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from pathlib import Path

BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2
BPF_MAP_TYPE_ARRAY = 2
BPF_PERF_EVENT = 41  # enum bpf_attach_type: a link on a perf event (tracepoints)

_PERF_TYPE_TRACEPOINT = 2
_PERF_FLAG_FD_CLOEXEC = 8
_NR_PERF_EVENT_OPEN = 298  # x86-64
_PERF_ATTR_SIZE = 128
_TRACEFS = (Path("/sys/kernel/tracing/events"), Path("/sys/kernel/debug/tracing/events"))


class MapInfo(ctypes.Structure):
    """The head of struct bpf_map_info (linux/bpf.h): what we read of it."""

    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32),
                ("key_size", ctypes.c_uint32), ("value_size", ctypes.c_uint32),
                ("max_entries", ctypes.c_uint32), ("map_flags", ctypes.c_uint32),
                ("name", ctypes.c_char * 16), ("_rest", ctypes.c_uint8 * 64)]


@functools.lru_cache(maxsize=1)
def lib() -> ctypes.CDLL:
    handle = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so.1", use_errno=True)
    i, p, vp = ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p
    for name, args in {"bpf_obj_pin": [i, p], "bpf_obj_get": [p],
                       "bpf_map_lookup_elem": [i, vp, vp],
                       "bpf_map_update_elem": [i, vp, vp, ctypes.c_uint64],
                       "bpf_map_delete_elem": [i, vp], "bpf_map_get_next_key": [i, vp, vp],
                       "bpf_obj_get_info_by_fd": [i, vp, ctypes.POINTER(ctypes.c_uint32)],
                       "bpf_prog_get_fd_by_id": [ctypes.c_uint32],
                       "bpf_link_create": [i, i, i, vp],
                       "bpf_raw_tracepoint_open": [p, i],
                       "bpf_map_create": [i, p, ctypes.c_uint32, ctypes.c_uint32,
                                          ctypes.c_uint32, vp],
                       "libbpf_num_possible_cpus": []}.items():
        fn = getattr(handle, name)
        fn.argtypes, fn.restype = args, ctypes.c_int
    return handle


def _check(result: int, what: str) -> int:
    if result < 0:
        err = -result if result < -1 else (ctypes.get_errno() or 1)
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def obj_pin(fd: int, path: str | Path) -> None:
    _check(lib().bpf_obj_pin(fd, os.fsencode(path)), f"pin {path}")


def obj_get(path: str | Path) -> int:
    """An fd of the map, program or link pinned at path."""
    return _check(lib().bpf_obj_get(os.fsencode(path)), f"open pinned {path}")


def map_info(fd: int) -> MapInfo:
    info = MapInfo()
    size = ctypes.c_uint32(ctypes.sizeof(info))
    _check(lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)), "map info")
    return info


class _ProgInfo(ctypes.Structure):
    """struct bpf_prog_info (linux/bpf.h) up to recursion_misses: the
    kernel fills what fits, and copies no array while their counts are 0."""

    _fields_ = [("_head", ctypes.c_uint8 * 192), ("run_time_ns", ctypes.c_uint64),
                ("run_cnt", ctypes.c_uint64), ("recursion_misses", ctypes.c_uint64)]


class _LinkInfo(ctypes.Structure):
    """The head of struct bpf_link_info (linux/bpf.h)."""

    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("prog_id", ctypes.c_uint32)]


def _info(fd: int, info: ctypes.Structure, what: str) -> None:
    size = ctypes.c_uint32(ctypes.sizeof(info))
    _check(lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)), what)


def prog_recursion_misses(prog_fd: int) -> int:
    """Runs of the program the kernel skipped: a (perf) tracepoint program
    that would have interrupted another BPF program on its CPU, a raw
    tracepoint that would have interrupted itself."""
    info = _ProgInfo()
    _info(prog_fd, info, "program info")
    return info.recursion_misses


def link_prog_fd(link_fd: int) -> int:
    """An fd of the program a link attaches."""
    info = _LinkInfo()
    _info(link_fd, info, "link info")
    return _check(lib().bpf_prog_get_fd_by_id(info.prog_id), f"program {info.prog_id}")


def lookup(fd: int, key, value) -> bool:
    """Fill ``value`` (a ctypes buffer) from the element at ``key``; False
    when there is none."""
    r = lib().bpf_map_lookup_elem(fd, ctypes.byref(key), ctypes.byref(value))
    if r == -2:  # ENOENT
        return False
    _check(r, "map lookup")
    return True


def update(fd: int, key, value, flags: int = BPF_ANY) -> None:
    _check(lib().bpf_map_update_elem(fd, ctypes.byref(key), ctypes.byref(value), flags),
           "map update")


def delete(fd: int, key) -> bool:
    r = lib().bpf_map_delete_elem(fd, ctypes.byref(key))
    if r == -2:
        return False
    _check(r, "map delete")
    return True


def next_key(fd: int, key, out) -> bool:
    """The key after ``key`` (None: the first) into ``out``; False at the end."""
    r = lib().bpf_map_get_next_key(fd, None if key is None else ctypes.byref(key),
                                   ctypes.byref(out))
    if r == -2:
        return False
    _check(r, "map next key")
    return True


def array_create(name: str, value_size: int) -> int:
    """A one-element array map (the loader's manifest lives in one)."""
    return _check(lib().bpf_map_create(BPF_MAP_TYPE_ARRAY, name.encode()[:15], 4, value_size,
                                       1, None), "map create")


@functools.lru_cache(maxsize=1)
def possible_cpus() -> int:
    return _check(lib().libbpf_num_possible_cpus(), "possible CPUs")


def link_create(prog_fd: int, target_fd: int, attach_type: int) -> int:
    """Attach prog to target (a cgroup directory fd, a perf event fd);
    returns the link fd. Closing it, and removing its pin, detaches."""
    return _check(lib().bpf_link_create(prog_fd, target_fd, attach_type, None),
                  f"bpf_link_create(attach type {attach_type})")


def raw_tracepoint_open(name: str, prog_fd: int) -> int:
    """Attach a raw tracepoint program to the tracepoint ``name`` (no
    category: "kmalloc"); returns the link fd. Closing it detaches."""
    return _check(lib().bpf_raw_tracepoint_open(name.encode(), prog_fd),
                  f"bpf_raw_tracepoint_open({name})")


def tracepoint_id(category: str, name: str) -> int:
    for root in _TRACEFS:
        path = root / category / name / "id"
        if path.exists():
            return int(path.read_text())
    raise OSError(f"no tracepoint {category}:{name} in tracefs")


def tracepoint_event(category: str, name: str) -> int:
    """A perf event on a tracepoint (all CPUs see the BPF program: the
    event's CPU only filters samples, and a link has none), as bcc makes."""
    attr = (ctypes.c_uint8 * _PERF_ATTR_SIZE)()
    head = (ctypes.c_uint32 * 2).from_buffer(attr)
    head[0], head[1] = _PERF_TYPE_TRACEPOINT, _PERF_ATTR_SIZE
    ctypes.c_uint64.from_buffer(attr, 8).value = tracepoint_id(category, name)
    ctypes.c_uint64.from_buffer(attr, 16).value = 1  # sample_period
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(_NR_PERF_EVENT_OPEN, ctypes.byref(attr), -1, 0, -1, _PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"perf_event_open({category}:{name}): {os.strerror(err)}")
    return fd
