"""``dotsctl audit``: who changed what (the daemon's audit log)."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import render
from ..render import console, print_json
from .common import Json, client, user_name


def audit(
    limit: Annotated[int, typer.Option(min=1, max=10000, help="how many (newest)")] = 20,
    as_json: Json = False,
) -> None:
    """Who changed what, newest first (the log cannot be changed)."""
    entries = client().audit_log(limit)
    if as_json:
        print_json([e.to_json() for e in entries])
        return
    rows = [[e.id, render.timestamp(e.time), user_name(e.actor_uid), e.action, e.target]
            for e in entries]
    console.print(render.table(None, ["#", "TIME", "WHO", "ACTION", "TARGET"], rows, right=(0,)))


def register(root: typer.Typer) -> None:
    root.command()(audit)
