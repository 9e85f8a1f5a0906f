"""``dotsctl site``: blocked web sites and addresses."""

from __future__ import annotations

from typing import Annotated

import typer

from ..render import print_json
from .common import Child, Json, client, read_policy, say, version_text

group = typer.Typer(help="Block and unblock web sites and addresses.", no_args_is_help=True)

Site = Annotated[str, typer.Argument(help="a domain (example.com), an address or a range "
                                          "(203.0.113.0/24)", metavar="SITE")]


@group.command("block")
def site_block(child: Child, site: Site) -> None:
    """Block a site (its addresses are kept up to date)."""
    version = client().block_site(child, site)
    say(f"{site} is blocked for {child} {version_text(version)}.")


@group.command("unblock")
def site_unblock(child: Child, site: Site) -> None:
    """Allow a blocked site again."""
    version = client().unblock_site(child, site)
    say(f"{site} is no longer blocked for {child} {version_text(version)}.")


@group.command("list")
def site_list(child: Child, as_json: Json = False) -> None:
    """Blocked sites."""
    sites = read_policy(child).get("blocked_sites", [])
    if as_json:
        print_json(sites)
    elif not sites:
        say(f"No sites are blocked for {child}.")
    else:
        for s in sites:
            say(s)


def register(root: typer.Typer) -> None:
    root.add_typer(group, name="site")
