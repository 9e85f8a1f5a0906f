"""The dotsctl command tree (typer). Each command: parse the command line,
make one or a few calls through :mod:`dots_cli.client`, show the answer
(:mod:`dots_cli.render`, or JSON with ``--json``)."""

from __future__ import annotations

import atexit
import enum
import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer._completion_classes import completion_init
from typer._completion_shared import get_completion_script, install

from dots_common.limits import MONITORS

from . import render
from .client import (
    EXIT_FAILED,
    EXIT_NOT_AUTHORIZED,
    EXIT_USAGE,
    ERROR_PREFIX,
    CliError,
    FamilyClient,
)
from .render import console, duration, print_json

PROG = "dotsctl"

HELP = """Parental controls of DOTS Family Mode: children, limits, reports, requests.

Parents (members of the group dots-parents, or root) may use every command.
A child may use `status` (own time left) and `request` (ask for more time).
"""

EPILOG = """Exit codes: 0 success · 1 the daemon refused or failed (bad value, unknown child, …) · 2 wrong command line · 3 not authorized (e.g. a child running a parent's command) · 4 the policy daemon (or the system bus) is not running.

Examples: dotsctl child add alice --preset 8-12 · dotsctl limit daily alice 1h30 --weekend 2h · dotsctl hours alice mon-fri 15:30-18:00 19:00-20:00 · dotsctl report alice --html week.html
"""

app = typer.Typer(name=PROG, help=HELP, epilog=EPILOG, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode="rich",
                  context_settings={"help_option_names": ["-h", "--help"]})
child_app = typer.Typer(help="List, add and remove children (without a command: list).")
policy_app = typer.Typer(help="Show, replace or edit a child's whole policy; presets.",
                         no_args_is_help=True)
limit_app = typer.Typer(help="Screen-time limits: daily, weekly, per app.", no_args_is_help=True)
app_app = typer.Typer(help="Block and unblock programs; the allow-list.", no_args_is_help=True)
site_app = typer.Typer(help="Block and unblock web sites and addresses.", no_args_is_help=True)
app.add_typer(child_app, name="child")
app.add_typer(policy_app, name="policy")
app.add_typer(limit_app, name="limit")
app.add_typer(app_app, name="app")
app.add_typer(site_app, name="site")
app.add_typer(__import__("dots_cli.commands.machine", fromlist=["machine_app"]).machine_app, name="machine")

completion_init()  # typer's completion classes (we add our own completion options)

_client: FamilyClient | None = None


def client() -> FamilyClient:
    global _client
    if _client is None:
        _client = FamilyClient()
        atexit.register(_client.close)
    return _client


def say(text: str) -> None:
    console.print(text, markup=False, highlight=False)


def usage_error(message: str) -> CliError:
    return CliError(message, EXIT_USAGE)


# --- completion ------------------------------------------------------------------------

class Shell(str, enum.Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"
    powershell = "powershell"
    pwsh = "pwsh"


def _complete_var() -> str:
    return f"_{PROG.upper()}_COMPLETE"


def _show_completion(value: Optional[Shell]) -> None:
    if value is None:
        return
    typer.echo(get_completion_script(prog_name=PROG, complete_var=_complete_var(), shell=value.value))
    raise typer.Exit(0)


def _install_completion(value: Optional[Shell]) -> None:
    if value is None:
        return
    shell, path = install(shell=value.value, prog_name=PROG, complete_var=_complete_var())
    typer.echo(f"{shell} completion installed in {path}; it works in new shells")
    raise typer.Exit(0)


def complete_child(incomplete: str) -> list[str]:
    """Registered children (needs a parent; quietly nothing otherwise)."""
    try:
        with FamilyClient(timeout=2) as c:
            names = [name for _, name in c.list_children()]
    except Exception:
        return []
    return [n for n in names if n.startswith(incomplete)]


def complete_preset(incomplete: str) -> list[str]:
    return [p for p in ("5-7", "8-12", "13-17") if p.startswith(incomplete)]


def complete_kind(incomplete: str) -> list[str]:
    return [k for k in MONITORS if k.startswith(incomplete)]


def complete_state(incomplete: str) -> list[str]:
    return [k for k in ("pending", "approved", "denied") if k.startswith(incomplete)]


@app.callback()
def root(
    show_completion: Annotated[Optional[Shell], typer.Option(
        "--show-completion", metavar="SHELL", is_eager=True, callback=_show_completion,
        help="Print the completion script for SHELL (bash, zsh, fish), e.g. "
             "dotsctl --show-completion bash > /etc/bash_completion.d/dotsctl")] = None,
    install_completion: Annotated[Optional[Shell], typer.Option(
        "--install-completion", metavar="SHELL", is_eager=True, callback=_install_completion,
        help="Install completion for SHELL in your shell's start-up files.")] = None,
) -> None:
    """Parental controls of DOTS Family Mode."""


# --- common arguments ------------------------------------------------------------------

Child = Annotated[str, typer.Argument(help="the child's user name or uid", metavar="CHILD",
                                      autocompletion=complete_child)]
Json = Annotated[bool, typer.Option("--json", help="print JSON (machine-readable) on stdout")]

_DURATION_RE = re.compile(r"^(?:(\d+)\s*h)?\s*(?:(\d+)\s*(?:m|min)?)?$")
NO_LIMIT = ("none", "off", "unlimited", "no")


def parse_minutes(text: str, what: str = "MINUTES") -> int | None:
    """``90``, ``1h30``, ``1h30m``, ``2h`` -> minutes; ``none``/``off`` -> None."""
    value = text.strip().lower()
    if value in NO_LIMIT:
        return None
    match = _DURATION_RE.match(value)
    if not value or not match or not (match[1] or match[2]):
        raise usage_error(f"{what} {text!r} is not a duration: use minutes (90), hours and "
                          "minutes (1h30), or 'none' for no limit")
    return int(match[1] or 0) * 60 + int(match[2] or 0)


def _policy(child: str) -> dict[str, Any]:
    return json.loads(client().get_policy(child))


def _set_policy(child: str, policy: dict[str, Any]) -> int:
    return client().set_policy(child, json.dumps(policy))


def _version(version: int) -> str:
    return f"(policy version {version})"


# --- status ----------------------------------------------------------------------------

@app.command()
def status(
    child: Annotated[Optional[str], typer.Argument(
        help="a child (parents); without it: your own time left (children) or every "
             "child (parents)", metavar="CHILD", autocompletion=complete_child)] = None,
    as_json: Json = False,
) -> None:
    """Time left today, allowed hours, pending requests."""
    c = client()
    if child:
        s = c.status(child)
        if as_json:
            print_json(s)
            return
        for line in render.status_view(s, you=s["uid"] == os.getuid()):
            console.print(line)
        return
    try:
        s = c.status("")
    except CliError as exc:
        if exc.dbus_name != ERROR_PREFIX + "UnknownChild":
            raise
    else:
        if as_json:
            print_json(s)
        else:
            for line in render.status_view(s, you=True):
                console.print(line)
        return
    # not a child: a parent sees every child
    try:
        children = c.list_children()
    except CliError as exc:
        if exc.exit_code == EXIT_NOT_AUTHORIZED:
            raise CliError("you are not a registered child, and not a parent (a member of the "
                           "group dots-parents): there is no status to show", EXIT_NOT_AUTHORIZED)
        raise
    statuses = [c.status(str(uid)) for uid, _ in children]
    if as_json:
        print_json(statuses)
    elif not statuses:
        say("No children yet. Add one with: dotsctl child add USER --preset 8-12")
    else:
        console.print(render.status_table(statuses))


# --- children --------------------------------------------------------------------------

@child_app.callback(invoke_without_command=True)
def child_default(ctx: typer.Context) -> None:
    """List, add and remove children (without a command: list)."""
    if ctx.invoked_subcommand is None:
        child_list(as_json=False)


@child_app.command("list")
def child_list(as_json: Json = False) -> None:
    """The registered children."""
    children = client().list_children()
    if as_json:
        print_json([{"uid": uid, "name": name} for uid, name in children])
    elif not children:
        say("No children yet. Add one with: dotsctl child add USER --preset 8-12")
    else:
        console.print(render.table(None, ["UID", "CHILD"], [[u, n] for u, n in children], right=(0,)))


@child_app.command("add")
def child_add(
    user: Annotated[str, typer.Argument(help="an existing local user (name or uid)")],
    preset: Annotated[str, typer.Option(
        help="start from the rules of an age group (see: dotsctl policy presets); "
             "default: no limits", autocompletion=complete_preset)] = "",
    as_json: Json = False,
) -> None:
    """Make a local user a child (its activity is watched, the policy applies)."""
    uid = client().add_child(user, preset)
    if as_json:
        print_json({"uid": uid, "name": user, "preset": preset})
        return
    how = f"with the rules for ages {preset}" if preset else "with no limits yet"
    say(f"{user} (uid {uid}) is now a child, {how}. See: dotsctl policy show {user}")


@child_app.command("remove")
def child_remove(child: Child) -> None:
    """Stop treating a user as a child (history and audit log are kept)."""
    client().remove_child(child)
    say(f"{child} is no longer a child; its history is kept.")


# --- policy ----------------------------------------------------------------------------

@policy_app.command("show")
def policy_show(child: Child, as_json: Json = False) -> None:
    """A child's rules."""
    policy = _policy(child)
    if as_json:
        print_json(policy)
    else:
        console.print(render.policy_view(policy))


@policy_app.command("set")
def policy_set(
    child: Child,
    file: Annotated[str, typer.Argument(help="a JSON policy document, '-' for stdin "
                                             "(see: dotsctl policy show CHILD --json)")],
) -> None:
    """Replace a child's whole policy with a JSON document."""
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
    except OSError as exc:
        raise usage_error(f"cannot read {file}: {exc.strerror}") from None
    version = client().set_policy(child, text)
    say(f"Policy of {child} replaced {_version(version)}.")


def _editor() -> list[str]:
    for var in ("VISUAL", "EDITOR"):
        if os.environ.get(var):
            return shlex.split(os.environ[var])
    for name in ("sensible-editor", "editor", "nano", "vi"):
        if shutil.which(name):
            return [name]
    raise CliError("no editor found: set EDITOR", EXIT_FAILED)


@policy_app.command("edit")
def policy_edit(child: Child) -> None:
    """Edit a child's policy in $EDITOR; saved when valid."""
    c = client()
    original = json.dumps(_policy(child), indent=2) + "\n"
    fd, path = tempfile.mkstemp(prefix=f"dots-policy-{child}-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        f.write(original)
    text = original
    while True:
        code = subprocess.call([*_editor(), path])
        if code != 0:
            raise CliError(f"the editor failed (exit {code}); nothing changed, your text is in {path}")
        text = Path(path).read_text()
        if json.dumps(_try_json(text)) == json.dumps(json.loads(original)):
            os.unlink(path)
            say("No change.")
            return
        try:
            version = c.set_policy(child, text)
        except CliError as exc:
            if exc.exit_code != EXIT_FAILED or not sys.stdin.isatty():
                raise CliError(f"{exc.message}; nothing changed, your text is in {path}",
                               exc.exit_code) from None
            console.print(f"dotsctl: {exc.message}", style="red", markup=False)
            if not typer.confirm("Edit again?", default=True):
                raise CliError(f"nothing changed, your text is in {path}") from None
            continue
        os.unlink(path)
        say(f"Policy of {child} saved {_version(version)}.")
        return


def _try_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


@policy_app.command("presets")
def policy_presets(as_json: Json = False) -> None:
    """Starting-point rules by age group (for: dotsctl child add USER --preset NAME)."""
    presets = client().list_presets()
    if as_json:
        print_json([{"name": n, "description": d} for n, d in presets])
    else:
        console.print(render.table(None, ["PRESET", "RULES"], presets))


@policy_app.command("schema")
def policy_schema() -> None:
    """The JSON schema of a policy document."""
    print_json(json.loads(client().policy_schema()))


# --- limits ----------------------------------------------------------------------------

@limit_app.command("daily")
def limit_daily(
    child: Child,
    minutes: Annotated[str, typer.Argument(help="school days (Mon–Fri): 90, 1h30, or none",
                                           metavar="MINUTES")],
    weekend: Annotated[Optional[str], typer.Option(
        help="Saturday and Sunday (default: unchanged)", metavar="MINUTES")] = None,
) -> None:
    """Daily screen time, for school days and (--weekend) Saturday/Sunday."""
    weekday = parse_minutes(minutes)
    if weekend is None:
        current = _policy(child).get("weekend_limit_minutes")
        weekend_min = current
    else:
        weekend_min = parse_minutes(weekend, "--weekend")
    version = client().set_daily_limit(child, -1 if weekday is None else weekday,
                                       -1 if weekend_min is None else weekend_min)
    tail = "" if weekend is not None else " (unchanged; set it with --weekend)"
    say(f"{child}: {render.minutes_text(weekday)} on school days, "
        f"{render.minutes_text(weekend_min)} at weekends{tail} {_version(version)}.")


@limit_app.command("weekly")
def limit_weekly(
    child: Child,
    minutes: Annotated[str, typer.Argument(help="per week (Mon–Sun): 600, 10h, or none",
                                           metavar="MINUTES")],
) -> None:
    """Screen time per week."""
    value = parse_minutes(minutes)
    policy = _policy(child)
    policy["weekly_limit_minutes"] = value
    version = _set_policy(child, policy)
    say(f"{child}: {render.minutes_text(value)} per week {_version(version)}.")


@limit_app.command("app")
def limit_app_cmd(
    child: Child,
    app_name: Annotated[str, typer.Argument(help="a program name (firefox) or path", metavar="APP")],
    minutes: Annotated[str, typer.Argument(help="per day: 60, 1h, or none", metavar="MINUTES")],
) -> None:
    """Daily time for one program."""
    value = parse_minutes(minutes)
    policy = _policy(child)
    limits = dict(policy.get("app_limits_minutes") or {})
    if value is None:
        if limits.pop(app_name, None) is None:
            say(f"{child} has no limit for {app_name}.")
            return
    else:
        limits[app_name] = value
    policy["app_limits_minutes"] = limits
    version = _set_policy(child, policy)
    say(f"{child}: {app_name} {render.minutes_text(value)} per day {_version(version)}.")


# --- allowed hours ---------------------------------------------------------------------

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_ALIASES = {"weekdays": DAYS[:5], "weekend": DAYS[5:], "all": DAYS, "daily": DAYS,
               "everyday": DAYS}
_WINDOW_RE = re.compile(r"^\d{1,2}:\d{2}-\d{1,2}:\d{2}$")


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


def parse_windows(windows: list[str]) -> list[str]:
    if len(windows) == 1 and windows[0].lower() in ("none", "never"):
        return []
    if len(windows) == 1 and windows[0].lower() in ("any", "always", "all-day"):
        return ["00:00-24:00"]
    for w in windows:
        if not _WINDOW_RE.match(w):
            raise usage_error(f"time window {w!r} is not HH:MM-HH:MM (or 'none' for no use, "
                              "'any' for the whole day)")
    return windows


@app.command()
def hours(
    child: Child,
    days: Annotated[Optional[str], typer.Argument(
        help="mon-fri, sat,sun, weekdays, weekend, all (without: show the allowed hours)",
        metavar="DAYS")] = None,
    windows: Annotated[Optional[list[str]], typer.Argument(
        help="HH:MM-HH:MM windows (end excluded), 'none' = no use, 'any' = all day",
        metavar="WINDOW")] = None,
    as_json: Json = False,
) -> None:
    """Allowed hours per weekday, e.g.: dotsctl hours alice mon-fri 15:30-18:00 19:00-20:00"""
    if days is None:
        allowed = _policy(child).get("allowed_hours") or {}
        if as_json:
            print_json(allowed)
            return
        rows = [[d, ", ".join(allowed[d]) if allowed.get(d) else
                 ("no use" if d in allowed else "any time")] for d in DAYS]
        console.print(render.table(None, ["DAY", "ALLOWED"], rows))
        return
    if not windows:
        raise usage_error("give the allowed windows after the days, e.g. 15:30-18:00 "
                          "(or 'none' for no use, 'any' for the whole day)")
    names = parse_days(days)
    spans = parse_windows(windows)
    version = client().set_allowed_hours(child, names, spans)
    what = ("any time" if spans == ["00:00-24:00"] else ", ".join(spans)) if spans else "no use at all"
    say(f"{child}: {days_text(names)}: {what} {_version(version)}.")


# --- apps and sites --------------------------------------------------------------------

App = Annotated[str, typer.Argument(help="a program name (firefox) or an absolute path",
                                    metavar="APP")]
Site = Annotated[str, typer.Argument(help="a domain (example.com), an address or a range "
                                          "(203.0.113.0/24)", metavar="SITE")]


@app_app.command("block")
def app_block(child: Child, app_name: App) -> None:
    """Stop a program from running for a child."""
    version = client().block_app(child, app_name)
    say(f"{app_name} is blocked for {child} {_version(version)}.")


@app_app.command("unblock")
def app_unblock(child: Child, app_name: App) -> None:
    """Allow a blocked program again."""
    version = client().unblock_app(child, app_name)
    say(f"{app_name} is no longer blocked for {child} {_version(version)}.")


class OnOff(str, enum.Enum):
    on = "on"
    off = "off"


@app_app.command("allow-list")
def app_allow_list(
    child: Child,
    mode: Annotated[OnOff, typer.Argument(help="on: only allowed programs may run; off: any "
                                               "program not blocked may run")],
    apps: Annotated[Optional[list[str]], typer.Argument(
        help="programs to add to the allow-list (with on)", metavar="APP")] = None,
) -> None:
    """Only let the programs on the allow-list run (on), or any program (off)."""
    if mode is OnOff.off and apps:
        raise usage_error("'off' takes no programs (edit the list with: dotsctl policy edit)")
    policy = _policy(child)
    allowed = list(dict.fromkeys([*(policy.get("allowed_apps") or []), *(apps or [])]))
    if mode is OnOff.on and not allowed:
        raise usage_error("name the programs that stay allowed, e.g. "
                          f"dotsctl app allow-list {child} on firefox libreoffice")
    policy["allowed_apps"] = allowed
    policy["allow_list_only"] = mode is OnOff.on
    version = _set_policy(child, policy)
    if mode is OnOff.on:
        say(f"{child} may run only: {', '.join(allowed)} {_version(version)}.")
    else:
        say(f"{child} may run any program that is not blocked {_version(version)}.")


@app_app.command("list")
def app_list(child: Child, as_json: Json = False) -> None:
    """Blocked programs, the allow-list and per-app limits."""
    p = _policy(child)
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


@site_app.command("block")
def site_block(child: Child, site: Site) -> None:
    """Block a site (its addresses are kept up to date)."""
    version = client().block_site(child, site)
    say(f"{site} is blocked for {child} {_version(version)}.")


@site_app.command("unblock")
def site_unblock(child: Child, site: Site) -> None:
    """Allow a blocked site again."""
    version = client().unblock_site(child, site)
    say(f"{site} is no longer blocked for {child} {_version(version)}.")


@site_app.command("list")
def site_list(child: Child, as_json: Json = False) -> None:
    """Blocked sites."""
    sites = _policy(child).get("blocked_sites", [])
    if as_json:
        print_json(sites)
    elif not sites:
        say(f"No sites are blocked for {child}.")
    else:
        for s in sites:
            say(s)


# --- report and events -----------------------------------------------------------------

@app.command()
def report(
    child: Child,
    start: Annotated[Optional[str], typer.Option("--from", help="first day, YYYY-MM-DD "
                                                 "(default: 6 days before --to)")] = None,
    end: Annotated[Optional[str], typer.Option("--to", help="last day, YYYY-MM-DD "
                                               "(default: today)")] = None,
    html_file: Annotated[Optional[Path], typer.Option(
        "--html", help="also write the report as a web page (charts included) to FILE",
        metavar="FILE", dir_okay=False)] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="print CSV on stdout")] = False,
    as_json: Json = False,
) -> None:
    """Screen time per day against the limit, top apps and sites, blocked attempts, requests."""
    from . import report as reports

    if as_csv and as_json:
        raise usage_error("choose one of --csv and --json")
    try:
        first = reports.parse_day(start, "--from") if start else None
        last = reports.parse_day(end, "--to") if end else None
        data = reports.gather(client(), child, first, last)
    except ValueError as exc:
        raise usage_error(str(exc)) from None
    if html_file is not None:
        from . import report_html

        try:
            report_html.write(data, str(html_file))
        except OSError as exc:
            raise CliError(f"cannot write {html_file}: {exc.strerror}") from None
    if as_json:
        print_json(data.to_json())
    elif as_csv:
        sys.stdout.write(data.to_csv())
    else:
        render.print_report(data)
        if html_file is not None:
            say(f"\nWeb page written to {html_file}")


def _event_key(e: dict[str, Any]) -> str:
    return json.dumps(e, sort_keys=True, default=str)


@app.command()
def events(
    child: Child,
    kind: Annotated[str, typer.Option(help="process, filesystem, network, memory or disk",
                                      autocompletion=complete_kind)] = "process",
    limit: Annotated[int, typer.Option(min=1, max=10000, help="how many (newest)")] = 20,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new events "
                                         "(polls the daemon; Ctrl-C stops)")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="seconds between polls with --follow")] = 1.0,
    as_json: Json = False,
) -> None:
    """A child's recent raw events (programs started, files, network, ...)."""
    c = client()
    batch = c.recent_events(child, kind, limit)
    batch.reverse()  # oldest first
    if not follow:
        if as_json:
            print_json(batch)
        elif not batch:
            say(f"No {kind} events for {child}.")
        else:
            console.print(render.events_table(kind, batch))
        return
    # --follow: the daemon has no per-event signal (the collector's batches are
    # private to the daemon), so poll GetRecentEvents and print each event
    # not printed before, oldest first. Events stamped before the newest one
    # shown at the start, or more than LATE seconds before the newest one
    # printed since, are not printed (they were shown, or arrived too late).
    late = 120.0
    floor = max((e.get("time", 0) for e in batch), default=0.0)
    seen: set[str] = set()
    newest = floor
    try:
        while True:
            for e in batch:
                key = _event_key(e)
                when = e.get("time", 0)
                if key in seen or when < floor:
                    continue
                seen.add(key)
                newest = max(newest, when)
                if as_json:
                    sys.stdout.write(json.dumps({"kind": kind, **e}) + "\n")
                else:
                    sys.stdout.write(render.event_line(e) + "\n")
            sys.stdout.flush()
            if newest - late > floor:
                floor = newest - late
                seen = {k for k in seen if json.loads(k).get("time", 0) >= floor}
            time.sleep(interval)
            batch = c.recent_events(child, kind, max(limit, 1000))
            batch.reverse()
    except KeyboardInterrupt:
        return


# --- requests --------------------------------------------------------------------------

@app.command()
def request(
    minutes: Annotated[int, typer.Argument(help="how many more minutes today")],
    reason: Annotated[str, typer.Argument(help="why (the parents see it)")] = "",
    as_json: Json = False,
) -> None:
    """(children) Ask the parents for more time today."""
    try:
        request_id = client().request_time(minutes, reason)
    except CliError as exc:
        if exc.dbus_name == ERROR_PREFIX + "UnknownChild":
            raise CliError("you are not a registered child: only children ask for more time",
                           EXIT_FAILED, exc.dbus_name) from None
        raise
    if as_json:
        print_json({"request_id": request_id, "minutes": minutes, "reason": reason})
        return
    say(f"Asked for {duration(minutes * 60)} more (request #{request_id}). "
        "A parent will answer; 'dotsctl status' shows your time.")


def _user_name(uid: int) -> str:
    if not uid:
        return "-"
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@app.command()
def requests(
    state: Annotated[str, typer.Option(help="pending, approved, denied (default: all)",
                                       autocompletion=complete_state)] = "",
    as_json: Json = False,
) -> None:
    """Children's requests for more time, newest first."""
    items = client().list_requests(state)
    if as_json:
        print_json([r.to_json() for r in items])
        return
    if not items:
        say(f"No {state + ' ' if state else ''}requests.")
        return
    rows = [[r.id, r.name or str(r.uid), r.minutes, r.reason, render.timestamp(r.created),
             r.state + (f" {r.granted_minutes} min" if r.state == "approved" else ""),
             _user_name(r.answered_by)] for r in items]
    console.print(render.table(None, ["#", "CHILD", "MINUTES", "REASON", "ASKED", "STATE", "BY"],
                               rows, right=(0, 2)))
    pending = [r for r in items if r.state == "pending"]
    if pending:
        say(f"Answer with: dotsctl approve {pending[0].id} [MINUTES]  or  dotsctl deny {pending[0].id}")


def _pending(request_id: int) -> Any:
    return next((r for r in client().list_requests("pending") if r.id == request_id), None)


@app.command()
def approve(
    request_id: Annotated[int, typer.Argument(help="the request's number (see: dotsctl requests)",
                                              metavar="ID", min=1)],
    minutes: Annotated[int, typer.Argument(help="minutes to give (default: as asked)", min=0)] = 0,
) -> None:
    """Give a child the extra time it asked for (or MINUTES)."""
    req = _pending(request_id)
    client().answer_request(request_id, True, minutes)
    if req is None:
        say(f"Request #{request_id} approved.")
    else:
        say(f"Request #{request_id} approved: {req.name} gets "
            f"{duration((minutes or req.minutes) * 60)} more today.")


@app.command()
def deny(
    request_id: Annotated[int, typer.Argument(help="the request's number (see: dotsctl requests)",
                                              metavar="ID", min=1)],
) -> None:
    """Say no to a request for more time."""
    req = _pending(request_id)
    client().answer_request(request_id, False, 0)
    say(f"Request #{request_id}{f' of {req.name}' if req else ''} denied.")


# --- audit and doctor ------------------------------------------------------------------

@app.command()
def audit(
    limit: Annotated[int, typer.Option(min=1, max=10000, help="how many (newest)")] = 20,
    as_json: Json = False,
) -> None:
    """Who changed what, newest first (the log cannot be changed)."""
    entries = client().audit_log(limit)
    if as_json:
        print_json([e.to_json() for e in entries])
        return
    rows = [[e.id, render.timestamp(e.time), _user_name(e.actor_uid), e.action, e.target]
            for e in entries]
    console.print(render.table(None, ["#", "TIME", "WHO", "ACTION", "TARGET"], rows, right=(0,)))


@app.command()
def doctor(as_json: Json = False) -> None:
    """Check this machine: kernel, mounts, bcc, daemons, polkit, services, database, events."""
    from .doctor import OK, PROBLEM, UNKNOWN, run_checks

    checks = run_checks(client())
    if as_json:
        print_json([c.to_json() for c in checks])
    else:
        marks = {OK: ("✔", "green"), PROBLEM: ("✘", "red"), UNKNOWN: ("?", "yellow"),
                 "warning": ("!", "yellow")}
        for c in checks:
            mark, style = marks.get(c.state, ("?", "yellow"))
            console.print(f"[{style}]{mark}[/{style}] [bold]{c.name}[/bold]: ", end="")
            say(c.detail)
            if c.fix:
                say(f"    fix: {c.fix}")
        problems = sum(1 for c in checks if c.state == PROBLEM)
        say("\nAll good." if not problems else f"\n{problems} problem(s) found.")
    if any(c.state == PROBLEM for c in checks):
        raise typer.Exit(EXIT_FAILED)
