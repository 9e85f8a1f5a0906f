"""The daemon's contact points with household mode: build the agent from
the household file, and hang its status, its machine list and the
household's time requests on the Family1 service (GetDaemonStatus,
ListMachines, ListHouseholdRequests, AnswerHouseholdRequest). Only the
D-Bus shapes live here; the work is the agent's."""

from __future__ import annotations

import calendar
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any

import peewee
from dbus_fast import Variant

from ..family import Family
from .agent import HouseholdAgent
from .identity import HouseholdConfig, load_config


def _unix(naive_utc: dt.datetime | None) -> int:
    return 0 if naive_utc is None else calendar.timegm(naive_utc.timetuple())


def household_config(path: str | None) -> HouseholdConfig | None:
    """None without a household file; HouseholdConfigError (a ValueError)
    when the file is unsafe or broken: the daemon refuses to start (read
    first, before anything else is touched)."""
    return load_config(path) if path else None


def household_agent(config: HouseholdConfig | None, db: peewee.Database,
                    family: Family) -> HouseholdAgent | None:
    if config is None:
        return None
    agent = HouseholdAgent(config, db, family, tz=family.tz)
    family.usage = agent.usage  # GetStatus: the household's time
    return agent


def status_variants(agent: HouseholdAgent) -> dict[str, Variant]:
    """Keys added to GetDaemonStatus (dotsctl doctor)."""
    return {
        "household": Variant("b", True),
        "household_machine": Variant("s", agent.config.machine_name),
        "household_online": Variant("b", agent.online),
        "household_last_contact": Variant("x", int(agent.last_contact)),
        "household_pending_intervals": Variant("u", agent.journal.count_pending()),
        "household_error": Variant("s", agent.last_error[:500]),
    }


def machine_variants(agent: HouseholdAgent) -> list[dict[str, Variant]]:
    """The household's machines as last seen (also while offline)."""
    now = time.time()
    out = []
    for m in agent.machines:
        contact = _unix(m["last_contact"])
        fresh = contact and now - contact < max(3 * agent.config.sync_seconds, 60)
        out.append({
            "machine_id": Variant("s", m["machine_id"]),
            "name": Variant("s", m["name"]),
            "this_machine": Variant("b", m["machine_id"] == agent.config.machine_id),
            "last_contact": Variant("x", contact),
            "state": Variant("s", "removed" if m["removed"] else "online" if fresh else "offline"),
            "may_edit_policy": Variant("b", bool(m["may_edit_policy"])),
            "health": Variant("s", m["health"] or "{}"),
        })
    return out


def request_variants(rows: list[dict[str, Any]]) -> list[dict[str, Variant]]:
    return [{
        "machine_id": Variant("s", r["machine_id"]), "machine": Variant("s", r["machine"]),
        "id": Variant("u", r["id"]), "member": Variant("s", r["member"]),
        "minutes": Variant("u", r["minutes"]), "reason": Variant("s", r["reason"]),
        "created": Variant("x", _unix(r["created"])),
        "state": Variant("s", "pending" if r["approved"] is None else
                         "approved" if r["approved"] else "denied"),
        "granted_minutes": Variant("u", r["granted_minutes"] or 0),
        "answered_by": Variant("s", f"{r['answered_by']}@{r['answered_on']}" if r["answered_by"] else ""),
    } for r in rows]


def audit_variants(rows: list[dict[str, Any]]) -> list[dict[str, Variant]]:
    return [{
        "id": Variant("t", r["id"]), "time": Variant("x", _unix(r["time"])),
        "machine": Variant("s", r["machine"]), "machine_id": Variant("s", r["machine_id"]),
        "actor_uid": Variant("x", r["actor_uid"]), "actor": Variant("s", r["actor_name"]),
        "action": Variant("s", r["action"]), "target": Variant("s", r["target"]),
        "old_value": Variant("s", r["old_value"] or ""), "new_value": Variant("s", r["new_value"] or ""),
    } for r in rows]


class HouseholdCalls:
    """What the Family1 routes call in household mode."""

    def __init__(self, agent: HouseholdAgent) -> None:
        self.agent = agent

    async def machines(self) -> list[dict[str, Variant]]:
        return machine_variants(self.agent)

    async def requests(self) -> list[dict[str, Variant]]:
        return request_variants(await self.agent.household_requests())

    async def audit(self, limit: int) -> list[dict[str, Variant]]:
        return audit_variants(await self.agent.household_audit(limit))

    async def answer(self, actor: int, machine_id: str, request_id: int, approve: bool,
                     minutes: int) -> int:
        return await self.agent.answer_request(actor, machine_id, request_id, approve, minutes)


def with_household_status(base: Callable[[], Awaitable[dict[str, Variant]]],
                          agent: HouseholdAgent) -> Callable[[], Awaitable[dict[str, Variant]]]:
    """GetDaemonStatus with the household's keys added."""
    async def daemon_status() -> dict[str, Variant]:
        status = dict(await base())
        status.update(status_variants(agent))
        return status

    return daemon_status
