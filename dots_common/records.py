"""Typed event records: what the monitors decode and what crosses the bus.

Each record is a frozen dataclass whose field order is its D-Bus struct
layout (``DBUS_SIGNATURE``). ``to_dbus`` gives the struct as a list,
``from_dbus`` rebuilds the record on the receiving side, ``to_json`` gives
the flat object printed by ``dots-collector --stdout``.

Each field's type names its D-Bus type (``U32`` is ``u``, ``U64`` is ``t``
...), and ``DBUS_SIGNATURE`` is derived from the fields, so the struct
layout is written once; tests/test_wire_contract.py ties every signature to
``dbus/org.dots.Collector1.xml``.

This module has no bcc and no D-Bus imports: the policy daemon uses it too.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import socket
import typing
from typing import Annotated, Any, ClassVar, TypeVar

R = TypeVar("R", bound="Record")

#: integer fields by their D-Bus type; text is ``str`` (``s``)
U16 = Annotated[int, "q"]
I32 = Annotated[int, "i"]
U32 = Annotated[int, "u"]
U64 = Annotated[int, "t"]


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """Base of every event record (one struct per event on the bus)."""

    MONITOR: ClassVar[str] = ""
    DBUS_SIGNATURE: ClassVar[str] = ""

    def to_dbus(self) -> list[Any]:
        return [getattr(self, name) for name in _field_names(type(self))]

    @classmethod
    def from_dbus(cls: type[R], values: list[Any] | tuple[Any, ...]) -> R:
        return cls(*values)

    def to_json(self) -> dict[str, Any]:
        """Flat: no dataclasses.asdict (a deep copy, 3x slower per event)."""
        out: dict[str, Any] = {"monitor": self.MONITOR}
        for name in _field_names(type(self)):
            out[name] = getattr(self, name)
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class ProcessEvent(Record):
    """fork / exec / exit of a process (thread-group leaders only)."""

    MONITOR: ClassVar[str] = "process"

    type: str  # "fork" | "exec" | "exit" | "exec_blocked"
    pid: U32
    ppid: U32
    uid: U32
    gid: U32
    comm: str
    path: str  # executable path on exec; "" otherwise
    exit_code: I32  # exit status (0..255), or -signal when killed; 0 unless exit
    ts_ns: U64  # CLOCK_BOOTTIME


@dataclasses.dataclass(frozen=True, slots=True)
class FileEvent(Record):
    """open / read / write / unlink / rename; read and write carry bytes
    aggregated in the kernel per (pid, fd): the bytes since the previous
    report of that open file (sum them for a total)."""

    MONITOR: ClassVar[str] = "filesystem"

    # "open_read" | "open_write" (a file opened and closed within a second:
    # its open and the bytes it read or wrote, one event at its close) |
    # "open" | "read" | "write" (a longer one, or an open that moved no
    # bytes, or failed) | "unlink" | "rename"
    type: str
    pid: U32
    uid: U32
    comm: str
    path: str
    flags: U32  # open(2) flags (open, read, write); AT_REMOVEDIR for a directory unlink
    result: I32  # fd or -errno (open); the fd (read, write); 0 or -errno (unlink, rename)
    bytes: U64  # read/write only
    ts_ns: U64
    new_path: str = ""  # rename only


@dataclasses.dataclass(frozen=True, slots=True)
class NetworkEvent(Record):
    """connect / accept / close / bytes of a TCP socket, IPv4 or IPv6.

    Addresses travel as text ("127.0.0.1", "::1"). Byte counts are those
    since the previous report of that socket (sum them for a total)."""

    MONITOR: ClassVar[str] = "network"

    # "connect_close" | "accept_close" (a connection shorter than a second,
    # opened and closed, in one event at its close) | "connect" | "accept"
    # (a longer one, once it is a second old) | "close" (its close) |
    # "connect_failed" | "bytes" | "connect_blocked"
    type: str
    pid: U32
    uid: U32
    comm: str
    family: U16  # socket.AF_INET or socket.AF_INET6
    saddr: str
    daddr: str
    sport: U16
    dport: U16
    bytes_sent: U64
    bytes_received: U64
    ts_ns: U64


@dataclasses.dataclass(frozen=True, slots=True)
class MemorySample(Record):
    """One per active pid per interval: allocation totals since the last
    sample, aggregated in the kernel, and the resident set size."""

    MONITOR: ClassVar[str] = "memory"

    pid: U32
    uid: U32
    comm: str
    bytes_alloc: U64  # kmalloc bytes
    bytes_freed: U64  # kfree bytes (allocation size when known)
    pages_alloc_bytes: U64  # page allocations, 4096 << order
    pages_freed_bytes: U64
    rss_bytes: U64
    ts_ns: U64


@dataclasses.dataclass(frozen=True, slots=True)
class DiskEvent(Record):
    """A completed block request, attributed to the pid that queued it."""

    MONITOR: ClassVar[str] = "disk"

    pid: U32
    uid: U32
    comm: str
    dev: U32  # kernel dev_t: major << 20 | minor
    sector: U64
    bytes: U64
    nr_sector: U32
    rw: str  # "R" | "W" | "D" (discard) | "F" (flush) ...
    latency_ns: U64
    ts_ns: U64


@functools.cache
def _field_names(cls: type[Record]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def field_names(cls: type[Record]) -> tuple[str, ...]:
    """A record type's fields in wire order: the order of its D-Bus struct
    and of the collector's rows (tuples of these values)."""
    return _field_names(cls)


_DBUS_CODES = {str: "s"}


def dbus_signature(cls: type[Record]) -> str:
    """The record's D-Bus struct signature, from its fields' types."""
    hints = typing.get_type_hints(cls, include_extras=True)
    codes = []
    for name in _field_names(cls):
        hint = hints[name]
        code = hint.__metadata__[0] if typing.get_origin(hint) is Annotated else _DBUS_CODES.get(hint)
        if code is None:
            raise TypeError(f"{cls.__name__}.{name}: no D-Bus type for {hint!r}")
        codes.append(code)
    return "(" + "".join(codes) + ")"


RECORD_TYPES: dict[str, type[Record]] = {
    cls.MONITOR: cls for cls in (ProcessEvent, FileEvent, NetworkEvent, MemorySample, DiskEvent)
}

for _cls in RECORD_TYPES.values():
    _cls.DBUS_SIGNATURE = dbus_signature(_cls)

#: Fields a monitor's batch struct carries after its record's fields. The
#: file monitor's batches group identical events: every event of a batch
#: equal to an earlier one but for ``ts_ns`` and ``bytes`` (same type, pid,
#: uid, comm, path, flags, result, new_path: a process opening the same
#: file again and again) travels as ONE struct whose ``count`` says how
#: many, ``ts_ns`` the first one's, ``last_ts_ns`` the last one's and
#: ``bytes`` their sum. A struct of one event has count 1 and last_ts_ns =
#: ts_ns. (At 100k file events/s, one struct per event costs the collector,
#: dbus-daemon and the policy daemon more CPU than the machine has.)
BATCH_EXTRAS: dict[str, tuple[tuple[str, str], ...]] = {
    "filesystem": (("count", "u"), ("last_ts_ns", "t")),
}


def batch_signature(monitor: str) -> str:
    """One struct of a monitor's batch signal: the record's fields, then
    its BATCH_EXTRAS."""
    extras = "".join(code for _name, code in BATCH_EXTRAS.get(monitor, ()))
    return RECORD_TYPES[monitor].DBUS_SIGNATURE[:-1] + extras + ")"


def batch_field_names(monitor: str) -> tuple[str, ...]:
    """The fields of one struct of a monitor's batch signal, in order."""
    return field_names(RECORD_TYPES[monitor]) + tuple(n for n, _c in BATCH_EXTRAS.get(monitor, ()))


#: Monitors whose batch signal carries its structs packed in one ``ay``
#: (dots_common/packed.py) instead of an array of D-Bus structs: reading
#: 12-field structs costs dbus-fast ~5 µs each, the packed bytes ~1 µs.
PACKED_MONITORS = frozenset({"filesystem"})


def signal_signature(monitor: str) -> str:
    """A monitor's batch signal: the batch id, then its structs (packed
    bytes for PACKED_MONITORS, an array of batch_signature otherwise)."""
    return "tay" if monitor in PACKED_MONITORS else "ta" + batch_signature(monitor)


#: D-Bus signal name of each monitor's batches.
SIGNAL_NAMES: dict[str, str] = {
    "process": "ProcessEvents",
    "filesystem": "FileEvents",
    "network": "NetworkEvents",
    "memory": "MemorySamples",
    "disk": "DiskEvents",
}


def ip_text(family: int, raw: bytes) -> str:
    """Address bytes as text: 4 bytes for AF_INET, 16 for AF_INET6.
    (IPv4 through inet_ntop: the same text as ipaddress, 10x faster.)"""
    if family == 2:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    return str(ipaddress.IPv6Address(raw[:16]))
