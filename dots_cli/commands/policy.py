"""``dotsctl policy``: a child's whole policy (show, set, edit), the presets
and the schema. ``edit`` saves with ReplacePolicy and the version it read,
so that it cannot overwrite another parent's change made meanwhile."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import render
from ..client import ERROR_PREFIX, EXIT_FAILED, CliError
from ..render import console, print_json
from .common import Child, Json, client, read_policy, say, usage_error, version_text

group = typer.Typer(help="Show, replace or edit a child's whole policy; presets.",
                    no_args_is_help=True)


@group.command("show")
def policy_show(child: Child, as_json: Json = False) -> None:
    """A child's rules."""
    policy = read_policy(child)
    if as_json:
        print_json(policy)
    else:
        console.print(render.policy_view(policy))


@group.command("set")
def policy_set(
    child: Child,
    file: Annotated[str, typer.Argument(help="a JSON policy document, '-' for stdin "
                                             "(see: dotsctl policy show CHILD --json)")],
) -> None:
    """Replace a child's whole policy with a JSON document."""
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
    except OSError as exc:
        raise usage_error(f"cannot read {file}: {exc.strerror}") from None
    version = client().set_policy(child, text)
    say(f"Policy of {child} replaced {version_text(version)}.")


def _editor() -> list[str]:
    for var in ("VISUAL", "EDITOR"):
        if os.environ.get(var):
            return shlex.split(os.environ[var])
    for name in ("sensible-editor", "editor", "nano", "vi"):
        if shutil.which(name):
            return [name]
    raise CliError("no editor found: set EDITOR", EXIT_FAILED)


def _try_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


@group.command("edit")
def policy_edit(child: Child) -> None:
    """Edit a child's policy in $EDITOR; saved when valid.

    When another parent changed the policy while you were editing, nothing is saved
    and your text is kept in a file (dotsctl says where)."""
    c = client()
    base, document = c.get_versioned_policy(child)
    original = json.dumps(json.loads(document), indent=2) + "\n"
    fd, path = tempfile.mkstemp(prefix=f"dots-policy-{child}-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        f.write(original)
    while True:
        code = subprocess.call([*_editor(), path])
        if code != 0:
            raise CliError(f"the editor failed (exit {code}); nothing changed, your text is in {path}")
        text = Path(path).read_text()
        if json.dumps(_try_json(text)) == json.dumps(json.loads(original)):
            os.unlink(path)
            say("No change.")
            return
        try:
            version = c.replace_policy(child, base, text)
        except CliError as exc:
            if exc.dbus_name == ERROR_PREFIX + "StalePolicy":
                raise CliError(f"another parent changed the policy of {child} while you were "
                               f"editing it: nothing saved (see the new policy with: dotsctl "
                               f"policy show {child}); your text is in {path}",
                               EXIT_FAILED, exc.dbus_name) from None
            if exc.exit_code != EXIT_FAILED or not sys.stdin.isatty():
                raise CliError(f"{exc.message}; nothing changed, your text is in {path}",
                               exc.exit_code) from None
            console.print(f"dotsctl: {exc.message}", style="red", markup=False)
            if not typer.confirm("Edit again?", default=True):
                raise CliError(f"nothing changed, your text is in {path}") from None
            continue
        os.unlink(path)
        say(f"Policy of {child} saved {version_text(version)}.")
        return


@group.command("presets")
def policy_presets(as_json: Json = False) -> None:
    """Starting-point rules by age group (for: dotsctl child add USER --preset NAME)."""
    presets = client().list_presets()
    if as_json:
        print_json([{"name": n, "description": d} for n, d in presets])
    else:
        console.print(render.table(None, ["PRESET", "RULES"], presets))


@group.command("schema")
def policy_schema() -> None:
    """The JSON schema of a policy document."""
    print_json(json.loads(client().policy_schema()))


def register(root: typer.Typer) -> None:
    root.add_typer(group, name="policy")
