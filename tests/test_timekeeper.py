"""Screen time against the logind stand-in on a real bus: warnings, the
limit, the lock call logind receives; idle time excluded; and with no
logind, the child's processes killed instead. Time comes from a fake clock."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from dbus_fast.aio import MessageBus

from dots_policyd.clock import FakeClock
from dots_policyd.db import open_database
from dots_policyd.migrations import migrate
from dots_policyd.policy import Policy
from dots_policyd.screentime import ScreenTime, used_and_granted
from dots_policyd.sessions import Logind, proc_sessions
from dots_policyd.timekeeper import Timekeeper
from tests.helpers import popen_as, uid_of, wait_for

pytestmark = pytest.mark.bus

START = dt.datetime(2026, 11, 25, 14, 0, tzinfo=dt.timezone.utc)


class Recorder:
    def __init__(self) -> None:
        self.signals: list[tuple] = []
        self.killed: list[int] = []
        self.tampers: list[tuple[str, str]] = []

    def emit(self, name: str, *args) -> None:
        self.signals.append((name, *args))

    async def kill_user(self, uid: int) -> None:
        self.killed.append(uid)

    def tamper(self, kind: str, detail: str) -> None:
        self.tampers.append((kind, detail))


@pytest.fixture
async def keeper(tmp_path, system_bus, child_user):
    db = open_database(tmp_path / "dots.db")
    migrate(db)
    clock = FakeClock(START)
    uid = uid_of(child_user)
    policy = Policy(daily_limit_minutes=20, end_action="lock")
    engine = ScreenTime(db, clock, lambda: {uid: policy})
    bus = await MessageBus(bus_address=system_bus.address).connect()
    recorder = Recorder()
    yield Timekeeper(engine, Logind(bus), recorder.emit, recorder.kill_user, recorder.tamper), \
        clock, recorder, uid, db
    bus.disconnect()
    db.close()


BUSY = ["/bin/sh", "-c", "while :; do :; done"]


@contextlib.contextmanager
def running(user: str, argv: list[str]):
    """A process of ``user``'s, seen in /proc before the block (fake minutes
    pass in microseconds), killed after it."""
    process = popen_as(user, argv)
    try:
        wait_for(lambda: proc_sessions([uid_of(user)]), what="the child's process in /proc")
        yield process
    finally:
        process.kill()
        process.wait()


async def advance(keeper: Timekeeper, clock: FakeClock, seconds: int, step: int = 10) -> None:
    for _ in range(seconds // step):
        await keeper.tick()
        clock.advance(step)
    await keeper.tick()


async def test_warned_then_locked_through_logind(keeper, mock_logind, child_user):
    tk, clock, rec, uid, db = keeper
    await mock_logind.add_session("c1", uid, child_user)
    await advance(tk, clock, 20 * 60 + 10)

    assert [s for s in rec.signals if s[0] == "TimeWarning"] == [
        ("TimeWarning", uid, 15), ("TimeWarning", uid, 5), ("TimeWarning", uid, 1)]
    assert ("LimitReached", uid, "daily") in rec.signals
    assert ("LockSession", ["c1"]) in await mock_logind.calls()
    assert rec.killed == []

    # once logind reports the session locked, nothing more is done
    await mock_logind.set_session("c1", LockedHint=True)
    await mock_logind.clear_calls()
    await advance(tk, clock, 60)
    assert not [c for c in await mock_logind.calls() if c[0] in ("LockSession", "TerminateSession")]


async def test_idle_time_is_not_counted(keeper, mock_logind, child_user):
    tk, clock, rec, uid, db = keeper
    await mock_logind.add_session("c2", uid, child_user)
    await advance(tk, clock, 300)
    await mock_logind.set_session("c2", IdleHint=True)
    await advance(tk, clock, 300)
    used, _ = used_and_granted(db, uid, START.date(), START.date())
    assert used == 300, "idle time does not count"


async def test_without_logind_the_childs_processes_are_killed(keeper, child_user):
    tk, clock, rec, uid, db = keeper
    with running(child_user, ["/bin/sleep", "600"]):
        await advance(tk, clock, 20 * 60 + 10)
    assert ("LimitReached", uid, "daily") in rec.signals
    assert uid in rec.killed


# --- issue 12: hints the child sets, a logind that fails -------------------------------------

async def advance_in_real_time(keeper: Timekeeper, clock: FakeClock, seconds: int,
                               step: int = 30) -> None:
    """Fake minutes pass per tick, but real time passes between ticks too:
    the kernel's CPU accounting (activity) is measured in real time."""
    import asyncio
    for _ in range(seconds // step):
        await keeper.tick()
        clock.advance(step)
        await asyncio.sleep(0.1)
    await keeper.tick()


async def test_a_session_flagged_locked_by_the_child_still_counts_and_is_locked_at_the_limit(
        keeper, mock_logind, child_user):
    tk, clock, rec, uid, db = keeper
    await mock_logind.add_session("c5", uid, child_user)
    # the child flags its own session locked and idle (logind lets a session's
    # owner call SetLockedHint/SetIdleHint; the stand-in's bus policy does not,
    # so its mock interface sets what the child's call would)
    await mock_logind.set_session("c5", LockedHint=True, IdleHint=True)
    with running(child_user, BUSY):
        await advance_in_real_time(tk, clock, 20 * 60 + 60)
    used, _ = used_and_granted(db, uid, START.date(), START.date())
    assert used >= 20 * 60, "busy time counts whatever the hints say"
    assert ("LimitReached", uid, "daily") in rec.signals
    assert ("LockSession", ["c5"]) in await mock_logind.calls(), "locked again at the limit"


async def test_a_failing_logind_does_not_stop_enforcement(keeper, mock_logind, child_user):
    tk, clock, rec, uid, db = keeper
    await mock_logind.add_session("c6", uid, child_user)
    await mock_logind.fail("LockSession")
    await advance(tk, clock, 20 * 60 + 10)
    assert ("LimitReached", uid, "daily") in rec.signals
    assert uid in rec.killed, "a session that cannot be locked is ended by killing"
    assert [k for k, _ in rec.tampers] == ["logind"], "reported once"
    assert tk.logind_failures >= 1


async def test_processes_outside_any_session_are_stopped_at_the_limit(keeper, mock_logind,
                                                                      child_user):
    """logind is there, the child has no session, yet its processes run (a
    ``systemd-run --user`` unit, a lingering user manager): busy time counts
    and they are stopped at the limit."""
    tk, clock, rec, uid, db = keeper
    with running(child_user, BUSY):
        await advance_in_real_time(tk, clock, 20 * 60 + 60)
    assert ("LimitReached", uid, "daily") in rec.signals
    assert uid in rec.killed


async def test_lingering_is_undone_and_reported_once(keeper, mock_logind, child_user, tmp_path):
    tk, clock, rec, uid, db = keeper
    tk.linger_dir = str(tmp_path)
    (tmp_path / child_user).touch()  # what `loginctl enable-linger` leaves behind
    await mock_logind.add_method("SetUserLinger", "ubb")
    await advance(tk, clock, 30)
    assert ("SetUserLinger", [uid, False, False]) in await mock_logind.calls()
    assert [k for k, _ in rec.tampers] == ["linger"], "reported once"
