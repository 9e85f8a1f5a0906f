"""``dotsctl report`` and ``dotsctl events``: what a child did (the numbers
are gathered in :mod:`dots_cli.report`, drawn in :mod:`dots_cli.render` or
:mod:`dots_cli.report_html`)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .. import render
from ..client import CliError
from ..render import console, print_json
from .common import Child, Json, client, complete_kind, say, usage_error


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
    from .. import report as reports

    if as_csv and as_json:
        raise usage_error("choose one of --csv and --json")
    try:
        first = reports.parse_day(start, "--from") if start else None
        last = reports.parse_day(end, "--to") if end else None
        data = reports.gather(client(), child, first, last)
    except ValueError as exc:
        raise usage_error(str(exc)) from None
    if html_file is not None:
        from .. import report_html

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


def register(root: typer.Typer) -> None:
    root.command()(report)
    root.command()(events)
