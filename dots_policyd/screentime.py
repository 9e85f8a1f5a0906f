"""Screen-time accounting and the decisions it leads to (no D-Bus here).

Every tick the daemon passes the children's sessions as seen now. Time
between two ticks counts for a child when, at the earlier tick, one of its
sessions was active, not idle and not locked — two sessions at once count
once. Used seconds are persisted per day, so a restart or a second login
neither resets nor doubles the count.

The tick returns actions: warnings at the policy's thresholds, the limit
reached, and sessions to lock or end. Carrying them out (signals, logind
calls, killing processes) is the caller's job.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import Protocol

import peewee

from .clock import Clock
from .history import add_screen_time
from .policy import Policy
from .schema import ScreenTimeDaily

log = logging.getLogger("dots.policyd.screentime")

#: a longer gap between ticks (suspend, a stalled daemon) counts as this much
MAX_GAP_SECONDS = 30.0


@dataclasses.dataclass(frozen=True)
class SessionState:
    session_id: str
    uid: int
    active: bool = True
    idle: bool = False
    locked: bool = False

    @property
    def in_use(self) -> bool:
        return self.active and not self.idle and not self.locked


@dataclasses.dataclass(frozen=True)
class TimeWarning:
    uid: int
    minutes_left: int


@dataclasses.dataclass(frozen=True)
class LimitReached:
    uid: int
    reason: str  # "daily" | "weekly" | "hours"


@dataclasses.dataclass(frozen=True)
class EndSessions:
    uid: int
    action: str  # "lock" | "terminate"
    session_ids: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class WallClockJump:
    """The wall clock moved against the monotonic clock (tamper evidence)."""

    seconds: float


Action = TimeWarning | LimitReached | EndSessions | WallClockJump

#: a wall clock further than this from the monotonic reckoning has been set
JUMP_TOLERANCE_SECONDS = 120.0


@dataclasses.dataclass
class Left:
    """Seconds left today and why they end; None = no limit applies."""

    seconds: float | None
    reason: str


def used_and_granted(db: peewee.Database, uid: int, first: dt.date, last: dt.date) -> tuple[int, int]:
    row = (ScreenTimeDaily
           .select(peewee.fn.COALESCE(peewee.fn.SUM(ScreenTimeDaily.seconds_used), 0),
                   peewee.fn.COALESCE(peewee.fn.SUM(ScreenTimeDaily.seconds_granted), 0))
           .where(ScreenTimeDaily.uid == uid, ScreenTimeDaily.day.between(first, last))
           .tuples().get())
    return int(row[0]), int(row[1])


class UsageSource(Protocol):
    """Where used and granted seconds come from instead of this machine's
    rollup (household mode: summed across machines), and where counted
    spans go."""

    def used_and_granted(self, uid: int, first: dt.date, last: dt.date) -> tuple[int, int]: ...
    def add_use(self, uid: int, start: dt.datetime, end: dt.datetime) -> None: ...


def time_left(db: peewee.Database, uid: int, policy: Policy, now: dt.datetime,
              usage: UsageSource | None = None) -> Left:
    """The smallest of: today's budget, this week's budget, the time to the
    end of the current allowed window (0 outside every window)."""
    today = now.date()
    candidates: list[Left] = []
    spent = usage.used_and_granted if usage is not None else (
        lambda u, first, last: used_and_granted(db, u, first, last))
    used, granted = spent(uid, today, today)
    daily = policy.daily_limit_for(today)
    if daily is not None:
        candidates.append(Left(daily * 60 + granted - used, "daily"))
    if policy.weekly_limit_minutes is not None:
        monday = today - dt.timedelta(days=today.weekday())
        week_used, week_granted = spent(uid, monday, today)
        candidates.append(Left(policy.weekly_limit_minutes * 60 + week_granted - week_used, "weekly"))
    windows = policy.windows_for(today)
    if windows is not None:
        minute = now.hour * 60 + now.minute + now.second / 60
        inside = [end for start, end in windows if start <= minute < end]
        candidates.append(Left((inside[0] - minute) * 60 if inside else 0, "hours"))
    if not candidates:
        return Left(None, "")
    return min(candidates, key=lambda left: left.seconds)


class ScreenTime:
    def __init__(self, db: peewee.Database, clock: Clock,
                 policies: Callable[[], dict[int, Policy]],
                 usage: UsageSource | None = None) -> None:
        self.db = db
        self.usage = usage
        self.clock = clock
        self.policies = policies
        self._last_mono: float | None = None
        self._in_use: set[int] = set()
        self._carry: dict[int, float] = {}
        self._warned: dict[tuple[int, dt.date], set[int]] = {}
        self._reached: set[tuple[int, dt.date, str]] = set()
        self._known_sessions: set[str] | None = None
        self._anchor: tuple[float, dt.datetime] | None = None
        self._jumped = False

    def now(self) -> tuple[dt.datetime, list[Action]]:
        """The wall time reckoned from the monotonic clock since the first
        tick: setting the clock or the time zone moves neither the day nor
        the allowed hours. A jump is reported once."""
        mono, wall = self.clock.monotonic(), self.clock.now()
        if self._anchor is None:
            self._anchor = (mono, wall)
        reckoned = self._anchor[1] + dt.timedelta(seconds=mono - self._anchor[0])
        drift = (wall - reckoned).total_seconds()
        if abs(drift) > JUMP_TOLERANCE_SECONDS and not self._jumped:
            self._jumped = True
            log.warning("wall clock moved by %+.0f s against the monotonic clock", drift)
            return reckoned, [WallClockJump(drift)]
        if abs(drift) <= JUMP_TOLERANCE_SECONDS:
            self._jumped = False
        return reckoned, []

    def tick(self, sessions: Iterable[SessionState]) -> list[Action]:
        sessions = list(sessions)
        mono = self.clock.monotonic()
        now, actions = self.now()
        elapsed = 0.0 if self._last_mono is None else min(max(mono - self._last_mono, 0.0),
                                                           MAX_GAP_SECONDS)
        self._last_mono = mono
        if self._known_sessions is None:  # sessions open when we start are not new logins
            self._known_sessions = {s.session_id for s in sessions}
        policies = self.policies()
        self._account(elapsed, now.date(), policies)
        if self.usage is not None and elapsed > 0:
            for uid in self._in_use & policies.keys():
                self.usage.add_use(uid, now - dt.timedelta(seconds=elapsed), now)

        by_uid: dict[int, list[SessionState]] = {}
        for s in sessions:
            by_uid.setdefault(s.uid, []).append(s)
        for uid, policy in policies.items():
            actions += self._decide(uid, policy, by_uid.get(uid, []), now)
        self._in_use = {s.uid for s in sessions if s.in_use and s.uid in policies}
        self._known_sessions = {s.session_id for s in sessions}
        return actions

    def _account(self, elapsed: float, today: dt.date, policies: dict[int, Policy]) -> None:
        """Persist whole seconds; the fraction waits for the next tick."""
        for uid in self._in_use & policies.keys():
            total = self._carry.get(uid, 0.0) + elapsed
            whole = int(total)
            self._carry[uid] = total - whole
            if whole:
                add_screen_time(self.db, uid, today, used_seconds=whole)

    def _decide(self, uid: int, policy: Policy, sessions: list[SessionState],
                now: dt.datetime) -> list[Action]:
        left = time_left(self.db, uid, policy, now, self.usage)
        if left.seconds is None or not sessions:
            return []
        today = now.date()
        if left.seconds > 0:
            return self._warnings(uid, policy, left.seconds, today, sessions)
        actions: list[Action] = []
        if (uid, today, left.reason) not in self._reached:
            self._reached.add((uid, today, left.reason))
            actions.append(LimitReached(uid, left.reason))
            log.info("uid %d: %s limit reached", uid, left.reason)
        known = self._known_sessions or set()
        new = tuple(s.session_id for s in sessions if s.session_id not in known)
        if left.reason == "hours" and new:
            # a login outside the allowed hours is ended, whatever end_action says
            actions.append(EndSessions(uid, "terminate", new))
            sessions = [s for s in sessions if s.session_id in known]
        open_ = tuple(s.session_id for s in sessions if s.active and not s.locked)
        if open_:
            actions.append(EndSessions(uid, policy.end_action, open_))
        return actions

    def _warnings(self, uid: int, policy: Policy, seconds_left: float, today: dt.date,
                  sessions: list[SessionState]) -> list[Action]:
        """One warning per threshold per day: the smallest crossed one."""
        if not any(s.in_use for s in sessions):
            return []
        warned = self._warned.setdefault((uid, today), set())
        crossed = [m for m in policy.warning_minutes if seconds_left <= m * 60 and m not in warned]
        if not crossed:
            return []
        warned.update(m for m in policy.warning_minutes if seconds_left <= m * 60)
        return [TimeWarning(uid, max(1, round(seconds_left / 60)))]
