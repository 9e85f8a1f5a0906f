"""Routes of the web-filtering methods of ``org.dots.Family1`` (merged
into api.build_routes): D-Bus arguments to :class:`WebFamily` and back.
Loading a list is slow for big lists: it runs in a worker thread."""

from __future__ import annotations

import asyncio
from typing import Any

from dots_common.names import ACTION_MANAGE, ACTION_VIEW

from .dispatch import Call, Route
from .family import Family
from .history import EPOCH
from .web_family import WebFamily


def web_routes(family: Family) -> dict[str, Route]:
    web = WebFamily(family)

    async def add_site_list(call: Call, child: str, category: str, data: bytes, url: str) -> list[Any]:
        return list(await asyncio.to_thread(web.add_site_list, call.uid, child, category, data, url))

    async def update_site_list(call: Call, category: str, data: bytes) -> list[Any]:
        return [await asyncio.to_thread(web.update_site_list, call.uid, category, data)]

    async def remove_site_list(call: Call, child: str, category: str) -> list[Any]:
        return [web.remove_site_list(call.uid, child, category)]

    async def list_site_lists(call: Call) -> list[Any]:
        return [[[i["name"], i["domains"], i["updated"], i["source"]] for i in web.site_lists()]]

    async def set_site_allow_list(call: Call, child: str, enabled: bool, add: list[str],
                                  remove: list[str]) -> list[Any]:
        return [web.set_site_allow_list(call.uid, child, enabled, add, remove)]

    async def set_internet_hours(call: Call, child: str, days: list[str], windows: list[str]) -> list[Any]:
        return [web.set_internet_hours(call.uid, child, days, windows)]

    async def clear_internet_hours(call: Call, child: str, days: list[str]) -> list[Any]:
        return [web.set_internet_hours(call.uid, child, days, None)]

    async def set_doh_endpoints(call: Call, entries: list[str]) -> list[Any]:
        return [web.set_doh_endpoints(call.uid, entries)]

    async def get_doh_endpoints(call: Call) -> list[Any]:
        return list(web.doh_endpoints())

    async def get_site_report(call: Call, child: str, start: str, end: str, limit: int) -> list[Any]:
        sites, blocked = web.site_report(child, start, end, limit)
        return [[[s.site, s.lookups, s.blocked] for s in sites],
                [[b.name, b.count, int((b.last - EPOCH).total_seconds())] for b in blocked]]

    M, V = ACTION_MANAGE, ACTION_VIEW
    return {
        "AddSiteList": Route(M, "ssays", "uu", add_site_list),
        "UpdateSiteList": Route(M, "say", "u", update_site_list),
        "RemoveSiteList": Route(M, "ss", "u", remove_site_list),
        "ListSiteLists": Route(V, "", "a(suts)", list_site_lists),
        "SetSiteAllowList": Route(M, "sbasas", "u", set_site_allow_list),
        "SetInternetHours": Route(M, "sasas", "u", set_internet_hours),
        "ClearInternetHours": Route(M, "sas", "u", clear_internet_hours),
        "SetDohEndpoints": Route(M, "as", "u", set_doh_endpoints),
        "GetDohEndpoints": Route(V, "", "asas", get_doh_endpoints),
        "GetSiteReport": Route(V, "sssu", "a(stt)a(stx)", get_site_report),
    }
