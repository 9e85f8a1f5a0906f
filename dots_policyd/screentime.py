"""Screen-time accounting and the decisions it leads to (no D-Bus here).

Every tick the daemon passes the children's sessions as seen now, and the
children the kernel saw active since the last tick (exec, network or disk
traffic, CPU above a threshold: :mod:`dots_policyd.activity`). Time
between two ticks counts for a child when, at the earlier tick, one of its
sessions was active and either not flagged idle or locked, or the kernel
saw the child active: a session's owner may set logind's idle and locked
hints itself, so a hint never outranks measured activity. Two sessions at
once count once. Used seconds are persisted per day, so a restart or a
second login neither resets nor doubles the count.

Fail closed: the count is kept in memory first and written to the
database when it can be; while writes fail (a full disk) the decisions go
on from the memory (what the database last said plus what it has not yet
taken), the failure is reported once (``StorageFailing``), and the time
is written when storage returns.

The tick returns actions: warnings at the policy's thresholds, the limit
reached, and sessions to lock or end. Carrying them out (signals, logind
calls, killing processes) is the caller's job. How much time is left is
:func:`dots_policyd.timeleft.time_left`, the same answer ``dotsctl status``
gives.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import Protocol

import peewee

from .clock import Clock, Timeline
from .history import add_screen_time
from .policy import Policy
from .rules import only_always_allowed_at_end
from .timeleft import Left, Usage, time_left, usage, used_and_granted  # noqa: F401 (re-exported)

log = logging.getLogger("dots.policyd.screentime")

#: a longer gap between ticks (a stalled daemon) counts as this much; the
#: elapsed time is CLOCK_BOOTTIME's, so a suspend is a gap too
MAX_GAP_SECONDS = 30.0

#: a session flagged locked while the kernel sees the child active is
#: locked again at most this often (seconds of elapsed time)
RELOCK_SECONDS = 60.0


@dataclasses.dataclass(frozen=True)
class SessionState:
    session_id: str
    uid: int
    active: bool = True
    idle: bool = False
    locked: bool = False

    @property
    def in_use(self) -> bool:
        """In use by the hints alone (the child can set them)."""
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
    """The wall clock moved against the elapsed time (tamper evidence)."""

    seconds: float


@dataclasses.dataclass(frozen=True)
class StorageFailing:
    """Screen time cannot be written (``failing``) or can again."""

    failing: bool
    detail: str


Action = TimeWarning | LimitReached | EndSessions | WallClockJump | StorageFailing


class UsageSource(Protocol):
    """Where used and granted seconds come from instead of this machine's
    rollup (household mode: the household's time across machines, with
    simultaneous use counted once), and where counted spans go."""

    def used_and_granted(self, uid: int, first: dt.date, last: dt.date) -> tuple[int, int]: ...
    def add_use(self, uid: int, start: dt.datetime, end: dt.datetime) -> None: ...


class ScreenTime:
    def __init__(self, db: peewee.Database, clock: Clock | Timeline,
                 policies: Callable[[], dict[int, Policy]], usage: UsageSource | None = None,
                 exempt: Callable[[int], bool] | None = None) -> None:
        """``clock``: the daemon's Timeline (a bare clock gets its own);
        ``usage``: the household's accounting, in household mode;
        ``exempt(uid)``: the child runs only its always-allowed apps now
        (AppTime.only_always_allowed_running): that time is not screen time."""
        self.db = db
        self.usage = usage
        self.exempt = exempt
        self.timeline = clock if isinstance(clock, Timeline) else Timeline(clock)
        self.policies = policies
        self._last_boot: float | None = None
        self._counting: set[int] = set()  # in use by the hints at the last tick
        self._present: set[int] = set()  # with an active session at the last tick
        self._carry: dict[int, float] = {}
        self._unwritten: dict[tuple[int, dt.date], int] = {}
        self._usage: dict[tuple[int, dt.date], Usage] = {}  # what the database last said
        self._storage_failing = False
        self._warned: dict[tuple[int, dt.date], set[int]] = {}
        self._reached: set[tuple[int, dt.date, str]] = set()
        self._relocked: dict[str, float] = {}
        self._known_sessions: set[str] | None = None

    def now(self) -> tuple[dt.datetime, list[Action]]:
        """The daemon's "now" and a jump of the wall clock, reported once."""
        now = self.timeline.now()
        jump = self.timeline.take_jump()
        if jump is None:
            return now, []
        log.warning("wall clock moved by %+.0f s against the elapsed time", jump)
        return now, [WallClockJump(jump)]

    def tick(self, sessions: Iterable[SessionState], kernel_active: Iterable[int] = ()) -> list[Action]:
        """``kernel_active``: the children the kernel saw active since the
        previous tick."""
        sessions = list(sessions)
        active = set(kernel_active)
        boot = self.timeline.boottime()
        now, actions = self.now()
        elapsed = 0.0 if self._last_boot is None else min(max(boot - self._last_boot, 0.0),
                                                           MAX_GAP_SECONDS)
        self._last_boot = boot
        if self._known_sessions is None:  # sessions open when we start are not new logins
            self._known_sessions = {s.session_id for s in sessions}
        policies = self.policies()
        # the interval that ends now counts if the child was there at its start
        counted = self._counting | (active & self._present)
        if self.exempt is not None:
            counted = {uid for uid in counted if not self.exempt(uid)}
        actions += self._account(elapsed, now.date(), counted & policies.keys())
        if self.usage is not None and elapsed > 0:
            for uid in counted & policies.keys():
                self.usage.add_use(uid, now - dt.timedelta(seconds=elapsed), now)

        by_uid: dict[int, list[SessionState]] = {}
        for s in sessions:
            by_uid.setdefault(s.uid, []).append(s)
        for uid, policy in policies.items():
            actions += self._decide(uid, policy, by_uid.get(uid, []), now, boot, uid in active)
        self._counting = {s.uid for s in sessions if s.uid in policies and s.in_use}
        self._present = {s.uid for s in sessions if s.uid in policies and s.active}
        self._known_sessions = {s.session_id for s in sessions}
        self._relocked = {k: v for k, v in self._relocked.items() if k in self._known_sessions}
        self._warned = {k: v for k, v in self._warned.items() if k[1] == now.date()}
        self._reached = {r for r in self._reached if r[1] == now.date()}
        return actions

    def _account(self, elapsed: float, today: dt.date, uids: set[int]) -> list[Action]:
        """Whole seconds go to memory, then to the database when it takes
        them; the fraction waits for the next tick."""
        for uid in uids:
            total = self._carry.get(uid, 0.0) + elapsed
            whole = int(total)
            self._carry[uid] = total - whole
            if whole:
                key = (uid, today)
                self._unwritten[key] = self._unwritten.get(key, 0) + whole
        return self._write()

    def _write(self) -> list[Action]:
        error = ""
        for key in list(self._unwritten):
            uid, day = key
            try:
                add_screen_time(self.db, uid, day, used_seconds=self._unwritten[key])
            except Exception as e:  # peewee's and the storage layer's errors alike
                error = f"{type(e).__name__}: {e}"
                break
            written = self._unwritten.pop(key)
            if key in self._usage:  # what the database says now, should reading it fail next
                self._usage[key] = self._usage[key].plus(written)
        if error and not self._storage_failing:
            self._storage_failing = True
            log.error("cannot write screen time (%s); counting in memory", error)
            return [StorageFailing(True, error)]
        if not error and self._storage_failing:
            self._storage_failing = False
            log.warning("screen time written again")
            return [StorageFailing(False, "screen time written again")]
        return []

    def usage_of(self, uid: int, day: dt.date) -> Usage:
        """Stored usage plus what is not stored yet; while the database
        cannot be read, what it said last."""
        key = (uid, day)
        if self.usage is not None:  # the household's sums already hold what was counted here
            monday = day - dt.timedelta(days=day.weekday())
            used, granted = self.usage.used_and_granted(uid, day, day)
            week_used, week_granted = self.usage.used_and_granted(uid, monday, day)
            return Usage(used, granted, week_used, week_granted)
        try:
            stored = usage(self.db, uid, day)
            self._usage[key] = stored
        except Exception as e:
            stored = self._usage.get(key, Usage())
            log.debug("cannot read screen time (%s); using the last reading", e)
        pending = sum(v for (u, d), v in self._unwritten.items() if u == uid
                      and d <= day and d >= day - dt.timedelta(days=day.weekday()))
        today_pending = self._unwritten.get(key, 0)
        return dataclasses.replace(stored, used=stored.used + today_pending,
                                   week_used=stored.week_used + pending)

    def left(self, uid: int, policy: Policy, now: dt.datetime) -> Left:
        return time_left(policy, self.usage_of(uid, now.date()), now)

    def _decide(self, uid: int, policy: Policy, sessions: list[SessionState],
                now: dt.datetime, boot: float, kernel_active: bool) -> list[Action]:
        left = self.left(uid, policy, now)
        if left.seconds is None or not sessions:
            return []
        today = now.date()
        if left.seconds > 0:
            return self._warnings(uid, policy, left.seconds, today, sessions, kernel_active)
        actions: list[Action] = []
        if (uid, today, left.reason) not in self._reached:
            self._reached.add((uid, today, left.reason))
            actions.append(LimitReached(uid, left.reason))
            log.info("uid %d: %s limit reached", uid, left.reason)
        if only_always_allowed_at_end(policy):
            # no lock: the rules switch to "only the always-allowed apps run"
            # (enforcement pushes rules_for(..., time_is_up=True))
            return actions
        known = self._known_sessions or set()
        new = tuple(s.session_id for s in sessions if s.session_id not in known)
        if left.reason == "hours" and new:
            # a login outside the allowed hours is ended, whatever end_action says
            actions.append(EndSessions(uid, "terminate", new))
            sessions = [s for s in sessions if s.session_id in known]
        open_ = tuple(s.session_id for s in sessions if s.active and self._to_end(s, boot, kernel_active))
        if open_:
            actions.append(EndSessions(uid, policy.end_action, open_))
        return actions

    def _to_end(self, session: SessionState, boot: float, kernel_active: bool) -> bool:
        """A session not flagged locked is ended or locked; one flagged
        locked too, while the kernel sees the child active (at most every
        RELOCK_SECONDS: a real lock with a download running is not news)."""
        if not session.locked:
            return True
        if not kernel_active:
            return False
        last = self._relocked.get(session.session_id)
        if last is not None and boot - last < RELOCK_SECONDS:
            return False
        self._relocked[session.session_id] = boot
        log.info("session %s says it is locked but its user is active: ending it again",
                 session.session_id)
        return True

    def _warnings(self, uid: int, policy: Policy, seconds_left: float, today: dt.date,
                  sessions: list[SessionState], kernel_active: bool) -> list[Action]:
        """One warning per threshold per day: the smallest crossed one."""
        if not any(s.in_use or (s.active and kernel_active) for s in sessions):
            return []
        warned = self._warned.setdefault((uid, today), set())
        crossed = [m for m in policy.warning_minutes if seconds_left <= m * 60 and m not in warned]
        if not crossed:
            return []
        warned.update(m for m in policy.warning_minutes if seconds_left <= m * 60)
        return [TimeWarning(uid, max(1, round(seconds_left / 60)))]
