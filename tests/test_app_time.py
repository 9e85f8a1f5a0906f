"""Per-app time from process events: union of instances, persisted,
warnings and the limit."""

from __future__ import annotations

import datetime as dt

import os
import shutil

from dots_policyd.app_time import AppLimitReached, AppTime, AppWarning
from dots_policyd.apps import Apps
from dots_policyd.history import app_usage
from dots_policyd.policy import Policy

from dots_common.records import ProcessEvent

UID = 5151
DAY = dt.date(2026, 11, 25)
S = 1_000_000_000
GAME = "/usr/games/supertux2"


def ev(kind: str, pid: int, t: float, path: str = "", ppid: int = 1, uid: int = UID) -> ProcessEvent:
    return ProcessEvent(kind, pid, ppid, uid, uid, "x", path, 0, int(t * S))




def seconds_of(db, app: str) -> int:
    return sum(u.active_seconds for u in app_usage(db, UID, DAY, DAY) if u.app == app)


def test_two_instances_at_once_count_once(db):
    tracker = AppTime(db, lambda: {UID: Policy()})
    tracker.feed([ev("exec", 10, 0, GAME), ev("exec", 11, 30, GAME),  # a second instance
                  ev("exit", 10, 60), ev("exit", 11, 100)])
    tracker.flush(200 * S, DAY)
    assert seconds_of(db, GAME) == 100


def test_forked_children_keep_the_app_and_running_apps_count_up_to_now(db):
    tracker = AppTime(db, lambda: {UID: Policy()})
    tracker.feed([ev("exec", 20, 0, GAME), ev("fork", 21, 5, ppid=20), ev("exit", 20, 10)])
    tracker.flush(40 * S, DAY)  # the forked child still runs
    assert seconds_of(db, GAME) == 40
    tracker.feed([ev("exec", 21, 50, "/usr/bin/true")])  # the child becomes another program
    tracker.flush(60 * S, DAY)
    assert seconds_of(db, GAME) == 50


def test_other_users_are_not_tracked(db):
    tracker = AppTime(db, lambda: {UID: Policy()})
    tracker.feed([ev("exec", 30, 0, GAME, uid=999), ev("exit", 30, 100, uid=999)])
    tracker.flush(100 * S, DAY)
    assert app_usage(db, UID, DAY, DAY) == []


def test_warnings_then_limit_by_name(db):
    policy = Policy(app_limits_minutes={"supertux2": 20})
    tracker = AppTime(db, lambda: {UID: policy})
    tracker.feed([ev("exec", 40, 0, GAME)])
    actions = []
    for minute in range(1, 22):
        actions += tracker.flush(minute * 60 * S, DAY)
    assert [a.minutes_left for a in actions if isinstance(a, AppWarning)] == [15, 5, 1]
    assert [a for a in actions if isinstance(a, AppLimitReached)] == [
        AppLimitReached(UID, "supertux2", (GAME,))]
    assert tracker.blocked_today(UID, DAY) == {"supertux2"}
    assert tracker.blocked_today(UID, DAY + dt.timedelta(days=1)) == set()


def test_app_rules_match_path_or_name():
    apps = Apps()
    assert apps.is_app("/usr/games/supertux2", GAME) and apps.is_app("supertux2", GAME)
    assert not apps.is_app("supertux", GAME) and not apps.is_app("/usr/bin/supertux2", GAME)


def test_links_copies_and_modified_copies_count_against_the_same_app(db, tmp_path):
    """The limited app is a real program; the child runs it through a
    symlink, a hard link, a copy and a copy with bytes appended: all of it
    is the app's time, under the app's own path, and the limit is one."""
    game = tmp_path / "game"
    shutil.copy("/usr/bin/sleep", game)
    (tmp_path / "sym").symlink_to(game)
    os.link(game, tmp_path / "hard")
    shutil.copy(game, tmp_path / "copy")
    (tmp_path / "modified").write_bytes(game.read_bytes() + b"appended by the child")
    policy = Policy(app_limits_minutes={str(game): 3})
    tracker = AppTime(db, lambda: {UID: policy})
    runs = ["sym", "hard", "copy", "modified"]
    for i, name in enumerate(runs):
        tracker.feed([ev("exec", 50 + i, i * 60, str(tmp_path / name)),
                      ev("exit", 50 + i, i * 60 + 50)])
    actions = tracker.flush(400 * S, DAY)
    assert seconds_of(db, str(game)) == 200
    assert [a for a in actions if isinstance(a, AppLimitReached)] == [
        AppLimitReached(UID, str(game), (str(game),))]
    other = tmp_path / "other"
    shutil.copy("/usr/bin/true", other)
    assert not Apps().is_app(str(game), str(other)), "another program is another app"


def test_always_allowed_time_is_reported_for_screen_time(db, tmp_path):
    homework = tmp_path / "homework"
    shutil.copy("/usr/bin/sleep", homework)
    policy = Policy(always_allowed_apps=[str(homework)])
    tracker = AppTime(db, lambda: {UID: policy})
    tracker.feed([ev("exec", 60, 0, str(homework)), ev("exit", 60, 90),
                  ev("exec", 61, 100, GAME), ev("exit", 61, 130)])
    tracker.flush(200 * S, DAY)
    assert tracker.always_allowed_seconds(UID, DAY) == 90
