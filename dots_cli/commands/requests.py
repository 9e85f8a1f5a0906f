"""``dotsctl request`` (children), ``requests``, ``approve`` and ``deny``
(parents): asking for and granting more time."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .. import render
from ..client import ERROR_PREFIX, EXIT_FAILED, CliError
from ..render import console, duration, print_json
from .common import Json, client, complete_state, say, user_name


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
             user_name(r.answered_by)] for r in items]
    console.print(render.table(None, ["#", "CHILD", "MINUTES", "REASON", "ASKED", "STATE", "BY"],
                               rows, right=(0, 2)))
    pending = [r for r in items if r.state == "pending"]
    if pending:
        say(f"Answer with: dotsctl approve {pending[0].id} [MINUTES]  or  dotsctl deny {pending[0].id}")


def _pending(request_id: int) -> Any:
    return next((r for r in client().list_requests("pending") if r.id == request_id), None)


RequestId = Annotated[int, typer.Argument(help="the request's number (see: dotsctl requests)",
                                          metavar="ID", min=1)]


def approve(
    request_id: RequestId,
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


def deny(request_id: RequestId) -> None:
    """Say no to a request for more time."""
    req = _pending(request_id)
    client().answer_request(request_id, False, 0)
    say(f"Request #{request_id}{f' of {req.name}' if req else ''} denied.")


def register(root: typer.Typer) -> None:
    for command in (request, requests, approve, deny):
        root.command()(command)
