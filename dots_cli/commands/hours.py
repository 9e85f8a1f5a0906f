"""``dotsctl hours``: allowed hours per weekday (show, set, or lift)."""

from __future__ import annotations

import re
from typing import Annotated, Optional

import typer

from .. import render
from ..render import DAY_NAMES as DAYS
from ..render import console, print_json
from .common import Child, Json, client, read_policy, say, usage_error, version_text

DAY_ALIASES = {"weekdays": DAYS[:5], "weekend": DAYS[5:], "all": DAYS, "daily": DAYS,
               "everyday": DAYS}
_WINDOW_RE = re.compile(r"^\d{1,2}:\d{2}-\d{1,2}:\d{2}$")
NO_USE = ("none", "never")
ANY_TIME = ("any", "always", "all-day")


def _day(text: str) -> int:
    key = text[:3]
    if key not in DAYS or not ("monday tuesday wednesday thursday friday saturday sunday"
                               .split()[DAYS.index(key)].startswith(text)):
        raise usage_error(f"unknown day {text!r}: use mon..sun, ranges (mon-fri), lists "
                          "(sat,sun), weekdays, weekend or all")
    return DAYS.index(key)


def parse_days(spec: str) -> list[str]:
    """``mon-fri`` / ``sat,sun`` / ``fri-mon`` / ``weekdays`` -> day names."""
    out: list[str] = []
    for part in spec.lower().split(","):
        part = part.strip()
        if part in DAY_ALIASES:
            out.extend(DAY_ALIASES[part])
        elif "-" in part:
            first, last = (_day(p.strip()) for p in part.split("-", 1))
            i = first
            while True:
                out.append(DAYS[i])
                if i == last:
                    break
                i = (i + 1) % 7
        else:
            out.append(DAYS[_day(part)])
    return list(dict.fromkeys(out))


def days_text(names: list[str]) -> str:
    """``[mon, tue, wed, thu, fri, sun]`` -> ``"mon-fri, sun"``."""
    idx = sorted(DAYS.index(n) for n in names)
    runs: list[list[int]] = []
    for i in idx:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ", ".join(f"{DAYS[r[0]]}-{DAYS[r[-1]]}" if len(r) >= 3 else ", ".join(DAYS[i] for i in r)
                     for r in runs)


def parse_windows(windows: list[str]) -> list[str] | None:
    """Windows as given; ``none`` -> ``[]`` (no use); ``any`` -> None (no restriction)."""
    if len(windows) == 1 and windows[0].lower() in NO_USE:
        return []
    if len(windows) == 1 and windows[0].lower() in ANY_TIME:
        return None
    for w in windows:
        if not _WINDOW_RE.match(w):
            raise usage_error(f"time window {w!r} is not HH:MM-HH:MM (or 'none' for no use, "
                              "'any' for no restriction)")
    return windows


def hours(
    child: Child,
    days: Annotated[Optional[str], typer.Argument(
        help="mon-fri, sat,sun, weekdays, weekend, all (without: show the allowed hours)",
        metavar="DAYS")] = None,
    windows: Annotated[Optional[list[str]], typer.Argument(
        help="HH:MM-HH:MM windows (end excluded), 'none' = no use, 'any' = no restriction "
             "(any time)", metavar="WINDOW")] = None,
    as_json: Json = False,
) -> None:
    """Allowed hours per weekday, e.g.: dotsctl hours alice mon-fri 15:30-18:00 19:00-20:00"""
    if days is None:
        allowed = read_policy(child).get("allowed_hours") or {}
        if as_json:
            print_json(allowed)
            return
        rows = [[d, ", ".join(allowed[d]) if allowed.get(d) else
                 ("no use" if d in allowed else "any time")] for d in DAYS]
        console.print(render.table(None, ["DAY", "ALLOWED"], rows))
        return
    if not windows:
        raise usage_error("give the allowed windows after the days, e.g. 15:30-18:00 "
                          "(or 'none' for no use, 'any' for no restriction)")
    names = parse_days(days)
    spans = parse_windows(windows)
    if spans is None:
        version = client().clear_allowed_hours(child, names)
        say(f"{child}: {days_text(names)}: any time, no restriction {version_text(version)}.")
        return
    version = client().set_allowed_hours(child, names, spans)
    what = ("any time" if spans == ["00:00-24:00"] else ", ".join(spans)) if spans else "no use at all"
    say(f"{child}: {days_text(names)}: {what} {version_text(version)}.")


def register(root: typer.Typer) -> None:
    root.command()(hours)
