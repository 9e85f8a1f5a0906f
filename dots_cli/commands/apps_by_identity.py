"""``dotsctl app`` commands that name apps the way parents do (issue 13):

    dotsctl app block alice SuperTux          # a menu name, Flatpak id, Snap, path...
    dotsctl app block alice --running         # what alice runs now: pick one
    dotsctl app block alice --running tux     # the running program called tux
    dotsctl app always-allow alice "GCompris"  # homework: no screen time, runs at bedtime
    dotsctl app list alice                    # alice's apps, today's time and state

Names are resolved here, on the parent's side (dots_identity.naming), to
the program files; a name that resolves to nothing is an error before any
rule is made. The collector then blocks by identity: links, copies and
modified copies of the program are the same app.

Wiring (one line in the CLI's app group module): ``register(app_app)``
replaces the group's ``block`` and ``list`` with these and adds
``always-allow``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import shutil
from typing import Annotated, Any, Optional

import typer

from dots_identity.naming import SEARCH_PATH, UnknownApp, resolve

from ..client import EXIT_FAILED, EXIT_NOT_AUTHORIZED, EXIT_USAGE, CliError, FamilyClient
from ..render import console, say
from .common import Child

app = typer.Typer(help="Block, limit and list a child's apps by what they are.",
                  no_args_is_help=True)
Name = Annotated[Optional[str], typer.Argument(
    help="the app: its name in the menu, a program name, a Flatpak id, a Snap, a path "
         "(with --running: part of the running program's name)", metavar="APP")]


def _client() -> FamilyClient:
    return FamilyClient()


def programs(name: str) -> list[str]:
    try:
        return resolve(name)
    except UnknownApp as e:
        raise CliError(str(e), EXIT_FAILED) from None


def child_uid(child: str) -> int:
    try:
        return int(child) if child.isdigit() else pwd.getpwnam(child).pw_uid
    except KeyError:
        raise CliError(f"no user called {child!r}", EXIT_FAILED) from None


def running_programs(uid: int) -> dict[str, str]:
    """program path -> name shown, of what ``uid`` runs now (from argv[0],
    readable for any user; /proc/PID/exe where we may read it)."""
    out: dict[str, str] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(entry.path).st_uid != uid:
                continue
            with open(f"{entry.path}/cmdline", "rb") as f:
                argv0 = f.read().split(b"\0")[0].decode("utf-8", "replace")
        except OSError:
            continue
        try:
            path = os.readlink(f"{entry.path}/exe")
        except OSError:
            path = argv0 if argv0.startswith("/") else (shutil.which(argv0, path=SEARCH_PATH) or "")
        if path and not path.endswith(" (deleted)"):
            out.setdefault(path, os.path.basename(argv0) or os.path.basename(path))
    return out


def pick_running(child: str, part: str | None) -> list[str]:
    running = running_programs(child_uid(child))
    if part:
        running = {p: n for p, n in running.items()
                   if part.casefold() in n.casefold() or part.casefold() in p.casefold()}
    if len(running) == 1:
        return list(running)
    if not running:
        raise CliError(f"{child} runs no program{f' matching {part!r}' if part else ''} now",
                       EXIT_FAILED)
    lines = "\n".join(f"  {n:<24} {p}" for p, n in sorted(running.items(), key=lambda t: t[1]))
    raise CliError(f"{child} runs {len(running)} programs{f' matching {part!r}' if part else ''}; "
                   f"name the one to block:\n{lines}", EXIT_USAGE)


def _refused_first(child: str, unknown: CliError) -> None:
    """A name that means nothing: but a caller who may not block anything
    (a child) hears that first; with no daemon to ask, the name's error."""
    try:
        with _client() as c:
            c.get_policy(child)
    except CliError as refused:
        if refused.exit_code == EXIT_NOT_AUTHORIZED:
            raise refused from None
    raise unknown


@app.command("block")
def block(child: Child, name: Name = None,
          running: Annotated[bool, typer.Option(
              "--running", help="block a program the child runs now (it is stopped)")] = False,
          ) -> None:
    """Stop an app from running for a child (and stop it if it runs)."""
    if not name and not running:
        raise CliError("name the app, or use --running", EXIT_USAGE)
    try:
        paths = pick_running(child, name) if running else programs(name or "")
    except CliError as unknown:
        _refused_first(child, unknown)
    with _client() as c:
        version = 0
        for path in paths:
            version = c.block_app(child, path)
    shown = name if name and not running else ", ".join(paths)
    say(f"{shown} is blocked for {child} ({', '.join(paths)}; policy version {version}); "
        "copies and running instances are stopped too.")


@app.command("always-allow")
def always_allow(child: Child, name: Annotated[str, typer.Argument(metavar="APP")],
                 at_end: Annotated[bool, typer.Option(
                     "--at-end/--lock-at-end",
                     help="at the end of screen time, let only always-allowed apps run "
                          "instead of locking")] = False) -> None:
    """Homework apps: their time is not screen time."""
    paths = programs(name)
    with _client() as c:
        version, text = c.get_versioned_policy(child)
        policy = json.loads(text)
        policy["always_allowed_apps"] = list(dict.fromkeys(
            [*policy.get("always_allowed_apps", []), *paths]))
        if at_end:
            policy["at_end_only_always_allowed"] = True
        version = c.replace_policy(child, version, json.dumps(policy))
    say(f"{name} is always allowed for {child} ({', '.join(paths)}; policy version {version}).")


def app_rows(policy: dict[str, Any], usage: list[dict[str, Any]],
             running: set[str]) -> list[dict[str, Any]]:
    """One row per app the policy names or the child used today."""
    from dots_policyd.apps import Apps  # the daemon's one rule, read-only here

    apps = Apps()
    rules: dict[str, list[str]] = {}
    for a in policy.get("blocked_apps", []):
        rules.setdefault(a, []).append("blocked")
    for a, m in policy.get("app_limits_minutes", {}).items():
        rules.setdefault(a, []).append(f"{m} min/day")
    for a in policy.get("always_allowed_apps", []):
        rules.setdefault(a, []).append("always allowed")
    if policy.get("allow_list_only"):
        for a in policy.get("allowed_apps", []):
            rules.setdefault(a, []).append("allowed")
    rows: list[dict[str, Any]] = []
    used = {u["app"]: u["active_seconds"] for u in usage}
    claimed: set[str] = set()
    for name, what in rules.items():
        paths = [p for p in used if apps.is_app(name, p)]
        claimed.update(paths)
        seconds = sum(used[p] for p in paths)
        limit = policy.get("app_limits_minutes", {}).get(name)
        state = ("blocked" if "blocked" in what else
                 "limit reached" if limit is not None and seconds >= limit * 60 else
                 "running" if any(apps.is_app(name, p) for p in running) else "")
        rows.append({"app": name, "rule": ", ".join(what), "today_seconds": seconds,
                     "state": state})
    for path, seconds in sorted(used.items(), key=lambda t: -t[1]):
        if path not in claimed:
            rows.append({"app": path, "rule": "", "today_seconds": seconds,
                         "state": "running" if path in running else ""})
    return rows


@app.command("list")
def list_apps(child: Child, as_json: Annotated[bool, typer.Option(
        "--json", help="print JSON (machine-readable) on stdout")] = False) -> None:
    """The child's apps: rules, today's time and state."""
    today = dt.date.today().isoformat()
    with _client() as c:
        policy = json.loads(c.get_policy(child))
        usage = c.usage(child, today, today).apps
    try:
        running = set(running_programs(child_uid(child)))
    except CliError:
        running = set()
    rows = app_rows(policy, usage, running)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        say(f"No apps for {child} today, and no rules about apps.")
        return
    for r in rows:
        minutes = r["today_seconds"] // 60
        say(f"{r['app']:<32} {r['rule']:<28} {minutes:>4} min today  {r['state']}")


def register(root: typer.Typer) -> None:
    """Put these commands in the ``app`` group (commands/apps.py), replacing
    its commands of the same names; registered after it."""
    from .apps import group
    mine = {c.name for c in app.registered_commands}
    group.registered_commands = [c for c in group.registered_commands if c.name not in mine]
    group.registered_commands.extend(app.registered_commands)
