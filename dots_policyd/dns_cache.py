"""The filter's cache of upstream answers, shared by the children (the
decision to answer, block or refuse is made per child on every query;
only what the system's resolvers said is cached)."""

from __future__ import annotations

import time
from collections.abc import Callable

import dns.flags
import dns.message
import dns.rcode

#: answers kept, and the longest time one is kept (seconds)
CACHE_ENTRIES = 20_000
CACHE_MAX_TTL = 3600


class AnswerCache:
    """Positive upstream answers by (name, type, class) until their TTL
    runs out; served with the TTLs counted down and the asker's id."""

    def __init__(self, size: int = CACHE_ENTRIES, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.clock = clock
        self.entries: dict[tuple[str, int, int], tuple[float, float, dns.message.Message]] = {}
        self.hits = self.misses = 0

    @staticmethod
    def _key(query: dns.message.Message) -> tuple[str, int, int] | None:
        if len(query.question) != 1:
            return None
        q = query.question[0]
        return q.name.to_text().lower(), q.rdtype, q.rdclass

    def get(self, query: dns.message.Message) -> dns.message.Message | None:
        key = self._key(query)
        entry = self.entries.get(key) if key else None
        now = self.clock()
        if entry is None or entry[1] <= now:
            self.misses += 1
            return None
        self.hits += 1
        stored, _, cached = entry
        elapsed = int(now - stored)
        response = dns.message.make_response(query)
        response.set_rcode(cached.rcode())
        for section in ("answer", "authority"):
            rrsets = []
            for rrset in getattr(cached, section):
                copy = rrset.copy()
                copy.ttl = max(rrset.ttl - elapsed, 0)
                rrsets.append(copy)
            setattr(response, section, rrsets)
        return response

    def put(self, query: dns.message.Message, response: dns.message.Message) -> None:
        key = self._key(query)
        if key is None or response.rcode() != dns.rcode.NOERROR or not response.answer \
                or response.flags & dns.flags.TC:
            return
        ttl = min(min(r.ttl for r in response.answer), CACHE_MAX_TTL)
        if ttl <= 0:
            return
        if len(self.entries) >= self.size:
            now = self.clock()
            self.entries = {k: v for k, v in self.entries.items() if v[1] > now}
            while len(self.entries) >= self.size:  # still full: drop the oldest
                self.entries.pop(next(iter(self.entries)))
        now = self.clock()
        self.entries[key] = (now, now + ttl, response)
