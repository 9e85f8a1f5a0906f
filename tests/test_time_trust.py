"""Issue 12 (screen time a child cannot bend) and issue 11 (one answer to
"how much time is left", one clock): a suspend, a full disk, a grant made
while the clocks disagree, and the edges of a window and of the limit, on
a real SQLite database with the daemon's own engine and a fake clock."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import tempfile

import pytest

from dots_policyd.clock import FakeClock, Timeline
from dots_policyd.db import open_database
from dots_policyd.family import Family
from dots_policyd.history import add_screen_time
from dots_policyd.migrations import migrate
from dots_policyd.policy import Policy
from dots_policyd.screentime import (EndSessions, LimitReached, ScreenTime, SessionState,
                                     StorageFailing, WallClockJump)
from dots_policyd.timeleft import used_and_granted
from tests.helpers import uid_of

TZ = dt.timezone(dt.timedelta(hours=1))
WEDNESDAY = dt.date(2026, 11, 25)
PARENT = 0


def at(hour: int, minute: int = 0, day: dt.date = WEDNESDAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=TZ)


def run(engine: ScreenTime, clock: FakeClock, seconds: int, sessions, step: int = 10) -> list:
    actions = []
    for _ in range(seconds // step):
        actions += engine.tick(sessions)
        clock.advance(step)
    return actions + engine.tick(sessions)


# --- suspend ---------------------------------------------------------------------------------

def test_a_suspend_moves_neither_bedtime_nor_the_day(db):
    uid = 4242
    clock = FakeClock(at(20, 0))
    policy = Policy(allowed_hours={"wed": ["08:00-21:00"], "thu": ["08:00-21:00"]}, end_action="lock")
    engine = ScreenTime(db, clock, lambda: {uid: policy})
    session = [SessionState("s", uid)]
    assert not [a for a in run(engine, clock, 60, session) if isinstance(a, LimitReached)]
    clock.suspend(2 * 3600)  # the lid closed at 20:01, opened at 22:01
    actions = engine.tick(session)
    assert LimitReached(uid, "hours") in actions, "22:01 is past bedtime"
    assert EndSessions(uid, "lock", ("s",)) in actions
    assert not [a for a in actions if isinstance(a, WallClockJump)], "a suspend is no clock jump"
    assert engine.now()[0] == at(22, 1)


def test_a_grant_lands_on_the_day_enforcement_reads(db, child_user):
    """One Timeline for the family core (grants) and screen time: a grant
    made after a suspend over midnight counts on the new day."""
    uid = uid_of(child_user)
    clock = FakeClock(at(23, 50))
    timeline = Timeline(clock)
    family = Family(db, clock=timeline.now, tz=TZ)
    family.add_child(PARENT, child_user, "")
    family.set_daily_limit(PARENT, child_user, 30, 30)
    policy = Policy.from_json(family.get_policy(child_user))
    engine = ScreenTime(db, timeline, lambda: {uid: policy})
    engine.tick([SessionState("s", uid)])
    clock.suspend(3600)  # asleep over midnight: now Thursday 00:50
    add_screen_time(db, uid, WEDNESDAY + dt.timedelta(days=1), used_seconds=30 * 60)
    request = family.request_time(uid, 20, "homework")
    family.answer_request(PARENT, request.id, True, 0)
    thursday = WEDNESDAY + dt.timedelta(days=1)
    assert used_and_granted(db, uid, thursday, thursday) == (30 * 60, 20 * 60)
    actions = engine.tick([SessionState("s", uid)])
    assert not [a for a in actions if isinstance(a, LimitReached)], "the grant is read today"
    status = family.status(uid)
    assert status.day == thursday and status.granted_seconds == 20 * 60
    assert status.left_seconds == int(engine.left(uid, policy, timeline.now()).seconds) > 0


# --- a full disk -----------------------------------------------------------------------------

@pytest.fixture
def small_disk():
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    path = tempfile.mkdtemp(prefix="dots-full-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", path], check=True)
    yield path
    subprocess.run(["umount", "-l", path], check=False)
    os.rmdir(path)


def fill(path: str) -> str:
    filler = os.path.join(path, "filler")
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_stops_neither_counting_nor_enforcement(small_disk):
    uid = 4242
    db = open_database(os.path.join(small_disk, "dots.db"))
    migrate(db)
    clock = FakeClock(at(14, 0))
    engine = ScreenTime(db, clock, lambda: {uid: Policy(daily_limit_minutes=10, end_action="lock")})
    session = [SessionState("s", uid)]
    run(engine, clock, 300, session)
    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    filler = fill(small_disk)  # the child filled the disk (no reserved blocks for the daemon)
    actions = run(engine, clock, 360, session)
    assert [a for a in actions if isinstance(a, StorageFailing)] == [
        a for a in actions if isinstance(a, StorageFailing) and a.failing][:1], "reported once"
    assert any(isinstance(a, StorageFailing) and a.failing for a in actions)
    assert LimitReached(uid, "daily") in actions, "the limit falls on time, from memory"
    assert EndSessions(uid, "lock", ("s",)) in actions
    os.unlink(filler)
    actions = engine.tick(session)
    assert any(isinstance(a, StorageFailing) and not a.failing for a in actions)
    assert used_and_granted(db, uid, WEDNESDAY, WEDNESDAY)[0] == 660, "the time is written late"
    db.close()


# --- one answer to "how much time is left" ----------------------------------------------------

@pytest.mark.parametrize("now, used, expected_left, reason", [
    (at(17, 59), 0, 60, ""),            # one minute before the window ends
    (at(18, 0), 0, 0, "hours"),         # the window's end
    (at(15, 0), 60 * 60 - 1, 1, ""),    # one second of the limit left
    (at(15, 0), 60 * 60, 0, "daily"),   # the limit
    (at(17, 30), 40 * 60, 20 * 60, ""),  # both near: the limit is sooner
    (at(17, 50), 40 * 60, 10 * 60, ""),  # both near: the window is sooner
])
def test_status_and_enforcement_agree_at_the_edges(db, child_user, now, used, expected_left, reason):
    uid = uid_of(child_user)
    clock = FakeClock(now)
    timeline = Timeline(clock)
    family = Family(db, clock=timeline.now, tz=TZ)
    family.add_child(PARENT, child_user, "")
    family.set_daily_limit(PARENT, child_user, 60, 60)
    family.set_allowed_hours(PARENT, child_user, ["wed"], ["08:00-18:00"])
    if used:
        add_screen_time(db, uid, WEDNESDAY, used_seconds=used)
    policy = Policy.from_json(family.get_policy(child_user))
    engine = ScreenTime(db, timeline, lambda: {uid: policy})

    status = family.status(uid)
    enforced = engine.left(uid, policy, timeline.now())
    assert status.left_seconds == expected_left == max(0, int(enforced.seconds))
    assert status.blocked_reason == reason
    actions = engine.tick([SessionState("s", uid)])
    assert bool([a for a in actions if isinstance(a, LimitReached)]) == bool(reason), \
        "enforced exactly when status says blocked"
