"""The parents' rules bite, end to end: the collector (root) with its
enforcers, dots-policyd (its own user) deciding, a parent setting rules with
real calls, a child user running things. No component is called directly."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading

import pytest

from tests.helpers import as_user, run_as, uid_of, wait_for

pytestmark = [pytest.mark.bpf, pytest.mark.bus]

CONNECT = ("import socket, sys\n"
           "s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)\n"
           "try:\n"
           "    s.connect((sys.argv[1], int(sys.argv[2]))); print('connected')\n"
           "except OSError as e:\n"
           "    print(e.errno)\n")


@pytest.fixture
def child(collector_daemon, policyd_daemon, family_client, parent_user, child_user):
    parent = family_client(parent_user)
    parent.ok("AddChild", "ss", child_user, "13-17")
    wait_for(lambda: collector_daemon.status()["uids"] == [uid_of(child_user)],
             what="the collector to watch the child")
    yield parent
    parent.ok("RemoveChild", "s", child_user)


def test_blocked_app_and_its_copy_are_killed_at_exec(child, bus_client, child_user, other_user):
    parent = child
    workdir = tempfile.mkdtemp(prefix="dots-e2e-")
    os.chmod(workdir, 0o755)
    game = os.path.join(workdir, "game")
    shutil.copy2("/usr/bin/id", game)
    listener = bus_client(child_user).listen("org.dots.Family1", "org.dots.Family1")  # its own signals
    try:
        parent.ok("BlockApp", "ss", child_user, game)
        killed = wait_for(lambda: (r := run_as(child_user, [game])).returncode == -9 and r,
                          timeout=30, what="the blocked app to be killed")
        assert killed.stdout == "", "killed before it ran its own code"
        assert run_as(other_user, [game]).returncode == 0, "another user is not affected"

        copy = os.path.join(workdir, "renamed-copy")
        shutil.copy2(game, copy)
        assert run_as(child_user, [copy]).returncode == -9, "the block follows the program"

        listener.wait_until(lambda l: any(s["member"] == "AppBlocked" for s in l.signals),
                            what="AppBlocked")
        signals = listener.finish()
        uid, path = next(s["body"] for s in signals if s["member"] == "AppBlocked")
        assert uid == uid_of(child_user) and path in (game, copy)

        parent.ok("UnblockApp", "ss", child_user, game)
        wait_for(lambda: run_as(child_user, [game]).returncode == 0, timeout=30,
                 what="the unblocked app to run again")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def server_127_0_0_2():
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.2", 0))
    server.listen(16)
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                server.accept()[0].close()
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def test_blocked_site_is_refused_for_the_child_only(child, child_user, parent_user, server_127_0_0_2):
    parent = child
    port = str(server_127_0_0_2)

    def child_connect() -> str:
        return run_as(child_user, ["/usr/bin/python3", "-c", CONNECT, "127.0.0.2", port]).stdout.strip()

    assert child_connect() == "connected"
    parent.ok("BlockSite", "ss", child_user, "127.0.0.2")
    wait_for(lambda: child_connect() == str(errno.EPERM), timeout=30,
             what="the child's connect to be refused with EPERM")
    assert run_as(parent_user, ["/usr/bin/python3", "-c", CONNECT, "127.0.0.2", port]).stdout.strip() \
        == "connected"
    parent.ok("UnblockSite", "ss", child_user, "127.0.0.2")
    wait_for(lambda: child_connect() == "connected", timeout=30, what="the site unblocked")


async def test_time_limit_locks_the_childs_session(child, mock_logind, policyd_daemon, bus_client,
                                                   child_user, other_user, parent_user):
    parent = child
    uid = uid_of(child_user)
    parent.ok("SetDailyLimit", "sii", child_user, 30, 30)
    parent.ok("SetAllowedHours", "sasas", child_user, ["all"], ["00:00-24:00"])  # only the budget
    # today already used up to 2 seconds before the limit
    today = dt.date.today().isoformat()
    policyd_daemon.sql("INSERT INTO screen_time_daily (uid, day, seconds_used, seconds_granted) "
                       "VALUES (?, ?, ?, 0) ON CONFLICT (uid, day) DO UPDATE SET "
                       "seconds_used = excluded.seconds_used", [uid, today, 30 * 60 - 2])
    listener = bus_client(parent_user).listen("org.dots.Family1", "org.dots.Family1")  # a parent hears
    # (not the child: a listener of its own would be its busy process outside the session)
    await mock_logind.add_session("e2e", uid, child_user)

    async def locked() -> bool:
        return ("LockSession", ["e2e"]) in await mock_logind.calls()

    import asyncio
    deadline = asyncio.get_running_loop().time() + 30
    while not await locked():
        assert asyncio.get_running_loop().time() < deadline, "no LockSession within 30 s"
        await asyncio.sleep(0.1)
    listener.wait_until(lambda l: any(s["member"] == "LimitReached" for s in l.signals),
                        what="LimitReached")
    signals = listener.finish()
    assert [uid, "daily"] in [s["body"] for s in signals if s["member"] == "LimitReached"]
    assert any(s["member"] == "TimeWarning" and s["body"][0] == uid for s in signals), (signals, policyd_daemon.log()[-3000:])


def limit_game_to_a_minute_nearly_used(parent, policyd_daemon, child_user: str, game: str) -> None:
    """The game has a one-minute daily limit, of which 58 s ran today."""
    policy = json.loads(parent.ok("GetPolicy", "s", child_user)[0])
    policy["allowed_hours"] = {}
    policy["app_limits_minutes"] = {game: 1}
    parent.ok("SetPolicy", "ss", child_user, json.dumps(policy))
    policyd_daemon.sql("INSERT INTO app_usage_daily (uid, day, app, active_seconds, launches) "
                       "VALUES (?, ?, ?, 58, 1)", [uid_of(child_user), dt.date.today().isoformat(),
                                                   game])


def test_per_app_limit_kills_the_running_app_and_blocks_it_for_the_day(
        child, policyd_daemon, bus_client, child_user, other_user):
    parent = child
    uid = uid_of(child_user)
    workdir = tempfile.mkdtemp(prefix="dots-e2e-app-")
    os.chmod(workdir, 0o755)
    game = os.path.join(workdir, "game")
    shutil.copy2("/bin/sleep", game)  # a program that runs until stopped
    try:
        # today the game already ran 2 seconds short of its minute
        limit_game_to_a_minute_nearly_used(parent, policyd_daemon, child_user, game)
        listener = bus_client(child_user).listen("org.dots.Family1", "org.dots.Family1")  # its own signals
        running = subprocess.Popen(as_user(child_user, [game, "600"]))
        try:
            assert running.wait(timeout=60) == -9, "the running game is killed at the limit"
        finally:
            running.kill()
        listener.wait_until(lambda l: [uid, f"app:{game}"] in
                            [s["body"] for s in l.signals if s["member"] == "LimitReached"],
                            what="LimitReached app:")
        listener.finish()
        assert run_as(child_user, [game, "0"]).returncode == -9, "blocked until tomorrow"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_symlink_and_modified_copy_count_against_the_per_app_limit(
        child, policyd_daemon, bus_client, child_user, other_user):
    """The child runs the limited game through its own symlink: the time is
    the game's, the limit stops it; a copy with bytes appended is the same
    app, blocked for the day too."""
    parent = child
    workdir = tempfile.mkdtemp(prefix="dots-e2e-applink-")
    os.chmod(workdir, 0o755)
    game = os.path.join(workdir, "game")
    shutil.copy2("/bin/sleep", game)
    mine = os.path.join(workdir, "mine")
    os.mkdir(mine)
    os.chmod(mine, 0o1777)
    link, copy = os.path.join(mine, "homework"), os.path.join(mine, "notes")
    try:
        assert run_as(child_user, ["/bin/ln", "-s", game, link]).returncode == 0
        assert run_as(child_user, ["/bin/sh", "-c", f"cat {game} > {copy}; echo x >> {copy}; "
                                   f"chmod 755 {copy}"]).returncode == 0
        limit_game_to_a_minute_nearly_used(parent, policyd_daemon, child_user, game)
        running = subprocess.Popen(as_user(child_user, [link, "600"]))
        try:
            assert running.wait(timeout=60) == -9, "the game run through a symlink is stopped"
        finally:
            running.kill()
        assert run_as(child_user, [copy, "600"], timeout=60).returncode == -9, \
            "a modified copy is the same app, blocked until tomorrow"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_allow_list_mode_lets_only_listed_and_system_programs_run(child, child_user, other_user):
    parent = child
    workdir = tempfile.mkdtemp(prefix="dots-e2e-allow-")
    os.chmod(workdir, 0o755)
    homework, game = os.path.join(workdir, "homework"), os.path.join(workdir, "game")
    shutil.copy2("/usr/bin/id", homework)
    shutil.copy2("/usr/bin/uname", game)
    try:
        policy = json.loads(parent.ok("GetPolicy", "s", child_user)[0])
        policy.update(allowed_hours={}, allow_list_only=True, allowed_apps=[homework])
        parent.ok("SetPolicy", "ss", child_user, json.dumps(policy))
        wait_for(lambda: run_as(child_user, [game]).returncode == -9, timeout=30,
                 what="an unlisted program to be killed")
        assert run_as(child_user, [homework]).returncode == 0, "a listed program runs"
        assert run_as(child_user, ["/usr/bin/true"]).returncode == 0, "a default system program runs"
        assert run_as(other_user, [game]).returncode == 0, "another user is not affected"

        policy["allow_list_only"], policy["allowed_apps"] = False, []
        parent.ok("SetPolicy", "ss", child_user, json.dumps(policy))
        wait_for(lambda: run_as(child_user, [game]).returncode == 0, timeout=30,
                 what="allow-list mode to end")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
