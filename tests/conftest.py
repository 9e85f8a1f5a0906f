"""Fixtures shared by the whole suite.

Tests marked ``bpf`` need root and a BPF-capable kernel. Outside CI they
are skipped on a machine without those; with CI=true they FAIL instead, so
a CI machine that lost BPF cannot pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.helpers import ensure_user

pytest_plugins = ["tests.fixtures.postgres", "tests.fixtures.bus", "tests.fixtures.collector",
                  "tests.fixtures.polkit", "tests.fixtures.policyd", "tests.fixtures.logind"]

IN_CI = os.environ.get("CI", "").lower() == "true"

def _afternoon_tz() -> str:
    """A fixed-offset zone in which it is now between 16:00 and 16:59.

    The presets' allowed hours (15:00-18:30 and 14:00-22:00 on school days,
    up to 08:00-23:00 at weekends) all hold the late afternoon. The
    tests that add a child with a preset and then run its programs would
    otherwise depend on the hour CI runs at: at night the policy daemon
    rightly ends the child's session and kills them. The test process and
    every process it starts through helpers.as_user (the policy daemons
    included) share this zone, so "today" is the same day for all of them.
    Tests about hours and time zones set their own clocks and zones."""
    offset = (16 - time.gmtime().tm_hour) % 24  # local = UTC + offset hours
    if offset > 12:
        offset -= 24
    return f"DOTS{-offset:+d}"  # POSIX counts the offset west of UTC


os.environ["TZ"] = os.environ.get("DOTS_TEST_TZ") or _afternoon_tz()
time.tzset()

# No collector the tests start keeps or restores enforcement rules, unless a
# test asks for a rules file of its own: one test's rules must not bite another.
os.environ["DOTS_RULES_FILE"] = ""

#: real accounts used by the tests; DOTS_TEST_USERS names another set, so
#: that two test runs on one machine never enforce upon each other's users
_PREFIX = os.environ.get("DOTS_TEST_USERS", "dots-test")
CHILD = f"{_PREFIX}-child"
OTHER = f"{_PREFIX}-other"
PARENT = f"{_PREFIX}-parent"
#: a user nobody else runs anything as, so that every event of its uid --
#: delivered or lost -- comes from one storm
STORM = f"{_PREFIX}-storm"

# The collectors the tests start pin their BPF objects here, not in an
# installed collector's /sys/fs/bpf/dots (and not in another test run's).
PIN_DIR = f"/sys/fs/bpf/{_PREFIX}"
os.environ["DOTS_PIN_DIR"] = PIN_DIR


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A collector a test killed leaves its programs pinned (by design):
    nothing of this run stays attached after it."""
    from dots_collector.pinning import unpin_tree

    unpin_tree(Path(PIN_DIR))


def bpf_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        return "kernel has no BTF"
    if not os.path.ismount("/sys/kernel/tracing"):
        return "tracefs is not mounted at /sys/kernel/tracing"
    try:
        import bcc  # noqa: F401
    except ImportError as e:
        return f"bcc is not importable: {e}"
    return None


def bus_unavailable() -> str | None:
    if shutil.which("dbus-daemon") is None:
        return "dbus-daemon is not installed"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark, check in (("bpf", bpf_unavailable), ("bus", bus_unavailable)):
        if item.get_closest_marker(mark):
            reason = check()
            if reason:
                if IN_CI:
                    pytest.fail(f"CI=true and {mark} is unavailable: {reason}", pytrace=False)
                pytest.skip(reason)


@pytest.fixture(scope="session")
def child_user() -> str:
    ensure_user(CHILD)
    return CHILD


@pytest.fixture(scope="session")
def other_user() -> str:
    ensure_user(OTHER)
    return OTHER


@pytest.fixture(scope="session")
def parent_user() -> str:
    ensure_user(PARENT, groups=["dots-parents"])
    return PARENT


@pytest.fixture(scope="session")
def storm_user() -> str:
    ensure_user(STORM)
    return STORM


@pytest.fixture
def db(tmp_path):
    """A migrated SQLite database of the policy daemon (modules that test
    both SQLite and PostgreSQL define their own)."""
    from dots_policyd.db import open_database
    from dots_policyd.migrations import migrate

    database = open_database(tmp_path / "dots.db")
    migrate(database)
    yield database
    database.close()
