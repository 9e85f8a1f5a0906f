"""The household budget as the enforcers see it: per-app limits count the
other machines' time of the same member; screen time is the union of the
local journal and the other machines' intervals (no database daemons)."""

from __future__ import annotations

import datetime as dt

from dots_common.records import ProcessEvent
from dots_policyd.app_time import AppLimitReached, AppTime
from dots_policyd.household.budget import HouseholdUsage
from dots_policyd.household.journal import Journal
from dots_policyd.policy import Policy
from dots_policyd.screentime import ScreenTime
from dots_policyd.clock import FakeClock
from dots_policyd.timeleft import time_left
from dots_policyd.timeleft import usage as local_usage

UID = 5151
DAY = dt.date(2026, 11, 25)
GAME = "/usr/games/supertux2"
S = 1_000_000_000


def test_per_app_limit_counts_the_other_machines(db):
    usage = HouseholdUsage(db, Journal(db), lambda uid: "kid" if uid == UID else None)
    usage.remote_apps = {("kid", DAY): {GAME: 25 * 60}}  # 25 minutes on the living room
    policy = Policy(app_limits_minutes={"supertux2": 30})
    tracker = AppTime(db, lambda: {UID: policy}, remote_apps=usage.remote_app_seconds)
    tracker.feed([ProcessEvent("exec", 40, 1, UID, UID, "x", GAME, 0, 0)])
    assert not any(isinstance(a, AppLimitReached) for a in tracker.flush(4 * 60 * S, DAY))
    actions = tracker.flush(6 * 60 * S, DAY)  # 5 more minutes here: 30 in the household
    assert [a for a in actions if isinstance(a, AppLimitReached)] == [AppLimitReached(UID, "supertux2", (GAME,))]


def test_screen_time_left_is_the_households(db):
    journal = Journal(db)
    usage = HouseholdUsage(db, journal, lambda uid: "kid" if uid == UID else None)
    ten = dt.datetime.combine(DAY, dt.time(10)).astimezone()
    journal.add("kid", ten.timestamp(), ten.timestamp() + 1200)  # 10:00-10:20 here
    usage.remote = {"kid": [(ten.timestamp() + 600, ten.timestamp() + 2400)]}  # 10:10-10:40 there
    policy = Policy(daily_limit_minutes=60)
    now = ten + dt.timedelta(hours=1)
    household = ScreenTime(db, FakeClock(now), lambda: {UID: policy}, usage)
    left = household.left(UID, policy, now)
    assert (left.seconds, left.reason) == (20 * 60, "daily")  # 40 minutes used, not 50
    assert time_left(policy, usage_of_here(db, now), now).seconds == 60 * 60  # alone: local rollup


def usage_of_here(db, now: dt.datetime):
    return local_usage(db, UID, now.date())
