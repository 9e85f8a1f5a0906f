"""dotsctl's web-filtering commands (issue 15):

    dotsctl site list add CHILD CATEGORY FILE|URL    load a list, block it for CHILD
    dotsctl site list update CATEGORY [FILE]         load again (from its URL without FILE)
    dotsctl site list remove CHILD CATEGORY          stop blocking it for CHILD
    dotsctl site list show                           the lists
    dotsctl site allow-list CHILD on|off [--add D] [--remove D]
    dotsctl site doh [ENTRY...] [--clear]            known DoH endpoints (show / add)
    dotsctl internet CHILD [DAYS] [WINDOW...]        internet hours

Registered after the ``site`` group (commands/sites.py) by ``register``.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from .. import render
from ..render import DAY_NAMES as DAYS
from ..render import console, print_json
from .common import Child, Json, client, read_policy, say, usage_error, version_text
from .hours import days_text, parse_days, parse_windows


class _ListGroup(TyperGroup):
    """``site list CHILD`` (a child's blocked sites, as before) beside the
    ``site list add|update|remove|show`` commands: an argument that is not
    one of them goes to the hidden ``blocked`` command."""

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["blocked", *args]
        return super().parse_args(ctx, args)


list_app = typer.Typer(cls=_ListGroup, no_args_is_help=True,
                       help="A child's blocked sites (site list CHILD); category lists (hosts "
                            "files, domain lists, ||domain^ rules), blocked per child.")

Category = Annotated[str, typer.Argument(help="category name, e.g. gambling", metavar="CATEGORY")]
MAX_FILE = 128 * 1024 * 1024


def read_source(source: str) -> tuple[bytes, str]:
    """(data, url): a URL is passed to the daemon (it fetches it, and again
    on update); a file (or - for stdin) is read here, as the parent."""
    if source.startswith(("http://", "https://")):
        return b"", source
    if "://" in source:
        raise usage_error(f"{source!r}: only http:// and https:// URLs, or a file")
    try:
        if source == "-":
            data = sys.stdin.buffer.read(MAX_FILE + 1)
        else:
            with open(Path(source), "rb") as f:
                data = f.read(MAX_FILE + 1)
    except OSError as e:
        raise usage_error(f"cannot read {source}: {e.strerror or e}") from None
    if len(data) > MAX_FILE:
        raise usage_error(f"{source} is larger than {MAX_FILE} bytes")
    if not data:
        raise usage_error(f"{source} is empty")
    return data, ""


@list_app.command("add")
def list_add(child: Child, category: Category,
             source: Annotated[str, typer.Argument(help="a file, - (stdin) or an http(s) URL",
                                                   metavar="FILE|URL")]) -> None:
    """Load a list under CATEGORY (replacing what it held) and block it for CHILD."""
    data, url = read_source(source)
    version, domains = client().call("AddSiteList", "ssays", child, category, data, url)
    say(f"{category}: {domains:,} domains, blocked for {child} {version_text(version)}.")


@list_app.command("update")
def list_update(category: Category,
                source: Annotated[Optional[str], typer.Argument(
                    help="a new file (without: fetch the list's URL again)", metavar="FILE")] = None) -> None:
    """Load a category's list again."""
    data = read_source(source)[0] if source else b""
    if source and not data:
        raise usage_error("update takes a file; a list from a URL is fetched from its URL")
    (domains,) = client().call("UpdateSiteList", "say", category, data)
    say(f"{category}: {domains:,} domains.")


@list_app.command("remove")
def list_remove(child: Child, category: Category) -> None:
    """Stop blocking CATEGORY for CHILD (the list is deleted when no child uses it)."""
    (version,) = client().call("RemoveSiteList", "ss", child, category)
    say(f"{category} is no longer blocked for {child} {version_text(version)}.")


@list_app.command("show")
def list_show(as_json: Json = False) -> None:
    """The category lists: domains, when loaded, from where."""
    (lists,) = client().call("ListSiteLists")
    rows = [{"category": n, "domains": d, "updated": dt.datetime.fromtimestamp(u).isoformat(" ", "minutes"),
             "source": s} for n, d, u, s in lists]
    if as_json:
        print_json(rows)
        return
    if not rows:
        say("No category lists.")
        return
    console.print(render.table(None, ["CATEGORY", "DOMAINS", "UPDATED", "SOURCE"],
                                       [[r["category"], f"{r['domains']:,}", r["updated"], r["source"]]
                                        for r in rows]))


def site_allow_list(
    child: Child,
    mode: Annotated[str, typer.Argument(help="on or off", metavar="on|off")],
    add: Annotated[Optional[list[str]], typer.Option("--add", help="allow this domain (repeatable)")] = None,
    remove: Annotated[Optional[list[str]], typer.Option("--remove", help="stop allowing it")] = None,
) -> None:
    """Site allow-list mode: only the allowed domains (and names under them) can be reached."""
    if mode not in ("on", "off"):
        raise usage_error(f"mode must be on or off, not {mode!r}")
    version = client().call("SetSiteAllowList", "sbasas", child, mode == "on", add or [],
                                remove or [])[0]
    say(f"{child}: site allow-list {mode} {version_text(version)}.")


def site_doh(
    entries: Annotated[Optional[list[str]], typer.Argument(
        help="host names, addresses or ranges to add (without: show the list)", metavar="ENTRY")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="forget the entries parents added")] = False,
    as_json: Json = False,
) -> None:
    """Known DNS-over-HTTPS endpoints, refused to every child."""
    builtin, added = client().call("GetDohEndpoints")
    if entries or clear:
        new = [] if clear else list(dict.fromkeys([*added, *(entries or [])]))
        (count,) = client().call("SetDohEndpoints", "as", new)
        say(f"{count} DoH endpoints added by parents (besides {len(builtin)} built in).")
        return
    if as_json:
        print_json({"builtin": builtin, "added": added})
        return
    for entry in added:
        say(f"{entry}  (added)")
    for entry in builtin:
        say(entry)


def internet(
    child: Child,
    days: Annotated[Optional[str], typer.Argument(
        help="mon-fri, sat,sun, weekdays, weekend, all (without: show)", metavar="DAYS")] = None,
    windows: Annotated[Optional[list[str]], typer.Argument(
        help="HH:MM-HH:MM windows, 'none' = no network, 'any' = no restriction",
        metavar="WINDOW")] = None,
    as_json: Json = False,
) -> None:
    """Internet hours per weekday (separate from screen-time hours), e.g.:
    dotsctl internet alice mon-fri 16:00-19:00"""
    if days is None:
        hours = read_policy(child).get("internet_hours") or {}
        if as_json:
            print_json(hours)
            return
        rows = [[d, ", ".join(hours[d]) if hours.get(d) else
                 ("no network" if d in hours else "any time")] for d in DAYS]
        console.print(render.table(None, ["DAY", "INTERNET"], rows))
        return
    if not windows:
        raise usage_error("give the windows after the days, e.g. 16:00-19:00 "
                              "('none' for no network, 'any' for no restriction)")
    names = parse_days(days)
    spans = parse_windows(windows)
    if spans is None or spans == ["00:00-24:00"]:
        version = client().call("ClearInternetHours", "sas", child, names)[0]
        what = "any time"
    else:
        version = client().call("SetInternetHours", "sasas", child, names, spans)[0]
        what = ", ".join(spans) if spans else "no network"
    say(f"{child}: internet {days_text(names)}: {what} {version_text(version)}.")


def register(root: typer.Typer) -> None:
    """Add the commands to dotsctl (``site list``, ``site allow-list``,
    ``site doh``, ``internet``); after the ``site`` group (commands/sites.py)."""
    from .sites import group as site_app

    old = next((c for c in site_app.registered_commands if c.name == "list"), None)
    if old is not None:  # "site list CHILD" keeps working, as "site list blocked CHILD" too
        site_app.registered_commands.remove(old)
        list_app.command("blocked", hidden=True, help=old.help)(old.callback)
    site_app.add_typer(list_app, name="list")
    site_app.command("allow-list")(site_allow_list)
    site_app.command("doh")(site_doh)
    root.command("internet")(internet)
