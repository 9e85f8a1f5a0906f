"""The web filter in the policy daemon: one filtering resolver per child
(dns_filter), fed from the child's policy (blocked domains, categories,
site allow-list, internet hours, DoH host names), and the collector told
where each child's DNS goes (SetWebFilter) and which answered addresses to
refuse or allow (AddFilterAddresses). Internet hours are re-evaluated
every few seconds. Lookups are recorded for the report (site_history).

The upstream resolvers are the system's (resolv.conf) unless
DOTS_DNS_UPSTREAM names others ("127.0.0.1:5300,[::1]:53")."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import peewee

from .categories import CategoryStore, categories_directory
from .collector_client import CollectorCallError, CollectorClient
from .dns_filter import ChildFilter, DnsFilter, parse_upstreams, system_resolvers
from .doh import builtin, parse_endpoints
from .domains import ListError
from .policy import Policy
from .site_history import LookupRecorder

log = logging.getLogger("dots.policyd.web")

#: internet hours are checked this often (seconds)
HOURS_EVERY = 5.0
FLUSH_EVERY = 5.0



def upstreams() -> list[tuple[str, int]]:
    configured = os.environ.get("DOTS_DNS_UPSTREAM", "")
    return parse_upstreams(configured) if configured else system_resolvers()


class WebFilterService:
    def __init__(self, db: peewee.Database, collector: CollectorClient, now: Callable) -> None:
        self.db = db
        self.collector = collector
        self.now = now
        self.store = CategoryStore(categories_directory(db))
        self.recorder = LookupRecorder(db)
        self.filter = DnsFilter(upstreams(), self._add, self.recorder.record)
        self.pushed: dict[int, tuple[int, bool, bool]] = {}
        #: per child, what its filter blocked at the last apply (names, categories)
        self.blocking: dict[int, frozenset[str]] = {}
        self._tasks: list[asyncio.Task] = []
        self._lock = asyncio.Lock()
        self._policies: dict[int, Policy] = {}

    async def _add(self, uid: int, kind: str, entries: list[tuple[str, int]]) -> None:
        for i in range(0, len(entries), 4096):
            await self._done(self.collector.add_filter_addresses(uid, kind, entries[i:i + 4096]))

    @staticmethod
    async def _done(call: Awaitable[Any]) -> bool:
        """A collector call that may fail: logged, and False."""
        try:
            await call
        except CollectorCallError as e:
            log.warning("web filter: %s", e)
            return False
        return True

    def doh(self) -> tuple[list[str], list[str]]:
        """(host names, networks) of the known DoH endpoints and the parents' additions."""
        hosts, networks = builtin()
        try:
            extra_hosts, extra_networks = parse_endpoints(self.store.doh_extra())
        except ListError as e:
            log.error("ignoring the parents' DoH endpoints: %s", e)
            extra_hosts, extra_networks = [], []
        return hosts + extra_hosts, networks + extra_networks

    def doh_networks(self) -> list[str]:
        return self.doh()[1]

    async def apply(self, policies: dict[int, Policy], force: bool = False) -> None:
        """Every child's filter and the collector's redirect, as the
        policies say now; a child that left loses both."""
        self._policies = policies
        async with self._lock:
            if force:
                self.pushed.clear()
            now = self.now()
            doh_hosts = frozenset(self.doh()[0])
            for uid, policy in policies.items():
                port = await self.filter.serve(uid)
                categories = [await asyncio.to_thread(self.store.domain_set, c)
                              for c in policy.blocked_categories]
                child = ChildFilter(blocked=frozenset(policy.blocked_domains()) | doh_hosts,
                                    categories=tuple(categories),
                                    allow_only=policy.site_allow_list,
                                    allowed=frozenset(policy.allowed_sites),
                                    offline=not policy.online_at(now))
                self.filter.set_filter(uid, child)
                blocking = frozenset([*child.blocked, *(f"category:{c}" for c in policy.blocked_categories)])
                if self.blocking.get(uid, blocking) - blocking:  # something was unblocked: free
                    await self._done(self.collector.forget_filter_addresses(uid, "deny"))  # its addresses now
                self.blocking[uid] = blocking
                want = (port, child.offline, child.allow_only)
                if self.pushed.get(uid) != want and \
                        await self._done(self.collector.set_web_filter(uid, *want)):
                    self.pushed[uid] = want
            for uid in set(self.pushed) - set(policies):
                if await self._done(self.collector.set_web_filter(uid, 0, False, False)):
                    del self.pushed[uid]
            for uid in set(self.filter.ports) - set(policies):
                await self.filter.stop(uid)
                self.blocking.pop(uid, None)

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._hours_loop()),
                       asyncio.create_task(self._flush_loop())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.filter.close()
        await asyncio.to_thread(self.recorder.flush)

    async def _hours_loop(self) -> None:
        """Internet hours begin and end on the minute: re-apply often."""
        while True:
            await asyncio.sleep(HOURS_EVERY)
            try:
                await self.apply(self._policies)
            except Exception:
                log.exception("cannot apply the web filter")

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            try:
                await asyncio.to_thread(self.recorder.flush)
            except Exception:
                log.exception("cannot store the lookups")
