"""Network monitor loader: TCP connect / accept / close over IPv4 and IPv6,
with bytes sent and received per socket aggregated in the kernel (see
network.bpf.c).

Event types:

* "connect_close" / "accept_close": a connection (our connect(), or one
  accepted on a listener of a monitored user) that closed less than
  ``short_connection_s`` (1 s) after it was established: its connect or
  accept and its close in one record (ts_ns: the close), all its bytes.
  Most connections are such (a page's requests, an API call), and one
  record instead of two halves what a burst of them costs.
* "connect" / "accept": a connection established that long ago and still
  open, reported by :meth:`periodic` (at most a second or so after it
  became that old; ts_ns: when it was established), or with its close
  when the close came first;
* "close": the close of such a longer connection;
* "connect_failed": refused, reset or timed out before it was
  established (addresses and ports of the attempt, no bytes);
* "bytes", from :meth:`periodic`, for sockets that stay open.

bytes_sent / bytes_received on "bytes" and "close" are the bytes moved
*since the previous report of that socket*: summing them gives the
connection's total, and a connection shorter than ``tick_interval`` gets
all its bytes on its close event. The kernel always reports totals; user
space subtracts what it already reported (it never writes the counters, so
no byte is lost between a read and a reset).
"""

from __future__ import annotations

import collections
import ctypes
import functools
import os
import socket
import struct
import time
from collections.abc import Iterable

from dots_common.records import NetworkEvent, ip_text

from .. import btf
from .base import DEFAULT_RINGBUF_KIB_PER_CPU, DecodeCache, Monitor, cstr

# struct net_event (network.bpf.c)
EVENT = struct.Struct("<QQQQQQIIIHHHH16s16s16s")
TYPES = ("connect", "accept", "close", "connect_failed", "connect_close", "accept_close")
EV_CONNECT, EV_ACCEPT, EV_CLOSE, EV_CONNECT_CLOSE = 0, 1, 2, 4
#: seconds between "bytes" reports of a socket that stays open
BYTES_INTERVAL = 5.0
TCP_LISTEN_HEX = "0A"
TRACEFS = "/sys/kernel/tracing"
#: what inet_sock_set_state's raw tracepoint reads of the socket, at the
#: running kernel's offsets (network.bpf.c)
BTF_OFFSETS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("OFF_SK_FAMILY", "sock", ("__sk_common.skc_family",)),
    ("OFF_SK_PROTOCOL", "sock", ("sk_protocol",)),
    ("OFF_SK_DPORT", "sock", ("__sk_common.skc_dport",)),
    ("OFF_SK_DADDR", "sock", ("__sk_common.skc_daddr",)),
    ("OFF_SK_RCV_SADDR", "sock", ("__sk_common.skc_rcv_saddr",)),
    ("OFF_SK_V6_DADDR", "sock", ("__sk_common.skc_v6_daddr",)),
    ("OFF_SK_V6_RCV_SADDR", "sock", ("__sk_common.skc_v6_rcv_saddr",)),
    ("OFF_INET_SPORT", "inet_sock", ("inet_sport",)),
)


class NetworkMonitor(Monitor):
    name = "network"
    record_type = NetworkEvent
    fixed_records = True  # one struct, reserved in one place
    #: a look at the live sockets every second: connections to announce
    tick_interval = 1.0

    def __init__(self, kib_per_cpu: int = DEFAULT_RINGBUF_KIB_PER_CPU,
                 extra_cflags: Iterable[str] = (), max_sockets: int = 4096,
                 short_connection_s: float = 1.0) -> None:
        super().__init__(kib_per_cpu, extra_cflags)
        self.max_sockets = max_sockets
        self.short_ns = int(short_connection_s * 1e9)
        self.bytes_interval = BYTES_INTERVAL
        # (sk, gen) -> [sent, received already reported, last report (boot
        # ns), whether its connect or accept was reported]
        self._reported: dict[tuple[int, int], list[int]] = {}
        self._closed: collections.deque[tuple[int, int]] = collections.deque(maxlen=4096)
        #: address texts by family, decoded once (decode_rows)
        self._addresses = {family: DecodeCache(functools.partial(ip_text, family))
                           for family in (socket.AF_INET, socket.AF_INET6)}

    def cflags(self) -> list[str]:
        flags = [*super().cflags(), f"-DMAX_SOCKS={self.max_sockets}",
                 f"-DSHORT_NS={self.short_ns}ULL", *btf.cflags(BTF_OFFSETS)]
        if not self.counts_bytes:
            flags.append("-DDOTS_NO_SOCK_LENGTH")
        return flags

    @property
    def counts_bytes(self) -> bool:
        """sock:sock_send_length / sock_recv_length exist (Linux 6.0+); without
        them connections are still followed, with zero byte counts."""
        return all(os.path.exists(f"{TRACEFS}/events/sock/{name}")
                   for name in ("sock_send_length", "sock_recv_length"))

    def after_load(self) -> None:
        self.seed_listeners()

    @property
    def untracked_sockets(self) -> int:
        """Connections not followed because the socket table was full."""
        return self.bpf[b"net_stats"][ctypes.c_int(0)].value

    def seed_listeners(self) -> None:
        """Listeners opened before the monitor was loaded (their listen()
        was not seen): from /proc/net/tcp{,6}, owner pid found through the
        socket inode in /proc/<pid>/fd. Connections they accept are then
        attributed like the others."""
        found = read_listeners()
        if not found:
            return
        owners = socket_owners({inode for (_, _, _, inode) in found})
        table = self.bpf[b"listeners"]
        for family, port, uid, inode in found:
            key = table.Key()
            key.family, key.port = family, port
            if key in table:        # seen live meanwhile: that one is better
                continue
            leaf = table.Leaf()
            leaf.sk = 0
            pid, comm = owners.get(inode, (0, ""))
            leaf.o.pid, leaf.o.uid = pid, uid
            leaf.o.comm = comm.encode()[:15]
            table[key] = leaf

    # --- ring buffer ----------------------------------------------------------
    def decode_rows(self, buf: bytes, spans: list[tuple[int, int]]) -> list[tuple]:
        """NetworkEvent rows: type, pid, uid, comm, family, saddr, daddr,
        sport, dport, bytes_sent, bytes_received, ts_ns. Every record is a
        socket's last; the close of a longer connection whose connect or
        accept no look at the live sockets reported brings it along."""
        unpack = EVENT.unpack_from
        reported, closed = self._reported, self._closed
        texts, addresses = self.texts, self._addresses
        out = []
        for off, _size in spans:
            (ts_ns, sent, received, gen, sk, opened, kind, pid, uid, family, sport, dport,
             accepted, saddr, daddr, comm) = unpack(buf, off)
            done = reported.pop((sk, gen), None)
            if done is not None:
                sent -= done[0]
                received -= done[1]
            closed.append((sk, gen))
            addr = addresses.get(family)
            if addr is not None:
                source, dest = addr[saddr], addr[daddr]
            else:  # neither AF_INET nor AF_INET6: not remembered
                source, dest = ip_text(family, saddr), ip_text(family, daddr)
            if done is not None and done[3] and kind >= EV_CONNECT_CLOSE:
                kind = EV_CLOSE     # a look at the map caught it between its record and delete
            if kind == EV_CLOSE and (done is None or not done[3]):
                out.append((TYPES[EV_ACCEPT if accepted else EV_CONNECT], pid, uid, texts[comm],
                            family, source, dest, sport, dport, 0, 0, opened))
            out.append((TYPES[kind], pid, uid, texts[comm], family, source, dest,
                        sport, dport, sent if sent > 0 else 0,
                        received if received > 0 else 0, ts_ns))
        return out

    # --- live sockets ---------------------------------------------------------
    def periodic(self, final: bool = False) -> list[NetworkEvent]:
        """A "connect" or "accept" for every established socket that has
        lived ``short_connection_s`` and was not reported yet, and a
        "bytes" event for every one that moved bytes and whose last report
        is older than ``bytes_interval`` (any age when ``final``, at shutdown).
        The map is scanned at most once per second however often this is
        called."""
        if not self.scan_due(final):
            return []
        now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        interval_ns = 0 if final else int(self.bytes_interval * 1e9)
        announce_before = now if final else now - self.short_ns
        closed = set(self._closed)
        seen: set[tuple[int, int]] = set()
        out: list[NetworkEvent] = []
        for k, v in self.bpf[b"socks"].items():
            key = (k.value, v.gen)
            if key in closed or not v.established:
                continue
            seen.add(key)
            done = self._reported.get(key)
            if done is None:
                done = self._reported[key] = [0, 0, v.gen, False]
            if not done[3]:
                if v.opened > announce_before:
                    continue
                done[3] = True
                if self.wants(v.o.uid):
                    out.append(self._live_event("accept" if v.accepted else "connect", v, 0, 0,
                                                v.opened))
            if now - done[2] < interval_ns:
                continue
            d_sent, d_recv = v.sent - done[0], v.received - done[1]
            done[:3] = [v.sent, v.received, now]
            if (d_sent <= 0 and d_recv <= 0) or (not self.wants(v.o.uid)):
                continue
            out.append(self._live_event("bytes", v, max(d_sent, 0), max(d_recv, 0), now))
        for key in [key for key in self._reported if key not in seen]:
            del self._reported[key]
        self.delivered += len(out)
        return out

    @staticmethod
    def _live_event(kind: str, v, sent: int, received: int, ts_ns: int) -> NetworkEvent:
        """An event about a live socket, from its `socks` entry."""
        return NetworkEvent(
            type=kind, pid=v.o.pid, uid=v.o.uid, comm=cstr(bytes(v.o.comm)),
            family=v.family, saddr=ip_text(v.family, bytes(v.saddr)),
            daddr=ip_text(v.family, bytes(v.daddr)), sport=v.sport, dport=v.dport,
            bytes_sent=sent, bytes_received=received, ts_ns=ts_ns)


def read_listeners() -> list[tuple[int, int, int, int]]:
    """(family, port, uid, inode) of every TCP listener in our namespace."""
    out = []
    for family, path in ((socket.AF_INET, "/proc/net/tcp"), (socket.AF_INET6, "/proc/net/tcp6")):
        try:
            with open(path) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10 or cols[3] != TCP_LISTEN_HEX:
                continue
            port = int(cols[1].rsplit(":", 1)[1], 16)
            out.append((int(family), port, int(cols[7]), int(cols[9])))
    return out


def socket_owners(inodes: set[int]) -> dict[int, tuple[int, str]]:
    """socket inode -> (pid, comm) of a process holding it."""
    wanted = {f"socket:[{i}]": i for i in inodes}
    owners: dict[int, tuple[int, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                inode = wanted.get(os.readlink(fd.path))
                if inode is not None and inode not in owners:
                    with open(f"/proc/{entry.name}/comm") as f:
                        owners[inode] = (int(entry.name), f.read().strip())
        except OSError:
            continue
    return owners
