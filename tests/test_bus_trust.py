"""Issue 12: the policy daemon believes only the collector and the bus.

A real dots-policyd (as dots-policyd) on the private bus, a stand-in
collector owning org.dots.Collector1 as root (tests/fake_collector.py), and
the attacks a child would send as a real user (tests/forge_signal.py): a
fake "the collector left", batches framing a sibling, a batch id of
2^64-1 that would make the daemon acknowledge everything, a malformed
batch meant to kill the store loop. Each is ignored and counted; the real
collector's batches keep being stored and acknowledged."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from dots_common import names
from dots_common.records import ProcessEvent
from tests.helpers import REPO, VENV_PYTHON, run_as, uid_of, wait_for

pytestmark = pytest.mark.bus

SIG = f"ta{ProcessEvent.DBUS_SIGNATURE}"
COLLECTOR = (names.COLLECTOR_BUS_NAME, names.COLLECTOR_PATH, names.COLLECTOR_INTERFACE)


class FakeCollector:
    def __init__(self, bus, instance: str = "fake-1") -> None:
        self.process = subprocess.Popen([VENV_PYTHON, str(REPO / "tests" / "fake_collector.py"), instance],
                                        env=bus.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, cwd=REPO)
        self.lines: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.unique = wait_for(lambda: next((l["ready"] for l in self.lines if "ready" in l), None),
                               what="the stand-in collector on the bus")

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(json.loads(line))

    def calls(self, member: str) -> list[list]:
        return [l["args"] for l in list(self.lines) if l.get("call") == member]

    def emit(self, member: str, signature: str, body: list) -> None:
        sent = len([l for l in self.lines if "sent" in l])
        self.process.stdin.write(json.dumps({"member": member, "signature": signature, "body": body}) + "\n")
        self.process.stdin.flush()
        wait_for(lambda: len([l for l in self.lines if "sent" in l]) > sent, what=f"{member} sent")

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)


def exec_record(uid: int, path: str, pid: int = 4242) -> list:
    return ProcessEvent("exec", pid, 1, uid, uid, path.rsplit("/", 1)[-1][:15], path, 0,
                        10**9).to_dbus()


def forge(user: str, *signals: dict) -> None:
    out = run_as(user, [VENV_PYTHON, str(REPO / "tests" / "forge_signal.py"), json.dumps(list(signals))],
                 cwd=REPO)
    assert out.returncode == 0, out.stderr


def policyd_unique(bus_client, user: str) -> str:
    reply = bus_client(user).call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                  "org.freedesktop.DBus", "GetNameOwner", "s", [names.FAMILY_BUS_NAME])
    return reply["ok"][0]


@pytest.fixture
def fake_collector(system_bus, policyd_daemon):
    collector = FakeCollector(system_bus)
    wait_for(lambda: collector.calls("ReplayBatches"), timeout=30,
             what="the policy daemon to sync the stand-in collector")
    yield collector
    collector.stop()


def stored_paths(parent, child_user: str) -> list[str]:
    events = parent.ok("GetRecentEvents", "ssu", child_user, "process", 100)[0]
    return [e["path"] for e in events]


def test_forged_signals_are_ignored_counted_and_the_real_batches_still_stored(
        fake_collector, policyd_daemon, family_client, bus_client, parent_user, child_user,
        other_user):
    parent = family_client(parent_user)
    child = uid_of(child_user)
    parent.ok("AddChild", "ss", child_user, "13-17")
    wait_for(lambda: any(a[0] == [child] for a in fake_collector.calls("SetMonitoredUids")),
             what="the child pushed to the collector")
    daemon = policyd_unique(bus_client, other_user)

    attacks = [
        # "the collector left the bus": every real batch would then be dropped
        {"destination": daemon, "path": names.DBUS_PATH, "interface": names.DBUS_INTERFACE,
         "member": "NameOwnerChanged", "signature": "sss",
         "body": [names.COLLECTOR_BUS_NAME, fake_collector.unique, ""]},
        # a batch framing the child (a sibling's uid), with the largest id
        {"destination": daemon, "path": names.COLLECTOR_PATH, "interface": names.COLLECTOR_INTERFACE,
         "member": "ProcessEvents", "signature": SIG,
         "body": [2**64 - 1, [exec_record(child, "/usr/bin/forged-by-a-sibling")]]},
        # a malformed batch, meant to kill the store loop
        {"destination": daemon, "path": names.COLLECTOR_PATH, "interface": names.COLLECTOR_INTERFACE,
         "member": "ProcessEvents", "signature": "ss", "body": ["not", "a batch"]},
        # the same, broadcast
        {"destination": "", "path": names.COLLECTOR_PATH, "interface": names.COLLECTOR_INTERFACE,
         "member": "ProcessEvents", "signature": SIG,
         "body": [5, [exec_record(child, "/usr/bin/forged-broadcast")]]},
    ]
    forge(other_user, *attacks)
    forge(child_user, *attacks)

    # the real collector's next batch is stored and acknowledged
    fake_collector.emit("ProcessEvents", SIG, [1, [exec_record(child, "/usr/bin/real-one")]])
    wait_for(lambda: ["fake-1", 1] in fake_collector.calls("AckBatches"), timeout=30,
             what="the real batch acknowledged")
    paths = stored_paths(parent, child_user)
    assert "/usr/bin/real-one" in paths
    assert not [p for p in paths if "forged" in p], paths
    acks = [a[1] for a in fake_collector.calls("AckBatches")]
    assert max(acks) == 1, f"never acknowledged a forged id: {acks}"

    status = parent.ok("GetDaemonStatus")[0]
    assert status["collector_connected"] is True
    assert status["signals_rejected"] >= 6, status
    assert status["signals_rejected_by"].get("forged-name-owner-changed", 0) >= 2, status
    log = policyd_daemon.log()
    assert log.count("ignored a signal (not-from-the-collector)") <= 2, "the log is rate-limited"
    audit = parent.ok("GetAuditLog", "u", 50)[0]
    assert not [e for e in audit if e[3] == "tamper"], "forgeries never flood the audit log"


def test_a_malformed_batch_from_the_collector_is_acknowledged_and_the_loop_goes_on(
        fake_collector, policyd_daemon, family_client, parent_user, child_user):
    parent = family_client(parent_user)
    child = uid_of(child_user)
    if child not in [c[0] for c in parent.ok("ListChildren")[0]]:
        parent.ok("AddChild", "ss", child_user, "13-17")
    fake_collector.emit("ProcessEvents", "ts", [7, "garbage"])
    fake_collector.emit("ProcessEvents", "ta(s)", [8, [["exec"]]])
    fake_collector.emit("ProcessEvents", SIG, [9, [exec_record(child, "/usr/bin/after-garbage")]])
    wait_for(lambda: ["fake-1", 9] in fake_collector.calls("AckBatches"), timeout=30,
             what="the batch after the garbage acknowledged")
    assert "/usr/bin/after-garbage" in stored_paths(parent, child_user)
    acks = [a[1] for a in fake_collector.calls("AckBatches")]
    assert 7 in acks or 8 in acks, f"the malformed batches were acknowledged: {acks}"
    assert parent.ok("GetDaemonStatus")[0]["malformed_batches"] >= 2


def test_packed_file_batches_are_stored_with_their_counts_and_malformed_ones_refused(
        fake_collector, policyd_daemon, family_client, parent_user, child_user):
    """FileEvents carry packed structs (dots_common/packed.py): a group of
    identical opens reaches the parent's history as one event with its
    count; bytes that are not well-formed structs (cut short, a length past
    the end, not UTF-8, a NUL in a path) store nothing, are acknowledged
    and counted, and the next batch is stored."""
    from dots_common.packed import pack_file_structs

    parent = family_client(parent_user)
    child = uid_of(child_user)
    if child not in [c[0] for c in parent.ok("ListChildren")[0]]:
        parent.ok("AddChild", "ss", child_user, "13-17")
    malformed_before = parent.ok("GetDaemonStatus")[0]["malformed_batches"]

    def opened(path: str, count: int = 1) -> tuple:
        return ("open", 77, child, "cat", path, 0, 3, 0, 10**9, "", count, 10**9 + 5000)

    good = pack_file_structs([opened("/home/kid/game.sav", 500)])
    nul = pack_file_structs([opened("/home/kid/forged\x00-nul")])
    latin1 = pack_file_structs([opened("/home/kid/forged-latin1-ABC")]).replace(b"ABC", b"\xe9\xe9\xe9")
    garbage = [good[:30], good[:-3], good + b"\x01", latin1, nul,
               pack_file_structs([opened("/home/kid/forged-zero", 0)])]
    for i, data in enumerate(garbage):
        fake_collector.emit("FileEvents", "tay", [30 + i, {"hex": data.hex()}])
    fake_collector.emit("FileEvents", "tay", [40, {"hex": good.hex()}])
    wait_for(lambda: ["fake-1", 40] in fake_collector.calls("AckBatches"), timeout=30,
             what="the good batch acknowledged")
    events = parent.ok("GetRecentEvents", "ssu", child_user, "filesystem", 100)[0]
    assert [(e["path"], e["count"], e["last_ts_ns"]) for e in events] == [
        ("/home/kid/game.sav", 500, 10**9 + 5000)], "only the good batch, with its count"
    status = parent.ok("GetDaemonStatus")[0]
    assert status["malformed_batches"] >= malformed_before + len(garbage), status


def blocked_record(uid: int, path: str) -> list:
    return ProcessEvent("exec_blocked", 4343, 1, uid, uid, path.rsplit("/", 1)[-1][:15], path,
                        0, 10**9).to_dbus()


def test_a_childs_private_signals_reach_only_the_child_and_the_parents(
        fake_collector, policyd_daemon, family_client, bus_client, parent_user, child_user,
        other_user):
    parent = family_client(parent_user)
    child = uid_of(child_user)
    if child not in [c[0] for c in parent.ok("ListChildren")[0]]:
        parent.ok("AddChild", "ss", child_user, "13-17")
    stranger = bus_client(other_user).listen(names.FAMILY_BUS_NAME, names.FAMILY_INTERFACE)
    parents = bus_client(parent_user).listen(names.FAMILY_BUS_NAME, names.FAMILY_INTERFACE)
    own = bus_client(child_user).listen(names.FAMILY_BUS_NAME, names.FAMILY_INTERFACE)
    secret = "/home/child/.hidden/diary-app"
    fake_collector.emit("ProcessEvents", SIG, [20, [blocked_record(child, secret)]])
    fake_collector.emit("ProcessEvents", SIG, [21, [blocked_record(child, "/usr/bin/last")]])
    # the daemon sends each signal to its audience in order: once the parent
    # heard the last one, the stranger would have had the first
    heard = lambda l: [s["body"] for s in l.signals if s["member"] == "AppBlocked"]  # noqa: E731
    parents.wait_until(lambda l: [child, "/usr/bin/last"] in heard(l), what="the parent hears")
    own.wait_until(lambda l: [child, "/usr/bin/last"] in heard(l), what="the child hears")
    assert [child, secret] in heard(parents) and [child, secret] in heard(own)
    assert stranger.finish() == [], "another user hears nothing of the child"
    parents.finish()
    own.finish()


def test_a_childs_time_zone_changes_nothing(policyd_daemon, family_client, parent_user, child_user,
                                            system_bus):
    """The day and the allowed hours are the daemon's (its own clock and
    zone): a child running its programs with another TZ moves neither."""
    parent = family_client(parent_user)
    child = uid_of(child_user)
    if child not in [c[0] for c in parent.ok("ListChildren")[0]]:
        parent.ok("AddChild", "ss", child_user, "13-17")
    request = json.dumps([{"dest": names.FAMILY_BUS_NAME, "path": names.FAMILY_PATH,
                           "iface": names.FAMILY_INTERFACE, "member": "GetStatus",
                           "signature": "s", "args": [""]}])
    seen = []
    for tz in ("Pacific/Kiritimati", "Etc/GMT+12"):  # 26 hours apart
        out = run_as(child_user, [VENV_PYTHON, str(REPO / "tests" / "family_calls.py")],
                     env={"DBUS_SYSTEM_BUS_ADDRESS": system_bus.address, "TZ": tz},
                     input=request, cwd=REPO)
        assert out.returncode == 0, out.stderr
        status = json.loads(out.stdout)["results"][0]["ok"][0]
        seen.append((status["day"], status["in_window"], status["window_end"]))
    own = parent.ok("GetStatus", "s", child_user)[0]
    assert seen[0] == seen[1] == (own["day"], own["in_window"], own["window_end"])


async def test_a_restart_mid_day_neither_resets_nor_doubles(policyd_daemon, family_client,
                                                            parent_user, child_user, mock_logind):
    import time

    parent = family_client(parent_user)
    child = uid_of(child_user)
    if child not in [c[0] for c in parent.ok("ListChildren")[0]]:
        parent.ok("AddChild", "ss", child_user, "13-17")
    parent.ok("SetAllowedHours", "sasas", child_user, ["all"], ["00:00-24:00"])
    parent.ok("SetDailyLimit", "sii", child_user, 600, 600)
    used = lambda: parent.ok("GetStatus", "s", child_user)[0]["used_seconds"]  # noqa: E731
    start = used()
    await mock_logind.add_session("r1", child, child_user)
    wait_for(lambda: used() >= start + 10, timeout=60, what="the session counted (5 s ticks)")
    before, restarted = used(), time.monotonic()
    assert policyd_daemon.stop() == 0
    policyd_daemon.start()
    after = wait_for(lambda: (u := used()) > before and u, timeout=60,
                     what="counting to go on after the restart")
    elapsed = time.monotonic() - restarted
    assert after <= before + elapsed + 6, "neither reset nor counted twice"
