"""BPF objects pinned in bpffs: how the loader leaves them there, and how
the collector finds, checks and removes them.

``<pin_dir>/<object>/`` holds ``link_<n>`` (every attachment, as a BPF
link: while it is pinned the program runs, whoever holds an fd or not),
``prog_<category>__<event>`` (programs the collector attaches and detaches
itself, monitors/probe_gate.py),
``map_<name>`` (every map) and ``manifest``: a one-element array map
holding the object's fingerprint and bcc's JSON description of each map's
key and value, so that the collector can open the maps without bcc
(maps.py). The manifest is pinned last: a directory without one is a load
that did not finish, and is removed.

bcc attaches tracepoint programs with perf-event ioctls, which cannot be
pinned: here they are detached and attached again through BPF links on
perf events (``BPF_LINK_CREATE``, ``BPF_PERF_EVENT``). Raw tracepoints
(bcc's fds are links already) and cgroup hooks (enforcers/net_block.py
makes links) are pinned as they are.

A pin survives its loader and a crash of the collector: the enforcers
keep killing blocked programs and refusing blocked addresses while no
collector runs, and a restarted collector re-opens the pins in
milliseconds. A clean stop removes them (the rules end with the service).
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import libbpf

log = logging.getLogger(__name__)

DEFAULT_PIN_DIR = "/sys/fs/bpf/dots"
MANIFEST = "manifest"
_HERE = Path(__file__).resolve().parent
_HEAD = ctypes.c_uint32  # the manifest value: u32 length, then zlib'ed JSON


class PinError(RuntimeError):
    pass


@functools.lru_cache(maxsize=1)
def code_hash() -> str:
    """The collector's code and the shared limits it compiles with: a pin
    made by other code is never reused."""
    h = hashlib.sha256()
    roots = [_HERE, _HERE.parent / "dots_common"]
    for path in sorted(p for root in roots for p in root.rglob("*")
                       if p.suffix in (".py", ".c", ".h") and "__pycache__" not in p.parts):
        h.update(str(path.relative_to(_HERE.parent)).encode() + b"\0" + path.read_bytes())
    try:
        h.update(Path("/proc/sys/kernel/random/boot_id").read_bytes())
    except OSError:
        pass
    return h.hexdigest()


def fingerprint(spec: dict[str, Any]) -> str:
    """Of one object as configured (BpfObject.spec()) and this code."""
    return hashlib.sha256((code_hash() + json.dumps(spec, sort_keys=True)).encode()).hexdigest()


# --- the loader's side -------------------------------------------------------------
def _bcc_tables(bpf: Any) -> list[tuple[str, int, Any, Any]]:
    """(name, fd, key description, value description) of every map of a
    bcc module."""
    from bcc.libbcc import lib

    lib.bpf_num_tables.restype = ctypes.c_size_t
    lib.bpf_num_tables.argtypes = [ctypes.c_void_p]
    lib.bpf_table_name.restype = ctypes.c_char_p
    lib.bpf_table_name.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    out = []
    for i in range(lib.bpf_num_tables(bpf.module)):
        name = lib.bpf_table_name(bpf.module, i)
        fd = lib.bpf_table_fd(bpf.module, name)
        if fd < 0:
            raise PinError(f"map {name!r} has no fd")
        out.append((name.decode(), fd, json.loads(lib.bpf_table_key_desc(bpf.module, name)),
                    json.loads(lib.bpf_table_leaf_desc(bpf.module, name))))
    return out


def _links(obj: Any) -> list[int]:
    """Every attachment of a built object as a link fd (tracepoints moved
    from bcc's perf ioctls to links)."""
    bpf = obj.bpf
    fds: list[int] = []
    for tp in list(bpf.tracepoint_fds):
        fn = bpf.funcs[tracepoint_function(tp.decode())]
        bpf.detach_tracepoint(tp)
        category, name = tp.decode().split(":")
        event = libbpf.tracepoint_event(category, name)
        try:
            fds.append(libbpf.link_create(fn.fd, event, libbpf.BPF_PERF_EVENT))
        finally:
            os.close(event)  # the link holds the event
    fds.extend(bpf.raw_tracepoint_fds.values())
    fds.extend(obj.link_fds())
    return fds


def pin_object(obj: Any, directory: Path, print_: str) -> int:
    """Pin a built object's links and maps and its manifest under
    ``directory`` (created). Returns the number of links."""
    directory.mkdir(mode=0o700)
    links = _links(obj)
    for i, fd in enumerate(links):
        libbpf.obj_pin(fd, directory / f"link_{i}")
    for tracepoint, fd in obj.gated_programs().items():
        libbpf.obj_pin(fd, directory / gated_program_pin(tracepoint))
    layouts = {}
    for name, fd, key_desc, leaf_desc in _bcc_tables(obj.bpf):
        libbpf.obj_pin(fd, directory / f"map_{name}")
        layouts[name] = [key_desc, leaf_desc]
    body = zlib.compress(json.dumps({"fingerprint": print_, "maps": layouts,
                                     "links": len(links)}).encode())
    fd = libbpf.array_create("dots_manifest", ctypes.sizeof(_HEAD) + len(body))
    try:
        value = (ctypes.c_uint8 * (ctypes.sizeof(_HEAD) + len(body))).from_buffer_copy(
            bytes(_HEAD(len(body))) + body)
        libbpf.update(fd, ctypes.c_uint32(0), value)
        libbpf.obj_pin(fd, directory / MANIFEST)
    finally:
        os.close(fd)
    return len(links)


def tracepoint_function(tracepoint: str) -> bytes:
    """bcc's name of a TRACEPOINT_PROBE's program ("kmem:kfree")."""
    return b"tracepoint__" + tracepoint.replace(":", "__").encode()


def raw_tracepoint_function(tracepoint: str) -> bytes:
    """bcc's name of a RAW_TRACEPOINT_PROBE's program ("kmem:kfree": the
    category is not part of it)."""
    return b"raw_tracepoint__" + tracepoint.split(":")[1].encode()


def gated_program_pin(tracepoint: str) -> str:
    """The pin's name of a program attached on demand ("kmem:kfree")."""
    return "prog_" + tracepoint.replace(":", "__")


# --- the collector's side ----------------------------------------------------------
def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest pinned in ``directory``; None if there is none."""
    try:
        fd = libbpf.obj_get(directory / MANIFEST)
    except OSError:
        return None
    try:
        size = libbpf.map_info(fd).value_size
        value = (ctypes.c_uint8 * size)()
        if not libbpf.lookup(fd, ctypes.c_uint32(0), value):
            return None
        raw = bytes(value)
        length = _HEAD.from_buffer_copy(raw).value
        return json.loads(zlib.decompress(raw[ctypes.sizeof(_HEAD):ctypes.sizeof(_HEAD) + length]))
    except (OSError, ValueError, zlib.error):
        return None
    finally:
        os.close(fd)


def unpin(directory: Path) -> None:
    """Remove an object's pins: its programs detach once no fd holds them."""
    if directory.is_dir():
        for entry in directory.iterdir():
            entry.unlink()
        directory.rmdir()


def unpin_tree(root: Path) -> None:
    """Remove every pin and directory under root, and root."""
    if not root.is_dir():
        return
    for directory, dirs, files in os.walk(root, topdown=False):
        for name in files:
            os.unlink(os.path.join(directory, name))
        for name in dirs:
            os.rmdir(os.path.join(directory, name))
    root.rmdir()


class PinDir:
    """The collector's pin directory, locked while it runs: two collectors
    must never read the same ring buffers or write the same rules."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        bpffs = self._bpffs_mount()
        if bpffs is None or not str(self.root).startswith(bpffs.rstrip("/") + "/"):
            raise PinError(f"{self.root} is not inside a mounted BPF file system "
                           f"(mount -t bpf bpf /sys/fs/bpf)")
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise PinError(f"another collector uses {self.root}") from None

    @staticmethod
    def _bpffs_mount() -> str | None:
        with open("/proc/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[2] == "bpf" and fields[1] == "/sys/fs/bpf":
                    return fields[1]
        return None

    def path(self, name: str) -> Path:
        return self.root / name

    def reusable(self, name: str, print_: str) -> dict[str, Any] | None:
        """The manifest of ``name`` if what is pinned is this code, so
        configured; otherwise what is there is removed and None returned."""
        directory = self.path(name)
        manifest = read_manifest(directory)
        if manifest is not None and manifest.get("fingerprint") == print_:
            return manifest
        if directory.exists():
            log.info("removing pinned %s (%s)", name,
                     "other code or settings" if manifest else "an unfinished load")
            unpin(directory)
        return None

    def remove(self, names: Iterable[str]) -> None:
        """Unpin the named objects (only those: the directory may hold
        another collector's pin directory too)."""
        for name in names:
            unpin(self.path(name))

    def close(self, remove_root: bool = False) -> None:
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1
        if remove_root:
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            try:
                self.root.rmdir()  # only if empty
            except OSError:
                pass
