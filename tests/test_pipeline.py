"""The whole path, daemons as they run in production: the collector as root,
dots-policyd as its own user, a parent and a child as real users."""

from __future__ import annotations

import pytest

from tests.fixtures.collector import CollectorDaemon
from tests.helpers import run_as, uid_of, wait_for

pytestmark = [pytest.mark.bpf, pytest.mark.bus]


def test_a_childs_exec_reaches_the_parents_history(collector_daemon, policyd_daemon,
                                                    family_client, parent_user, child_user):
    parent = family_client(parent_user)
    child = uid_of(child_user)
    parent.ok("AddChild", "ss", child_user, "8-12")
    wait_for(lambda: collector_daemon.status()["uids"] == [child],
             what="the collector to watch the new child only")

    run_as(child_user, ["/usr/bin/env", "/usr/bin/true"])

    def stored_exec():
        events = parent.ok("GetRecentEvents", "ssu", child_user, "process", 50)[0]
        return [e for e in events if e.get("type") == "exec" and e.get("path") == "/usr/bin/true"]

    event = wait_for(stored_exec, timeout=30, what="the exec in the history")[0]
    assert event["uid"] == child and event["comm"] == "true"

    parent.ok("RemoveChild", "s", child_user)
    wait_for(lambda: collector_daemon.status()["monitoring"] == "nobody",
             what="the collector to watch nobody once there are no children")


def test_collector_leaving_is_reported_and_a_new_one_is_resynced(
        collector_daemon, policyd_daemon, family_client, bus_client, parent_user, child_user,
        other_user, system_bus):
    parent = family_client(parent_user)
    child = uid_of(child_user)
    parent.ok("AddChild", "ss", child_user, "13-17")
    wait_for(lambda: collector_daemon.status()["uids"] == [child], what="the child watched")

    listener = bus_client(parent_user).listen("org.dots.Family1", "org.dots.Family1")  # parents only
    collector_daemon.stop()
    listener.wait_until(lambda l: any(s["member"] == "TamperDetected" for s in l.signals),
                        what="TamperDetected")
    signals = listener.finish()
    kind, detail = next(s["body"] for s in signals if s["member"] == "TamperDetected")
    assert kind == "collector" and "left the bus" in detail
    audit = parent.ok("GetAuditLog", "u", 20)[0]
    assert any(entry[3] == "tamper" for entry in audit), audit

    replacement = CollectorDaemon(system_bus)
    try:
        wait_for(lambda: replacement.status()["uids"] == [child], timeout=30,
                 what="the policy daemon to resync the new collector")
    finally:
        parent.ok("RemoveChild", "s", child_user)
        replacement.stop()

