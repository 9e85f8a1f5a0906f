"""Blocked domains resolved over real DNS (a tiny authoritative server on
loopback built with dnspython), refreshed when their TTL runs out."""

from __future__ import annotations

import asyncio

import dns.asyncresolver
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from dots_policyd.sites import MIN_TTL, SiteResolver, dns_lookup


class TinyDNS(asyncio.DatagramProtocol):
    """Answers A/AAAA from a dict; anything else is NXDOMAIN."""

    def __init__(self, zone: dict[tuple[str, str], tuple[list[str], int]]) -> None:
        self.zone = zone
        self.queries: list[str] = []

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        name, rdtype = question.name.to_text().rstrip("."), dns.rdatatype.to_text(question.rdtype)
        self.queries.append(f"{name}/{rdtype}")
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        if (name, rdtype) in self.zone:
            addresses, ttl = self.zone[(name, rdtype)]
            reply.answer.append(dns.rrset.from_text(question.name, ttl, "IN", rdtype, *addresses))
        elif not any(k[0] == name for k in self.zone):
            reply.set_rcode(dns.rcode.NXDOMAIN)
        self.transport.sendto(reply.to_wire(), addr)


@pytest.fixture
async def dns_server():
    zone = {("games.example", "A"): (["192.0.2.10"], 120),
            ("games.example", "AAAA"): (["2001:db8::10"], 120),
            ("www.games.example", "A"): (["192.0.2.11"], 600)}
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(lambda: TinyDNS(zone),
                                                            local_addr=("127.0.0.1", 0))
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = transport.get_extra_info("sockname")[1]
    yield server, resolver, zone
    transport.close()


async def test_domains_resolve_to_v4_and_v6_and_refresh_by_ttl(dns_server):
    server, resolver, zone = dns_server
    now = [0.0]
    sites = SiteResolver(dns_lookup(resolver), lambda: now[0])
    got = await sites.addresses(["games.example"])
    assert got == {"games.example": {"192.0.2.10", "2001:db8::10", "192.0.2.11"}}

    asked = len(server.queries)
    now[0] = 100  # within every TTL: no new query
    await sites.addresses(["games.example"])
    assert len(server.queries) == asked

    zone[("games.example", "A")] = (["192.0.2.99"], 120)
    now[0] = 121  # the 120 s records expired; the 600 s one did not
    got = await sites.addresses(["games.example"])
    assert "192.0.2.99" in got["games.example"] and "192.0.2.10" not in got["games.example"]
    assert "www.games.example/A" not in server.queries[asked:]


async def test_unknown_domain_resolves_to_nothing(dns_server):
    _, resolver, _ = dns_server
    sites = SiteResolver(dns_lookup(resolver), lambda: 0.0)
    assert await sites.addresses(["nowhere.example"]) == {"nowhere.example": set()}


async def test_failed_lookup_keeps_the_last_known_addresses():
    answers = iter([({"192.0.2.1"}, 60), ({"192.0.2.2"}, 60)])
    fail = [False]

    async def lookup(name):
        if fail[0]:
            raise OSError("network down")
        return next(answers) if name == "a.example" else (set(), 60)

    now = [0.0]
    sites = SiteResolver(lookup, lambda: now[0])
    assert await sites.addresses(["a.example"]) == {"a.example": {"192.0.2.1"}}
    fail[0] = True
    now[0] = MIN_TTL + 1
    assert await sites.addresses(["a.example"]) == {"a.example": {"192.0.2.1"}}
