"""Household mode end to end: two simulated machines (each a dots-policyd
on its own private bus, with its own machine id, local database and a
collector stand-in that records the rules pushed to it) sharing one
throwaway PostgreSQL cluster.

Machine A ("living-room", parents may edit policies) is the session's bus
with polkit; machine B ("laptop", a child's machine) has its own bus. The
member "kid" is the local account <prefix>-child on A and <prefix>-other
on B (different uids), as on two real computers.
"""

from __future__ import annotations

import contextlib
import json
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg2
import pytest

from dots_common.names import POLICYD_USER
from dots_policyd.household import roles
from dots_policyd.household.budget import union_seconds
from tests.fixtures.bus import BusClient, PrivateBus
from tests.fixtures.collector import CollectorDaemon
from tests.fixtures.policyd import FamilyClient
from tests.fixtures.polkit import Polkit
from tests.helpers import REPO, VENV_PYTHON, as_user, popen_as, run_as, uid_of, wait_for

pytestmark = [pytest.mark.bus]

SYNC_SECONDS = 1.0  # the safety-net re-read; LISTEN/NOTIFY is what propagates

_SQL = """
import sqlite3, sys, json
con = sqlite3.connect(sys.argv[1], timeout=10)
print(json.dumps(con.execute(sys.argv[2]).fetchall()))
"""


class Machine:
    """One simulated machine: a collector stand-in and a household policyd."""

    def __init__(self, name: str, bus: PrivateBus, owner_url: str, parents: bool,
                 members: dict[str, str], real_collector: bool = False) -> None:
        self.name = name
        self.bus = bus
        self.machine_id = uuid.uuid4().hex
        self.workdir = Path(tempfile.mkdtemp(prefix=f"dots-hh-{name}-"))
        pw = pwd.getpwnam(POLICYD_USER)
        shutil.chown(self.workdir, pw.pw_uid, pw.pw_gid)
        self.workdir.chmod(0o700)
        role, password = roles.add_machine(owner_url, self.machine_id, name, parents)
        self.config = self.workdir / "household.conf"
        roles.write_config(self.config, roles.machine_url(owner_url, role, password), name,
                           machine_id=self.machine_id, members=members, sync_seconds=SYNC_SECONDS,
                           owner=(pw.pw_uid, pw.pw_gid))
        self.calls: list[dict] = []
        self.collector: CollectorDaemon | None = None
        self.standin: subprocess.Popen | None = None
        if real_collector:  # the real dots-collector (eBPF) on this machine's bus
            self.collector = CollectorDaemon(bus)
        else:
            self.standin = subprocess.Popen([VENV_PYTHON, str(REPO / "tests" / "collector_standin.py"),
                                             bus.address], cwd=REPO, stdout=subprocess.PIPE, text=True)
            assert json.loads(self.standin.stdout.readline()) == {"ready": True}
            threading.Thread(target=self._read, daemon=True).start()
        self.log_path = self.workdir / "policyd.log"
        self.process: subprocess.Popen | None = None
        self.start()

    def _read(self) -> None:
        for line in self.standin.stdout:
            self.calls.append(json.loads(line))

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            as_user(POLICYD_USER, [str(REPO / ".venv" / "bin" / "dots-policyd"),
                                   "--database", str(self.workdir / "dots.db"),
                                   "--household", str(self.config), "--log-level", "debug"],
                    env={"DBUS_SYSTEM_BUS_ADDRESS": self.bus.address}),
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/")
        log.close()
        wait_for(lambda: self.process.poll() is not None or self.bus.has_owner("org.dots.Family1"),
                 timeout=30, what=f"{self.name}'s dots-policyd")
        assert self.process.poll() is None, self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def sql(self, statement: str) -> list[list]:
        out = run_as(POLICYD_USER, [VENV_PYTHON, "-c", _SQL, str(self.workdir / "dots.db"), statement])
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def pushed(self, member: str) -> list[list]:
        return [c["body"] for c in list(self.calls) if c.get("member") == member]

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            code = self.process.wait(timeout=30)
            assert code == 0, f"{self.name}'s dots-policyd did not stop cleanly:\n{self.log()}"
            self.process = None
        if self.standin is not None:
            self.standin.terminate()
            self.standin.wait(timeout=10)
        if self.collector is not None:
            self.collector.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def two_machines(postgres_cluster, postgres_db_url, system_bus, child_user, other_user,
                 laptop_collector: bool = False):
    """The living room (session bus, parents) and the laptop (its own bus)."""
    postgres_cluster.open_to_local_users()
    roles.init(postgres_db_url)
    bus_dir = Path(tempfile.mkdtemp(prefix="dots-hh-bus-"))
    bus_dir.chmod(0o755)
    laptop_bus = PrivateBus(bus_dir)
    laptop_polkit = Polkit(laptop_bus)  # the repo's polkit files are installed by polkit_daemon
    laptop_polkit.start()
    machines = []
    try:
        machines.append(Machine("living-room", system_bus, postgres_db_url, True, {child_user: "kid"}))
        machines.append(Machine("laptop", laptop_bus, postgres_db_url, False, {other_user: "kid"},
                                real_collector=laptop_collector))
        yield machines
    finally:
        for m in machines:
            m.stop()
        laptop_polkit.stop()
        laptop_bus.stop()
        shutil.rmtree(bus_dir, ignore_errors=True)


@pytest.fixture
def household(postgres_cluster, postgres_db_url, system_bus, polkit_daemon, child_user, other_user,
              parent_user):
    with two_machines(postgres_cluster, postgres_db_url, system_bus, child_user, other_user) as machines:
        yield machines


@contextlib.contextmanager
def using(*users: str):
    """The users are 'at their machines' (a process each: no logind here)."""
    procs = [popen_as(user, ["sleep", "600"]) for user in users]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def dotsctl(user: str, *args: str) -> subprocess.CompletedProcess:
    """dotsctl as ``user`` on the session's bus (machine A)."""
    return run_as(user, [str(REPO / ".venv" / "bin" / "dotsctl"), *args], timeout=120,
                  env={"COLUMNS": "200"})


def owner_rows(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall()
    finally:
        conn.close()


def household_used(url: str, machine_id: str | None = None) -> tuple[float, float]:
    """(union, plain sum) of the member's intervals, seconds."""
    rows = owner_rows(url, "SELECT start_at, end_at FROM hh_interval WHERE member = 'kid'"
                      + (" AND machine_id = %s" if machine_id else ""), (machine_id,) if machine_id else ())
    return union_seconds(rows, 0, 2**40), sum(b - a for a, b in rows)


def test_two_machines_one_policy_one_budget(household, postgres_cluster, postgres_db_url,
                                           family_client, parent_user, child_user, other_user):
    living_room, laptop = household
    parent = family_client(parent_user)
    kid_a, kid_b = uid_of(child_user), uid_of(other_user)

    # --- one policy: the parent adds the child on A; B learns the member ----------------
    parent.ok("AddChild", "ss", child_user, "")
    wait_for(lambda: any(kid_b in body[0] for body in laptop.pushed("SetMonitoredUids")), timeout=20,
             what="the laptop to monitor its account of the member 'kid'")
    assert laptop.sql("SELECT uid FROM child") == [[kid_b]]

    # a parent blocks an app on A: B's collector gets the rule for ITS uid
    parent.ok("BlockApp", "ss", child_user, "/usr/bin/yes")
    wait_for(lambda: any(b[0] == kid_b and "/usr/bin/yes" in b[1]
                         for b in laptop.pushed("SetBlockedExecutables")),
             timeout=20, what="the block to reach the laptop's collector")
    audit = owner_rows(postgres_db_url, "SELECT m.name, a.actor_name, a.action, a.new_value FROM hh_audit a "
                       "JOIN hh_machine m USING (machine_id) WHERE a.local_id IS NULL ORDER BY a.id")  # versions
    assert audit[-1][:3] == ("living-room", parent_user, "set_policy")
    assert "/usr/bin/yes" in audit[-1][3]

    # a parent's change on the child's laptop (no --parents) is refused by the database and undone
    laptop_parent = FamilyClient(laptop.bus, parent_user)
    laptop_parent.ok("UnblockApp", "ss", other_user, "/usr/bin/yes")
    wait_for(lambda: "/usr/bin/yes" in laptop.sql("SELECT policy FROM child")[0][0], timeout=20,
             what="the laptop to undo the change it may not make")
    assert len(owner_rows(postgres_db_url, "SELECT 1 FROM hh_policy")) == 2, "the household policy changed"

    # --- one budget: simultaneous use on both machines counts once ------------------
    with using(child_user, other_user):
        wait_for(lambda: household_used(postgres_db_url)[1] >= 30, timeout=60, interval=0.5,
                 what="30 s of use, summed over both machines")
    union, total = household_used(postgres_db_url)
    assert union <= 0.75 * total, f"simultaneous use counted twice: union {union}, sum {total}"
    for m in (living_room, laptop):
        assert household_used(postgres_db_url, m.machine_id)[0] > 5, f"{m.name} recorded no time"

    # --- the database goes away mid-day ------------------------------------------------
    before, _ = household_used(postgres_db_url, laptop.machine_id)
    postgres_cluster.stop()
    try:
        status = lambda: parent.ok("GetDaemonStatus")[0]  # noqa: E731
        wait_for(lambda: status().get("household_online") is False, timeout=20,
                 what="the living room to report the household database offline")
        doctor = json.loads(dotsctl(parent_user, "doctor", "--json").stdout)
        [line] = [c for c in doctor if c["name"] == "household database"]
        assert line["state"] == "warning" and "unreachable" in line["detail"], line
        with using(other_user):
            started = time.time()
            # journalled since the database went away, never acknowledged
            wait_for(lambda: (laptop.sql("SELECT max(end_at) FROM household_interval "
                                         "WHERE uploaded_end <> end_at")[0][0] or 0) >= started + 15,
                     timeout=60, interval=0.5, what="15 s journalled on the laptop while offline")
        offline_end = laptop.sql("SELECT max(end_at) FROM household_interval")[0][0]
    finally:
        postgres_cluster.resume()
    wait_for(lambda: laptop.sql("SELECT count(*) FROM household_interval "
                                "WHERE uploaded_end <> end_at")[0][0] == 0,
             timeout=30, interval=0.5, what="the laptop to reconcile its journal")
    after, after_sum = household_used(postgres_db_url, laptop.machine_id)
    assert after >= before + 14, "offline time must count once the database is back"
    assert abs(after - after_sum) < 1, "an interval was uploaded twice"
    assert owner_rows(postgres_db_url, "SELECT max(end_at) FROM hh_interval WHERE machine_id = %s",
                      (laptop.machine_id,))[0][0] >= offline_end
    wait_for(lambda: status().get("household_online") is True, timeout=20,
             what="the living room back online")

    # --- the household's time runs out on A; B then locks at once -------------------
    parent.ok("SetDailyLimit", "sii", child_user, 1, 1)
    wait_for(lambda: laptop.sql("SELECT policy FROM child") == living_room.sql("SELECT policy FROM child"),
             timeout=20, what="the limit on the laptop")
    with using(child_user):
        wait_for(lambda: [kid_a] in living_room.pushed("KillUserProcesses"), timeout=90, interval=0.5,
                 what="the living room to end the child's time")
    laptop_used = lambda: (laptop.sql(f"SELECT coalesce(sum(seconds_used), 0) FROM screen_time_daily "  # noqa: E731
                                      f"WHERE uid = {kid_b}")[0][0])
    used_before = laptop_used()
    with using(other_user):
        wait_for(lambda: [kid_b] in laptop.pushed("KillUserProcesses"), timeout=30, interval=0.5,
                 what="the laptop to end the member's time: the household's time is used up")
    # the laptop alone had used far less than the minute: it enforced the household's budget
    assert used_before < 50 and laptop_used() - used_before <= 15, (used_before, laptop_used())
    # and the child's status there says so (the household's time, not the laptop's)
    child_b = FamilyClient(laptop.bus, other_user)
    status_b = child_b.ok("GetStatus", "s", "")[0]
    assert status_b["left_seconds"] == 0 and status_b["blocked_reason"] == "daily", status_b
    assert status_b["used_seconds"] >= 60 > laptop_used(), status_b

    # --- the child asks for more time on the laptop; a parent answers on A -------------
    heard = BusClient(laptop.bus, other_user).listen("org.dots.Family1", "org.dots.Family1")
    request_id = child_b.ok("RequestTime", "us", 10, "homework")[0]
    pending = wait_for(lambda: [r for r in parent.ok("ListHouseholdRequests")[0]
                                if r["machine"] == "laptop" and r["id"] == request_id], timeout=20,
                       what="the laptop's request to be listed on the living room")
    assert pending[0]["state"] == "pending" and pending[0]["member"] == "kid"
    listed = dotsctl(parent_user, "machine", "requests")
    assert listed.returncode == 0 and "homework" in listed.stdout and "pending" in listed.stdout, listed
    approved = dotsctl(parent_user, "machine", "approve", "laptop", str(request_id), "5")
    assert approved.returncode == 0 and "approved: 5 more minutes" in approved.stdout, approved
    again = parent.call("AnswerHouseholdRequest", "subu", laptop.machine_id, request_id, False, 0)
    assert again.get("error", "").endswith("AlreadyAnswered"), again
    heard.wait_until(lambda l: any(s["member"] == "RequestAnswered" and s["body"][:4] == [request_id, kid_b, True, 5]
                                   for s in l.signals), timeout=20,
                     what="the child to hear the answer on the laptop, where it asked")
    heard.finish()
    assert laptop.sql(f"SELECT state, granted_minutes FROM time_request WHERE id = {request_id}") == [["approved", 5]]
    # the laptop's parents may not answer the household's requests
    refused = laptop_parent.call("AnswerHouseholdRequest", "subu", laptop.machine_id, request_id, True, 5)
    assert refused.get("error", "").endswith("NotAuthorized"), refused

    # --- the household's audit: who did what, from which machine ---------------------------
    audit = json.loads(dotsctl(parent_user, "machine", "audit", "--json", "-n", "500").stdout)
    seen = {(e["machine"], e["actor"], e["action"]) for e in audit}
    assert ("living-room", parent_user, "set_policy") in seen  # the household version
    assert ("living-room", parent_user, "block_app") in seen  # the living room's own audit, forwarded
    assert ("laptop", parent_user, "unblock_app") in seen  # the refused attempt on the laptop is on record
    assert ("living-room", parent_user, "answer_request") in seen

    # --- dotsctl machine list -------------------------------------------------------------
    listing = dotsctl(parent_user, "machine", "list")
    assert listing.returncode == 0 and "living-room (this one)" in listing.stdout, listing
    assert "laptop" in listing.stdout
    machines = {m["name"]: m for m in json.loads(dotsctl(parent_user, "machine", "list", "--json").stdout)}
    assert set(machines) == {"living-room", "laptop"}
    assert machines["living-room"]["this_machine"] and not machines["laptop"]["this_machine"]
    assert machines["laptop"]["state"] == "online" and machines["laptop"]["last_contact"] > 0


@pytest.mark.bpf
def test_an_app_blocked_on_one_machine_is_killed_on_the_other(postgres_cluster, postgres_db_url, system_bus,
                                                              polkit_daemon, family_client, parent_user,
                                                              child_user, other_user):
    """The laptop runs the real collector: the parent blocks an app on the
    living room, and the laptop's kernel refuses it to the child's account
    there (another uid, the same member)."""
    with two_machines(postgres_cluster, postgres_db_url, system_bus, child_user, other_user,
                      laptop_collector=True) as (living_room, laptop):
        parent = family_client(parent_user)
        parent.ok("AddChild", "ss", child_user, "")
        wait_for(lambda: laptop.sql("SELECT uid FROM child") == [[uid_of(other_user)]], timeout=20,
                 what="the laptop to make its account of 'kid' a child")
        assert run_as(other_user, ["/usr/bin/yes", "--version"]).returncode == 0
        parent.ok("BlockApp", "ss", child_user, "/usr/bin/yes")
        blocked = wait_for(lambda: (lambda r: r if r.returncode != 0 else None)(
                               run_as(other_user, ["/usr/bin/yes", "--version"])),
                           timeout=30, interval=0.2, what="the laptop's kernel to refuse the blocked app")
        assert blocked.stdout == "", "the blocked program must not run at all"
        assert run_as(child_user, ["/usr/bin/yes", "--version"]).returncode == 0, \
            "the living room has no collector here: nothing else may be blocked"
