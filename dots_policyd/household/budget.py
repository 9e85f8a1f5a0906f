"""One budget per member across the household's machines.

Used time is the length of the UNION of every machine's intervals within
the day (or week): a child active on two machines at once is counted
once, as two logins on one machine already are. This machine's own
intervals come from its local journal (so they count at once, online or
not); the other machines' come from the last household sync (so offline,
the machine enforces the last known remaining time).

:class:`HouseholdUsage` is what the screen-time engine asks instead of
its local rollup when the daemon runs in household mode.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable

import peewee

from ..timeleft import used_and_granted
from .journal import Journal

Span = tuple[float, float]


def union_seconds(spans: Iterable[Span], low: float, high: float) -> float:
    """Seconds within [low, high) covered by at least one span."""
    clipped = sorted((max(a, low), min(b, high)) for a, b in spans if b > low and a < high)
    total, cur_start, cur_end = 0.0, None, None
    for a, b in clipped:
        if cur_end is None or a > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = a, b
        else:
            cur_end = max(cur_end, b)
    if cur_end is not None:
        total += cur_end - cur_start
    return total


def day_bounds(first: dt.date, last: dt.date, tz: dt.tzinfo | None = None) -> tuple[float, float]:
    """Unix seconds of ``first``'s local midnight and of the midnight after ``last``."""
    def midnight(day: dt.date) -> float:
        naive = dt.datetime.combine(day, dt.time())
        return (naive.astimezone() if tz is None else naive.replace(tzinfo=tz)).timestamp()
    return midnight(first), midnight(last + dt.timedelta(days=1))


class HouseholdUsage:
    """Seconds used and granted per member, household-wide."""

    def __init__(self, db: peewee.Database, journal: Journal,
                 member_of_uid: Callable[[int], str | None], tz: dt.tzinfo | None = None) -> None:
        self.db = db
        self.journal = journal
        self.member_of_uid = member_of_uid
        self.tz = tz
        #: other machines' intervals per member (replaced by each sync)
        self.remote: dict[str, list[Span]] = {}
        #: other machines' granted seconds per (member, day)
        self.remote_granted: dict[tuple[str, dt.date], int] = {}
        #: other machines' seconds per app, per (member, day)
        self.remote_apps: dict[tuple[str, dt.date], dict[str, int]] = {}

    def to_json(self) -> str:
        """The other machines' time as last known: kept locally, so that a
        restart while the database is away does not forget it (a child
        must not gain time by pulling the cable and rebooting)."""
        return json.dumps({
            "remote": self.remote,
            "granted": [[m, d.isoformat(), s] for (m, d), s in self.remote_granted.items()],
            "apps": [[m, d.isoformat(), apps] for (m, d), apps in self.remote_apps.items()]})

    def load_json(self, text: str | None) -> None:
        if not text:
            return
        data = json.loads(text)
        self.remote = {m: [(float(a), float(b)) for a, b in spans] for m, spans in data["remote"].items()}
        self.remote_granted = {(m, dt.date.fromisoformat(d)): int(s) for m, d, s in data["granted"]}
        self.remote_apps = {(m, dt.date.fromisoformat(d)): dict(apps) for m, d, apps in data["apps"]}

    def remote_app_seconds(self, uid: int, day: dt.date) -> dict[str, int]:
        """Seconds per app the member of ``uid`` ran on the other machines
        (summed: per-app time has no intervals, so an app running on two
        machines at once counts twice)."""
        member = self.member_of_uid(uid)
        return {} if member is None else self.remote_apps.get((member, day), {})

    def add_use(self, uid: int, start: dt.datetime, end: dt.datetime) -> None:
        member = self.member_of_uid(uid)
        if member is not None:
            self.journal.add(member, start.timestamp(), end.timestamp())

    def member_used(self, member: str, first: dt.date, last: dt.date) -> int:
        low, high = day_bounds(first, last, self.tz)
        spans = self.journal.intervals(member, low, high) + self.remote.get(member, [])
        return int(union_seconds(spans, low, high))

    def used_and_granted(self, uid: int, first: dt.date, last: dt.date) -> tuple[int, int]:
        """Like :func:`dots_policyd.screentime.used_and_granted`, household-wide
        for a member; the local rollup for a uid that is no member."""
        local_used, local_granted = used_and_granted(self.db, uid, first, last)
        member = self.member_of_uid(uid)
        if member is None:
            return local_used, local_granted
        days = (last - first).days + 1
        remote = sum(self.remote_granted.get((member, first + dt.timedelta(days=i)), 0)
                     for i in range(days))
        return self.member_used(member, first, last), local_granted + remote
