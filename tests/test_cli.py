"""dotsctl for real: run as real users (a parent in dots-parents, a child,
a stranger) against dots-policyd on the private system bus with real
polkitd. dotsctl talks only to org.dots.Family1; the tests seed history
(what the collector link and the accounting would store) through the
daemon's database helper, never through dotsctl."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.cli_run import (DOTSCTL, NEEDS_PARENT, ctl, editor_dir, kid,  # noqa: F401 (fixtures)
                           ok, ok_json, one_line_error)
from tests.fixtures.bus import PrivateBus
from tests.helpers import REPO, popen_as, run_as, uid_of, wait_for

pytestmark = pytest.mark.bus


@pytest.fixture
def no_pending(policyd_daemon, parent_user):
    for r in ok_json(parent_user, "requests", "--state", "pending"):
        ok(parent_user, "deny", str(r["id"]))


# --- a parent ----------------------------------------------------------------------------

def test_parent_end_to_end(kid, policyd_daemon, parent_user):
    parent_uid, child_uid = uid_of(parent_user), uid_of(kid)
    first_audit = max([e["id"] for e in ok_json(parent_user, "audit", "--limit", "1")] or [0])
    assert {"uid": child_uid, "name": kid} in ok_json(parent_user, "child", "list")
    policy = ok_json(parent_user, "policy", "show", kid)
    assert policy["daily_limit_minutes"] == 90 and policy["weekly_limit_minutes"] == 660

    out = ok(parent_user, "limit", "daily", kid, "45", "--weekend", "2h")
    assert f"{kid}: 45 min on school days, 2 h at weekends" in out
    # without --weekend: the same limit every day (it used to leave the weekend unchanged)
    out = ok(parent_user, "limit", "daily", kid, "1h")
    assert f"{kid}: 1 h every day (policy version" in out
    ok(parent_user, "limit", "weekly", kid, "10h")
    ok(parent_user, "limit", "app", kid, "firefox", "30")
    out = ok(parent_user, "hours", kid, "mon-fri", "15:30-18:00", "19:00-20:00")
    assert f"{kid}: mon-fri: 15:30-18:00, 19:00-20:00 (policy version" in out
    assert f"{kid}: sat, sun: any time" in ok(parent_user, "hours", kid, "sat,sun", "any")
    ok(parent_user, "hours", kid, "sat,sun", "none")
    ok(parent_user, "app", "block", kid, "/usr/games/sl")
    ok(parent_user, "site", "block", kid, "Example.COM")
    ok(parent_user, "site", "block", kid, "203.0.113.0/24")
    ok(parent_user, "app", "allow-list", kid, "on", "firefox", "/usr/bin/libreoffice")
    ok(parent_user, "app", "allow-list", kid, "off")

    policy = ok_json(parent_user, "policy", "show", kid)
    assert policy["daily_limit_minutes"] == 60 and policy["weekend_limit_minutes"] == 60
    assert policy["weekly_limit_minutes"] == 600
    assert policy["app_limits_minutes"] == {"firefox": 30}
    assert policy["allowed_hours"]["mon"] == ["15:30-18:00", "19:00-20:00"]
    assert policy["allowed_hours"]["sat"] == [] and policy["allowed_hours"]["sun"] == []
    assert policy["blocked_apps"] == ["/usr/games/sl"]
    assert policy["blocked_sites"] == ["example.com", "203.0.113.0/24"]
    assert policy["allow_list_only"] is False
    assert policy["allowed_apps"] == ["firefox", "/usr/bin/libreoffice"]
    assert ok_json(parent_user, "hours", kid)["fri"] == ["15:30-18:00", "19:00-20:00"]
    assert ok_json(parent_user, "site", "list", kid) == ["example.com", "203.0.113.0/24"]
    apps = {row["app"]: row for row in ok_json(parent_user, "app", "list", kid)}
    assert apps["/usr/games/sl"]["rule"] == "blocked" and apps["/usr/games/sl"]["state"] == "blocked"
    shown = ok(parent_user, "policy", "show", kid)
    assert "1 h" in shown and "/usr/games/sl" in shown and "example.com" in shown

    ok(parent_user, "app", "unblock", kid, "/usr/games/sl")
    ok(parent_user, "site", "unblock", kid, "example.com")
    ok(parent_user, "limit", "app", kid, "firefox", "none")
    policy = ok_json(parent_user, "policy", "show", kid)
    assert policy["blocked_apps"] == [] and policy["blocked_sites"] == ["203.0.113.0/24"]
    assert policy["app_limits_minutes"] == {}

    # the audit log names the parent for every change, in order; each change is
    # the contract's method for it (no whole-policy rewrite)
    entries = [e for e in ok_json(parent_user, "audit", "--limit", "100") if e["id"] > first_audit]
    assert [e["action"] for e in reversed(entries)] == [
        "set_daily_limit", "set_daily_limit", "set_weekly_limit", "set_app_limit", "set_allowed_hours",
        "clear_allowed_hours", "set_allowed_hours", "block_app", "block_site", "block_site",
        "set_allow_list", "set_allow_list", "unblock_app", "unblock_site", "set_app_limit"]
    assert {e["actor_uid"] for e in entries} == {parent_uid}
    assert {e["target"] for e in entries} == {f"uid:{child_uid}"}
    assert parent_user in ok(parent_user, "audit")

    # a whole policy from a file, and from stdin
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"daily_limit_minutes": 30, "blocked_apps": ["sl"]}, f)
    os.chmod(f.name, 0o644)
    try:
        assert "replaced" in ok(parent_user, "policy", "set", kid, f.name)
    finally:
        os.unlink(f.name)
    assert ok_json(parent_user, "policy", "show", kid)["blocked_apps"] == ["sl"]
    ok(parent_user, "policy", "set", kid, "-", input=json.dumps({"weekly_limit_minutes": 300}))
    assert ok_json(parent_user, "policy", "show", kid)["weekly_limit_minutes"] == 300

    presets = ok_json(parent_user, "policy", "presets")
    assert [p["name"] for p in presets] == ["5-7", "8-12", "13-17"]

    ok(parent_user, "child", "remove", kid)
    assert kid not in [c["name"] for c in ok_json(parent_user, "child", "list")]


def test_policy_edit_uses_editor(kid, parent_user, editor_dir):
    editor = editor_dir / "edit.py"
    editor.write_text("import json, sys\n"
                      "p = json.load(open(sys.argv[1]))\n"
                      "p['end_action'] = 'terminate'\n"
                      "json.dump(p, open(sys.argv[1], 'w'))\n")
    editor.parent.chmod(0o755)
    editor.chmod(0o755)
    python = str(REPO / ".venv" / "bin" / "python")
    out = ok(parent_user, "policy", "edit", kid, env={"EDITOR": f"{python} {editor}"})
    assert "saved" in out
    assert ok_json(parent_user, "policy", "show", kid)["end_action"] == "terminate"

    # an invalid edit, no terminal to ask again on: nothing changes, the text is kept
    editor.write_text("import sys\nopen(sys.argv[1], 'w').write('{\"daily_limit_minutes\": -5}')\n")
    out = ctl(parent_user, "policy", "edit", kid, env={"EDITOR": f"{python} {editor}"},
              stdin=subprocess.DEVNULL)
    line = one_line_error(out, 1)
    assert "invalid policy" in line and "daily_limit_minutes" in line and "your text is in" in line
    kept = line.rsplit("your text is in ", 1)[1]
    assert Path(kept).read_text() == '{"daily_limit_minutes": -5}'
    os.unlink(kept)
    assert ok_json(parent_user, "policy", "show", kid)["daily_limit_minutes"] == 90

    # no change: nothing saved
    editor.write_text("pass\n")
    assert "No change" in ok(parent_user, "policy", "edit", kid, env={"EDITOR": f"{python} {editor}"})


# --- the report ----------------------------------------------------------------------------

WEEK = ["2025-03-03", "2025-03-04", "2025-03-05", "2025-03-06", "2025-03-07", "2025-03-08",
        "2025-03-09"]  # Monday to Sunday


def seed_week(daemon, uid: int) -> None:
    """What the accounting and the collector link would have stored."""
    used = [3000, 5400, 0, 6600, 1200, 9000, 600]
    granted = [0, 1800, 0, 0, 0, 0, 0]
    for day, u, g in zip(WEEK, used, granted):
        daemon.sql("INSERT INTO screen_time_daily (uid, day, seconds_used, seconds_granted) "
                   "VALUES (?, ?, ?, ?)", [uid, day, u, g])
    for day, app, secs, n in [(WEEK[0], "/usr/bin/firefox", 1800, 2), (WEEK[1], "/usr/bin/firefox", 2400, 1),
                              (WEEK[1], "/usr/games/supertux", 3000, 3), (WEEK[3], "/usr/bin/libreoffice", 600, 1)]:
        daemon.sql("INSERT INTO app_usage_daily (uid, day, app, active_seconds, launches) "
                   "VALUES (?, ?, ?, ?, ?)", [uid, day, app, secs, n])
    for day, site, tx, rx, c in [(WEEK[0], "wikipedia.org", 20_000, 3_000_000, 12),
                                 (WEEK[2], "example.com", 1_000, 50_000, 2)]:
        daemon.sql("INSERT INTO site_usage_daily (uid, day, site, bytes_sent, bytes_received, "
                   "connections) VALUES (?, ?, ?, ?, ?, ?)", [uid, day, site, tx, rx, c])
    for i, (day, path) in enumerate([(WEEK[1], "/usr/games/sl"), (WEEK[1], "/usr/games/sl"),
                                     (WEEK[4], "/usr/bin/steam"), ("2025-03-10", "/usr/games/sl")]):
        daemon.sql("INSERT INTO process_event (uid, ts_ns, time, batch_id, type, pid, ppid, gid, "
                   "comm, path, exit_code) VALUES (?, ?, ?, 'seed', 'exec_blocked', ?, 1, ?, ?, ?, -9)",
                   [uid, i, f"{day} 12:00:0{i}", 500 + i, uid, os.path.basename(path), path])
    for day, minutes, reason, state, granted_m in [(WEEK[1], 30, "homework <b>project</b>", "approved", 30),
                                                   (WEEK[5], 60, "movie", "denied", 0)]:
        daemon.sql("INSERT INTO time_request (uid, minutes, reason, state, answered_by, "
                   "granted_minutes, created, answered) VALUES (?, ?, ?, ?, 0, ?, ?, ?)",
                   [uid, minutes, reason, state, granted_m, f"{day} 12:00:00", f"{day} 12:05:00"])


def test_report_numbers(kid, policyd_daemon, parent_user):
    uid = uid_of(kid)
    ok(parent_user, "limit", "daily", kid, "90", "--weekend", "150")
    seed_week(policyd_daemon, uid)
    r = ok_json(parent_user, "report", kid, "--from", WEEK[0], "--to", WEEK[-1])
    assert (r["child"], r["uid"], r["from"], r["to"]) == (kid, uid, WEEK[0], WEEK[-1])
    assert [d["day"] for d in r["days"]] == WEEK
    assert [d["used_seconds"] for d in r["days"]] == [3000, 5400, 0, 6600, 1200, 9000, 600]
    assert [d["limit_seconds"] for d in r["days"]] == [5400] * 5 + [9000] * 2
    assert [d["over_limit"] for d in r["days"]] == [False, False, False, True, False, False, False]
    assert r["totals"] == {"used_seconds": 25800, "granted_seconds": 1800, "average_seconds": 3685,
                           "days_over_limit": 1, "blocked_attempts": 3,
                           "requests": {"pending": 0, "approved": 1, "denied": 1}}
    assert r["apps"] == [
        {"app": "/usr/bin/firefox", "active_seconds": 4200, "launches": 3},
        {"app": "/usr/games/supertux", "active_seconds": 3000, "launches": 3},
        {"app": "/usr/bin/libreoffice", "active_seconds": 600, "launches": 1}]
    assert [s["site"] for s in r["sites"]] == ["wikipedia.org", "example.com"]
    assert r["blocked_by_app"] == [{"app": "/usr/games/sl", "attempts": 2},
                                   {"app": "/usr/bin/steam", "attempts": 1}]
    assert [q["reason"] for q in r["requests"]] == ["homework <b>project</b>", "movie"]

    text = ok(parent_user, "report", kid, "--from", WEEK[0], "--to", WEEK[-1])
    assert "Thu 2025-03-06" in text and "1 h 50 min" in text and "│" in text and "█" in text
    assert "over the limit on 1 day(s)" in text
    assert "/usr/games/supertux" in text and "wikipedia.org" in text and "/usr/bin/steam" in text

    rows = list(csv.DictReader(io.StringIO(ok(parent_user, "report", kid, "--from", WEEK[0],
                                              "--to", WEEK[-1], "--csv"))))
    days = {row["name"]: row for row in rows if row["kind"] == "day"}
    assert days["2025-03-04"]["used_seconds"] == "5400" and days["2025-03-04"]["granted_seconds"] == "1800"
    assert {row["name"]: row["attempts"] for row in rows if row["kind"] == "blocked"} == \
        {"/usr/games/sl": "2", "/usr/bin/steam": "1"}

    bad = ctl(parent_user, "report", kid, "--from", "2025-03-09", "--to", "2025-03-01")
    assert "before" in one_line_error(bad, 2)
    assert "not a date" in one_line_error(ctl(parent_user, "report", kid, "--from", "March"), 2)


# --- a child -------------------------------------------------------------------------------

def test_child_end_to_end(kid, policyd_daemon, parent_user, no_pending):
    # a day without hour restrictions and without a weekly budget: what is
    # left is the daily limit, whatever the clock says
    ok(parent_user, "hours", kid, "all", "any")
    ok(parent_user, "limit", "daily", kid, "60", "--weekend", "60")
    ok(parent_user, "limit", "weekly", kid, "none")
    day = ok_json(kid, "status")["day"]
    policyd_daemon.sql("DELETE FROM screen_time_daily WHERE uid = ? AND day = ?", [uid_of(kid), day])
    policyd_daemon.sql("INSERT INTO screen_time_daily (uid, day, seconds_used, seconds_granted) "
                       "VALUES (?, ?, 1500, 0)", [uid_of(kid), day])

    # (the daemon's accounting counts the child's own dotsctl processes as
    # screen time: a few seconds may be added between two calls)
    mine = ok_json(kid, "status")
    assert mine["name"] == kid and mine["limit_seconds"] == 3600
    assert 1500 <= mine["used_seconds"] < 1560
    assert mine["left_seconds"] == 3600 - mine["used_seconds"]
    text = ok(kid, "status")
    assert re.search(r"^You have 3[45] min left today\.$", text, re.M), text
    assert re.search(r"^Used 2[56] min of 1 h today\.$", text, re.M), text

    out = ok(kid, "request", "30", "homework")
    assert "Asked for 30 min more (request #" in out
    request_id = int(out.split("#")[1].split(")")[0])
    assert "1 request for more time waiting for a parent." in ok(kid, "status")

    pending = ok_json(parent_user, "requests", "--state", "pending")
    assert [(r["id"], r["name"], r["minutes"], r["reason"]) for r in pending] == \
        [(request_id, kid, 30, "homework")]
    listing = ok(parent_user, "requests")
    assert "homework" in listing and f"dotsctl approve {request_id}" in listing

    out = ok(parent_user, "approve", str(request_id))
    assert f"Request #{request_id} approved: {kid} gets 30 min more today." in out
    mine = ok_json(kid, "status")
    assert mine["granted_seconds"] == 1800
    assert mine["left_seconds"] == 3600 + 1800 - mine["used_seconds"]
    text = ok(kid, "status")
    assert re.search(r"^You have 1 h 0[45] min left today\.$", text, re.M), text
    assert "plus 30 min extra time granted" in text

    # a second answer, a denial
    line = one_line_error(ctl(parent_user, "approve", str(request_id)), 1)
    assert line == f"dotsctl: already answered: request {request_id} was already approved"
    other = json.loads(ok(kid, "request", "15", "one more level", "--json"))["request_id"]
    assert f"Request #{other} of {kid} denied." in ok(parent_user, "deny", str(other))
    states = {r["id"]: r["state"] for r in ok_json(parent_user, "requests")}
    assert states[request_id] == "approved" and states[other] == "denied"

    # completion offers a parent the children's names (asked of the daemon)
    env = {"_DOTSCTL_COMPLETE": "complete_bash", "COMP_WORDS": f"dotsctl status {kid[:-3]}",
           "COMP_CWORD": "2"}
    assert ok(parent_user, env=env).split() == [kid]
    assert ok(kid, env=env).split() == []  # a child may not list children: nothing offered

    # the parent's view of the same child, and of every child
    theirs = ok_json(parent_user, "status", kid)
    assert theirs["left_seconds"] == 5400 - theirs["used_seconds"]
    everyone = ok_json(parent_user, "status")
    assert [s["name"] for s in everyone] == [kid]
    assert kid in ok(parent_user, "status")


PARENT_COMMANDS = [
    ["child", "list"], ["child", "add", "{other}"], ["child", "remove", "{kid}"],
    ["policy", "show", "{kid}"], ["policy", "set", "{kid}", "-"], ["policy", "presets"],
    ["limit", "daily", "{kid}", "600"], ["limit", "weekly", "{kid}", "none"],
    ["limit", "app", "{kid}", "firefox", "none"], ["hours", "{kid}", "all", "any"],
    ["app", "block", "{kid}", "firefox"], ["app", "unblock", "{kid}", "firefox"],
    ["app", "allow-list", "{kid}", "off"], ["site", "block", "{kid}", "example.com"],
    ["site", "unblock", "{kid}", "example.com"], ["report", "{kid}"], ["events", "{kid}"],
    ["requests"], ["approve", "1"], ["deny", "1"], ["audit"],
]


def _state(daemon) -> list[str]:
    """The database, less what the screen-time accounting adds on its own
    (the child's own processes count as a session)."""
    return [line for line in daemon.dump() if "screen_time_daily" not in line]


def test_child_running_parent_commands_needs_a_parent(kid, policyd_daemon, parent_user, other_user):
    before = _state(policyd_daemon)
    for command in PARENT_COMMANDS:
        argv = [a.format(kid=kid, other=other_user) for a in command]
        out = ctl(kid, *argv, input="{}")
        assert one_line_error(out, 3) == NEEDS_PARENT, argv
        assert out.stdout == "", argv
    assert _state(policyd_daemon) == before, "a refused command changed something"
    # a stranger: the same for parent commands; no status and no requests of its own
    assert one_line_error(ctl(other_user, "limit", "daily", kid, "600"), 3) == NEEDS_PARENT
    line = one_line_error(ctl(other_user, "status"), 3)
    assert "not a registered child, and not a parent" in line
    line = one_line_error(ctl(other_user, "request", "10", "please"), 1)
    assert line == "dotsctl: you are not a registered child: only children ask for more time"
    # a child about someone else
    line = one_line_error(ctl(kid, "status", parent_user), 3)
    assert line == ("dotsctl: not authorized: you may see only your own status (dotsctl status); "
                    "other users' status needs a parent")


def test_json_outputs_parse(kid, parent_user):
    for argv in (["status"], ["status", kid], ["child", "list"], ["policy", "show", kid],
                 ["policy", "presets"], ["hours", kid], ["app", "list", kid], ["site", "list", kid],
                 ["report", kid], ["events", kid], ["events", kid, "--kind", "network"],
                 ["requests"], ["audit"]):
        out = ctl(parent_user, *argv, "--json")
        assert out.returncode == 0, (argv, out.stderr)
        json.loads(out.stdout)
    assert isinstance(json.loads(ok(kid, "status", "--json")), dict)
    out = ctl(parent_user, "doctor", "--json")
    assert out.returncode in (0, 1), out.stderr
    checks = {c["name"]: c for c in json.loads(out.stdout)}
    assert checks["policy daemon"]["state"] == "ok"
    assert checks["collector"]["state"] == "problem"  # none runs in these tests
    assert checks["database"]["state"] == "unknown"  # a parent cannot look at it
    # the policy daemon says it hears nothing from the (absent) collector
    assert checks["events flowing"]["state"] == "problem"
    assert "collector" in checks["events flowing"]["detail"]
    assert set(checks) >= {"kernel BPF support", "tracefs", "bpffs", "bcc", "polkit",
                           "polkit actions", "polkit rules", "services enabled"}


def test_doctor_in_words(policyd_daemon, parent_user):
    out = ctl(parent_user, "doctor")
    assert out.returncode == 1, out.stderr  # the collector is not running here
    assert "the collector (the part that watches programs) is not running" in out.stdout
    assert "fix: systemctl start dots-collector" in out.stdout
    assert "policy daemon: running" in out.stdout
    assert f"cannot check /var/lib/dots/dots.db as {parent_user}: run dotsctl doctor as root" \
        in out.stdout
    assert "problem(s) found" in out.stdout


# --- events --------------------------------------------------------------------------------

def _insert_exec(daemon, uid: int, pid: int, path: str) -> None:
    now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    daemon.sql("INSERT INTO process_event (uid, ts_ns, time, batch_id, type, pid, ppid, gid, comm, "
               "path, exit_code) VALUES (?, ?, ?, 'live', 'exec', ?, 1, ?, ?, ?, 0)",
               [uid, pid, now, pid, uid, os.path.basename(path), path])


def test_events_and_follow(kid, policyd_daemon, parent_user):
    uid = uid_of(kid)
    _insert_exec(policyd_daemon, uid, 4001, "/usr/bin/first")
    recent = ok_json(parent_user, "events", kid, "--limit", "5")
    assert recent[-1]["pid"] == 4001 and recent[-1]["path"] == "/usr/bin/first"
    assert "/usr/bin/first" in ok(parent_user, "events", kid)

    follower = popen_as(parent_user, [DOTSCTL, "events", kid, "--follow", "--json", "--limit", "1",
                                      "--interval", "0.2"])
    lines: list[dict] = []
    reader = threading.Thread(target=lambda: [lines.append(json.loads(x)) for x in follower.stdout],
                              daemon=True)
    reader.start()
    try:
        wait_for(lambda: any(e["pid"] == 4001 for e in lines), timeout=20, what="the newest event")
        _insert_exec(policyd_daemon, uid, 4002, "/usr/bin/second")
        _insert_exec(policyd_daemon, uid, 4003, "/usr/bin/third")
        wait_for(lambda: {4002, 4003} <= {e["pid"] for e in lines}, timeout=20,
                 what="live events")
    finally:
        follower.send_signal(signal.SIGINT)
        code = follower.wait(timeout=20)
        reader.join(timeout=10)
    assert code == 0, follower.stderr.read()
    assert [e["pid"] for e in lines] == [4001, 4002, 4003], "each event once, in order"
    assert all(e["kind"] == "process" for e in lines)
    line = one_line_error(ctl(parent_user, "events", kid, "--kind", "keyboard"), 1)
    assert line.startswith("dotsctl: invalid argument:")


# --- errors ------------------------------------------------------------------------------

def test_daemon_errors_are_one_line(kid, parent_user):
    line = one_line_error(ctl(parent_user, "child", "add", "no-such-user-here"), 1)
    assert line == "dotsctl: invalid argument: no local account 'no-such-user-here'"
    line = one_line_error(ctl(parent_user, "site", "block", kid, "203.0.113.5/24"), 1)
    assert "did you mean 203.0.113.0/24?" in line
    line = one_line_error(ctl(parent_user, "policy", "set", kid, "-", input="{not json"), 1)
    assert line.startswith("dotsctl: invalid policy: not valid JSON")
    line = one_line_error(ctl(parent_user, "policy", "set", kid, "-",
                              input='{"daily_limit_minutes": 5000}'), 1)
    assert line.startswith("dotsctl: invalid policy: daily_limit_minutes")
    line = one_line_error(ctl(parent_user, "policy", "show", "nobody-child"), 1)
    assert line.startswith("dotsctl: unknown child:")
    assert one_line_error(ctl(parent_user, "approve", "999999"), 1) == \
        "dotsctl: not found: no time request 999999"
    line = one_line_error(ctl(parent_user, "hours", kid, "mon", "25:00-26:00"), 1)
    assert "invalid time of day" in line


def test_usage_errors_exit_2(parent_user):
    for argv in (["limit", "daily", "x", "abc"], ["hours", "x", "funday", "10:00-11:00"],
                 ["hours", "x", "mon"], ["hours", "x", "mon", "3pm-5pm"], ["no-such-command"],
                 ["approve", "0"], ["app", "allow-list", "x", "maybe"],
                 ["report", "x", "--csv", "--json"], ["policy", "set", "x", "/no/such/file.json"]):
        out = ctl(parent_user, *argv)
        assert out.returncode == 2, (argv, out.stderr)
        assert "Traceback" not in out.stderr


def test_daemon_not_running(parent_user, child_user):
    """On a bus where nobody owns org.dots.Family1, and with no bus at all."""
    workdir = Path(tempfile.mkdtemp(prefix="dots-empty-bus-"))
    workdir.chmod(0o755)
    bus = PrivateBus(workdir)
    try:
        for user, argv in ((parent_user, ["child", "list"]), (child_user, ["status"]),
                           (child_user, ["request", "10", "x"])):
            out = ctl(user, *argv, env={"DBUS_SYSTEM_BUS_ADDRESS": bus.address})
            assert one_line_error(out, 4) == (
                "dotsctl: the DOTS policy daemon is not running (nobody owns org.dots.Family1 on "
                "the system bus); start it with: systemctl start dots-policyd")
    finally:
        bus.stop()
    try:
        out = ctl(parent_user, "child", "list", env={"DBUS_SYSTEM_BUS_ADDRESS": bus.address})
        line = one_line_error(out, 4)
        assert line.startswith(f"dotsctl: cannot reach the system bus at {bus.address}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --- help and completion ----------------------------------------------------------------

def test_help_documents_exit_codes(other_user):
    out = ok(other_user, "--help")
    for text in ("0 success", "2 wrong command line", "3 not authorized", "4 the policy daemon"):
        assert text in out
    for command in ("status", "child", "policy", "limit", "hours", "app", "site", "report",
                    "events", "request", "requests", "approve", "deny", "doctor"):
        assert f" {command} " in out


def test_completion(other_user):
    script = ok(other_user, "--show-completion", "bash")
    assert "_DOTSCTL_COMPLETE=complete_bash" in script and "complete " in script
    assert "compdef" in ok(other_user, "--show-completion", "zsh")
    # the script's protocol: complete a partial command line
    env = {"_DOTSCTL_COMPLETE": "complete_bash", "COMP_WORDS": "dotsctl chi", "COMP_CWORD": "1"}
    assert ok(other_user, env=env).split() == ["child"]
    env = {"_DOTSCTL_COMPLETE": "complete_bash", "COMP_WORDS": "dotsctl limit ", "COMP_CWORD": "2"}
    assert set(ok(other_user, env=env).split()) == {"daily", "weekly", "app"}
    env = {"_DOTSCTL_COMPLETE": "complete_bash", "COMP_WORDS": "dotsctl child add x --preset ",
           "COMP_CWORD": "5"}
    assert ok(other_user, env=env).split() == ["5-7", "8-12", "13-17"]


def test_bash_completes_in_a_real_shell(other_user):
    """The printed script, sourced by bash, completes subcommands."""
    script = ok(other_user, "--show-completion", "bash")
    program = (f"{script}\nCOMP_WORDS=(dotsctl re); COMP_CWORD=1; "
               "_dotsctl_completion dotsctl; printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    out = run_as(other_user, ["bash", "-c", program],
                 env={"PATH": f"{REPO / '.venv' / 'bin'}:/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert set(out.stdout.split()) == {"report", "request", "requests"}
