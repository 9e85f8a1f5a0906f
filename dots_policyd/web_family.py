"""The parents' web-filtering operations (category lists, site allow-list,
internet hours, DoH endpoints, the sites report), on top of the family
core: policy edits go through Family's versioned, audited changes; lists
are checked whole before anything changes. No D-Bus here."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from .categories import CategoryError, CategoryStore, categories_directory
from .doh import builtin, parse_endpoints
from .domains import ListError
from .errors import FamilyError, InvalidArgument, NotFound
from .family import Family, _parse_day, _policy_argument
from .policy import (
    Policy,
    block_category,
    normalize_category,
    set_internet_hours,
    set_site_allow_list,
    unblock_category,
)
from .schema import Child
from .site_history import BlockedAttempt, SiteCount, blocked_attempts, top_sites

MAX_DOH_ENTRIES = 4096
MAX_REPORT = 1000


class InvalidSiteList(FamilyError):
    """A category list, its URL or a DoH endpoint list cannot be used."""

    dbus_name = "InvalidSiteList"


class WebFamily:
    def __init__(self, family: Family, store: CategoryStore | None = None) -> None:
        self.family = family
        self.store = store or CategoryStore(categories_directory(family.db))

    # --- category lists ----------------------------------------------------------------
    def add_site_list(self, actor: int, child: str, category: str, data: bytes,
                      url: str) -> tuple[int, int]:
        """Load (or replace) the list, then block the category for child.
        Slow for big lists: call it off the event loop."""
        name = _policy_argument(normalize_category, category)
        self.family.lookup_uid(child)  # UnknownChild before any work
        if not data and not url:
            raise InvalidSiteList("give the list's content or its URL")
        try:
            info = self.store.put(name, bytes(data) or None, url)
        except CategoryError as e:
            raise InvalidSiteList(str(e)) from None
        self.family._audit(actor, "load_site_list", f"category:{name}", None, json.dumps(info))
        version = self.family._change_policy(actor, child, "block_category",
                                             lambda p: block_category(p, name))
        return version, info["domains"]

    def update_site_list(self, actor: int, category: str, data: bytes) -> int:
        name = _policy_argument(normalize_category, category)
        try:
            self.store.info(name)
        except CategoryError:
            raise NotFound(f"no category list {name!r}") from None
        try:
            info = self.store.update(name, bytes(data) or None)
        except CategoryError as e:
            raise InvalidSiteList(str(e)) from None
        self.family._audit(actor, "update_site_list", f"category:{name}", None, json.dumps(info))
        return info["domains"]

    def remove_site_list(self, actor: int, child: str, category: str) -> int:
        name = _policy_argument(normalize_category, category)
        version = self.family._change_policy(actor, child, "unblock_category",
                                             lambda p: unblock_category(p, name))
        if not any(name in Policy.from_json(c.policy).blocked_categories
                   for c in Child.select(Child.policy)):
            self.store.remove(name)
        return version

    def site_lists(self) -> list[dict[str, Any]]:
        return self.store.all()

    # --- allow-list, hours ---------------------------------------------------------------
    def set_site_allow_list(self, actor: int, child: str, enabled: bool, add: list[str],
                            remove: list[str]) -> int:
        return self.family._change_policy(
            actor, child, "set_site_allow_list",
            lambda p: set_site_allow_list(p, enabled, add, remove))

    def set_internet_hours(self, actor: int, child: str, days: list[str],
                           windows: list[str] | None) -> int:
        if not days:
            raise InvalidArgument("name at least one day")
        return self.family._change_policy(actor, child, "set_internet_hours",
                                          lambda p: set_internet_hours(p, days, windows))

    # --- DoH endpoints -------------------------------------------------------------------
    def set_doh_endpoints(self, actor: int, entries: list[str]) -> int:
        if len(entries) > MAX_DOH_ENTRIES:
            raise InvalidSiteList(f"at most {MAX_DOH_ENTRIES} DoH endpoints")
        text = "\n".join(entries) + ("\n" if entries else "")
        try:
            hosts, networks = parse_endpoints(text)
        except ListError as e:
            raise InvalidSiteList(f"DoH endpoints: {e}") from None
        self.store.set_doh_extra(text)
        self.family._audit(actor, "set_doh_endpoints", "doh", None, text)
        return len(hosts) + len(networks)

    def doh_endpoints(self) -> tuple[list[str], list[str]]:
        hosts, networks = builtin()
        extra = [line.strip() for line in self.store.doh_extra().splitlines() if line.strip()]
        return hosts + networks, extra

    # --- report ------------------------------------------------------------------------
    def site_report(self, child: str, start: str, end: str,
                    limit: int) -> tuple[list[SiteCount], list[BlockedAttempt]]:
        first, last = _parse_day(start, "from"), _parse_day(end, "to")
        if not 0 < limit <= MAX_REPORT:
            raise InvalidArgument(f"limit must be 1 to {MAX_REPORT}")
        uid = self.family.child_uid(child)
        lo, hi = self._utc(first), self._utc(last + dt.timedelta(days=1))
        return (top_sites(self.family.db, uid, lo, hi, limit),
                blocked_attempts(self.family.db, uid, lo, hi, limit))

    def _utc(self, day: dt.date) -> dt.datetime:
        """Local midnight of ``day`` as naive UTC (how lookups are stored)."""
        local = self.family._at(day, 0)
        return local.astimezone(dt.timezone.utc).replace(tzinfo=None)
