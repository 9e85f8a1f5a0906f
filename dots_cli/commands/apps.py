"""``dotsctl app``: blocked programs and the allow-list. Every change is one
contract method (BlockApp, UnblockApp, SetAllowList, DisallowApp)."""

from __future__ import annotations

import enum
from typing import Annotated, Optional

import typer

from .. import render
from ..client import ERROR_PREFIX, CliError
from ..render import console, print_json
from .common import App, Child, Json, client, read_policy, say, usage_error, version_text

group = typer.Typer(help="Block and unblock programs; the allow-list.", no_args_is_help=True)


@group.command("block")
def app_block(child: Child, app_name: App) -> None:
    """Stop a program from running for a child."""
    version = client().block_app(child, app_name)
    say(f"{app_name} is blocked for {child} {version_text(version)}.")


@group.command("unblock")
def app_unblock(child: Child, app_name: App) -> None:
    """Allow a blocked program again."""
    version = client().unblock_app(child, app_name)
    say(f"{app_name} is no longer blocked for {child} {version_text(version)}.")


class OnOff(str, enum.Enum):
    on = "on"
    off = "off"


@group.command("allow-list")
def app_allow_list(
    child: Child,
    mode: Annotated[OnOff, typer.Argument(help="on: only allowed programs may run; off: any "
                                               "program not blocked may run")],
    apps: Annotated[Optional[list[str]], typer.Argument(
        help="programs to add to the allow-list (with on)", metavar="APP")] = None,
) -> None:
    """Only let the programs on the allow-list run (on), or any program (off)."""
    if mode is OnOff.off and apps:
        raise usage_error(f"'off' takes no programs (take one off the list with: "
                          f"dotsctl app disallow {child} APP)")
    on = mode is OnOff.on
    try:
        version = client().set_allow_list(child, on, list(apps or []))
    except CliError as exc:
        if on and not apps and exc.dbus_name == ERROR_PREFIX + "InvalidPolicy":
            raise usage_error("name the programs that stay allowed, e.g. "
                              f"dotsctl app allow-list {child} on firefox libreoffice") from None
        raise
    if on:
        # read after the change, only to show it: the change itself was one call
        allowed = read_policy(child).get("allowed_apps") or []
        say(f"{child} may run only: {', '.join(allowed)} {version_text(version)}.")
    else:
        say(f"{child} may run any program that is not blocked {version_text(version)}.")


@group.command("disallow")
def app_disallow(child: Child, app_name: App) -> None:
    """Take a program off the allow-list."""
    version = client().disallow_app(child, app_name)
    say(f"{app_name} is not on the allow-list of {child} {version_text(version)}.")


@group.command("list")
def app_list(child: Child, as_json: Json = False) -> None:
    """Blocked programs, the allow-list and per-app limits."""
    p = read_policy(child)
    data = {"blocked_apps": p.get("blocked_apps", []), "allow_list_only": p.get("allow_list_only", False),
            "allowed_apps": p.get("allowed_apps", []), "app_limits_minutes": p.get("app_limits_minutes", {})}
    if as_json:
        print_json(data)
        return
    rows = [[a, "blocked"] for a in data["blocked_apps"]]
    rows += [[a, "allowed" + ("" if data["allow_list_only"] else " (allow-list off)")]
             for a in data["allowed_apps"]]
    rows += [[a, f"{render.minutes_text(m)} per day"] for a, m in data["app_limits_minutes"].items()]
    if not rows:
        say(f"No rules about programs for {child}.")
    else:
        console.print(render.table(None, ["APP", "RULE"], rows))


def register(root: typer.Typer) -> None:
    root.add_typer(group, name="app")
