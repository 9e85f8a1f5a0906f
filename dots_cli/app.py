"""The dotsctl command tree (typer), assembled from :mod:`dots_cli.commands`.

Each command parses its command line, makes one or a few calls through
:mod:`dots_cli.client`, and shows the answer (:mod:`dots_cli.render`, or JSON
with ``--json``). To add a command group: write ``dots_cli/commands/NAME.py``
with a ``register(root)`` function and add the module to ``COMMANDS`` below
(its place there is its place in ``dotsctl --help``)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from typer._completion_classes import completion_init

from .commands import (apps, apps_by_identity, audit, child, doctor, hours, limit, machine,
                       policy, report, requests, sites, status, web)
from .commands.common import PROG, Shell, install_completion, show_completion

__all__ = ["PROG", "app"]

HELP = """Parental controls of DOTS Family Mode: children, limits, reports, requests.

Parents (members of the group dots-parents, or root) may use every command.
A child may use `status` (own time left) and `request` (ask for more time).
"""

EPILOG = """Exit codes: 0 success · 1 the daemon refused or failed (bad value, unknown child, …) · 2 wrong command line · 3 not authorized (e.g. a child running a parent's command) · 4 the policy daemon (or the system bus) is not running.

Examples: dotsctl child add alice --preset 8-12 · dotsctl limit daily alice 1h30 --weekend 2h · dotsctl hours alice mon-fri 15:30-18:00 19:00-20:00 · dotsctl report alice --html week.html
"""

#: the command modules, in the order of `dotsctl --help` (top-level commands
#: are listed before command groups, whatever their place here)
COMMANDS = (status, hours, report, requests, audit, doctor,
            child, policy, limit, apps, apps_by_identity, sites, web, machine)

app = typer.Typer(name=PROG, help=HELP, epilog=EPILOG, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode="rich",
                  context_settings={"help_option_names": ["-h", "--help"]})

completion_init()  # typer's completion classes (we add our own completion options)


@app.callback()
def root(
    show: Annotated[Optional[Shell], typer.Option(
        "--show-completion", metavar="SHELL", is_eager=True, callback=show_completion,
        help="Print the completion script for SHELL (bash, zsh, fish), e.g. "
             "dotsctl --show-completion bash > /etc/bash_completion.d/dotsctl")] = None,
    install: Annotated[Optional[Shell], typer.Option(
        "--install-completion", metavar="SHELL", is_eager=True, callback=install_completion,
        help="Install completion for SHELL in your shell's start-up files.")] = None,
) -> None:
    """Parental controls of DOTS Family Mode."""


for module in COMMANDS:
    module.register(app)
