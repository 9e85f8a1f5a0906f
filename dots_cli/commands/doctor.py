"""``dotsctl doctor``: is this machine set up (the checks themselves are in
:mod:`dots_cli.doctor`)."""

from __future__ import annotations

import typer

from ..client import EXIT_FAILED
from ..render import console, print_json
from .common import Json, client, say


def doctor(as_json: Json = False) -> None:
    """Check this machine: kernel, mounts, bcc, daemons, polkit, services, database, events."""
    from ..doctor import OK, PROBLEM, UNKNOWN, run_checks

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


def register(root: typer.Typer) -> None:
    root.command()(doctor)
