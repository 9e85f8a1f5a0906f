"""Per-app time: how long each child ran each program today, from the
collector's exec / fork / exit events, and what to do at a per-app limit.

A process takes the identity of the program it exec'd; a forked child
keeps its parent's until it execs something else. An app's time runs while
at least one of its processes lives, so two instances at once count once.
Durations come from the events' CLOCK_BOOTTIME timestamps (and the caller's
boot-clock "now" for apps still running at a flush), never the wall clock.

Which app a program is comes from apps.Apps (one rule for the daemon): a
symlink, hard link, copy or modified copy of a named app is counted under
the app's own program, so it uses up the same daily limit.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable

import peewee

from dots_common.programs import is_desktop_program
from dots_common.records import ProcessEvent

from .apps import Apps
from .history import add_app_time, app_usage
from .policy import Policy

log = logging.getLogger("dots.policyd.apptime")

NS = 1_000_000_000


@dataclasses.dataclass(frozen=True)
class AppWarning:
    uid: int
    app: str  # the policy's name for it
    minutes_left: int


@dataclasses.dataclass(frozen=True)
class AppLimitReached:
    uid: int
    app: str
    paths: tuple[str, ...]  # executables that ran under that name today


def timed_apps(policy: Policy) -> list[str]:
    """The apps whose time a policy looks at: per-app limits, always-allowed."""
    return [*policy.app_limits_minutes, *policy.always_allowed_apps]


class AppTime:
    def __init__(self, db: peewee.Database, policies: Callable[[], dict[int, Policy]],
                 apps: Apps | None = None,
                 remote_apps: Callable[[int, dt.date], dict[str, int]] | None = None) -> None:
        """``remote_apps(uid, day)``: seconds per app the same child ran on
        the household's other machines (household mode), added to the limits."""
        self.db = db
        self.policies = policies
        self.apps = apps or Apps()
        self.remote_apps = remote_apps
        self._app_of: dict[int, tuple[int, str]] = {}  # pid -> (uid, path)
        self._running: dict[tuple[int, str], set[int]] = {}  # (uid, path) -> pids
        self._since: dict[tuple[int, str], int] = {}  # when the app last got counted up to
        self._pending: dict[tuple[int, str], float] = {}  # seconds not yet stored
        self._warned: dict[tuple[int, str, dt.date], set[int]] = {}
        self._reached: set[tuple[int, str, dt.date]] = set()

    # --- events -----------------------------------------------------------------
    def feed(self, events: Iterable[ProcessEvent]) -> None:
        policies = self.policies()
        for e in events:
            if e.uid not in policies and e.pid not in self._app_of:
                continue
            if e.type == "exec":
                self._stop(e.pid, e.ts_ns)
                policy = policies.get(e.uid)
                names = timed_apps(policy) if policy is not None else []
                path = self.apps.canonical(names, e.path) if names else e.path
                self._start(e.pid, (e.uid, path), e.ts_ns)
            elif e.type == "fork" and e.ppid in self._app_of:
                self._start(e.pid, self._app_of[e.ppid], e.ts_ns)
            elif e.type in ("exit", "exec_blocked"):
                self._stop(e.pid, e.ts_ns)

    def _start(self, pid: int, key: tuple[int, str], ts: int) -> None:
        self._app_of[pid] = key
        pids = self._running.setdefault(key, set())
        if not pids:
            self._since[key] = ts
        pids.add(pid)

    def _stop(self, pid: int, ts: int) -> None:
        key = self._app_of.pop(pid, None)
        if key is None:
            return
        pids = self._running.get(key, set())
        pids.discard(pid)
        if not pids:
            self._running.pop(key, None)
            self._add(key, ts - self._since.pop(key, ts))

    def _add(self, key: tuple[int, str], ns: int) -> None:
        if ns > 0:
            self._pending[key] = self._pending.get(key, 0.0) + ns / NS

    # --- flush and decide ---------------------------------------------------------
    def flush(self, now_ns: int, today: dt.date) -> list[AppWarning | AppLimitReached]:
        """Store the time run so far (apps still running count up to now)
        and return warnings and limits reached."""
        for key in self._running:
            self._add(key, now_ns - self._since[key])
            self._since[key] = now_ns
        for (uid, path), seconds in list(self._pending.items()):
            whole = int(seconds)
            if whole:
                add_app_time(self.db, uid, today, path, whole)
                self._pending[(uid, path)] = seconds - whole
        return self._decide(today)

    def running_paths(self, uid: int, rule: str) -> set[str]:
        return {path for (u, path) in self._running if u == uid and self.apps.is_app(rule, path)}

    def _decide(self, today: dt.date) -> list[AppWarning | AppLimitReached]:
        actions: list[AppWarning | AppLimitReached] = []
        for uid, policy in self.policies().items():
            if not policy.app_limits_minutes:
                continue
            usage = app_usage(self.db, uid, today, today)
            remote = self.remote_apps(uid, today) if self.remote_apps else {}
            for rule, minutes in policy.app_limits_minutes.items():
                paths = tuple(u.app for u in usage if self.apps.is_app(rule, u.app))
                used = sum(u.active_seconds for u in usage if u.app in paths)
                used += sum(s for app, s in remote.items() if self.apps.is_app(rule, app))
                left = minutes * 60 - used
                if left <= 0:
                    if (uid, rule, today) not in self._reached:
                        self._reached.add((uid, rule, today))
                        log.info("uid %d: daily limit of %s reached", uid, rule)
                        actions.append(AppLimitReached(uid, rule, paths))
                    continue
                if not self.running_paths(uid, rule):
                    continue
                warned = self._warned.setdefault((uid, rule, today), set())
                crossed = [m for m in policy.warning_minutes if left <= m * 60 and m not in warned]
                if crossed:
                    warned.update(m for m in policy.warning_minutes if left <= m * 60)
                    actions.append(AppWarning(uid, rule, max(1, round(left / 60))))
        return actions

    def blocked_today(self, uid: int, today: dt.date) -> set[str]:
        """Apps whose limit was reached today: blocked until tomorrow."""
        return {rule for (u, rule, day) in self._reached if u == uid and day == today}

    def only_always_allowed_running(self, uid: int) -> bool:
        """The screen-time exemption: the child runs at least one of its
        always-allowed apps and nothing else but the desktop's own programs
        (dots_common.programs). Any other program — a game, a terminal, a
        browser — makes the time count, so leaving a homework app open
        beside a game gains nothing."""
        policy = self.policies().get(uid)
        if policy is None or not policy.always_allowed_apps:
            return False
        running = [path for (u, path) in self._running if u == uid]
        allowed = {p for p in running if self.apps.app_of(policy.always_allowed_apps, p) is not None}
        return bool(allowed) and all(p in allowed or is_desktop_program(p) for p in running)

    def always_allowed_seconds(self, uid: int, today: dt.date) -> int:
        """Seconds the child's always-allowed apps ran today (stored so far):
        the screen-time hook. Screen time subtracts it from the session's
        active time, so homework apps do not use up the budget (an app
        running alongside them is not counted twice against the child)."""
        policy = self.policies().get(uid)
        if policy is None or not policy.always_allowed_apps:
            return 0
        return sum(u.active_seconds for u in app_usage(self.db, uid, today, today)
                   if self.apps.app_of(policy.always_allowed_apps, u.app) is not None)
