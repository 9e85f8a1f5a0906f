"""The one answer to "how much screen time is left", for ``dotsctl status``
(Family.status) and for enforcement (screen time) alike, so that what a
parent or child is shown is what is enforced.

No D-Bus and no database writes here: :func:`usage` reads what was used
and granted (a small function, so that accounting from several machines
can extend it), :func:`time_left` decides.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import peewee

from .policy import Policy
from .schema import ScreenTimeDaily


@dataclasses.dataclass(frozen=True)
class Usage:
    """Seconds used and granted today and this week (Monday to today)."""

    used: int = 0
    granted: int = 0
    week_used: int = 0
    week_granted: int = 0

    def plus(self, seconds: int) -> Usage:
        """With ``seconds`` more used today (not yet stored)."""
        return dataclasses.replace(self, used=self.used + seconds, week_used=self.week_used + seconds)


@dataclasses.dataclass(frozen=True)
class Left:
    """Seconds left today and why they end; None = no limit applies.
    ``seconds`` <= 0 means blocked for ``reason``."""

    seconds: float | None
    reason: str  # "" | "hours" | "daily" | "weekly"

    @property
    def blocked(self) -> bool:
        return self.seconds is not None and self.seconds <= 0


def used_and_granted(db: peewee.Database, uid: int, first: dt.date, last: dt.date) -> tuple[int, int]:
    row = (ScreenTimeDaily
           .select(peewee.fn.COALESCE(peewee.fn.SUM(ScreenTimeDaily.seconds_used), 0),
                   peewee.fn.COALESCE(peewee.fn.SUM(ScreenTimeDaily.seconds_granted), 0))
           .where(ScreenTimeDaily.uid == uid, ScreenTimeDaily.day.between(first, last))
           .tuples().get())
    return int(row[0]), int(row[1])


def usage(db: peewee.Database, uid: int, day: dt.date) -> Usage:
    monday = day - dt.timedelta(days=day.weekday())
    used, granted = used_and_granted(db, uid, day, day)
    week_used, week_granted = used_and_granted(db, uid, monday, day)
    return Usage(used, granted, week_used, week_granted)


def time_left(policy: Policy, use: Usage, now: dt.datetime) -> Left:
    """The smallest of: the time to the end of the current allowed window
    (0 outside every window), today's budget, this week's budget. On a tie
    the reason is the first of hours, daily, weekly."""
    today = now.date()
    candidates: list[Left] = []
    windows = policy.windows_for(today)
    if windows is not None:
        minute = now.hour * 60 + now.minute + now.second / 60 + now.microsecond / 60e6
        inside = [end for start, end in windows if start <= minute < end]
        candidates.append(Left((inside[0] - minute) * 60 if inside else 0, "hours"))
    daily = policy.daily_limit_for(today)
    if daily is not None:
        candidates.append(Left(daily * 60 + use.granted - use.used, "daily"))
    if policy.weekly_limit_minutes is not None:
        candidates.append(Left(policy.weekly_limit_minutes * 60 + use.week_granted - use.week_used,
                               "weekly"))
    if not candidates:
        return Left(None, "")
    return min(candidates, key=lambda left: left.seconds)  # type: ignore[arg-type,return-value]
