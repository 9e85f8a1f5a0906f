"""``dotsctl machine``: the household's machines (household mode).

``dotsctl machine list`` shows every machine of the household as this
machine's policy daemon last saw it (also while the household database is
unreachable): name, state, last contact and the health it reported.
``dotsctl machine requests`` lists the children's requests for more time
made on any machine; ``dotsctl machine approve|deny MACHINE ID`` answers
one from here (a parents' machine); the child hears it where it asked.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from ..render import console, print_json, table, timestamp
from .common import client, usage_error

machine_app = typer.Typer(help="The household's machines (household mode).", no_args_is_help=True)

def health_text(health: str) -> str:
    """The health a machine reported, in a few words."""
    try:
        data: dict[str, Any] = json.loads(health or "{}")
    except ValueError:
        return "?"
    parts = [f"{data.get('children', 0)} children"]
    if data.get("pending_intervals"):
        parts.append(f"{data['pending_intervals']} intervals to send")
    if data.get("last_error"):
        parts.append(f"last error: {data['last_error']}")
    return ", ".join(parts)


@machine_app.command("list")
def machine_list(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON (machine-readable) on stdout")] = False,
) -> None:
    """The household's machines, their last contact and health."""

    machines = client().call("ListMachines")[0]
    if as_json:
        print_json(machines)
        return
    if not machines:
        console.print("This machine is not in a household (dots-policyd runs without --household).",
                      markup=False, highlight=False)
        return
    rows = [[m["name"] + (" (this one)" if m["this_machine"] else ""), m["state"],
             timestamp(m["last_contact"]) if m["last_contact"] else "never",
             "yes" if m["may_edit_policy"] else "no", health_text(m["health"]), m["machine_id"][:12]]
            for m in machines]
    console.print(table(None, ["MACHINE", "STATE", "LAST CONTACT", "PARENTS EDIT", "HEALTH", "ID"], rows))


def household_checks(health: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """``dotsctl doctor``'s household lines from GetDaemonStatus:
    (name, state, detail, fix); none when the daemon runs alone."""
    if not health.get("household"):
        return []
    pending = int(health.get("household_pending_intervals", 0))
    if health.get("household_online"):
        return [("household database", "ok",
                 f"machine {health.get('household_machine', '?')} in step with the household"
                 + (f"; {pending} intervals still to send" if pending else ""), "")]
    last = int(health.get("household_last_contact", 0))
    since = f"since {timestamp(last)}" if last else "since the daemon started"
    return [("household database", "warning",
             f"unreachable {since}: enforcing the last known policy and remaining time; "
             f"{pending} intervals kept locally until it is back ({health.get('household_error', '')})",
             "check the network and the PostgreSQL server; nothing is lost meanwhile")]


def _machine_id(name_or_id: str) -> str:
    """A machine's id from its name (or id, or the start of its id)."""

    machines = client().call("ListMachines")[0]
    found = [m["machine_id"] for m in machines
             if m["name"] == name_or_id or m["machine_id"].startswith(name_or_id.lower())]
    if len(found) != 1:
        raise usage_error(f"no single machine called {name_or_id!r} (see: dotsctl machine list)")
    return found[0]


@machine_app.command("requests")
def machine_requests(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON (machine-readable) on stdout")] = False,
) -> None:
    """Requests for more time made on any of the household's machines."""

    items = client().call("ListHouseholdRequests")[0]
    if as_json:
        print_json(items)
        return
    if not items:
        console.print("No household requests.", markup=False, highlight=False)
        return
    rows = [[r["machine"], r["id"], r["member"], r["minutes"], r["reason"], timestamp(r["created"]),
             r["state"] + (f" {r['granted_minutes']} min" if r["state"] == "approved" else ""),
             r["answered_by"]] for r in items]
    console.print(table(None, ["MACHINE", "#", "CHILD", "MINUTES", "REASON", "ASKED", "STATE", "BY"],
                        rows, right=(1, 3)))


def _answer(machine: str, request_id: int, approve: bool, minutes: int) -> None:

    granted = client().call("AnswerHouseholdRequest", "subu", _machine_id(machine), request_id,
                            approve, minutes)[0]
    console.print(f"Request #{request_id} on {machine} " + (f"approved: {granted} more minutes today."
                                                          if approve else "denied."),
                  markup=False, highlight=False)


MachineArg = Annotated[str, typer.Argument(help="the machine the child asked on (name or id)")]
IdArg = Annotated[int, typer.Argument(help="the request's number on that machine", metavar="ID", min=1)]


@machine_app.command("approve")
def machine_approve(machine: MachineArg, request_id: IdArg,
                    minutes: Annotated[int, typer.Argument(help="minutes to give (default: as asked)",
                                                           min=0, max=1440)] = 0) -> None:
    """Give a child the time it asked for on another machine."""
    _answer(machine, request_id, True, minutes)


@machine_app.command("deny")
def machine_deny(machine: MachineArg, request_id: IdArg) -> None:
    """Refuse a child's request made on another machine."""
    _answer(machine, request_id, False, 0)


@machine_app.command("audit")
def machine_audit(
    limit: Annotated[int, typer.Option("--limit", "-n", help="how many entries", min=1, max=10000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON (machine-readable) on stdout")] = False,
) -> None:
    """Who changed what, from which machine (the whole household), newest first."""

    entries = client().call("GetHouseholdAudit", "u", limit)[0]
    if as_json:
        print_json(entries)
        return
    if not entries:
        console.print("The household's audit is empty.", markup=False, highlight=False)
        return
    rows = [[timestamp(e["time"]), e["machine"], e["actor"], e["action"], e["target"],
             (e["new_value"][:60] + "…") if len(e["new_value"]) > 60 else e["new_value"]] for e in entries]
    console.print(table(None, ["TIME", "MACHINE", "WHO", "ACTION", "TARGET", "NEW VALUE"], rows))


def register(root: typer.Typer) -> None:
    root.add_typer(machine_app, name="machine")
