"""Tamper evidence: a database edited by hand, outside dots-policyd, is
reported (TamperDetected and an audit row). A module of its own: it runs
its own policy daemon, which must own the bus name."""

from __future__ import annotations

import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.fixtures.policyd import PolicyDaemon

pytestmark = pytest.mark.bus

def test_a_hand_edited_database_is_reported(system_bus, polkit_daemon, family_client, bus_client,
                                            parent_user, child_user, other_user):
    workdir = Path(tempfile.mkdtemp(prefix="dots-policyd-"))
    pw = pwd.getpwnam("dots-policyd")
    shutil.chown(workdir, pw.pw_uid, pw.pw_gid)
    daemon = PolicyDaemon(system_bus, workdir, extra=("--integrity-interval", "0.2"))
    try:
        parent = family_client(parent_user)
        parent.ok("AddChild", "ss", child_user, "8-12")
        listener = bus_client(parent_user).listen("org.dots.Family1", "org.dots.Family1")  # parents only
        parent.ok("SetDailyLimit", "sii", child_user, 90, 120)  # the daemon's own change: no alarm
        daemon.sql("UPDATE child SET policy = replace(policy, '90', '900')")
        listener.wait_until(lambda l: any(s["member"] == "TamperDetected" for s in l.signals),
                            what="TamperDetected")
        signals = listener.finish()
        tampers = [s["body"] for s in signals if s["member"] == "TamperDetected"]
        assert [kind for kind, _ in tampers] == ["database"], "reported once, and only the edit"
        audit = parent.ok("GetAuditLog", "u", 5)[0]
        assert any(e[3] == "tamper" and e[4] == "database" for e in audit), audit
    finally:
        daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)
