"""A restarted collector enforces the rules it had, from its rules file,
while it loads. A module of its own: it starts its own collectors, which
must own the bus name."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.fixtures.collector import CollectorDaemon
from tests.helpers import run_as, uid_of

pytestmark = [pytest.mark.bpf, pytest.mark.bus]


def test_a_restarted_collector_enforces_the_saved_rules_before_it_is_ready(system_bus, child_user):
    """Rules come back from the rules file while the collector loads, not
    when the policy daemon gets round to pushing them again."""
    tmp_path = Path(tempfile.mkdtemp(prefix="dots-rules-"))  # readable by the child
    tmp_path.chmod(0o755)
    game = tmp_path / "game"
    shutil.copy2("/usr/bin/id", game)
    rules = tmp_path / "state" / "rules.json"
    uid = uid_of(child_user)

    first = CollectorDaemon(system_bus, extra=("--rules-file", str(rules)))
    try:
        reply = first.root.call("org.dots.Collector1", "/org/dots/Collector1",
                                "org.dots.Collector1", "SetBlockedExecutables", "uas",
                                [uid, [str(game)]])
        assert "ok" in reply, reply
    finally:
        first.stop()
    assert oct(rules.stat().st_mode & 0o777) == "0o600"

    second = CollectorDaemon(system_bus, extra=("--rules-file", str(rules)))
    try:  # ready now: nobody pushed anything to this one
        assert run_as(child_user, [str(game)]).returncode == -9
        state = second.root.call("org.dots.Collector1", "/org/dots/Collector1",
                                 "org.dots.Collector1", "GetEnforcement")["ok"][0]
        assert str(game) in str(state["blocked_executables"])
    finally:
        second.stop()
        shutil.rmtree(tmp_path, ignore_errors=True)
