"""What every dotsctl command module shares: the one client of the policy
daemon, plain output, usage errors, durations, the common argument types
and shell completion."""

from __future__ import annotations

import atexit
import enum
import json
import pwd
import re
from typing import Annotated, Any, Optional

import typer
from typer._completion_shared import get_completion_script, install

from dots_common.limits import MONITORS

from ..client import EXIT_USAGE, CliError, FamilyClient
from ..render import say  # noqa: F401 (re-exported: how every command prints a line)

PROG = "dotsctl"
NO_CHILDREN = "No children yet. Add one with: dotsctl child add USER --preset 8-12"

_client: FamilyClient | None = None


def client() -> FamilyClient:
    """The process's one connection to org.dots.Family1 (opened on first use)."""
    global _client
    if _client is None:
        _client = FamilyClient()
        atexit.register(_client.close)
    return _client


def usage_error(message: str) -> CliError:
    """A wrong command line (exit code 2)."""
    return CliError(message, EXIT_USAGE)


def version_text(version: int) -> str:
    return f"(policy version {version})"


def user_name(uid: int) -> str:
    """A uid as a user name for tables ("-" for none, the number when unknown)."""
    if not uid:
        return "-"
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


# --- durations -------------------------------------------------------------------------

_DURATION_RE = re.compile(r"^(?:(\d+)\s*h)?\s*(?:(\d+)\s*(?:m|min)?)?$")
NO_LIMIT = ("none", "off", "unlimited", "no")


def parse_minutes(text: str, what: str = "MINUTES") -> int | None:
    """``90``, ``1h30``, ``1h30m``, ``2h`` -> minutes; ``none``/``off`` -> None."""
    value = text.strip().lower()
    if value in NO_LIMIT:
        return None
    match = _DURATION_RE.match(value)
    if not value or not match or not (match[1] or match[2]):
        raise usage_error(f"{what} {text!r} is not a duration: use minutes (90), hours and "
                          "minutes (1h30), or 'none' for no limit")
    return int(match[1] or 0) * 60 + int(match[2] or 0)


def wire_minutes(minutes: int | None) -> int:
    """The contract's spelling of a limit: -1 = none."""
    return -1 if minutes is None else minutes


# --- completion ------------------------------------------------------------------------

class Shell(str, enum.Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"
    powershell = "powershell"
    pwsh = "pwsh"


def _complete_var() -> str:
    return f"_{PROG.upper()}_COMPLETE"


def show_completion(value: Optional[Shell]) -> None:
    """``--show-completion SHELL``: print the script and stop."""
    if value is None:
        return
    typer.echo(get_completion_script(prog_name=PROG, complete_var=_complete_var(), shell=value.value))
    raise typer.Exit(0)


def install_completion(value: Optional[Shell]) -> None:
    """``--install-completion SHELL``: add the script to the shell's start-up files."""
    if value is None:
        return
    shell, path = install(shell=value.value, prog_name=PROG, complete_var=_complete_var())
    typer.echo(f"{shell} completion installed in {path}; it works in new shells")
    raise typer.Exit(0)


def complete_child(incomplete: str) -> list[str]:
    """Registered children (needs a parent; quietly nothing otherwise)."""
    try:
        with FamilyClient(timeout=2) as c:
            names = [name for _, name in c.list_children()]
    except Exception:
        return []
    return [n for n in names if n.startswith(incomplete)]


def complete_preset(incomplete: str) -> list[str]:
    return [p for p in ("5-7", "8-12", "13-17") if p.startswith(incomplete)]


def complete_kind(incomplete: str) -> list[str]:
    return [k for k in MONITORS if k.startswith(incomplete)]


def complete_state(incomplete: str) -> list[str]:
    return [k for k in ("pending", "approved", "denied") if k.startswith(incomplete)]


# --- common arguments ------------------------------------------------------------------

Child = Annotated[str, typer.Argument(help="the child's user name or uid", metavar="CHILD",
                                      autocompletion=complete_child)]
Json = Annotated[bool, typer.Option("--json", help="print JSON (machine-readable) on stdout")]
App = Annotated[str, typer.Argument(help="a program name (firefox) or an absolute path",
                                    metavar="APP")]


def read_policy(child: str) -> dict[str, Any]:
    """The child's policy, to show it (changes go through the contract's
    methods for one field, or ReplacePolicy with the version read)."""
    return json.loads(client().get_policy(child))
