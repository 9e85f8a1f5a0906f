"""What the desktop apps show, decided without widgets (tested without a
display): durations in words, the week chart's bars, limits and the allowed
hours grid read from and written back to a policy, the app list's rows,
requests and audit entries as lines a parent reads.

Inputs are the plain values of ``org.dots.Family1`` replies (the policy as
its JSON document, GetStatus's dict, GetUsageReport's rows).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from typing import Any

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
HOURS = 24


def duration(seconds: int | None) -> str:
    """"1 h 05 min", "45 min", or "No limit" for None/negative."""
    if seconds is None or seconds < 0:
        return "No limit"
    hours, minutes = divmod(int(seconds) // 60, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


# --- today -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Today:
    """A child's day at a glance (from GetStatus)."""

    used: str
    left: str
    limit: str
    fraction: float  # used / (used + left), 0..1; 0 without a limit
    state: str  # one sentence
    pending: int

    @classmethod
    def from_status(cls, status: dict[str, Any]) -> Today:
        used = int(status.get("used_seconds", 0))
        left = int(status.get("left_seconds", -1))
        limit = int(status.get("limit_seconds", -1))
        fraction = 0.0 if left < 0 else min(1.0, used / max(1, used + left))
        if status.get("blocked"):
            reason = {"daily": "today's time is used up", "weekly": "this week's time is used up",
                      "hours": "it is outside the allowed hours"}.get(status.get("blocked_reason", ""),
                                                                      "a limit is reached")
            state = f"Locked: {reason}"
        elif left < 0:
            state = "No time limit today"
        else:
            state = f"{duration(left)} left today"
        return cls(duration(used), "No limit" if left < 0 else duration(left),
                   duration(limit), fraction, state, int(status.get("pending_requests", 0)))


@dataclasses.dataclass(frozen=True)
class Bar:
    day: str  # "Mon"
    date: str  # ISO
    hours: float
    label: str  # what a screen reader says


def week_bars(days: list[list[Any]] | list[tuple], today: dt.date) -> list[Bar]:
    """Monday..Sunday of today's week from GetUsageReport's days
    (day, used_seconds, granted_seconds); missing days are zero."""
    used = {row[0]: int(row[1]) for row in days}
    monday = today - dt.timedelta(days=today.weekday())
    bars = []
    for i in range(7):
        day = monday + dt.timedelta(days=i)
        seconds = used.get(day.isoformat(), 0)
        bars.append(Bar(DAY_NAMES[i][:3], day.isoformat(), seconds / 3600,
                        f"{DAY_NAMES[i]}: {duration(seconds)}"))
    return bars


def week_range(today: dt.date) -> tuple[str, str]:
    monday = today - dt.timedelta(days=today.weekday())
    return monday.isoformat(), (monday + dt.timedelta(days=6)).isoformat()


# --- limits ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Limits:
    """Minutes, or None for no limit."""

    weekday: int | None
    weekend: int | None
    weekly: int | None

    @classmethod
    def from_policy(cls, policy: dict[str, Any]) -> Limits:
        return cls(policy.get("daily_limit_minutes"), policy.get("weekend_limit_minutes"),
                   policy.get("weekly_limit_minutes"))

    @staticmethod
    def wire(minutes: int | None) -> int:
        """The contract's value: -1 = no limit."""
        return -1 if minutes is None else int(minutes)


def parse_policy(document: str) -> dict[str, Any]:
    value = json.loads(document)
    if not isinstance(value, dict):
        raise ValueError("the policy is not a JSON object")
    return value


# --- allowed hours: a week of 24 hour cells ---------------------------------------------------

def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def hours_grid(policy: dict[str, Any]) -> dict[str, list[bool]]:
    """Per day, 24 cells: is (any part of) that hour allowed? A day the
    policy does not restrict is all allowed."""
    grid = {}
    restricted = policy.get("allowed_hours") or {}
    for day in WEEKDAYS:
        if day not in restricted:
            grid[day] = [True] * HOURS
            continue
        cells = [False] * HOURS
        for window in restricted[day]:
            start, end = (_minutes(t) for t in window.split("-"))
            for hour in range(HOURS):
                if start < (hour + 1) * 60 and end > hour * 60:
                    cells[hour] = True
        grid[day] = cells
    return grid


def windows_of(cells: list[bool]) -> list[str] | None:
    """The windows of one day's cells; None when the whole day is allowed
    (no restriction: ClearAllowedHours)."""
    if all(cells):
        return None
    windows, start = [], None
    for hour, allowed in enumerate([*cells, False]):
        if allowed and start is None:
            start = hour
        elif not allowed and start is not None:
            windows.append(f"{start:02d}:00-{hour:02d}:00")
            start = None
    return windows


def exact_day(policy: dict[str, Any], day: str) -> bool:
    """Whether the grid shows the day's windows exactly (whole hours): if
    not, saving the grid unchanged would round them, so only changed days
    are saved."""
    windows = (policy.get("allowed_hours") or {}).get(day)
    return windows is None or all(t.endswith(":00") or t == "24:00"
                                  for w in windows for t in w.split("-"))


def changed_days(before: dict[str, list[bool]], after: dict[str, list[bool]]) -> list[str]:
    return [day for day in WEEKDAYS if before[day] != after[day]]


# --- apps --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class AppRow:
    app: str  # the policy's name for it (path or bare name)
    title: str  # what a parent reads
    blocked: bool
    allowed: bool
    limit: int | None  # minutes per day

    @property
    def subtitle(self) -> str:
        parts = []
        if self.blocked:
            parts.append("Blocked")
        if self.allowed:
            parts.append("Allowed")
        if self.limit is not None:
            parts.append(f"{duration(self.limit * 60)} a day")
        return ", ".join(parts) or "No rule"


def app_rows(policy: dict[str, Any], titles: dict[str, str] | None = None) -> list[AppRow]:
    """Every program the policy names, with its rules, by title."""
    titles = titles or {}
    blocked = set(policy.get("blocked_apps") or [])
    allowed = set(policy.get("allowed_apps") or [])
    limits = dict(policy.get("app_limits_minutes") or {})
    rows = [AppRow(app, titles.get(app) or os.path.basename(app) or app, app in blocked,
                   app in allowed, limits.get(app))
            for app in blocked | allowed | set(limits)]
    return sorted(rows, key=lambda r: (r.title.lower(), r.app))


# --- requests and the audit log -------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RequestRow:
    id: int
    child: str
    title: str
    subtitle: str
    pending: bool


def request_row(row: list[Any] | tuple) -> RequestRow:
    """From ListRequests' (id, uid, name, minutes, reason, state, granted,
    answered_by, created, answered)."""
    rid, _uid, name, minutes, reason, state, granted, _by, created, _answered = row
    when = dt.datetime.fromtimestamp(created).strftime("%a %H:%M")
    title = f"{name} asks for {duration(minutes * 60)}"
    if state == "approved":
        subtitle = f"Approved: {duration(granted * 60)} given. “{reason}” ({when})"
    elif state == "denied":
        subtitle = f"Denied. “{reason}” ({when})"
    else:
        subtitle = f"“{reason}” ({when})"
    return RequestRow(rid, name, title, subtitle, state == "pending")


def _short(value: Any, most: int = 80) -> str:
    text = "—" if value is None else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= most else text[:most - 1] + "…"


def _changes(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[str]:
    """Fields that differ; one level into objects (allowed_hours.mon)."""
    out = []
    for k in sorted(set(before) | set(after)):
        a, b = before.get(k), after.get(k)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict) and not prefix:
            out += _changes(a, b, f"{k}.")
        else:
            out.append(f"{prefix}{k}: {_short(a)} → {_short(b)}")
    return out


def change_text(old: str, new: str) -> str:
    """What an audit entry changed: of two JSON objects (whole policies),
    only the fields that differ; else old → new."""
    try:
        before, after = json.loads(old or "{}"), json.loads(new or "{}")
    except ValueError:
        before = after = None
    if isinstance(before, dict) and isinstance(after, dict):
        return "; ".join(_changes(before, after))
    return f"{old or '—'} → {new or '—'}" if (old or new) else ""


def audit_line(row: list[Any] | tuple, users: dict[int, str] | None = None) -> tuple[str, str]:
    """(title, subtitle) of a GetAuditLog entry."""
    _id, when, actor, action, target, old, new = row
    users = users or {}
    who = users.get(actor, f"uid {actor}")
    if target.startswith("uid:") and target[4:].isdigit() and int(target[4:]) in users:
        target = users[int(target[4:])]
    change = change_text(old, new)
    stamp = dt.datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M")
    return f"{action} {target}".strip(), f"{stamp} by {who}" + (f": {change}" if change else "")
