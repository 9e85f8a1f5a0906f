"""The policy core (dots_policyd.family) without a bus: a real SQLite
database built by the migrations, real local accounts, an injected clock."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from dots_policyd import history
from dots_policyd.errors import (
    StalePolicy,
    AlreadyAnswered,
    AlreadyExists,
    InvalidArgument,
    InvalidPolicy,
    NotFound,
    TooManyRequests,
    UnknownChild,
)
from dots_policyd.family import ChildAdded, ChildRemoved, Family, PolicyChanged, RequestAnswered
from dots_policyd.schema import AuditLog, Child, PolicyVersion, ScreenTimeDaily
from tests.helpers import uid_of

TZ = ZoneInfo("Europe/Berlin")
PARENT = 4242  # the actor: any uid, authorization is the dispatcher's job


class Clock:
    def __init__(self, when: dt.datetime) -> None:
        self.now = when

    def __call__(self) -> dt.datetime:
        return self.now




@pytest.fixture
def clock() -> Clock:
    return Clock(dt.datetime(2026, 1, 7, 16, 0, tzinfo=TZ))  # a Wednesday


@pytest.fixture
def family(db, clock) -> Family:
    return Family(db, clock=clock, tz=TZ)


@pytest.fixture
def events(family) -> list:
    seen: list = []
    family.subscribe(seen.append)
    return seen


def rows(model) -> int:
    return model.select().count()


def test_add_child_writes_child_version_audit_and_then_tells(family, events, child_user,
                                                               other_user):
    committed = []
    family.subscribe(lambda e: committed.append(Child.get_or_none(Child.uid == e.uid) is not None))
    info = family.add_child(PARENT, child_user, "5-7")
    uid = uid_of(child_user)
    assert (info.uid, info.name) == (uid, child_user)
    assert events == [ChildAdded(uid, child_user), PolicyChanged(uid, 1)]
    assert all(committed), "subscribers hear of a change only once it is in the database"
    assert json.loads(family.get_policy(child_user))["daily_limit_minutes"] == 60
    (audit,) = AuditLog.select()
    assert (audit.actor_uid, audit.action, audit.target) == (PARENT, "add_child", f"uid:{uid}")
    assert audit.old_value is None and json.loads(audit.new_value)["weekend_limit_minutes"] == 90
    assert [(v.version, v.author_uid) for v in PolicyVersion.select()] == [(1, PARENT)]
    with pytest.raises(AlreadyExists):
        family.add_child(PARENT, str(uid), "")
    with pytest.raises(InvalidArgument, match="system account"):
        family.add_child(PARENT, "root", "")
    with pytest.raises(InvalidArgument, match="preset"):
        family.add_child(PARENT, other_user, "99-100")
    with pytest.raises(InvalidArgument, match="no local account"):
        family.add_child(PARENT, "no-such-user-here", "")
    with pytest.raises(InvalidArgument, match="longer than"):
        family.add_child(PARENT, "x" * 300, "")
    assert family.child_uids() == [uid]


def test_a_refused_change_leaves_no_trace(family, events, child_user):
    family.add_child(PARENT, child_user, "")
    events.clear()
    counts = [rows(m) for m in (AuditLog, PolicyVersion, Child)]
    policy = family.get_policy(child_user)
    for bad in (lambda: family.set_policy(PARENT, child_user, '{"daily_limit_minutes": -1}'),
                lambda: family.set_allowed_hours(PARENT, child_user, ["mon"], ["12:00-11:00"]),
                lambda: family.set_daily_limit(PARENT, child_user, -2, 0),
                lambda: family.block_site(PARENT, child_user, "exa mple.com")):
        with pytest.raises((InvalidPolicy, InvalidArgument)):
            bad()
    assert [rows(m) for m in (AuditLog, PolicyVersion, Child)] == counts
    assert family.get_policy(child_user) == policy
    assert events == []


def test_versions_continue_after_remove_and_readd(family, events, child_user):
    uid = uid_of(child_user)
    family.add_child(PARENT, child_user, "")
    assert family.set_daily_limit(PARENT, child_user, 30, -1) == 2
    assert family.set_daily_limit(PARENT, child_user, 30, -1) == 2, "no-op: same version"
    family.remove_child(PARENT, child_user)
    with pytest.raises(UnknownChild):
        family.get_policy(child_user)
    family.add_child(PARENT, child_user, "")
    assert family.version_of(uid) == 3
    assert ChildRemoved(uid) in events
    actions = [a.action for a in AuditLog.select().order_by(AuditLog.id)]
    assert actions == ["add_child", "set_daily_limit", "set_daily_limit", "remove_child", "add_child"]


def _used(uid: int, day: dt.date, used: int, granted: int = 0) -> None:
    ScreenTimeDaily.insert(uid=uid, day=day, seconds_used=used, seconds_granted=granted).on_conflict(
        conflict_target=[ScreenTimeDaily.uid, ScreenTimeDaily.day],
        update={ScreenTimeDaily.seconds_used: used, ScreenTimeDaily.seconds_granted: granted}).execute()


def test_status_counts_time_and_finds_the_window(family, clock, child_user):
    uid = uid_of(child_user)
    family.add_child(PARENT, child_user, "")
    family.set_policy(PARENT, child_user, json.dumps({
        "daily_limit_minutes": 60, "weekend_limit_minutes": 120, "weekly_limit_minutes": 200,
        "allowed_hours": {"wed": ["15:00-18:00"], "thu": []}}))
    monday, wednesday = dt.date(2026, 1, 5), dt.date(2026, 1, 7)
    _used(uid, monday, 3000)
    _used(uid, wednesday, 1200, 600)

    s = family.status(uid)
    assert (s.day, s.limit_seconds, s.used_seconds, s.granted_seconds) == (wednesday, 3600, 1200, 600)
    assert s.weekly_used_seconds == 4200 and s.weekly_limit_seconds == 12000
    assert s.left_seconds == 3600 - 1200 + 600
    assert s.in_window and not s.blocked
    assert (s.window_start, s.window_end) == (dt.datetime(2026, 1, 7, 15, 0, tzinfo=TZ),
                                              dt.datetime(2026, 1, 7, 18, 0, tzinfo=TZ))

    clock.now = dt.datetime(2026, 1, 7, 18, 30, tzinfo=TZ)  # after the window; Thursday: none
    s = family.status(uid)
    assert not s.in_window and s.blocked_reason == "hours"
    assert (s.window_start, s.window_end) == (dt.datetime(2026, 1, 9, 0, 0, tzinfo=TZ),
                                              dt.datetime(2026, 1, 10, 0, 0, tzinfo=TZ)), \
        "Friday has no restriction: one window over the whole day"

    clock.now = dt.datetime(2026, 1, 7, 17, 0, tzinfo=TZ)
    _used(uid, monday, 11000)  # the week's budget is nearly spent
    assert family.status(uid).left_seconds == 12000 - 12200 + 600
    _used(uid, monday, 12000)
    s = family.status(uid)
    assert s.left_seconds == 0 and s.blocked_reason == "weekly"

    clock.now = dt.datetime(2026, 1, 10, 12, 0, tzinfo=TZ)  # Saturday: the weekend limit
    s = family.status(uid)
    assert s.limit_seconds == 7200 and s.used_seconds == 0


def test_status_of_a_day_with_no_use_at_all(family, clock, child_user):
    uid = uid_of(child_user)
    family.add_child(PARENT, child_user, "")
    family.set_allowed_hours(PARENT, child_user, ["all"], [])
    s = family.status(uid)
    assert not s.in_window and s.blocked_reason == "hours"
    assert s.window_start is None and s.window_end is None
    # issue 11: what status shows is what is enforced: outside every window
    # nothing is left (it said "unlimited" here while enforcement locked)
    assert s.left_seconds == 0, "no limit set, but outside the allowed hours: nothing left"


def test_time_requests(family, events, clock, child_user, other_user):
    uid = uid_of(child_user)
    with pytest.raises(UnknownChild):
        family.request_time(uid, 10, "")
    family.add_child(PARENT, child_user, "")
    with pytest.raises(InvalidArgument):
        family.request_time(uid, 0, "")
    with pytest.raises(InvalidArgument):
        family.request_time(uid, 30, "x" * 501)
    first = family.request_time(uid, 30, "homework")
    assert (first.uid, first.state, first.minutes) == (uid, "pending", 30)
    for _ in range(4):
        family.request_time(uid, 5, "")
    with pytest.raises(TooManyRequests):
        family.request_time(uid, 5, "")

    answered = family.answer_request(PARENT, first.id, True, 0)
    assert (answered.state, answered.granted_minutes, answered.answered_by) == ("approved", 30, PARENT)
    assert RequestAnswered(first.id, uid, True, 30) in events
    assert family.status(uid).granted_seconds == 1800
    with pytest.raises(AlreadyAnswered):
        family.answer_request(PARENT, first.id, False, 0)
    with pytest.raises(NotFound):
        family.answer_request(PARENT, 10_000, False, 0)
    denied = family.answer_request(PARENT, first.id + 1, False, 0)
    assert (denied.state, denied.granted_minutes) == ("denied", 0)
    assert family.status(uid).granted_seconds == 1800
    assert [r.id for r in family.list_requests("pending")] == [first.id + 4, first.id + 3, first.id + 2]
    audit = [e for e in family.audit_log(10) if e.action == "answer_request"]
    assert {e.actor_uid for e in audit} == {PARENT} and len(audit) == 2
    with pytest.raises(InvalidArgument):
        family.list_requests("maybe")


def test_reports_reject_bad_periods(family, child_user):
    family.add_child(PARENT, child_user, "")
    with pytest.raises(InvalidArgument):
        family.usage_report(child_user, "2026-02-30", "2026-03-01")
    with pytest.raises(InvalidArgument):
        family.usage_report(child_user, "2026-03-02", "2026-03-01")
    report = family.usage_report(child_user, "2026-03-01", "2026-03-02")
    assert [d.day for d in report.days] == [dt.date(2026, 3, 1), dt.date(2026, 3, 2)]
    with pytest.raises(InvalidArgument):
        family.recent_events(child_user, "telepathy", 10)
    assert family.recent_events(child_user, "network", 10) == []
    history.append_audit(family.db, PARENT, "x", "y", "a" * 1000, "b")
    assert family.audit_log(1)[0].old_value == "a" * 1000


def test_routing_table_is_the_contract(family):
    """Every method of dbus/org.dots.Family1.xml is routed with its
    signatures and a polkit action; a missing route stops the daemon."""
    from dots_policyd.api import build_routes
    from dots_policyd.contract import load_contract
    from dots_policyd.dispatch import check_routes

    contract, routes = load_contract(), build_routes(family)
    check_routes(routes, contract)
    del routes["AnswerRequest"]
    with pytest.raises(ValueError, match="AnswerRequest is not routed"):
        check_routes(routes, contract)


def test_stored_events_become_typed_variants(family, child_user):
    from dbus_fast.signature import get_signature_tree

    from dots_common.records import ProcessEvent
    from dots_policyd.api import event_variants

    uid = uid_of(child_user)
    family.add_child(PARENT, child_user, "")
    record = ProcessEvent("exec", 4321, 1, uid, uid, "sol", "/usr/games/sol", 0, 5_000_000_000)
    history.store_batch(family.db, "process", "batch-1", [record], wall_offset_ns=1_700_000_000 * 10**9)
    (event,) = family.recent_events(child_user, "process", 10)
    variants = event_variants(event)
    get_signature_tree("a{sv}").verify([variants])
    assert {k: (v.signature, v.value) for k, v in variants.items()} == {
        "type": ("s", "exec"), "pid": ("u", 4321), "ppid": ("u", 1), "uid": ("u", uid),
        "gid": ("u", uid), "comm": ("s", "sol"), "path": ("s", "/usr/games/sol"),
        "exit_code": ("i", 0), "ts_ns": ("t", 5_000_000_000), "time": ("d", 1_700_000_005.0)}


def test_targeted_edits_cannot_lose_another_parents_change(family, events, child_user):
    """Two parents at once: each edit is read-modify-write on the server in
    one transaction, so both land; an edit of a stale copy is refused."""
    family.add_child(0, child_user, "")
    base, _ = family.get_versioned_policy(child_user)
    family.set_weekly_limit(1, child_user, 600)          # parent 1
    family.set_app_limit(2, child_user, "supertux2", 30)  # parent 2, at the same time
    family.set_allow_list(1, child_user, True, ["firefox"])
    family.clear_allowed_hours(2, child_user, ["weekend"])
    policy = json.loads(family.get_policy(child_user))
    assert policy["weekly_limit_minutes"] == 600
    assert policy["app_limits_minutes"] == {"supertux2": 30}
    assert policy["allow_list_only"] is True and policy["allowed_apps"] == ["firefox"]

    with pytest.raises(StalePolicy):  # parent 3 edited the copy read at `base`
        family.replace_policy(3, child_user, base, json.dumps({"daily_limit_minutes": 5}))
    assert json.loads(family.get_policy(child_user))["weekly_limit_minutes"] == 600
    version, document = family.get_versioned_policy(child_user)
    assert family.replace_policy(3, child_user, version, document) == version  # no-op: same version

    with pytest.raises(NotFound):
        family.set_app_limit(1, child_user, "tuxracer", -1)
    with pytest.raises(InvalidPolicy):  # allow-list on, with nothing left allowed
        family.disallow_app(1, child_user, "firefox")
    family.set_allow_list(1, child_user, False, [])
    family.disallow_app(1, child_user, "firefox")
    assert json.loads(family.get_policy(child_user))["allowed_apps"] == []


def test_a_bare_app_name_that_names_nothing_is_refused(family, child_user):
    family.add_child(0, child_user, "")
    with pytest.raises(InvalidArgument, match="no-such-game-anywhere"):
        family.block_app(1, child_user, "no-such-game-anywhere")
    assert json.loads(family.get_policy(child_user))["blocked_apps"] == []
    family.block_app(1, child_user, "sh")  # a program on this machine
    family.block_app(1, child_user, "/opt/not-installed-yet/game")  # a path: kept
    assert json.loads(family.get_policy(child_user))["blocked_apps"] == ["sh", "/opt/not-installed-yet/game"]
