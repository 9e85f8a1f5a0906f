"""The daemon's two contact points with household mode: build the agent
from the household file, and hang its status and machine list on the
Family1 service (GetDaemonStatus, ListMachines)."""

from __future__ import annotations

import peewee
from dbus_fast import Variant

from ..family import Family
from .agent import HouseholdAgent
from .identity import load_config


def household_agent(path: str | None, db: peewee.Database, family: Family) -> HouseholdAgent | None:
    """None without a household file; HouseholdConfigError (a ValueError)
    when the file is unsafe or broken: the daemon refuses to start."""
    if not path:
        return None
    return HouseholdAgent(load_config(path), db, family, tz=family.tz)


def attach_household(service, agent: HouseholdAgent) -> None:
    base = service.daemon_status

    async def daemon_status() -> dict[str, Variant]:
        status = dict(await base()) if base else {}
        status.update(await agent.daemon_status())
        return status

    service.daemon_status = daemon_status
    service.list_machines = agent.list_machines
