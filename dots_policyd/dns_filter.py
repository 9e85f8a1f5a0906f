"""The children's filtering DNS resolver.

The collector's cgroup programs send every DNS query (port 53, TCP or UDP,
to whatever server) a child makes to that child's own port here, on
127.0.0.1 and ::1 (one port per child: the port says whose query it is).
A query is answered

* REFUSED outside the child's internet hours;
* NXDOMAIN for a blocked name (a blocked domain or any name under it, a
  name of a blocked category, the browsers' DoH canary, known DoH hosts),
  for a name whose answer goes through a blocked name (CNAME), and in
  site allow-list mode for every name outside the allowed domains; the
  blocked name's real addresses are looked up and added to the child's
  deny map with their TTL, so an address learned some other way (typed,
  cached, changed since) is refused too;
* otherwise with the system's resolvers' answer (the daemon's own queries
  are not redirected); in allow-list mode the answer's addresses go into
  the child's allow map before the child gets the answer.

No D-Bus here: ``add_addresses`` and ``record`` are given by the caller.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import socket
import struct
from collections.abc import Awaitable, Callable

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from .dns_cache import AnswerCache
from .domains import DomainSet, suffixes

log = logging.getLogger("dots.policyd.dns")

#: always answered NXDOMAIN: Firefox's canary ("no DoH on this network")
CANARY = "use-application-dns.net"
#: TTL given to deny/allow entries, clamped (seconds)
MIN_ENTRY_TTL, MAX_ENTRY_TTL = 300, 86400
UPSTREAM_TIMEOUT = 3.0
MAX_TCP_MESSAGE = 65535

AddAddresses = Callable[[int, str, list[tuple[str, int]]], Awaitable[None]]
Record = Callable[[int, str, bool], None]


@dataclasses.dataclass
class ChildFilter:
    """What one child's DNS may resolve."""

    blocked: frozenset[str] = frozenset()
    categories: tuple[DomainSet, ...] = ()
    allow_only: bool = False
    allowed: frozenset[str] = frozenset()
    offline: bool = False

    def blocks(self, name: str) -> bool:
        """On a block list (or the canary): its addresses are refused too."""
        names = suffixes(name)
        if CANARY in names or any(n in self.blocked for n in names):
            return True
        return any(c.match(name) for c in self.categories)

    def allows(self, name: str) -> bool:
        """Outside allow-list mode every name; in it, the allowed domains
        and the names under them (what they point to, e.g. a CDN's CNAME,
        follows from the name asked)."""
        return not self.allow_only or any(n in self.allowed for n in suffixes(name))


def _clamp(ttl: int) -> int:
    return min(max(int(ttl), MIN_ENTRY_TTL), MAX_ENTRY_TTL)


def addresses_of(response: dns.message.Message) -> list[tuple[str, int]]:
    """(address, ttl) of every A/AAAA record in the answer."""
    out = []
    for rrset in response.answer:
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            out.extend((r.address, rrset.ttl) for r in rrset)
    return out


def names_of(response: dns.message.Message) -> list[str]:
    """Every owner and CNAME target in the answer (the chain to the addresses)."""
    out = []
    for rrset in response.answer:
        out.append(rrset.name.to_text(omit_final_dot=True).lower())
        if rrset.rdtype == dns.rdatatype.CNAME:
            out.extend(r.target.to_text(omit_final_dot=True).lower() for r in rrset)
    return out


class DnsFilter:
    def __init__(self, upstreams: list[tuple[str, int]], add_addresses: AddAddresses,
                 record: Record | None = None, timeout: float = UPSTREAM_TIMEOUT) -> None:
        if not upstreams:
            raise ValueError("the DNS filter needs at least one upstream resolver")
        self.upstreams = upstreams
        self.add_addresses = add_addresses
        self.record = record
        self.timeout = timeout
        self.filters: dict[int, ChildFilter] = {}
        self.ports: dict[int, int] = {}
        self._servers: dict[int, list] = {}
        self.answered = 0
        self.cache = AnswerCache()

    # --- serving ------------------------------------------------------------------
    async def serve(self, uid: int) -> int:
        """Start (once) the child's resolver; returns its port."""
        if uid in self.ports:
            return self.ports[uid]
        loop = asyncio.get_running_loop()
        socks = _bind_pair()
        port = socks[0].getsockname()[1]
        servers: list = []
        for sock in socks:
            if sock.type == socket.SOCK_DGRAM:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Udp(self, uid), sock=sock)
                servers.append(transport)
            else:
                servers.append(await asyncio.start_server(
                    lambda r, w: self._tcp(uid, r, w), sock=sock))
        self._servers[uid] = servers
        self.ports[uid] = port
        self.filters.setdefault(uid, ChildFilter())
        log.info("DNS filter for uid %d on port %d", uid, port)
        return port

    async def stop(self, uid: int) -> None:
        for server in self._servers.pop(uid, []):
            server.close()
        self.ports.pop(uid, None)
        self.filters.pop(uid, None)

    async def close(self) -> None:
        for uid in list(self._servers):
            await self.stop(uid)

    def set_filter(self, uid: int, child: ChildFilter) -> None:
        self.filters[uid] = child

    async def _tcp(self, uid: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                reply = await self.answer(uid, await reader.readexactly(size), MAX_TCP_MESSAGE)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    # --- answering --------------------------------------------------------------------
    async def answer(self, uid: int, wire: bytes, max_size: int = 512) -> bytes | None:
        """The reply to one query of uid (None: not a DNS query, dropped)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if query.flags & dns.flags.QR:
            return None
        if query.edns >= 0:
            max_size = max(max_size, min(query.payload, MAX_TCP_MESSAGE))
        child = self.filters.get(uid, ChildFilter())
        reply = await self._decide(uid, query, child)
        self.answered += 1
        return _to_wire(reply, max_size)

    async def _decide(self, uid: int, query: dns.message.Message, child: ChildFilter) -> dns.message.Message:
        if len(query.question) != 1:
            return _rcode(query, dns.rcode.FORMERR)
        if child.offline:
            return _rcode(query, dns.rcode.REFUSED)
        name = query.question[0].name.to_text(omit_final_dot=True).lower()
        if child.blocks(name):
            await self._deny(uid, name)
            self._record(uid, name, True)
            return _rcode(query, dns.rcode.NXDOMAIN)
        if not child.allows(name):  # no deny entries: a shared (CDN) address may serve an allowed site
            self._record(uid, name, True)
            return _rcode(query, dns.rcode.NXDOMAIN)
        response = await self.forward(query)
        if response is None:
            return _rcode(query, dns.rcode.SERVFAIL)
        chain = names_of(response)
        if any(child.blocks(n) for n in chain):
            await self.add_addresses(uid, "deny", [(a, _clamp(t)) for a, t in addresses_of(response)])
            self._record(uid, name, True)
            return _rcode(query, dns.rcode.NXDOMAIN)
        if child.allow_only:
            found = addresses_of(response)
            if found:
                await self.add_addresses(uid, "allow", [(a, _clamp(t)) for a, t in found])
        self._record(uid, name, False)
        return response

    async def _deny(self, uid: int, name: str) -> None:
        """The blocked name's real addresses into the child's deny map."""
        found: list[tuple[str, int]] = []
        for rdtype in ("A", "AAAA"):
            # asked fresh (not from the cache): a moved site's new address counts at once
            response = await self._ask_upstream(dns.message.make_query(name, rdtype))
            if response is not None:
                found.extend(addresses_of(response))
        if found:
            await self.add_addresses(uid, "deny", [(a, _clamp(t)) for a, t in found])

    async def forward(self, query: dns.message.Message) -> dns.message.Message | None:
        """The system resolvers' answer (first that answers), TCP on
        truncation; positive answers are cached for their TTL."""
        cached = self.cache.get(query)
        if cached is not None:
            return cached
        response = await self._ask_upstream(query)
        if response is not None:
            self.cache.put(query, response)
        return response

    async def _ask_upstream(self, query: dns.message.Message) -> dns.message.Message | None:
        for host, port in self.upstreams:
            try:
                response = await dns.asyncquery.udp(query, host, port=port, timeout=self.timeout)
                if response.flags & dns.flags.TC:
                    response = await dns.asyncquery.tcp(query, host, port=port, timeout=self.timeout)
                return response
            except (dns.exception.DNSException, OSError) as e:
                log.warning("upstream %s:%d failed: %s", host, port, e)
        return None

    def _record(self, uid: int, name: str, blocked: bool) -> None:
        if self.record is not None:
            try:
                self.record(uid, name, blocked)
            except Exception:
                log.exception("cannot record a lookup")


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: DnsFilter, uid: int) -> None:
        self.owner, self.uid = owner, uid

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[override]
        asyncio.ensure_future(self._reply(data, addr))

    async def _reply(self, data: bytes, addr) -> None:
        try:
            reply = await self.owner.answer(self.uid, data)
        except Exception:
            log.exception("DNS filter failed on a query")
            return
        if reply is not None:
            self.transport.sendto(reply, addr)


def _rcode(query: dns.message.Message, rcode: int) -> dns.message.Message:
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    return response


def _to_wire(response: dns.message.Message, max_size: int) -> bytes:
    try:
        return response.to_wire(max_size=max_size)
    except dns.exception.TooBig:
        response.answer, response.authority, response.additional = [], [], []
        response.flags |= dns.flags.TC
        return response.to_wire()


def _bind_pair(tries: int = 50) -> list[socket.socket]:
    """UDP and TCP sockets on ::1 and 127.0.0.1, all on one free port."""
    for _ in range(tries):
        socks: list[socket.socket] = []
        try:
            first = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            socks.append(first)
            first.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            first.bind(("::1", 0))
            port = first.getsockname()[1]
            for family, kind, host in ((socket.AF_INET6, socket.SOCK_STREAM, "::1"),
                                       (socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1"),
                                       (socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1")):
                s = socket.socket(family, kind)
                socks.append(s)
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if kind == socket.SOCK_STREAM:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((host, port))
                if kind == socket.SOCK_STREAM:
                    s.listen(64)
            for s in socks:
                s.setblocking(False)
            return socks
        except OSError as e:
            for s in socks:
                s.close()
            if e.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, "no free port for the DNS filter on 127.0.0.1 and ::1")


def system_resolvers(path: str = "/etc/resolv.conf") -> list[tuple[str, int]]:
    """The nameservers of resolv.conf (port 53)."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "nameserver":
                    out.append((fields[1].split("%")[0], 53))
    except OSError:
        pass
    return out or [("127.0.0.1", 53)]


def parse_upstreams(text: str) -> list[tuple[str, int]]:
    """"127.0.0.1:5300,[::1]:53,10.0.0.1" -> [(host, port), ...]; ValueError
    naming the entry that is not an address with an optional port."""
    import ipaddress

    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        if item.startswith("["):
            host, _, port = item[1:].partition("]:")
        elif item.count(":") == 1:
            host, _, port = item.partition(":")
        else:
            host, port = item, "53"
        try:
            ipaddress.ip_address(host)
            number = int(port or 53)
            if not 0 < number < 65536:
                raise ValueError
        except ValueError:
            raise ValueError(f"DNS upstream {item[:60]!r} is not ADDRESS, ADDRESS:PORT or "
                             "[IPv6]:PORT") from None
        out.append((host, number))
    return out
