"""``dotsctl limit``: daily, weekly and per-app screen time. Each command is
one contract method that changes one field (SetDailyLimit, SetWeeklyLimit,
SetAppLimit), so two parents at once cannot undo each other's change."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..client import ERROR_PREFIX, CliError
from ..render import minutes_text
from .common import App, Child, client, parse_minutes, say, version_text, wire_minutes

group = typer.Typer(help="Screen-time limits: daily, weekly, per app.", no_args_is_help=True)


def daily_text(school_days: int | None, weekend: int | None) -> str:
    """``90, 90`` -> ``"1 h 30 min every day"``; ``45, 120`` -> ``"45 min on
    school days, 2 h at weekends"``."""
    if school_days == weekend:
        return "no daily limit" if school_days is None else f"{minutes_text(school_days)} every day"
    return f"{minutes_text(school_days)} on school days, {minutes_text(weekend)} at weekends"


@group.command("daily")
def limit_daily(
    child: Child,
    minutes: Annotated[str, typer.Argument(
        help="every day (with --weekend: school days, Mon–Fri): 90, 1h30, or none",
        metavar="MINUTES")],
    weekend: Annotated[Optional[str], typer.Option(
        help="Saturday and Sunday, when they differ (default: MINUTES too)",
        metavar="MINUTES")] = None,
) -> None:
    """Daily screen time: the same every day, or (--weekend) another at weekends.

    MINUTES alone is the limit of every day, Monday to Sunday. With --weekend W,
    MINUTES is the limit of school days (Monday to Friday) and W that of Saturday
    and Sunday."""
    school_days = parse_minutes(minutes)
    weekend_days = school_days if weekend is None else parse_minutes(weekend, "--weekend")
    version = client().set_daily_limit(child, wire_minutes(school_days), wire_minutes(weekend_days))
    say(f"{child}: {daily_text(school_days, weekend_days)} {version_text(version)}.")


@group.command("weekly")
def limit_weekly(
    child: Child,
    minutes: Annotated[str, typer.Argument(help="per week (Mon–Sun): 600, 10h, or none",
                                           metavar="MINUTES")],
) -> None:
    """Screen time per week."""
    value = parse_minutes(minutes)
    version = client().set_weekly_limit(child, wire_minutes(value))
    say(f"{child}: {minutes_text(value)} per week {version_text(version)}.")


@group.command("app")
def limit_app(
    child: Child,
    app_name: App,
    minutes: Annotated[str, typer.Argument(help="per day: 60, 1h, or none", metavar="MINUTES")],
) -> None:
    """Daily time for one program."""
    value = parse_minutes(minutes)
    try:
        version = client().set_app_limit(child, app_name, wire_minutes(value))
    except CliError as exc:
        if value is None and exc.dbus_name == ERROR_PREFIX + "NotFound":
            say(f"{child} has no limit for {app_name}.")
            return
        raise
    say(f"{child}: {app_name} {minutes_text(value)} per day {version_text(version)}.")


def register(root: typer.Typer) -> None:
    root.add_typer(group, name="limit")
