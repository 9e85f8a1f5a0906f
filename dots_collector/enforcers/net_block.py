"""Connect enforcer loader (see net_block.bpf.c): blocked addresses and
CIDR ranges per uid, both families, denied with EPERM at connect() and
UDP sendmsg(); each denial is a "connect_blocked" NetworkEvent."""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import os
import socket
import struct
from typing import Any

from dots_common.limits import MAX_UIDS
from dots_common.records import NetworkEvent

from ..monitors.base import cstr
from .base import Enforcer
from .cgroup import cgroup2_mount, link_create

log = logging.getLogger(__name__)

MAX_BLOCKED_NETS = 65536
UID_BITS = 32

# struct net_event (net_block.bpf.c)
EVENT = struct.Struct("<QIIIIII16s16s")
OPS = ("connect_blocked", "connect_blocked")  # connect / sendmsg: one record type

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _attach_types() -> tuple[tuple[bytes, int], ...]:
    from bcc import BPFAttachType as T

    return ((b"dots_connect4", T.CGROUP_INET4_CONNECT), (b"dots_connect6", T.CGROUP_INET6_CONNECT),
            (b"dots_sendmsg4", T.CGROUP_UDP4_SENDMSG), (b"dots_sendmsg6", T.CGROUP_UDP6_SENDMSG))


def trie_key(network: Network) -> tuple[int, bytes]:
    """(prefix length over uid + address, 16 address bytes): IPv4 as
    ::ffff:a.b.c.d so both families share one trie."""
    if network.version == 4:
        mapped = ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + network.network_address.packed)
        return UID_BITS + 96 + network.prefixlen, mapped.packed
    return UID_BITS + network.prefixlen, network.network_address.packed


class NetEnforcer(Enforcer):
    name = "net_block"
    record_type = NetworkEvent

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.cgroup_path = ""
        self._cgroup_fd = -1
        self._links: list[int] = []
        self.rules: dict[int, list[Network]] = {}

    def cflags(self) -> list[str]:
        return [*super().cflags(), f"-DMAX_ENFORCED_UIDS={MAX_UIDS}",
                f"-DMAX_BLOCKED_NETS={MAX_BLOCKED_NETS}"]

    def load(self) -> None:
        from bcc import BPF

        self.bpf = BPF(text=self.program_text().encode(), cflags=self.cflags())
        self.cgroup_path = cgroup2_mount()
        self._cgroup_fd = os.open(self.cgroup_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for fn_name, attach_type in _attach_types():
                fn = self.bpf.load_func(fn_name, BPF.CGROUP_SOCK_ADDR, attach_type=attach_type)
                self._links.append(link_create(fn.fd, self._cgroup_fd, attach_type))
        except Exception:
            self.close()
            raise
        log.info("connect enforcer attached to %s", self.cgroup_path)

    def close(self) -> None:
        for fd in self._links:  # closing the links detaches the programs
            os.close(fd)
        self._links.clear()
        if self._cgroup_fd >= 0:
            os.close(self._cgroup_fd)
            self._cgroup_fd = -1
        super().close()

    # --- rules -------------------------------------------------------------------
    def set_blocked(self, uid: int, networks: list[Network]) -> list[Network]:
        """Replace uid's blocked networks (new entries go in before old ones
        leave, so a range being edited is never open)."""
        trie = self.bpf[b"blocked_nets"]
        want = {trie_key(n) for n in networks}
        have = {trie_key(n) for n in self.rules.get(uid, [])}
        in_force = sum(len(rules) for rules in self.rules.values())
        if in_force + len(want - have) > MAX_BLOCKED_NETS:
            # refused before anything changes: a half-applied list would leak entries
            raise ValueError(f"the kernel's table of blocked networks holds {MAX_BLOCKED_NETS} "
                             f"entries for all uids; {in_force} are in force and this list "
                             f"adds {len(want - have)}")
        for prefixlen, addr in want - have:
            trie[self._key(trie, prefixlen, uid, addr)] = ctypes.c_uint8(1)
        uids = self.bpf[b"enforced_uids"]
        if want:
            uids[ctypes.c_uint32(uid)] = ctypes.c_uint8(1)
            self.rules[uid] = list(networks)
        else:
            try:
                del uids[ctypes.c_uint32(uid)]
            except KeyError:
                pass
            self.rules.pop(uid, None)
        for prefixlen, addr in have - want:
            try:
                del trie[self._key(trie, prefixlen, uid, addr)]
            except KeyError:
                pass
        return list(networks)

    @staticmethod
    def _key(trie: Any, prefixlen: int, uid: int, addr: bytes) -> Any:
        key = trie.Key()
        key.prefixlen = prefixlen
        key.uid = uid
        ctypes.memmove(ctypes.addressof(key.addr), addr, 16)
        return key

    @property
    def denied(self) -> int:
        return sum(self.bpf[b"denied"][ctypes.c_int(0)])

    def state(self) -> dict[str, Any]:
        return {"blocked_addresses": {u: [str(n) for n in nets] for u, nets in self.rules.items()},
                "connect_blocked": self.denied}

    # --- events -----------------------------------------------------------------------
    def decode(self, data: bytes) -> NetworkEvent:
        ts_ns, pid, uid, family, _op, _protocol, dport, daddr, comm = EVENT.unpack_from(data)
        address = ipaddress.IPv6Address(daddr)
        if family == socket.AF_INET or address.ipv4_mapped is not None:
            text = str(address.ipv4_mapped) if address.ipv4_mapped else str(address)
        else:
            text = str(address)
        return NetworkEvent(type="connect_blocked", pid=pid, uid=uid, comm=cstr(comm),
                            family=family, saddr="", daddr=text, sport=0, dport=dport,
                            bytes_sent=0, bytes_received=0, ts_ns=ts_ns)
