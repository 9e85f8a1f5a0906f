"""The routing table of ``org.dots.Family1``: member -> polkit action,
signatures, and a small adapter from D-Bus arguments to the core
(:class:`dots_policyd.family.Family`) and from its results to D-Bus types.

Signatures must equal the contract's (the dispatcher refuses to start
otherwise). ``request`` methods act for the caller's own uid only (the uid
the bus gave the dispatcher); asking about anyone else needs ``view`` too.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from dbus_fast import Variant
from dbus_fast.signature import get_signature_tree

from dots_common.names import ACTION_MANAGE, ACTION_REQUEST, ACTION_VIEW

from .dispatch import Call, Route
from .errors import InvalidArgument, NotAuthorized, NotFound, UnknownChild
from .family import ChildStatus, Family, RequestInfo
from .history import EPOCH, StoredEvent


def unix_seconds(naive_utc: dt.datetime | None) -> int:
    """Unix time of a naive UTC datetime; 0 for None."""
    return 0 if naive_utc is None else int((naive_utc - EPOCH).total_seconds())


def _aware_seconds(time: dt.datetime | None) -> int:
    return 0 if time is None else int(time.timestamp())


def _or_minus_one(value: int | None) -> int:
    return -1 if value is None else value


def status_variants(s: ChildStatus) -> dict[str, Variant]:
    return {
        "uid": Variant("u", s.uid),
        "name": Variant("s", s.name),
        "day": Variant("s", s.day.isoformat()),
        "limit_seconds": Variant("x", _or_minus_one(s.limit_seconds)),
        "used_seconds": Variant("t", s.used_seconds),
        "granted_seconds": Variant("t", s.granted_seconds),
        "weekly_limit_seconds": Variant("x", _or_minus_one(s.weekly_limit_seconds)),
        "weekly_used_seconds": Variant("t", s.weekly_used_seconds),
        "left_seconds": Variant("x", _or_minus_one(s.left_seconds)),
        "in_window": Variant("b", s.in_window),
        "window_start": Variant("x", _aware_seconds(s.window_start)),
        "window_end": Variant("x", _aware_seconds(s.window_end)),
        "blocked": Variant("b", s.blocked),
        "blocked_reason": Variant("s", s.blocked_reason),
        "pending_requests": Variant("u", s.pending_requests),
    }


def event_variants(event: StoredEvent) -> dict[str, Variant]:
    """A stored record's fields with their D-Bus types (as in the
    collector's signals, file events with their count and last_ts_ns),
    plus "time" as Unix seconds."""
    record = event.record
    types = [t.signature for t in get_signature_tree(record.DBUS_SIGNATURE).types[0].children]
    fields = dataclasses.fields(record)
    out = {f.name: Variant(code, getattr(record, f.name)) for f, code in zip(fields, types)}
    out["time"] = Variant("d", (event.time - EPOCH).total_seconds())
    if event.last_ts_ns is not None:  # a stored group of identical events (file events)
        out["count"] = Variant("u", event.count)
        out["last_ts_ns"] = Variant("t", event.last_ts_ns)
    return out


def request_struct(r: RequestInfo) -> list[Any]:
    return [r.id, r.uid, r.name, r.minutes, r.reason, r.state, r.granted_minutes or 0,
            r.answered_by or 0, unix_seconds(r.created), unix_seconds(r.answered)]


def build_routes(family: Family,
                 daemon_status: Callable[[], Awaitable[dict[str, Variant]]] | None = None,
                 household: Callable[[], Any] | None = None,
                 ) -> dict[str, Route]:
    """Every method of the contract, bound to ``family``."""

    async def list_children(call: Call) -> list[Any]:
        return [[[c.uid, c.name] for c in family.list_children()]]

    async def list_presets(call: Call) -> list[Any]:
        return [[list(p) for p in family.presets()]]

    async def add_child(call: Call, user: str, preset: str) -> list[Any]:
        return [family.add_child(call.uid, user, preset).uid]

    async def remove_child(call: Call, child: str) -> list[Any]:
        family.remove_child(call.uid, child)
        return []

    async def get_policy(call: Call, child: str) -> list[Any]:
        return [family.get_policy(child)]

    async def set_policy(call: Call, child: str, document: str) -> list[Any]:
        return [family.set_policy(call.uid, child, document)]

    async def get_versioned_policy(call: Call, child: str) -> list[Any]:
        return list(family.get_versioned_policy(child))

    async def replace_policy(call: Call, child: str, version: int, document: str) -> list[Any]:
        return [family.replace_policy(call.uid, child, version, document)]

    async def set_weekly_limit(call: Call, child: str, minutes: int) -> list[Any]:
        return [family.set_weekly_limit(call.uid, child, minutes)]

    async def set_app_limit(call: Call, child: str, app: str, minutes: int) -> list[Any]:
        return [family.set_app_limit(call.uid, child, app, minutes)]

    async def set_allow_list(call: Call, child: str, enabled: bool, apps: list[str]) -> list[Any]:
        return [family.set_allow_list(call.uid, child, enabled, apps)]

    async def clear_allowed_hours(call: Call, child: str, days: list[str]) -> list[Any]:
        return [family.clear_allowed_hours(call.uid, child, days)]

    async def set_daily_limit(call: Call, child: str, weekday: int, weekend: int) -> list[Any]:
        return [family.set_daily_limit(call.uid, child, weekday, weekend)]

    async def set_allowed_hours(call: Call, child: str, days: list[str], windows: list[str]) -> list[Any]:
        return [family.set_allowed_hours(call.uid, child, days, windows)]

    def editor(method: Any) -> Any:
        async def edit(call: Call, child: str, item: str) -> list[Any]:
            return [method(call.uid, child, item)]
        return edit

    async def get_status(call: Call, child: str) -> list[Any]:
        # Resolve the name without saying whether it is a child, so that a
        # child learns nothing about other users; only then authorize.
        try:
            uid: int | None = call.uid if child == "" else family.lookup_uid(child)
        except UnknownChild:
            uid = None
        if uid != call.uid and not await call.holds(ACTION_VIEW):
            raise NotAuthorized("a child may ask only about itself "
                                f"(about others: polkit authorization {ACTION_VIEW})")
        if uid is None:
            raise UnknownChild(f"{child!r} is not a registered child")
        return [status_variants(family.status(uid))]

    async def get_usage_report(call: Call, child: str, start: str, end: str) -> list[Any]:
        report = family.usage_report(child, start, end)
        return [[[a.app, a.active_seconds, a.launches] for a in report.apps],
                [[s.site, s.bytes_sent, s.bytes_received, s.connections] for s in report.sites],
                [[d.day.isoformat(), d.seconds_used, d.seconds_granted] for d in report.days]]

    async def get_recent_events(call: Call, child: str, kind: str, limit: int) -> list[Any]:
        return [[event_variants(e) for e in family.recent_events(child, kind, limit)]]

    async def request_time(call: Call, minutes: int, reason: str) -> list[Any]:
        return [family.request_time(call.uid, minutes, reason).id]

    async def list_requests(call: Call, state: str) -> list[Any]:
        return [[request_struct(r) for r in family.list_requests(state)]]

    async def answer_request(call: Call, request_id: int, approve: bool, minutes: int) -> list[Any]:
        family.answer_request(call.uid, request_id, approve, minutes)
        return []

    async def get_audit_log(call: Call, limit: int) -> list[Any]:
        return [[[e.id, unix_seconds(e.time), e.actor_uid, e.action, e.target,
                  e.old_value or "", e.new_value or ""] for e in family.audit_log(limit)]]

    async def get_policy_schema(call: Call) -> list[Any]:
        return [family.policy_schema()]

    async def get_daemon_status(call: Call) -> list[Any]:
        return [await daemon_status() if daemon_status else {}]

    def _household() -> Any:
        """The household calls (dots_policyd.household.service), or None."""
        return household() if household else None

    async def list_machines(call: Call) -> list[Any]:
        calls = _household()
        return [await calls.machines() if calls else []]

    async def list_household_requests(call: Call) -> list[Any]:
        calls = _household()
        return [await calls.requests() if calls else []]

    async def get_household_audit(call: Call, limit: int) -> list[Any]:
        if not 1 <= limit <= 10000:
            raise InvalidArgument("limit must be 1 to 10000")
        calls = _household()
        return [await calls.audit(limit) if calls else []]

    async def answer_household_request(call: Call, machine_id: str, request_id: int, approve: bool,
                                       minutes: int) -> list[Any]:
        calls = _household()
        if calls is None:
            raise NotFound("this machine is not in a household")
        return [await calls.answer(call.uid, machine_id, request_id, approve, minutes)]

    from .web_api import web_routes  # the web filter's methods (issue 15)

    M, V, R = ACTION_MANAGE, ACTION_VIEW, ACTION_REQUEST
    return web_routes(family) | {
        "ListChildren": Route(V, "", "a(us)", list_children),
        "ListPresets": Route(V, "", "a(ss)", list_presets),
        "AddChild": Route(M, "ss", "u", add_child),
        "RemoveChild": Route(M, "s", "", remove_child),
        "GetPolicy": Route(V, "s", "s", get_policy),
        "SetPolicy": Route(M, "ss", "u", set_policy),
        "GetVersionedPolicy": Route(V, "s", "us", get_versioned_policy),
        "ReplacePolicy": Route(M, "sus", "u", replace_policy),
        "SetDailyLimit": Route(M, "sii", "u", set_daily_limit),
        "SetWeeklyLimit": Route(M, "si", "u", set_weekly_limit),
        "SetAppLimit": Route(M, "ssi", "u", set_app_limit),
        "SetAllowList": Route(M, "sbas", "u", set_allow_list),
        "DisallowApp": Route(M, "ss", "u", editor(family.disallow_app)),
        "ClearAllowedHours": Route(M, "sas", "u", clear_allowed_hours),
        "SetAllowedHours": Route(M, "sasas", "u", set_allowed_hours),
        "BlockApp": Route(M, "ss", "u", editor(family.block_app)),
        "UnblockApp": Route(M, "ss", "u", editor(family.unblock_app)),
        "BlockSite": Route(M, "ss", "u", editor(family.block_site)),
        "UnblockSite": Route(M, "ss", "u", editor(family.unblock_site)),
        "GetStatus": Route(R, "s", "a{sv}", get_status),
        "GetUsageReport": Route(V, "sss", "a(stt)a(sttt)a(stt)", get_usage_report),
        "GetRecentEvents": Route(V, "ssu", "aa{sv}", get_recent_events),
        "RequestTime": Route(R, "us", "u", request_time),
        "ListRequests": Route(V, "s", "a(uusussuuxx)", list_requests),
        "AnswerRequest": Route(M, "ubu", "", answer_request),
        "GetAuditLog": Route(V, "u", "a(txussss)", get_audit_log),
        "GetPolicySchema": Route(V, "", "s", get_policy_schema),
        "GetDaemonStatus": Route(V, "", "a{sv}", get_daemon_status),
        "ListMachines": Route(V, "", "aa{sv}", list_machines),
        "ListHouseholdRequests": Route(V, "", "aa{sv}", list_household_requests),
        "AnswerHouseholdRequest": Route(M, "subu", "u", answer_household_request),
        "GetHouseholdAudit": Route(V, "u", "aa{sv}", get_household_audit),
    }
