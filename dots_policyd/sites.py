"""Blocked domains turned into addresses the kernel can refuse.

Each domain (and its www. twin) is resolved for A and AAAA records and kept
for the records' TTL (clamped to 1 minute .. 1 hour); a failed lookup keeps
the last known addresses, so a flaky network never unblocks a site."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Awaitable, Callable, Iterable

import dns.asyncresolver
import dns.nameserver
import dns.exception
import dns.resolver

log = logging.getLogger("dots.policyd.sites")

MIN_TTL, MAX_TTL, NEGATIVE_TTL = 60, 3600, 300

#: name -> (addresses, ttl seconds); raises on a lookup failure
Lookup = Callable[[str], Awaitable[tuple[set[str], int]]]


def dns_lookup(resolver: dns.asyncresolver.Resolver | None = None) -> Lookup:
    """Lookups through ``resolver``; by default the system's, or the web
    filter's upstreams when DOTS_DNS_UPSTREAM (--dns-upstream) names them."""
    if resolver is None:
        resolver = dns.asyncresolver.Resolver()
        configured = os.environ.get("DOTS_DNS_UPSTREAM", "")
        if configured:
            from .dns_filter import parse_upstreams

            resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port)
                                    for host, port in parse_upstreams(configured)]

    async def lookup(name: str) -> tuple[set[str], int]:
        addresses: set[str] = set()
        ttls: list[int] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await resolver.resolve(name, rdtype, lifetime=5)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                ttls.append(NEGATIVE_TTL)
                continue
            addresses.update(r.address for r in answer)
            ttls.append(answer.rrset.ttl if answer.rrset is not None else MIN_TTL)
        return addresses, min(ttls)

    return lookup


@dataclasses.dataclass
class Entry:
    addresses: set[str]
    expires: float


class SiteResolver:
    def __init__(self, lookup: Lookup, monotonic: Callable[[], float]) -> None:
        self.lookup = lookup
        self.monotonic = monotonic
        self.cache: dict[str, Entry] = {}

    async def addresses(self, domains: Iterable[str]) -> dict[str, set[str]]:
        """Addresses of every domain, looked up again where the TTL ran out."""
        names = {n for d in domains for n in (d, f"www.{d}")}
        now = self.monotonic()
        stale = [n for n in names if n not in self.cache or self.cache[n].expires <= now]
        for name, result in zip(stale, await asyncio.gather(*(self.lookup(n) for n in stale),
                                                           return_exceptions=True)):
            if isinstance(result, BaseException):
                log.warning("cannot resolve %s (%s); keeping what was known", name, result)
                old = self.cache.get(name)
                self.cache[name] = Entry(old.addresses if old else set(), now + MIN_TTL)
            else:
                found, ttl = result
                self.cache[name] = Entry(found, now + min(max(ttl, MIN_TTL), MAX_TTL))
        return {d: self.cache[d].addresses | self.cache[f"www.{d}"].addresses for d in domains}

    def next_expiry(self) -> float | None:
        return min((e.expires for e in self.cache.values()), default=None)
