"""BPF maps opened from their pins, with the part of bcc's table API the
monitors and enforcers use (``self.bpf[b"name"]``, ``table[k]``,
``table[k] = v``, ``del table[k]``, ``keys()``, ``items()``, ``Key``,
``Leaf``, per-CPU values as lists), over libbpf.py instead of bcc.

The key and value layouts are bcc's own: the loader stores bcc's JSON type
description of every map in the manifest (pinning.py) and
:func:`decode_type` builds the same ctypes types from it (bcc's
``BPF._decode_table_type``, which lives in a module that loads libbcc).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import libbpf

_PERCPU = {5, 6, 10}  # PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH
_ARRAYS = {2, 6}  # ARRAY, PERCPU_ARRAY
RINGBUF = 27

_SCALARS: dict[str, Any] = {
    "_Bool": ctypes.c_bool, "char": ctypes.c_char, "wchar_t": ctypes.c_wchar,
    "unsigned char": ctypes.c_ubyte, "short": ctypes.c_short, "unsigned short": ctypes.c_ushort,
    "int": ctypes.c_int, "unsigned int": ctypes.c_uint, "long": ctypes.c_long,
    "unsigned long": ctypes.c_ulong, "long long": ctypes.c_longlong,
    "unsigned long long": ctypes.c_ulonglong, "float": ctypes.c_float,
    "double": ctypes.c_double, "long double": ctypes.c_longdouble,
    "__int128": ctypes.c_int64 * 2, "unsigned __int128": ctypes.c_uint64 * 2,
}


def decode_type(desc: Any) -> Any:
    """A ctypes type from bcc's JSON description of a C type."""
    if isinstance(desc, str):
        return _SCALARS[desc]
    anon: list[str] = []
    fields: list[tuple] = []
    for t in desc[1]:
        if len(t) == 2:
            fields.append((t[0], decode_type(t[1])))
        elif isinstance(t[2], list):
            fields.append((t[0], decode_type(t[1]) * t[2][0]))
        elif isinstance(t[2], int):
            fields.append((t[0], decode_type(t[1]), t[2]))
        elif t[2] in ("union", "struct", "struct_packed"):
            name = t[0] or f"__anon{len(anon)}"
            if not t[0]:
                anon.append(name)
            fields.append((name, decode_type(t)))
        else:
            raise ValueError(f"cannot decode the type {t!r}")
    kind = desc[2] if len(desc) > 2 else "struct"
    base = ctypes.Union if kind == "union" else ctypes.Structure
    body: dict[str, Any] = {"_anonymous_": anon, "_fields_": fields}
    if kind == "struct_packed":
        body["_pack_"] = 1
    return type(str(desc[0]), (base,), body)


class Table:
    """One pinned map."""

    def __init__(self, fd: int, name: str, key_type: Any, leaf_type: Any) -> None:
        info = libbpf.map_info(fd)
        self.map_fd = fd
        self.name = name
        self.map_type = info.type
        self.max_entries = info.max_entries
        self.Key, self.Leaf = key_type, leaf_type
        self.percpu = info.type in _PERCPU
        if self.percpu:
            self._ncpus = libbpf.possible_cpus()
            stride = (ctypes.sizeof(leaf_type) + 7) & ~7  # values are 8-byte aligned
            self._slot = ctypes.c_uint8 * stride
        if info.type != RINGBUF and ctypes.sizeof(key_type) != info.key_size:
            raise ValueError(f"map {name}: key layout {ctypes.sizeof(key_type)} bytes, "
                             f"the kernel's {info.key_size}")

    # --- keys and values ----------------------------------------------------------
    def _key(self, key: Any) -> Any:
        if isinstance(key, int):
            return self.Key(key)
        if type(key) is not self.Key:
            return self.Key.from_buffer_copy(bytes(key))
        return key

    def _value(self, leaf: Any) -> Any:
        if isinstance(leaf, int):
            leaf = self.Leaf(leaf)
        elif type(leaf) is not self.Leaf:
            leaf = self.Leaf.from_buffer_copy(bytes(leaf))
        if not self.percpu:
            return leaf
        buf = (self._slot * self._ncpus)()
        for cpu in range(self._ncpus):
            ctypes.memmove(ctypes.addressof(buf[cpu]), ctypes.addressof(leaf),
                           ctypes.sizeof(leaf))
        return buf

    def _new_value(self) -> Any:
        return (self._slot * self._ncpus)() if self.percpu else self.Leaf()

    def _out(self, raw: Any) -> Any:
        if not self.percpu:
            return raw
        leaf = self.Leaf
        values = [leaf.from_buffer_copy(bytes(raw[cpu])[:ctypes.sizeof(leaf)])
                  for cpu in range(self._ncpus)]
        if issubclass(leaf, ctypes._SimpleCData):
            return [v.value for v in values]
        return values

    # --- the mapping --------------------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        value = self._new_value()
        if not libbpf.lookup(self.map_fd, self._key(key), value):
            raise KeyError(key)
        return self._out(value)

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __setitem__(self, key: Any, leaf: Any) -> None:
        libbpf.update(self.map_fd, self._key(key), self._value(leaf))

    def __delitem__(self, key: Any) -> None:
        key = self._key(key)
        if self.map_type in _ARRAYS:  # as bcc: an array element is zeroed
            libbpf.update(self.map_fd, key, self._value(self.Leaf()))
        elif not libbpf.delete(self.map_fd, key):
            raise KeyError(key)

    def __contains__(self, key: Any) -> bool:
        return libbpf.lookup(self.map_fd, self._key(key), self._new_value())

    def keys(self) -> Iterator[Any]:
        """Every key (a hash map's keys are collected first: deleting while
        walking would restart the walk)."""
        if self.map_type in _ARRAYS:
            return iter([self.Key(i) for i in range(self.max_entries)])
        out, key = [], None
        while True:
            nxt = self.Key()
            if not libbpf.next_key(self.map_fd, key, nxt):
                return iter(out)
            out.append(nxt)
            key = nxt

    __iter__ = keys

    def items(self) -> list[tuple[Any, Any]]:
        out = []
        for key in self.keys():
            value = self._new_value()
            if libbpf.lookup(self.map_fd, key, value):
                out.append((key, self._out(value)))
        return out

    def values(self) -> list[Any]:
        return [v for _, v in self.items()]

    def __len__(self) -> int:
        return sum(1 for _ in self.keys())

    def clear(self) -> None:
        for key in list(self.keys()):
            try:
                del self[key]
            except KeyError:
                pass

    def prune(self, keep: set[bytes]) -> int:
        """Delete every entry whose key's bytes are not in ``keep``."""
        stale = [k for k in self.keys() if bytes(k) not in keep]
        for key in stale:
            try:
                del self[key]
            except KeyError:
                pass
        return len(stale)


def open_programs(directory: Path) -> list[int]:
    """fds of the programs of the object pinned in ``directory``: those its
    links attach (``link_*``) and the gated ones (``prog_*``)."""
    fds: list[int] = []
    try:
        for pin in sorted(directory.iterdir()):
            if pin.name.startswith("prog_"):
                fds.append(libbpf.obj_get(pin))
            elif pin.name.startswith("link_"):
                link = libbpf.obj_get(pin)
                try:
                    fds.append(libbpf.link_prog_fd(link))
                finally:
                    os.close(link)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return fds


class PinnedMaps:
    """The maps of one BPF object, opened from ``<dir>/map_<name>`` with the
    layouts of its manifest: a stand-in for bcc's BPF object once loaded."""

    def __init__(self, directory: Path, layouts: dict[str, tuple[Any, Any]]) -> None:
        self.directory = directory
        self.tables: dict[bytes, Table] = {}
        #: fds of the object's programs, attached (link_*) or gated (prog_*):
        #: for their counters (BpfObject.skipped)
        self.program_fds: list[int] = []
        try:
            for name, (key_desc, leaf_desc) in layouts.items():
                fd = libbpf.obj_get(directory / f"map_{name}")
                self.tables[name.encode()] = Table(fd, name, decode_type(key_desc),
                                                   decode_type(leaf_desc))
            self.program_fds = open_programs(directory)
        except BaseException:
            self.cleanup()
            raise

    def __getitem__(self, name: bytes) -> Table:
        return self.tables[name]

    def __contains__(self, name: bytes) -> bool:
        return name in self.tables

    def cleanup(self) -> None:
        """Close our fds (the pins, and so the programs, stay)."""
        for table in self.tables.values():
            os.close(table.map_fd)
        self.tables.clear()
        for fd in self.program_fds:
            os.close(fd)
        self.program_fds.clear()
