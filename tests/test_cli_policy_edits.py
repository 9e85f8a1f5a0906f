"""dotsctl changes a policy without losing another parent's change: every
command that changes one rule is the contract's method for that rule (no
read, edit and write back of the whole policy), and `policy edit` saves
only over the version it read. Real users, real dots-policyd and polkitd
on the private system bus (as in test_cli.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.cli_run import (DOTSCTL, PYTHON, ctl, editor_dir, kid,  # noqa: F401 (fixtures)
                           ok, ok_json, one_line_error)
from tests.helpers import popen_as, uid_of

pytestmark = pytest.mark.bus


def audit_actions(parent: str, after: int) -> list[str]:
    """The audit log's actions after entry ``after``, oldest first."""
    entries = ok_json(parent, "audit", "--limit", "100")
    return [e["action"] for e in reversed(entries) if e["id"] > after]


def last_audit_id(parent: str) -> int:
    return max([e["id"] for e in ok_json(parent, "audit", "--limit", "1")] or [0])


def test_weekly_app_limits_and_allow_list_by_method(kid, parent_user):
    first = last_audit_id(parent_user)
    assert ok(parent_user, "limit", "weekly", kid, "10h").startswith(f"{kid}: 10 h per week (policy version")
    out = ok(parent_user, "limit", "app", kid, "firefox", "45")
    assert out.startswith(f"{kid}: firefox 45 min per day (policy version")
    ok(parent_user, "limit", "app", kid, "/usr/games/supertux", "1h")
    out = ok(parent_user, "app", "allow-list", kid, "on", "firefox", "/usr/bin/libreoffice")
    assert out.startswith(f"{kid} may run only: firefox, /usr/bin/libreoffice (policy version")
    out = ok(parent_user, "app", "allow-list", kid, "on", "gcompris")  # adds to the list
    assert out.startswith(f"{kid} may run only: firefox, /usr/bin/libreoffice, gcompris (")
    out = ok(parent_user, "app", "disallow", kid, "/usr/bin/libreoffice")
    assert out.startswith(f"/usr/bin/libreoffice is not on the allow-list of {kid} (policy version")

    policy = ok_json(parent_user, "policy", "show", kid)
    assert policy["weekly_limit_minutes"] == 600
    assert policy["app_limits_minutes"] == {"firefox": 45, "/usr/games/supertux": 60}
    assert policy["allow_list_only"] is True
    assert policy["allowed_apps"] == ["firefox", "gcompris"]
    rules = {row["app"]: row["rule"] for row in ok_json(parent_user, "app", "list", kid)}
    assert "allowed" in rules["firefox"] and "allowed" in rules["gcompris"]
    assert "/usr/bin/libreoffice" not in rules

    # lifting: a limit that is there, one that is not (no change, no error)
    ok(parent_user, "limit", "app", kid, "firefox", "none")
    assert ok(parent_user, "limit", "app", kid, "firefox", "none") == f"{kid} has no limit for firefox.\n"
    ok(parent_user, "limit", "weekly", kid, "none")
    out = ok(parent_user, "app", "allow-list", kid, "off")
    assert out.startswith(f"{kid} may run any program that is not blocked (policy version")
    policy = ok_json(parent_user, "policy", "show", kid)
    assert policy["weekly_limit_minutes"] is None
    assert policy["app_limits_minutes"] == {"/usr/games/supertux": 60}
    assert policy["allow_list_only"] is False and policy["allowed_apps"] == ["firefox", "gcompris"]

    # each change went through its own method, never a whole-policy write
    assert audit_actions(parent_user, first) == [
        "set_weekly_limit", "set_app_limit", "set_app_limit", "set_allow_list", "set_allow_list",
        "disallow_app", "set_app_limit", "set_weekly_limit", "set_allow_list"]

    # allow-list on with nothing allowed: refused, the hint says what to give
    ok(parent_user, "app", "disallow", kid, "firefox")
    ok(parent_user, "app", "disallow", kid, "gcompris")
    before = ok_json(parent_user, "policy", "show", kid)
    line = one_line_error(ctl(parent_user, "app", "allow-list", kid, "on"), 2)
    assert line == (f"dotsctl: name the programs that stay allowed, e.g. dotsctl app allow-list "
                    f"{kid} on firefox libreoffice")
    assert ok_json(parent_user, "policy", "show", kid) == before
    line = one_line_error(ctl(parent_user, "app", "allow-list", kid, "off", "firefox"), 2)
    assert "'off' takes no programs" in line


def test_two_parents_at_once_lose_nothing(kid, parent_user):
    """Many dotsctl changes of different rules at the same moment: every one
    is in the policy afterwards (a read-edit-write would drop some)."""
    commands = [["limit", "weekly", kid, "9h"], ["limit", "daily", kid, "50", "--weekend", "80"],
                ["hours", kid, "mon", "16:00-18:00"], ["app", "block", kid, "/usr/games/sl"],
                ["site", "block", kid, "example.org"]]
    apps = [f"game{i}" for i in range(6)]
    commands += [["limit", "app", kid, app, str(10 + i)] for i, app in enumerate(apps)]
    commands += [["app", "allow-list", kid, "on", app] for app in apps]
    procs = [popen_as(parent_user, [DOTSCTL, *argv]) for argv in commands]
    for argv, proc in zip(commands, procs):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (argv, err)

    policy = ok_json(parent_user, "policy", "show", kid)
    assert policy["weekly_limit_minutes"] == 540
    assert (policy["daily_limit_minutes"], policy["weekend_limit_minutes"]) == (50, 80)
    assert policy["allowed_hours"]["mon"] == ["16:00-18:00"]
    assert "/usr/games/sl" in policy["blocked_apps"] and "example.org" in policy["blocked_sites"]
    assert policy["app_limits_minutes"] == {app: 10 + i for i, app in enumerate(apps)}
    assert sorted(policy["allowed_apps"]) == apps and policy["allow_list_only"] is True


def test_limit_daily_without_weekend_is_every_day(kid, parent_user):
    out = ok(parent_user, "limit", "daily", kid, "90", "--weekend", "2h")
    assert out.startswith(f"{kid}: 1 h 30 min on school days, 2 h at weekends (policy version")
    out = ok(parent_user, "limit", "daily", kid, "75")
    assert out.startswith(f"{kid}: 1 h 15 min every day (policy version")
    policy = ok_json(parent_user, "policy", "show", kid)
    assert (policy["daily_limit_minutes"], policy["weekend_limit_minutes"]) == (75, 75)
    # whatever day the test runs on, today's limit is the one just set
    assert ok_json(parent_user, "status", kid)["limit_seconds"] == 75 * 60

    assert ok(parent_user, "limit", "daily", kid, "none").startswith(f"{kid}: no daily limit (")
    policy = ok_json(parent_user, "policy", "show", kid)
    assert (policy["daily_limit_minutes"], policy["weekend_limit_minutes"]) == (None, None)
    assert ok_json(parent_user, "status", kid)["limit_seconds"] == -1
    assert "every day" in ok(parent_user, "limit", "daily", "--help")


def test_hours_any_lifts_the_restriction(kid, parent_user):
    first = last_audit_id(parent_user)
    ok(parent_user, "hours", kid, "all", "none")
    status = ok_json(parent_user, "status", kid)
    assert status["in_window"] is False and status["blocked_reason"] == "hours"

    ok(parent_user, "hours", kid, "mon-fri", "15:00-17:00")
    out = ok(parent_user, "hours", kid, "sat,sun", "any")
    assert out.startswith(f"{kid}: sat, sun: any time, no restriction (policy version")
    hours = ok_json(parent_user, "hours", kid)
    assert hours == {d: ["15:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
    table = ok(parent_user, "hours", kid)
    assert re.search(r"\bsat\b\W+any time\b", table) and re.search(r"\bmon\b\W+15:00-17:00", table), table

    ok(parent_user, "hours", kid, "all", "any")
    assert ok_json(parent_user, "hours", kid) == {}
    status = ok_json(parent_user, "status", kid)
    assert status["in_window"] is True and status["blocked_reason"] != "hours"
    assert audit_actions(parent_user, first) == [
        "set_allowed_hours", "set_allowed_hours", "clear_allowed_hours", "clear_allowed_hours"]


def test_policy_edit_refused_when_changed_meanwhile(kid, parent_user, editor_dir):
    """The editor (as a parent would, in another terminal) changes the weekly
    limit with another dotsctl before the edited text is saved."""
    editor = editor_dir / "edit.py"
    editor.write_text(
        "import json, subprocess, sys\n"
        "p = json.load(open(sys.argv[1]))\n"
        "p['end_action'] = 'terminate'\n"
        "json.dump(p, open(sys.argv[1], 'w'))\n"
        f"subprocess.run([{DOTSCTL!r}, 'limit', 'weekly', {kid!r}, '7h'], check=True)\n")
    editor_dir.chmod(0o755)
    editor.chmod(0o755)
    before = ok_json(parent_user, "policy", "show", kid)
    assert before["end_action"] != "terminate" and before["weekly_limit_minutes"] != 420
    out = ctl(parent_user, "policy", "edit", kid, env={"EDITOR": f"{PYTHON} {editor}"},
              stdin=subprocess.DEVNULL)
    line = one_line_error(out, 1)
    assert line.startswith(f"dotsctl: another parent changed the policy of {kid} while you were "
                           "editing it: nothing saved"), line
    kept = Path(line.rsplit("your text is in ", 1)[1])
    try:
        assert '"end_action": "terminate"' in kept.read_text()
        assert kept.stat().st_uid == uid_of(parent_user)
    finally:
        kept.unlink()
    after = ok_json(parent_user, "policy", "show", kid)
    assert after["weekly_limit_minutes"] == 420, "the other parent's change is kept"
    assert after["end_action"] == before["end_action"], "the stale edit is not saved"

    # edited again on top of the new version: saved, both changes are in
    editor.write_text("import json, sys\n"
                      "p = json.load(open(sys.argv[1]))\n"
                      "p['end_action'] = 'terminate'\n"
                      "json.dump(p, open(sys.argv[1], 'w'))\n")
    assert "saved" in ok(parent_user, "policy", "edit", kid, env={"EDITOR": f"{PYTHON} {editor}"})
    after = ok_json(parent_user, "policy", "show", kid)
    assert (after["end_action"], after["weekly_limit_minutes"]) == ("terminate", 420)
