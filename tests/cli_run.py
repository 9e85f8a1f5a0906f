"""Running dotsctl as a real user in the CLI tests: the command, its
checks (exit code, one-line errors, no traceback) and the fixtures that
give a freshly registered child and a folder for EDITOR scripts."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.helpers import REPO, run_as

PYTHON = str(REPO / ".venv" / "bin" / "python")
DOTSCTL = str(REPO / ".venv" / "bin" / "dotsctl")
NEEDS_PARENT = "dotsctl: not authorized: this needs a parent (a member of the group dots-parents, or root)"


def ctl(user: str, *args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    return run_as(user, [DOTSCTL, *args], env={"COLUMNS": "200", **(env or {})}, timeout=120, **kw)


def ok(user: str, *args: str, **kw) -> str:
    out = ctl(user, *args, **kw)
    assert out.returncode == 0, f"dotsctl {' '.join(args)} as {user}: {out.returncode}\n{out.stderr}"
    assert out.stderr == "", out.stderr
    return out.stdout


def ok_json(user: str, *args: str):
    return json.loads(ok(user, *args, "--json"))


def one_line_error(out: subprocess.CompletedProcess, code: int) -> str:
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    line = out.stderr.rstrip("\n")
    assert "\n" not in line and line.startswith("dotsctl: "), out.stderr
    assert "Traceback" not in out.stderr
    return line


@pytest.fixture
def kid(policyd_daemon, parent_user, child_user) -> str:
    """The child, registered afresh with the 8-12 preset."""
    children = [c["name"] for c in ok_json(parent_user, "child", "list")]
    if child_user in children:
        ok(parent_user, "child", "remove", child_user)
    ok(parent_user, "child", "add", child_user, "--preset", "8-12")
    return child_user


@pytest.fixture
def editor_dir():
    folder = Path(tempfile.mkdtemp(prefix="dots-editor-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
