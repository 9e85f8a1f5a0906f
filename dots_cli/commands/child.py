"""``dotsctl child``: list, add and remove children."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import render
from ..render import console, print_json
from .common import NO_CHILDREN, Child, Json, client, complete_preset, say


group = typer.Typer(help="List, add and remove children (without a command: list).")


@group.callback(invoke_without_command=True)
def child_default(ctx: typer.Context) -> None:
    """List, add and remove children (without a command: list)."""
    if ctx.invoked_subcommand is None:
        child_list(as_json=False)


@group.command("list")
def child_list(as_json: Json = False) -> None:
    """The registered children."""
    children = client().list_children()
    if as_json:
        print_json([{"uid": uid, "name": name} for uid, name in children])
    elif not children:
        say(NO_CHILDREN)
    else:
        console.print(render.table(None, ["UID", "CHILD"], [[u, n] for u, n in children], right=(0,)))


@group.command("add")
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


@group.command("remove")
def child_remove(child: Child) -> None:
    """Stop treating a user as a child (history and audit log are kept)."""
    client().remove_child(child)
    say(f"{child} is no longer a child; its history is kept.")


def register(root: typer.Typer) -> None:
    root.add_typer(group, name="child")
