"""How dotsctl shows things in a terminal: durations and sizes in words,
rich tables, and bar charts made of block characters. No bus here."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console(highlight=False)
BAR_WIDTH = 30
_EIGHTHS = " ▏▎▍▌▋▊▉"


def print_json(data: Any) -> None:
    """Machine-readable output: JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n")
    sys.stdout.flush()


# --- words -----------------------------------------------------------------------------

def duration(seconds: int | float | None, unlimited: str = "no limit") -> str:
    """``5400`` -> ``"1 h 30 min"``; ``None`` or negative -> ``unlimited``."""
    if seconds is None or seconds < 0:
        return unlimited
    minutes = int(round(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h" if rest == 0 else f"{hours} h {rest:02d} min"


def minutes_text(minutes: int | None) -> str:
    return "no limit" if minutes is None else duration(minutes * 60)


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover


def clock(unix_seconds: int, today: dt.date | None = None) -> str:
    """Local time of day, with the weekday when it is not today."""
    when = dt.datetime.fromtimestamp(unix_seconds)
    if today is not None and when.date() != today:
        return when.strftime("%a %H:%M")
    return when.strftime("%H:%M")


def timestamp(unix_seconds: float) -> str:
    if not unix_seconds:
        return "-"
    return dt.datetime.fromtimestamp(unix_seconds).strftime("%Y-%m-%d %H:%M:%S")


# --- bars ------------------------------------------------------------------------------

def bar(value: float, maximum: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of block characters, ``value`` out of ``maximum``."""
    if maximum <= 0 or value <= 0:
        return ""
    eighths = int(round(min(value, maximum) / maximum * width * 8))
    full, part = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[part] if part else "")).rstrip()


def limit_bar(used: float, limit: float | None, scale: float, width: int = BAR_WIDTH) -> Text:
    """Used time as a bar on a common ``scale``; the part beyond the limit
    in red and a ``│`` where the limit is."""
    text = Text()
    if scale <= 0:
        return text
    cells = bar(used, scale, width)
    if limit is None or limit < 0:
        text.append(cells, style="green")
        return text
    limit_cell = min(width, int(round(limit / scale * width)))
    under, over = cells[:limit_cell], cells[limit_cell:]
    text.append(under, style="green" if used <= limit else "yellow")
    if len(under) < limit_cell:
        text.append(" " * (limit_cell - len(under)))
    text.append("│", style="bold")
    text.append(over, style="red")
    return text


# --- tables ----------------------------------------------------------------------------

def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
          right: Iterable[int] = ()) -> Table:
    t = Table(title=title, title_justify="left", title_style="bold", show_edge=False,
              pad_edge=False, box=None, header_style="bold")
    right = set(right)
    for i, name in enumerate(columns):
        t.add_column(name, justify="right" if i in right else "left", overflow="fold")
    for row in rows:
        t.add_row(*(cell if isinstance(cell, Text) else Text(str(cell)) for cell in row))
    return t


def key_values(pairs: Iterable[tuple[str, Any]]) -> Table:
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    for key, value in pairs:
        t.add_row(key, value if isinstance(value, Text) else Text(str(value)))
    return t


# --- domain views --------------------------------------------------------------------

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def status_view(s: dict[str, Any], you: bool) -> list[Text]:
    """A child's status in sentences (``you``: the child reads it)."""
    today = dt.date.fromisoformat(s["day"]) if s.get("day") else None
    who = "You have" if you else f"{s['name']} has"
    lines = []
    left = s["left_seconds"]
    head = Text()
    if s["blocked"]:
        reason = {"daily": "today's screen time is used up",
                  "weekly": "this week's screen time is used up",
                  "hours": "it is outside the allowed hours"}.get(s["blocked_reason"], s["blocked_reason"])
        head.append(("Time is up for you" if you else f"Time is up for {s['name']}") + f": {reason}.",
                    style="bold red")
    elif left < 0:
        head.append(f"{who} no screen-time limit today.", style="bold green")
    else:
        head.append(f"{who} ", style="bold")
        head.append(duration(left), style="bold green" if left > 15 * 60 else "bold yellow")
        head.append(" left today.", style="bold")
    lines.append(head)
    limit = s["limit_seconds"]
    used = f"Used {duration(s['used_seconds'])}"
    if limit >= 0:
        used += f" of {duration(limit)}"
    if s["granted_seconds"]:
        used += f", plus {duration(s['granted_seconds'])} extra time granted"
    lines.append(Text(used + " today."))
    if s["weekly_limit_seconds"] >= 0:
        lines.append(Text(f"This week: {duration(s['weekly_used_seconds'])} of "
                          f"{duration(s['weekly_limit_seconds'])}."))
    start, end = s["window_start"], s["window_end"]
    if s["in_window"] and start and end:
        if end - start >= 24 * 3600 - 60 and clock(start) == "00:00":
            lines.append(Text("No allowed-hours restriction today."))
        else:
            lines.append(Text(f"Allowed now, until {clock(end, today)}."))
    elif start and end:
        lines.append(Text(f"Not allowed now; next allowed {clock(start, today)}–{clock(end, today)}."))
    elif not s["in_window"]:
        lines.append(Text("No allowed hours in the next 7 days."))
    pending = s["pending_requests"]
    if pending:
        lines.append(Text(f"{pending} request{'s' if pending != 1 else ''} for more time "
                          "waiting for a parent."))
    return lines


def status_table(statuses: list[dict[str, Any]]) -> Table:
    rows = []
    for s in statuses:
        limit = s["limit_seconds"]
        allowed = None if limit < 0 else limit + s["granted_seconds"]
        scale = max(allowed or 0, s["used_seconds"], 1)
        state = {"daily": "time up (daily)", "weekly": "time up (weekly)",
                 "hours": "outside hours"}.get(s["blocked_reason"], "allowed")
        granted = f" +{duration(s['granted_seconds'])}" if s["granted_seconds"] else ""
        rows.append([s["name"], duration(s["left_seconds"], "unlimited"),
                     duration(s["used_seconds"]), duration(limit) + granted,
                     limit_bar(s["used_seconds"], allowed, scale, 20), state,
                     str(s["pending_requests"])])
    return table(None, ["CHILD", "LEFT", "USED", "LIMIT", "", "NOW", "REQUESTS"], rows,
                 right=(1, 2, 3, 6))


def policy_view(p: dict[str, Any]) -> Table:
    hours = p.get("allowed_hours") or {}
    if hours:
        hour_text = "\n".join(f"{d}: {', '.join(w) if w else 'no use'}" for d, w in hours.items())
        missing = [d for d in DAY_NAMES if d not in hours]
        if missing:
            hour_text += f"\n{', '.join(missing)}: any time"
    else:
        hour_text = "any time"
    apps = p.get("app_limits_minutes") or {}
    pairs = [
        ("school days (Mon–Fri)", minutes_text(p.get("daily_limit_minutes"))),
        ("weekend (Sat, Sun)", minutes_text(p.get("weekend_limit_minutes"))),
        ("per week", minutes_text(p.get("weekly_limit_minutes"))),
        ("allowed hours", hour_text),
        ("blocked apps", ", ".join(p.get("blocked_apps") or []) or "none"),
        ("only allowed apps", ("yes: " + ", ".join(p.get("allowed_apps") or []))
         if p.get("allow_list_only") else
         ("no" + (f" (list kept: {', '.join(p['allowed_apps'])})" if p.get("allowed_apps") else ""))),
        ("app limits", ", ".join(f"{a} {minutes_text(m)}" for a, m in apps.items()) or "none"),
        ("blocked sites", ", ".join(p.get("blocked_sites") or []) or "none"),
        ("warnings", ", ".join(f"{m} min" for m in p.get("warning_minutes") or []) + " before the end"
         if p.get("warning_minutes") else "none"),
        ("at the end", {"lock": "lock the screen", "terminate": "log out"}.get(
            p.get("end_action", ""), p.get("end_action", ""))),
        ("file alerts", ", ".join(p.get("file_alerts") or []) or "none"),
    ]
    return key_values(pairs)


def event_line(e: dict[str, Any]) -> str:
    """One raw event as a line: time, then its telling fields."""
    skip = {"time", "uid", "ts_ns", "gid"}
    when = dt.datetime.fromtimestamp(e.get("time", 0)).strftime("%H:%M:%S")
    fields = " ".join(f"{k}={v}" for k, v in e.items()
                      if k not in skip and v not in ("", None) and k != "type")
    kind = e.get("type", "")
    return f"{when} {kind:<12} {fields}" if kind else f"{when} {fields}"


EVENT_COLUMNS = {
    "process": ["type", "pid", "ppid", "comm", "path", "exit_code"],
    "filesystem": ["type", "pid", "comm", "path", "result", "bytes", "count"],
    "network": ["type", "pid", "comm", "daddr", "dport", "bytes_sent", "bytes_received"],
    "memory": ["pid", "comm", "rss_bytes", "bytes_alloc", "bytes_freed"],
    "disk": ["pid", "comm", "rw", "bytes", "latency_ns"],
}


def events_table(kind: str, events: list[dict[str, Any]]) -> Table:
    columns = EVENT_COLUMNS.get(kind) or sorted({k for e in events for k in e} - {"time", "uid"})
    rows = [[timestamp(e.get("time", 0)), *(str(e.get(c, "")) for c in columns)] for e in events]
    return table(None, ["TIME", *(c.upper() for c in columns)], rows)


def say(text: str) -> None:
    """A line for the person at the terminal, printed as is (no rich markup)."""
    console.print(text, markup=False, highlight=False)


def print_report(r: Any) -> None:
    """A report (dots_cli.report.Report) as tables and bar charts."""
    console.print(f"[bold]Screen time of {r.child}[/bold], {r.start} to {r.end}")
    scale = max([d.used_seconds for d in r.days]
                + [d.allowed_seconds for d in r.days if d.allowed_seconds] + [60])
    rows = []
    for d in r.days:
        rows.append([f"{d.weekday.capitalize()} {d.day}", duration(d.used_seconds),
                     duration(d.limit_seconds) + (f" +{duration(d.granted_seconds)}"
                                                  if d.granted_seconds else ""),
                     limit_bar(d.used_seconds, d.allowed_seconds, scale)])
    console.print(table(None, ["DAY", "USED", "LIMIT", "(│ = limit)"], rows, right=(1, 2)))
    totals = r.totals()
    req = totals["requests"]
    say(f"Total {duration(r.used_seconds)}, {duration(r.average_seconds)} a day on average; "
         f"over the limit on {r.days_over_limit} day(s); extra time granted "
         f"{duration(r.granted_seconds)}.")
    if r.apps:
        top = max(a["active_seconds"] for a in r.apps) or 1
        console.print()
        console.print(table("Top apps", ["APP", "TIME", "LAUNCHES", ""],
                                   [[a["app"], duration(a["active_seconds"]), a["launches"],
                                     bar(a["active_seconds"], top, 20)]
                                    for a in r.apps[:10]], right=(1, 2)))
    if r.sites:
        top = max(s["bytes_sent"] + s["bytes_received"] for s in r.sites) or 1
        console.print()
        console.print(table("Top sites", ["SITE", "SENT", "RECEIVED", "CONNECTIONS", ""],
                                   [[s["site"], size(s["bytes_sent"]),
                                     size(s["bytes_received"]), s["connections"],
                                     bar(s["bytes_sent"] + s["bytes_received"], top, 20)]
                                    for s in r.sites[:10]], right=(1, 2, 3)))
    _print_site_names(r)  # the web filter's lookups (issue 15)
    blocked = r.blocked_by_app()
    console.print()
    if blocked:
        console.print(table("Blocked attempts", ["PROGRAM", "ATTEMPTS"], blocked, right=(1,)))
    else:
        say("No blocked attempts.")
    console.print()
    if r.requests:
        console.print(table(
            f"Requests for more time ({req['pending']} pending, {req['approved']} approved, "
            f"{req['denied']} denied)", ["#", "ASKED", "MINUTES", "REASON", "ANSWER"],
            [[q["id"], timestamp(q["created"]), q["minutes"], q["reason"],
              q["state"] + (f" ({q['granted_minutes']} min)" if q["state"] == "approved" else "")]
             for q in r.requests], right=(0, 2)))
    else:
        say("No requests for more time.")


def _print_site_names(r: Any) -> None:
    """Top sites by name and blocked names, from the web filter's lookups."""
    sites = getattr(r, "web_sites", [])
    if sites:
        top = max(s["lookups"] for s in sites) or 1
        console.print()
        console.print(table("Sites by name", ["SITE", "LOOKUPS", "BLOCKED", ""],
                            [[s["site"], s["lookups"], s["blocked"] or "", bar(s["lookups"], top, 20)]
                             for s in sites[:10]], right=(1, 2)))
    blocked = getattr(r, "blocked_sites", [])
    if blocked:
        console.print()
        console.print(table("Blocked sites", ["NAME", "ATTEMPTS", "LAST"],
                            [[b["name"], b["attempts"], timestamp(b["last"])] for b in blocked[:20]],
                            right=(1,)))
