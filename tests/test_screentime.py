"""Screen-time accounting and its decisions, driven by a fake clock over a
real SQLite database (no sleeping through minutes)."""

from __future__ import annotations

import datetime as dt


from dots_policyd.clock import FakeClock
from dots_policyd.policy import Policy
from dots_policyd.screentime import (EndSessions, LimitReached, ScreenTime, SessionState,
                                     TimeWarning, WallClockJump, used_and_granted)
from dots_policyd.history import add_screen_time

UID = 4242
TZ = dt.timezone(dt.timedelta(hours=1))
WEDNESDAY_2PM = dt.datetime(2026, 11, 25, 14, 0, tzinfo=TZ)




def run(engine: ScreenTime, clock: FakeClock, seconds: int, sessions, step: int = 10):
    actions = []
    for _ in range(seconds // step):
        actions += engine.tick(sessions)
        clock.advance(step)
    actions += engine.tick(sessions)
    return actions


def used_today(db) -> int:
    return used_and_granted(db, UID, WEDNESDAY_2PM.date(), WEDNESDAY_2PM.date())[0]


def test_active_time_counts_once_and_idle_or_locked_time_not(db):
    clock = FakeClock(WEDNESDAY_2PM)
    engine = ScreenTime(db, clock, lambda: {UID: Policy(daily_limit_minutes=120)})
    two_sessions = [SessionState("1", UID), SessionState("2", UID)]
    run(engine, clock, 600, two_sessions)
    assert used_today(db) == 600, "two sessions at once count once"
    run(engine, clock, 600, [SessionState("1", UID, idle=True), SessionState("2", UID, locked=True)])
    assert used_today(db) == 600, "idle and locked time do not count"


def test_restart_continues_the_count(db):
    clock = FakeClock(WEDNESDAY_2PM)
    policies = lambda: {UID: Policy(daily_limit_minutes=120)}  # noqa: E731
    run(ScreenTime(db, clock, policies), clock, 300, [SessionState("1", UID)])
    run(ScreenTime(db, clock, policies), clock, 300, [SessionState("1", UID)])
    assert used_today(db) == 600


def test_warnings_then_limit_then_lock(db):
    clock = FakeClock(WEDNESDAY_2PM)
    engine = ScreenTime(db, clock, lambda: {UID: Policy(daily_limit_minutes=20, end_action="lock")})
    actions = run(engine, clock, 20 * 60 + 30, [SessionState("c2", UID)])
    warnings = [a.minutes_left for a in actions if isinstance(a, TimeWarning)]
    assert warnings == [15, 5, 1]
    assert [a for a in actions if isinstance(a, LimitReached)] == [LimitReached(UID, "daily")]
    assert EndSessions(UID, "lock", ("c2",)) in actions
    assert used_today(db) == 20 * 60 + 30, "the session was never really locked here"

    # the child unlocks: it is locked again at the next tick
    assert EndSessions(UID, "lock", ("c2",)) in engine.tick([SessionState("c2", UID)])
    assert engine.tick([SessionState("c2", UID, locked=True)]) == []


def test_granted_time_extends_today(db):
    clock = FakeClock(WEDNESDAY_2PM)
    engine = ScreenTime(db, clock, lambda: {UID: Policy(daily_limit_minutes=10)})
    assert LimitReached(UID, "daily") in run(engine, clock, 10 * 60 + 10, [SessionState("s", UID)])
    add_screen_time(db, UID, WEDNESDAY_2PM.date(), granted_seconds=30 * 60)
    actions = run(engine, clock, 60, [SessionState("s", UID, locked=False)])
    assert not [a for a in actions if isinstance(a, EndSessions)]


def test_weekend_and_weekly_limits(db):
    saturday = dt.datetime(2026, 11, 28, 10, 0, tzinfo=TZ)
    clock = FakeClock(saturday)
    policy = Policy(daily_limit_minutes=10, weekend_limit_minutes=60, weekly_limit_minutes=90)
    engine = ScreenTime(db, clock, lambda: {UID: policy})
    add_screen_time(db, UID, dt.date(2026, 11, 24), used_seconds=80 * 60)  # Tuesday
    actions = run(engine, clock, 11 * 60, [SessionState("s", UID)])
    assert LimitReached(UID, "weekly") in actions, "90 - 80 = 10 minutes left this week"


def test_outside_allowed_hours_a_new_login_is_ended(db):
    clock = FakeClock(WEDNESDAY_2PM.replace(hour=15, minute=59))
    policy = Policy(allowed_hours={"wed": ["15:30-16:00"]}, end_action="lock")
    engine = ScreenTime(db, clock, lambda: {UID: policy})
    actions = run(engine, clock, 120, [SessionState("old", UID)])
    assert TimeWarning(UID, 1) in actions
    assert LimitReached(UID, "hours") in actions
    assert EndSessions(UID, "lock", ("old",)) in actions
    assert EndSessions(UID, "terminate", ("new",)) in engine.tick(
        [SessionState("old", UID, locked=True), SessionState("new", UID)])


def test_setting_the_wall_clock_neither_resets_nor_doubles(db):
    clock = FakeClock(WEDNESDAY_2PM)
    engine = ScreenTime(db, clock, lambda: {UID: Policy(daily_limit_minutes=30)})
    run(engine, clock, 600, [SessionState("s", UID)])
    clock.set_wall(WEDNESDAY_2PM + dt.timedelta(days=1))  # "it's tomorrow: fresh budget"
    actions = run(engine, clock, 600, [SessionState("s", UID)])
    assert [a for a in actions if isinstance(a, WallClockJump)], "the jump is reported"
    assert used_today(db) == 1200, "time still counts against the real day"
    clock.set_wall(WEDNESDAY_2PM - dt.timedelta(hours=5))
    run(engine, clock, 600, [SessionState("s", UID)])
    assert used_today(db) == 1800


def test_time_up_switches_to_always_allowed_apps_instead_of_locking(db):
    """A policy with always-allowed apps at the end: the limit is reached
    and said, no session is locked (the rules let only those apps run)."""
    from dots_policyd.rules import rules_for

    clock = FakeClock(WEDNESDAY_2PM)
    policy = Policy(daily_limit_minutes=1, always_allowed_apps=["/usr/bin/true"],
                    at_end_only_always_allowed=True)
    engine = ScreenTime(db, clock, lambda: {UID: policy})
    actions = run(engine, clock, 90, [SessionState("c3", UID)])
    assert [a for a in actions if isinstance(a, LimitReached)] == [LimitReached(UID, "daily")]
    assert not [a for a in actions if isinstance(a, EndSessions)]
    assert engine.left(UID, policy, clock.now()).blocked
    rules = rules_for(policy, {}, time_is_up=True)
    assert rules.allow_list and rules.allowed_paths == ["/usr/bin/true"]


def test_time_with_only_always_allowed_apps_running_is_not_screen_time(db):
    """Homework apps do not use up the budget; a game beside one does."""
    from dots_common.records import ProcessEvent
    from dots_policyd.app_time import AppTime

    homework, game = "/usr/bin/yes", "/usr/bin/expr"  # neither is a desktop program
    clock = FakeClock(WEDNESDAY_2PM)
    policy = Policy(daily_limit_minutes=60, always_allowed_apps=[homework])
    policies = lambda: {UID: policy}  # noqa: E731
    apps = AppTime(db, policies)
    engine = ScreenTime(db, clock, policies, exempt=apps.only_always_allowed_running)
    session = [SessionState("s", UID)]
    apps.feed([ProcessEvent("exec", 100, 1, UID, UID, "bash", "/bin/bash", 0, 1),
               ProcessEvent("exec", 101, 100, UID, UID, "yes", homework, 0, 2)])
    run(engine, clock, 300, session)
    assert used_today(db) == 0, "only the homework app (and a shell) ran"
    apps.feed([ProcessEvent("exec", 102, 100, UID, UID, "expr", game, 0, 3)])
    run(engine, clock, 300, session)
    assert used_today(db) >= 290, "a game beside the homework app counts"
