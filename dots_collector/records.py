"""Typed event records: what the monitors decode and what crosses the bus.

Each record is a frozen dataclass whose field order is its D-Bus struct
layout (``DBUS_SIGNATURE``). ``to_dbus`` gives the struct as a list,
``from_dbus`` rebuilds the record on the receiving side, ``to_json`` gives
the flat object printed by ``dots-collector --stdout``.

This module has no bcc and no D-Bus imports: the policy daemon uses it too.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="Record")


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
    DBUS_SIGNATURE: ClassVar[str] = "(suuuussit)"

    type: str  # "fork" | "exec" | "exit" | "exec_blocked"
    pid: int
    ppid: int
    uid: int
    gid: int
    comm: str
    path: str  # executable path on exec; "" otherwise
    exit_code: int  # exit status (0..255), or -signal when killed; 0 unless exit
    ts_ns: int  # CLOCK_BOOTTIME


@dataclasses.dataclass(frozen=True, slots=True)
class FileEvent(Record):
    """open / read / write / unlink / rename; read and write carry bytes
    aggregated in the kernel per (pid, fd): the bytes since the previous
    report of that open file (sum them for a total)."""

    MONITOR: ClassVar[str] = "filesystem"
    DBUS_SIGNATURE: ClassVar[str] = "(suussuitts)"

    type: str  # "open" | "read" | "write" | "unlink" | "rename"
    pid: int
    uid: int
    comm: str
    path: str
    flags: int  # open(2) flags (open, read, write); AT_REMOVEDIR for a directory unlink
    result: int  # fd or -errno (open); the fd (read, write); 0 or -errno (unlink, rename)
    bytes: int  # read/write only
    ts_ns: int
    new_path: str = ""  # rename only


@dataclasses.dataclass(frozen=True, slots=True)
class NetworkEvent(Record):
    """connect / accept / close / bytes of a TCP socket, IPv4 or IPv6.

    Addresses travel as text ("127.0.0.1", "::1"). Byte counts are those
    since the previous report of that socket (sum them for a total)."""

    MONITOR: ClassVar[str] = "network"
    DBUS_SIGNATURE: ClassVar[str] = "(suusqssqqttt)"

    type: str  # "connect" | "connect_failed" | "accept" | "close" | "bytes" | "connect_blocked"
    pid: int
    uid: int
    comm: str
    family: int  # socket.AF_INET or socket.AF_INET6
    saddr: str
    daddr: str
    sport: int
    dport: int
    bytes_sent: int
    bytes_received: int
    ts_ns: int


@dataclasses.dataclass(frozen=True, slots=True)
class MemorySample(Record):
    """One per active pid per interval: allocation totals since the last
    sample, aggregated in the kernel, and the resident set size."""

    MONITOR: ClassVar[str] = "memory"
    DBUS_SIGNATURE: ClassVar[str] = "(uustttttt)"

    pid: int
    uid: int
    comm: str
    bytes_alloc: int  # kmalloc bytes
    bytes_freed: int  # kfree bytes (allocation size when known)
    pages_alloc_bytes: int  # page allocations, 4096 << order
    pages_freed_bytes: int
    rss_bytes: int
    ts_ns: int


@dataclasses.dataclass(frozen=True, slots=True)
class DiskEvent(Record):
    """A completed block request, attributed to the pid that queued it."""

    MONITOR: ClassVar[str] = "disk"
    DBUS_SIGNATURE: ClassVar[str] = "(uusuttustt)"

    pid: int
    uid: int
    comm: str
    dev: int  # kernel dev_t: major << 20 | minor
    sector: int
    bytes: int
    nr_sector: int
    rw: str  # "R" | "W" | "D" (discard) | "F" (flush) ...
    latency_ns: int
    ts_ns: int


@functools.cache
def _field_names(cls: type[Record]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


RECORD_TYPES: dict[str, type[Record]] = {
    cls.MONITOR: cls for cls in (ProcessEvent, FileEvent, NetworkEvent, MemorySample, DiskEvent)
}

#: D-Bus signal name of each monitor's batches.
SIGNAL_NAMES: dict[str, str] = {
    "process": "ProcessEvents",
    "filesystem": "FileEvents",
    "network": "NetworkEvents",
    "memory": "MemorySamples",
    "disk": "DiskEvents",
}


def ip_text(family: int, raw: bytes) -> str:
    """Address bytes as text: 4 bytes for AF_INET, 16 for AF_INET6."""
    if family == 2:
        return str(ipaddress.IPv4Address(raw[:4]))
    return str(ipaddress.IPv6Address(raw[:16]))
