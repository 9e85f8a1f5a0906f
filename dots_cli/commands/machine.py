"""``dotsctl machine``: the household's machines (household mode).

``dotsctl machine list`` shows every machine of the household as this
machine's policy daemon last saw it (also while the household database is
unreachable): name, state, last contact and the health it reported.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from ..render import console, print_json, table, timestamp

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
    from ..app import client  # the one shared client (app imports this module)

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
