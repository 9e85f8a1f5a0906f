"""A child's usage over a range of days, gathered from ``org.dots.Family1``
once, and given out as JSON, CSV, terminal tables (render) or a web page
(report_html). The limit shown per day is the CURRENT policy's (the daemon
does not tell which limit was in force on a past day)."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import time
from typing import Any

from .client import FamilyClient

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_EVENTS = 10000  # GetRecentEvents' largest limit
TOP = 10
SITES = 50  # sites by name and blocked names asked of the daemon


@dataclasses.dataclass
class DayRow:
    day: str
    weekday: str
    used_seconds: int
    granted_seconds: int
    limit_seconds: int | None  # None = no limit that day

    @property
    def allowed_seconds(self) -> int | None:
        return None if self.limit_seconds is None else self.limit_seconds + self.granted_seconds

    @property
    def over_limit(self) -> bool:
        allowed = self.allowed_seconds
        return allowed is not None and self.used_seconds > allowed


@dataclasses.dataclass
class Report:
    child: str
    uid: int
    start: str
    end: str
    generated: float
    days: list[DayRow]
    apps: list[dict[str, Any]]
    sites: list[dict[str, Any]]
    blocked: list[dict[str, Any]]  # time, app, pid
    requests: list[dict[str, Any]]
    limits: dict[str, Any]  # daily/weekend/weekly minutes of the current policy
    blocked_complete: bool = True  # False when more events exist than one call returns
    #: from the web filter's lookups: site, lookups, blocked (most looked up first)
    web_sites: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: blocked names: name, attempts, last (Unix seconds), most attempted first
    blocked_sites: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    # --- totals -----------------------------------------------------------------------

    @property
    def used_seconds(self) -> int:
        return sum(d.used_seconds for d in self.days)

    @property
    def granted_seconds(self) -> int:
        return sum(d.granted_seconds for d in self.days)

    @property
    def days_over_limit(self) -> int:
        return sum(1 for d in self.days if d.over_limit)

    @property
    def average_seconds(self) -> int:
        return self.used_seconds // len(self.days) if self.days else 0

    def blocked_by_app(self) -> list[tuple[str, int]]:
        counts: dict[str, int] = {}
        for b in self.blocked:
            counts[b["app"]] = counts.get(b["app"], 0) + 1
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def request_counts(self) -> dict[str, int]:
        counts = {"pending": 0, "approved": 0, "denied": 0}
        for r in self.requests:
            counts[r["state"]] = counts.get(r["state"], 0) + 1
        return counts

    def totals(self) -> dict[str, Any]:
        return {"used_seconds": self.used_seconds, "granted_seconds": self.granted_seconds,
                "average_seconds": self.average_seconds, "days_over_limit": self.days_over_limit,
                "blocked_attempts": len(self.blocked), "requests": self.request_counts()}

    @property
    def blocked_site_attempts(self) -> int:
        return sum(b["attempts"] for b in self.blocked_sites)

    # --- outputs ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "child": self.child, "uid": self.uid, "from": self.start, "to": self.end,
            "generated": int(self.generated), "limits": self.limits,
            "days": [{**dataclasses.asdict(d), "over_limit": d.over_limit} for d in self.days],
            "apps": self.apps, "sites": self.sites,
            "blocked": self.blocked, "blocked_complete": self.blocked_complete,
            "blocked_by_app": [{"app": a, "attempts": n} for a, n in self.blocked_by_app()],
            "requests": self.requests, "totals": self.totals(),
            "web_sites": self.web_sites, "blocked_sites": self.blocked_sites,
            "blocked_site_attempts": self.blocked_site_attempts,
        }

    def to_csv(self) -> str:
        """One table, one row per day, app, site and blocked program
        (column ``kind``); cells that do not apply are empty."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["kind", "name", "used_seconds", "granted_seconds", "limit_seconds",
                    "launches", "bytes_sent", "bytes_received", "connections", "attempts"])
        for d in self.days:
            w.writerow(["day", d.day, d.used_seconds, d.granted_seconds,
                        "" if d.limit_seconds is None else d.limit_seconds, "", "", "", "", ""])
        for a in self.apps:
            w.writerow(["app", a["app"], a["active_seconds"], "", "", a["launches"], "", "", "", ""])
        for s in self.sites:
            w.writerow(["site", s["site"], "", "", "", "", s["bytes_sent"], s["bytes_received"],
                        s["connections"], ""])
        for app, n in self.blocked_by_app():
            w.writerow(["blocked", app, "", "", "", "", "", "", "", n])
        for s in self.web_sites:  # lookups in "connections", blocked lookups in "attempts"
            w.writerow(["site_name", s["site"], "", "", "", "", "", "", s["lookups"], s["blocked"]])
        for b in self.blocked_sites:
            w.writerow(["blocked_site", b["name"], "", "", "", "", "", "", "", b["attempts"]])
        return out.getvalue()


def parse_day(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a date YYYY-MM-DD") from None


def _limits(policy: dict[str, Any]) -> dict[str, Any]:
    return {"daily_minutes": policy.get("daily_limit_minutes"),
            "weekend_minutes": policy.get("weekend_limit_minutes"),
            "weekly_minutes": policy.get("weekly_limit_minutes")}


def _limit_for(day: dt.date, limits: dict[str, Any]) -> int | None:
    minutes = limits["weekend_minutes"] if day.weekday() >= 5 else limits["daily_minutes"]
    return None if minutes is None else minutes * 60


def site_report(client: FamilyClient, child: str, start: dt.date,
                end: dt.date) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Sites by name and blocked names from the web filter (none from a
    daemon without it)."""
    from .client import CliError

    try:
        sites, blocked = client.call("GetSiteReport", "sssu", child, start.isoformat(),
                                     end.isoformat(), SITES)
    except CliError as e:
        if "UnknownMethod" in (e.dbus_name or "") or "UnknownMethod" in str(e):
            return [], []
        raise
    return ([{"site": s, "lookups": n, "blocked": b} for s, n, b in sites],
            [{"name": n, "attempts": c, "last": t} for n, c, t in blocked])


def gather(client: FamilyClient, child: str, start: dt.date | None, end: dt.date | None) -> Report:
    """Everything the report shows; ``start``/``end`` default to the last
    7 days ending today (the daemon's today)."""
    status = client.status(child)
    uid, name = status["uid"], status["name"]
    if end is None:
        end = dt.date.fromisoformat(status["day"])
    if start is None:
        start = end - dt.timedelta(days=6)
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    usage = client.usage(child, start.isoformat(), end.isoformat())
    limits = _limits(json.loads(client.get_policy(child)))
    days = []
    for row in usage.days:
        day = dt.date.fromisoformat(row["day"])
        days.append(DayRow(row["day"], WEEKDAYS[day.weekday()], row["used_seconds"],
                           row["granted_seconds"], _limit_for(day, limits)))

    first = dt.datetime.combine(start, dt.time()).timestamp()
    last = dt.datetime.combine(end + dt.timedelta(days=1), dt.time()).timestamp()
    events = client.recent_events(child, "process", MAX_EVENTS)
    blocked = [{"time": e["time"], "app": e.get("path") or e.get("comm", ""), "pid": e.get("pid", 0)}
               for e in events if e.get("type") == "exec_blocked" and first <= e["time"] < last]
    blocked.sort(key=lambda b: b["time"])
    requests = [r.to_json() for r in client.list_requests("")
                if r.uid == uid and first <= r.created < last]
    requests.sort(key=lambda r: r["created"])
    web_sites, blocked_sites = site_report(client, child, start, end)
    return Report(web_sites=web_sites, blocked_sites=blocked_sites, child=name, uid=uid, start=start.isoformat(), end=end.isoformat(),
                  generated=time.time(), days=days, apps=usage.apps, sites=usage.sites,
                  blocked=blocked, requests=requests, limits=limits,
                  blocked_complete=len(events) < MAX_EVENTS
                  or min(e["time"] for e in events) < first)
