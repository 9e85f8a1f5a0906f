"""``dotsctl status``: time left today, for a child itself or for a parent."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from .. import render
from ..client import ERROR_PREFIX, EXIT_NOT_AUTHORIZED, CliError
from ..render import console, print_json
from .common import NO_CHILDREN, Json, client, complete_child, say


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
        say(NO_CHILDREN)
    else:
        console.print(render.status_table(statuses))


def register(root: typer.Typer) -> None:
    root.command()(status)
