"""The household agent in process, against the throwaway PostgreSQL: the
household file is refused when others can read it or when a remote server
is reached without TLS; a child's machine applies the household policy,
and a change made locally on it (which its role may not push) is refused
by the database and undone locally."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time

import pytest

from dots_policyd.db import open_database
from dots_policyd.family import Family
from dots_policyd.household import roles
from dots_policyd.household.agent import HouseholdAgent
from dots_policyd.household.identity import HouseholdConfigError, load_config
from dots_policyd.household.store import HouseholdStore
from dots_policyd.migrations import migrate
from dots_policyd.schema import Child

A, B = "a1" * 16, "b2" * 16


def write(path, data, mode=0o600):
    path.write_text(json.dumps(data))
    path.chmod(mode)
    return path


def test_household_file_must_be_private_and_remote_needs_tls(tmp_path):
    url = "postgresql://dots_m_x:secret@/dots?host=/run/postgresql"
    assert load_config(write(tmp_path / "ok.conf", {"url": url, "machine_id": A})).machine_id == A
    with pytest.raises(HouseholdConfigError, match="readable by others"):
        load_config(write(tmp_path / "open.conf", {"url": url, "machine_id": A}, 0o640))
    with pytest.raises(HouseholdConfigError, match="sslmode"):
        load_config(write(tmp_path / "plain.conf", {"url": "postgresql://u:p@db.example/dots",
                                                   "machine_id": A}))
    with pytest.raises(HouseholdConfigError, match="sslmode"):
        load_config(write(tmp_path / "weak.conf", {"url": "postgresql://u:p@db.example/dots?sslmode=prefer",
                                                  "machine_id": A}))
    remote = "postgresql://u:p@db.example/dots?sslmode=verify-full"
    assert load_config(write(tmp_path / "tls.conf", {"url": remote, "machine_id": A})).url == remote
    with pytest.raises(HouseholdConfigError, match="not 32 hex digits"):
        load_config(write(tmp_path / "id.conf", {"url": url, "machine_id": "../../etc"}))


@pytest.fixture
def household(postgres_db_url):
    """Machine A (parents) and B (a child's laptop); A's store, open."""
    roles.init(postgres_db_url)
    urls = {}
    for mid, name, parents in ((A, "living-room", True), (B, "laptop", False)):
        role, password = roles.add_machine(postgres_db_url, mid, name, parents)
        urls[mid] = roles.machine_url(postgres_db_url, role, password)
    living_room = HouseholdStore(urls[A], A)
    living_room.open()
    yield urls, living_room
    living_room.close()


async def until(condition, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def test_childs_machine_cannot_change_the_policy(household, tmp_path, child_user, parent_user):
    urls, living_room = household
    household_policy = '{"blocked_apps": ["/usr/bin/yes"]}'
    living_room.push_policy("kid", household_policy, 0, 0, "mum", "set_policy", None)

    db = open_database(tmp_path / "laptop.db")
    migrate(db)
    family = Family(db)
    config = write(tmp_path / "household.conf", {"url": urls[B], "machine_id": B, "machine_name": "laptop",
                                                 "members": {child_user: "kid"}, "sync_seconds": 0.5})
    agent = HouseholdAgent(load_config(config), db, family)

    def local_policy():
        row = Child.get_or_none(Child.name == child_user)
        return None if row is None else json.loads(row.policy)

    async def scenario():
        await agent.start()
        try:
            await until(lambda: local_policy() is not None and local_policy()["blocked_apps"] == ["/usr/bin/yes"],
                        what="the laptop to apply the household policy to its account")
            # a parent's account is never made a child, whatever the household calls its members
            living_room.push_policy(parent_user, '{}', 0, 0, "mum", "set_policy", None)
            await until(lambda: parent_user in agent.applied, what="the laptop to see that member")
            assert Child.get_or_none(Child.name == parent_user) is None
            # someone with the laptop's parent rights (or root on it) unblocks the app locally
            family.unblock_app(0, child_user, "/usr/bin/yes")
            assert local_policy()["blocked_apps"] == []
            await until(lambda: local_policy()["blocked_apps"] == ["/usr/bin/yes"],
                        what="the refused change to be undone on the laptop")
            assert living_room.policies()["kid"][0] == 1, "the household policy must not change"
            assert agent.online
        finally:
            await agent.stop()

    asyncio.run(scenario())
    db.close()


def test_restart_while_offline_keeps_the_other_machines_time(household, tmp_path, child_user):
    """Pulling the cable and rebooting must not give the child time back:
    the other machines' time, as last known, is kept locally."""
    urls, living_room = household
    living_room.push_policy("kid", '{"daily_limit_minutes": 60}', 0, 0, "mum", "set_policy", None)
    midnight = dt.datetime.combine(dt.date.today(), dt.time()).astimezone().timestamp()
    living_room.upload_intervals([(1, "kid", midnight + 60, midnight + 1260)])  # 20 min today

    db = open_database(tmp_path / "laptop.db")
    migrate(db)
    family = Family(db)
    online = write(tmp_path / "online.conf", {"url": urls[B], "machine_id": B, "sync_seconds": 0.5,
                                              "members": {child_user: "kid"}})
    offline = write(tmp_path / "offline.conf", {"url": urls[B].replace("?host=", "?host=/nonexistent"),
                                                "machine_id": B, "sync_seconds": 0.5,
                                                "members": {child_user: "kid"}})
    today = dt.date.today()

    async def run(config, condition, what):
        agent = HouseholdAgent(load_config(config), db, family)
        await agent.start()
        try:
            await until(lambda: condition(agent), what=what)
            return agent.usage.member_used("kid", today, today)
        finally:
            await agent.stop()

    assert asyncio.run(run(online, lambda a: a.online and a.usage.remote.get("kid"),
                           "the laptop to learn the living room's time")) >= 1199
    # "rebooted" without the network: the living room's 20 minutes still count
    assert asyncio.run(run(offline, lambda a: a.last_error, "the laptop to find the database away")) >= 1199
    db.close()


def test_a_bad_household_policy_is_not_applied(household, tmp_path, child_user):
    """A policy this machine cannot read (a newer program's, or a forged
    one) leaves the last good one in force and the sync running."""
    urls, living_room = household
    living_room.push_policy("kid", '{"daily_limit_minutes": 60}', 0, 0, "mum", "set_policy", None)
    db = open_database(tmp_path / "laptop.db")
    migrate(db)
    family = Family(db)
    config = write(tmp_path / "household.conf", {"url": urls[B], "machine_id": B, "sync_seconds": 0.3,
                                                 "members": {child_user: "kid"}})
    agent = HouseholdAgent(load_config(config), db, family)

    async def scenario():
        await agent.start()
        try:
            await until(lambda: agent.applied.get("kid", (0,))[0] == 1, what="version 1 applied")
            living_room.push_policy("kid", '{"daily_limit_minutes": "lots"}', 1, 0, "mum", "set_policy", None)
            pushed = time.time()
            await until(lambda: agent.last_contact > pushed, what="a sync after the bad version")
            after = agent.last_contact
            await until(lambda: agent.last_contact > after, what="a second one: the sync goes on")
            assert agent.applied["kid"][0] == 1 and agent.online
            assert json.loads(Child.get(Child.name == child_user).policy)["daily_limit_minutes"] == 60
        finally:
            await agent.stop()

    asyncio.run(scenario())
    db.close()


def test_daemon_refuses_a_household_file_others_can_read():
    """dots-policyd does not start with credentials readable by others
    (and says so before it touches anything)."""
    import pwd
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    from dots_common.names import POLICYD_USER
    from tests.helpers import REPO, as_user

    pw = pwd.getpwnam(POLICYD_USER)
    workdir = Path(tempfile.mkdtemp(prefix="dots-hh-refuse-"))
    shutil.chown(workdir, pw.pw_uid, pw.pw_gid)
    config = write(workdir / "household.conf", {"url": "postgresql://x:y@/dots?host=/nonexistent",
                                                "machine_id": A}, 0o644)
    shutil.chown(config, pw.pw_uid, pw.pw_gid)
    done = subprocess.run(as_user(POLICYD_USER, [str(REPO / ".venv" / "bin" / "dots-policyd"),
                                                 "--database", str(workdir / "dots.db"),
                                                 "--household", str(config)]),
                          capture_output=True, text=True, timeout=60)
    try:
        assert done.returncode != 0 and "readable by others" in done.stderr, done
        assert not (workdir / "dots.db").exists(), "nothing is touched before the check"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
