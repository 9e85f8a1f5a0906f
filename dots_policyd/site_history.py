"""Which names a child looked up through the web filter, and which were
blocked: one row per (child, minute, name, verdict) with a count, kept
as long as the raw events (history.prune deletes them with those), and
the report's queries over them. Lookups are counted in memory and written
in one transaction every few seconds, off the event loop."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import logging
import threading

import peewee
from peewee import BigIntegerField, BooleanField, DateTimeField, IntegerField, TextField

from .schema import BaseModel

log = logging.getLogger("dots.policyd.sites")

#: distinct (uid, minute, name, verdict) held before a write is forced
MAX_PENDING = 50_000
#: distinct names kept per child and minute; beyond, lookups count under OTHER
#: (a child looking up random names must not grow the database without bound)
MAX_NAMES_PER_MINUTE = 600
OTHER = "(other names)"


class SiteLookupRow(BaseModel):
    uid = BigIntegerField()
    time = DateTimeField()  # UTC, the minute of the lookups
    name = TextField()
    blocked = BooleanField()
    count = IntegerField()

    class Meta:
        table_name = "site_lookup"
        indexes = ((("uid", "time"), False),)


def site_of(name: str) -> str:
    """The site a host name belongs to, as a person would name it:
    "i.ytimg.com" -> "ytimg.com", "news.bbc.co.uk" -> "bbc.co.uk"."""
    labels = name.rstrip(".").split(".")
    if len(labels) > 2 and len(labels[-1]) == 2 and len(labels[-2]) <= 3:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


class LookupRecorder:
    """Counts lookups (any thread) and writes them with ``flush``."""

    def __init__(self, db: peewee.Database) -> None:
        self.db = db
        self.pending: collections.Counter[tuple[int, dt.datetime, str, bool]] = collections.Counter()
        self.names: dict[tuple[int, dt.datetime], set[str]] = {}
        self.lock = threading.Lock()

    def record(self, uid: int, name: str, blocked: bool, now: dt.datetime | None = None) -> None:
        minute = (now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)).replace(
            second=0, microsecond=0)
        name = name[:253]
        with self.lock:
            seen = self.names.setdefault((uid, minute), set())
            if name not in seen:
                if len(seen) >= MAX_NAMES_PER_MINUTE or len(self.pending) >= MAX_PENDING:
                    name = OTHER
                else:
                    seen.add(name)
            self.pending[(uid, minute, name, blocked)] += 1

    def flush(self) -> int:
        with self.lock:
            batch, self.pending = self.pending, collections.Counter()
            newest = max((m for _, m in self.names), default=None)
            self.names = {k: v for k, v in self.names.items() if k[1] == newest}
        if not batch:
            return 0
        rows = [{"uid": u, "time": t, "name": n, "blocked": b, "count": c}
                for (u, t, n, b), c in batch.items()]
        with self.db.bind_ctx([SiteLookupRow]), self.db.atomic():
            for i in range(0, len(rows), 500):
                SiteLookupRow.insert_many(rows[i:i + 500]).execute()
        return len(rows)


@dataclasses.dataclass
class SiteCount:
    site: str
    lookups: int
    blocked: int


@dataclasses.dataclass
class BlockedAttempt:
    name: str
    count: int
    last: dt.datetime


def top_sites(db: peewee.Database, uid: int, first: dt.datetime, last: dt.datetime,
              limit: int = 20) -> list[SiteCount]:
    """Sites by name, most looked up first, with how many lookups were blocked."""
    totals: dict[str, list[int]] = {}
    with db.bind_ctx([SiteLookupRow]):
        query = (SiteLookupRow.select(SiteLookupRow.name, SiteLookupRow.blocked,
                                      peewee.fn.SUM(SiteLookupRow.count).alias("n"))
                 .where((SiteLookupRow.uid == uid) & (SiteLookupRow.time >= first)
                        & (SiteLookupRow.time < last))
                 .group_by(SiteLookupRow.name, SiteLookupRow.blocked))
        for row in query:
            entry = totals.setdefault(site_of(row.name), [0, 0])
            entry[0] += int(row.n)
            if row.blocked:
                entry[1] += int(row.n)
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1][0], kv[0]))[:limit]
    return [SiteCount(site, n, b) for site, (n, b) in ranked]


def blocked_attempts(db: peewee.Database, uid: int, first: dt.datetime, last: dt.datetime,
                     limit: int = 50) -> list[BlockedAttempt]:
    """Blocked names, most attempted first."""
    with db.bind_ctx([SiteLookupRow]):
        n = peewee.fn.SUM(SiteLookupRow.count)
        query = (SiteLookupRow.select(SiteLookupRow.name, n.alias("n"),
                                      peewee.fn.MAX(SiteLookupRow.time).alias("last"))
                 .where((SiteLookupRow.uid == uid) & SiteLookupRow.blocked
                        & (SiteLookupRow.time >= first) & (SiteLookupRow.time < last))
                 .group_by(SiteLookupRow.name).order_by(n.desc(), SiteLookupRow.name).limit(limit))
        out = []
        for row in query:
            last_time = row.last if isinstance(row.last, dt.datetime) else \
                dt.datetime.fromisoformat(str(row.last))
            out.append(BlockedAttempt(row.name, int(row.n), last_time))
        return out


def prune(db: peewee.Database, cutoff: dt.datetime) -> int:
    with db.bind_ctx([SiteLookupRow]), db.atomic():
        return SiteLookupRow.delete().where(SiteLookupRow.time < cutoff).execute()
