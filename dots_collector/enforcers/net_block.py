"""Network enforcer loader (see net_block.bpf.c): blocked addresses and
CIDR ranges per uid, both families, denied with EPERM at connect() and
UDP sendmsg(); a uid's DNS redirected to its filtering resolver; internet
hours (offline), site allow-list mode and the filter's per-answer deny and
allow entries with their TTLs. Each denial is a "connect_blocked"
NetworkEvent."""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import os
import socket
import struct
import time
from typing import Any

from dots_common.limits import MAX_UIDS
from dots_common.records import NetworkEvent

from ..monitors.base import cstr
from .base import Enforcer
from ..libbpf import link_create
from .cgroup import cgroup2_mount

log = logging.getLogger(__name__)

MAX_BLOCKED_NETS = 65536
MAX_DYN_ADDRS = 8192
UID_BITS = 32
#: what counts as "this machine" (never offline, never outside the allow-list)
DEFAULT_LOCAL_NETS = ("127.0.0.0/8", "::1/128")

F_DNS, F_OFFLINE, F_ALLOW_ONLY = 1, 2, 4
KINDS = {"deny": 0, "allow": 1}

# struct net_event (net_block.bpf.c)
EVENT = struct.Struct("<QIIIIII16s16s")
OPS = ("connect_blocked", "connect_blocked")  # connect / sendmsg: one record type

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _attach_types() -> tuple[tuple[bytes, int], ...]:
    from bcc import BPFAttachType as T

    return ((b"dots_connect4", T.CGROUP_INET4_CONNECT), (b"dots_connect6", T.CGROUP_INET6_CONNECT),
            (b"dots_sendmsg4", T.CGROUP_UDP4_SENDMSG), (b"dots_sendmsg6", T.CGROUP_UDP6_SENDMSG),
            (b"dots_recvmsg4", T.CGROUP_UDP4_RECVMSG), (b"dots_recvmsg6", T.CGROUP_UDP6_RECVMSG),
            (b"dots_bind4", T.CGROUP_INET4_BIND), (b"dots_bind6", T.CGROUP_INET6_BIND),
            (b"dots_getpeername4", T.CGROUP_INET4_GETPEERNAME),
            (b"dots_getpeername6", T.CGROUP_INET6_GETPEERNAME))


def mapped16(address: str) -> bytes:
    """16 address bytes, IPv4 as ::ffff:a.b.c.d (as the programs see it)."""
    ip = ipaddress.ip_address(address)
    return (b"\0" * 10 + b"\xff\xff" + ip.packed) if ip.version == 4 else ip.packed


def boottime_ns() -> int:
    return time.clock_gettime_ns(getattr(time, "CLOCK_BOOTTIME", 7))


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

    def __init__(self, local_nets: tuple[str, ...] = DEFAULT_LOCAL_NETS, **kw: Any) -> None:
        super().__init__(**kw)
        self.cgroup_path = ""
        self._cgroup_fd = -1
        self._links: list[int] = []
        self.rules: dict[int, list[Network]] = {}
        self.local_nets = [ipaddress.ip_network(n) for n in local_nets]
        #: uid -> (dns_port, offline, allow_only)
        self.web: dict[int, tuple[int, bool, bool]] = {}
        #: (uid, kind, address) -> expiry (CLOCK_BOOTTIME ns): dyn_addrs as written
        self.dyn: dict[tuple[int, str, str], int] = {}

    def cflags(self) -> list[str]:
        return [*super().cflags(), f"-DMAX_ENFORCED_UIDS={MAX_UIDS}",
                f"-DMAX_BLOCKED_NETS={MAX_BLOCKED_NETS}", f"-DMAX_DYN_ADDRS={MAX_DYN_ADDRS}"]

    def attach(self) -> None:
        """The cgroup hooks on the cgroup2 root, as links."""
        from bcc import BPF

        self.cgroup_path = cgroup2_mount()
        self._cgroup_fd = os.open(self.cgroup_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        for fn_name, attach_type in _attach_types():
            fn = self.bpf.load_func(fn_name, BPF.CGROUP_SOCK_ADDR, attach_type=attach_type)
            self._links.append(link_create(fn.fd, self._cgroup_fd, attach_type))
        log.info("connect enforcer attached to %s", self.cgroup_path)

    def link_fds(self) -> list[int]:
        return list(self._links)

    def after_load(self) -> None:
        """What counts as this machine."""
        local = self.bpf[b"local_nets"]
        for net in self.local_nets:
            prefixlen, addr = trie_key(net)
            key = local.Key()
            key.prefixlen = prefixlen - UID_BITS
            ctypes.memmove(ctypes.addressof(key.addr), addr, 16)
            local[key] = ctypes.c_uint8(1)

    def reconcile(self) -> int:
        """After the rules were restored into maps a crashed collector left
        pinned: remove every kernel entry the rules no longer make."""
        trie, uids = self.bpf[b"blocked_nets"], self.bpf[b"enforced_uids"]
        dyn = self.bpf[b"dyn_addrs"]
        keep = {
            b"blocked_nets": {bytes(self._key(trie, prefixlen, uid, addr))
                              for uid, nets in self.rules.items()
                              for prefixlen, addr in map(trie_key, nets)},
            b"enforced_uids": {bytes(ctypes.c_uint32(uid)) for uid in {*self.rules, *self.web}},
            b"reserved_ports": {bytes(ctypes.c_uint32(w[0])) for w in self.web.values() if w[0]},
            b"dyn_addrs": {bytes(self._dyn_key(dyn, *m)) for m in self.dyn},
        }
        return sum(self.bpf[name].prune(wanted) for name, wanted in keep.items())

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
        if want:
            self.rules[uid] = list(networks)
        else:
            self.rules.pop(uid, None)
        self._sync_uid(uid)
        for prefixlen, addr in have - want:
            try:
                del trie[self._key(trie, prefixlen, uid, addr)]
            except KeyError:
                pass
        return list(networks)

    def set_web_filter(self, uid: int, dns_port: int, offline: bool, allow_only: bool) -> None:
        """DNS of uid to its resolver at 127.0.0.1/::1 port dns_port (0: not
        redirected) with port 853 refused; offline: only local addresses;
        allow_only: only addresses added as "allow". Turning a mode off
        drops the uid's answer entries of that kind."""
        if not 0 <= dns_port <= 65535:
            raise ValueError(f"invalid port {dns_port}")
        old = self.web.get(uid, (0, False, False))
        if dns_port or offline or allow_only:
            self.web[uid] = (dns_port, bool(offline), bool(allow_only))
        else:
            self.web.pop(uid, None)
        ports = self.bpf[b"reserved_ports"]
        if dns_port:
            ports[ctypes.c_uint32(dns_port)] = ctypes.c_uint8(1)
        self._sync_uid(uid)
        if old[0] and old[0] != dns_port and old[0] not in {w[0] for w in self.web.values()}:
            try:
                del ports[ctypes.c_uint32(old[0])]
            except KeyError:
                pass
        if old[2] and not allow_only:
            self.forget(uid, "allow")
        if not dns_port:
            self.forget(uid, "deny")

    def _sync_uid(self, uid: int) -> None:
        """enforced_uids[uid]: present while the uid has any rule."""
        uids = self.bpf[b"enforced_uids"]
        dns_port, offline, allow_only = self.web.get(uid, (0, False, False))
        if uid in self.rules or uid in self.web:
            flags = (F_DNS if dns_port else 0) | (F_OFFLINE if offline else 0) | \
                (F_ALLOW_ONLY if allow_only else 0)
            uids[ctypes.c_uint32(uid)] = uids.Leaf(flags, dns_port)
        else:
            try:
                del uids[ctypes.c_uint32(uid)]
            except KeyError:
                pass

    def add_addresses(self, uid: int, kind: str, entries: list[tuple[str, int]]) -> int:
        """Addresses the filter answered (kind "deny": for a blocked name;
        "allow": for an allowed name in allow-list mode), each for ttl
        seconds (a longer expiry in force is kept). Expired entries are
        pruned when the table fills up; a full table refuses (ValueError)."""
        table = self.bpf[b"dyn_addrs"]
        now = boottime_ns()
        if len(entries) + len(self.dyn) > MAX_DYN_ADDRS:
            self.prune(now)
            if len(entries) + len(self.dyn) > MAX_DYN_ADDRS:
                raise ValueError(f"the kernel's table of answered addresses holds {MAX_DYN_ADDRS} "
                                 f"live entries for all uids; {len(self.dyn)} are in force")
        for address, ttl in entries:
            mirror = (uid, kind, str(ipaddress.ip_address(address)))
            expires = now + max(int(ttl), 1) * 1_000_000_000
            if self.dyn.get(mirror, 0) < expires:
                table[self._dyn_key(table, uid, kind, address)] = ctypes.c_uint64(expires)
                self.dyn[mirror] = expires
        return len(entries)

    @staticmethod
    def _dyn_key(table: Any, uid: int, kind: str, address: str) -> Any:
        key = table.Key()
        key.uid = uid
        key.kind = KINDS[kind]
        ctypes.memmove(ctypes.addressof(key.addr), mapped16(address), 16)
        return key

    def _drop(self, mirrors: list[tuple[int, str, str]]) -> None:
        table = self.bpf[b"dyn_addrs"]
        for mirror in mirrors:
            try:
                del table[self._dyn_key(table, *mirror)]
            except KeyError:
                pass
            self.dyn.pop(mirror, None)

    def forget(self, uid: int, kind: str) -> int:
        """Drop uid's answer entries of kind; returns how many."""
        mirrors = [m for m in self.dyn if m[0] == uid and m[1] == kind]
        self._drop(mirrors)
        return len(mirrors)

    def prune(self, now: int | None = None) -> int:
        """Drop expired answer entries; returns how many."""
        now = boottime_ns() if now is None else now
        stale = [m for m, expires in self.dyn.items() if expires <= now]
        self._drop(stale)
        return len(stale)

    def dyn_entries(self, uid: int, kind: str) -> dict[str, float]:
        """Live answer entries of uid: address -> seconds left."""
        now = boottime_ns()
        return {m[2]: (expires - now) / 1e9 for m, expires in self.dyn.items()
                if m[0] == uid and m[1] == kind and expires > now}

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

    @property
    def redirected(self) -> int:
        return sum(self.bpf[b"denied"][ctypes.c_int(1)])

    def state(self) -> dict[str, Any]:
        return {"blocked_addresses": {u: [str(n) for n in nets] for u, nets in self.rules.items()},
                "connect_blocked": self.denied,
                "web_filters": {u: list(w) for u, w in self.web.items()},
                "dns_redirected": self.redirected}

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
