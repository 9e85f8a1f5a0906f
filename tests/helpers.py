"""Small helpers shared by the tests: waiting on a condition with a
deadline, and running commands as the real test users."""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
VENV_PYTHON = str(REPO / ".venv" / "bin" / "python")


def wait_for(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.02,
              what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy; fail after
    ``timeout`` seconds saying what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def as_user(user: str, argv: Sequence[str], env: dict[str, str] | None = None) -> list[str]:
    """argv run as ``user`` (real and effective ids, groups) via setpriv,
    with a clean environment plus ``env`` (and the system bus address of
    the test's private bus and the suite's time zone, when they are set)."""
    pw = pwd.getpwnam(user)
    extra = dict(env or {})
    if "DBUS_SYSTEM_BUS_ADDRESS" in os.environ:
        extra.setdefault("DBUS_SYSTEM_BUS_ADDRESS", os.environ["DBUS_SYSTEM_BUS_ADDRESS"])
    if "TZ" in os.environ:  # the suite's zone (conftest.py), unless env names one
        extra.setdefault("TZ", os.environ["TZ"])
    prefix = ["/usr/bin/env", *(f"{k}={v}" for k, v in extra.items())] if extra else []
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups",
            "--reset-env", *prefix, *argv]


def run_as(user: str, argv: Sequence[str], check: bool = False, env: dict[str, str] | None = None,
           **kw) -> subprocess.CompletedProcess:
    return subprocess.run(as_user(user, argv, env), check=check, capture_output=True, text=True, **kw)


def popen_as(user: str, argv: Sequence[str], env: dict[str, str] | None = None,
             **kw) -> subprocess.Popen:
    return subprocess.Popen(as_user(user, argv, env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def uid_of(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


def ensure_user(name: str, groups: Sequence[str] = ()) -> int:
    """Create a real local account (idempotent) and return its uid."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True)
        pw = pwd.getpwnam(name)
    for group in groups:
        subprocess.run(["usermod", "-a", "-G", group, name], check=True)
    return pw.pw_uid


def is_root() -> bool:
    return os.geteuid() == 0


#: the memory monitor's tracepoints attached only while a watched process runs
KMEM = frozenset({"kmalloc", "kfree", "mm_page_alloc", "mm_page_free"})


def kmem_links(pid: int | str = "self") -> set[str]:
    """kmem tracepoints of the BPF links process ``pid`` holds (fdinfo)."""
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                info = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        except OSError:
            continue
        if info.get("link_type", "").strip() in ("perf", "raw_tracepoint"):
            out.add(info.get("tp_name", "").strip())
    return out & KMEM
