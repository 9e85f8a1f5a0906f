"""What the desktop apps decide to show, without a display (dots_desktop.model,
dots_desktop.installed, dots_desktop.child_model)."""

from __future__ import annotations

import datetime as dt
import json

from dots_desktop import model
from dots_desktop.child_model import answer_text, tray_text
from dots_desktop.installed import program_of


def test_durations_in_words():
    assert model.duration(None) == "No limit"
    assert model.duration(-1) == "No limit"
    assert model.duration(59) == "0 min"
    assert model.duration(45 * 60) == "45 min"
    assert model.duration(65 * 60) == "1 h 05 min"


def test_today_from_status():
    today = model.Today.from_status({"used_seconds": 1800, "left_seconds": 1800, "limit_seconds": 3600,
                                     "blocked": False, "pending_requests": 2})
    assert (today.used, today.left, today.limit, today.fraction, today.pending) == \
        ("30 min", "30 min", "1 h 00 min", 0.5, 2)
    assert today.state == "30 min left today"
    free = model.Today.from_status({"used_seconds": 10, "left_seconds": -1, "limit_seconds": -1})
    assert (free.left, free.fraction, free.state) == ("No limit", 0.0, "No time limit today")
    locked = model.Today.from_status({"used_seconds": 3600, "left_seconds": 0, "blocked": True,
                                      "blocked_reason": "hours"})
    assert locked.state == "Locked: it is outside the allowed hours"


def test_week_bars_fill_missing_days_and_read_aloud():
    bars = model.week_bars([("2026-11-24", 5400, 0), ("2026-11-29", 600, 0), ("2026-11-16", 99, 0)],
                           dt.date(2026, 11, 29))
    assert [b.date for b in bars][0] == "2026-11-23" and len(bars) == 7
    assert [b.hours for b in bars] == [0, 1.5, 0, 0, 0, 0, 600 / 3600]
    assert bars[1].label == "Tuesday: 1 h 30 min"
    assert model.week_range(dt.date(2026, 11, 29)) == ("2026-11-23", "2026-11-29")


def test_limits_and_wire_values():
    limits = model.Limits.from_policy({"daily_limit_minutes": 90, "weekend_limit_minutes": None})
    assert (limits.weekday, limits.weekend, limits.weekly) == (90, None, None)
    assert model.Limits.wire(None) == -1 and model.Limits.wire(45) == 45


def test_hours_grid_round_trip():
    policy = {"allowed_hours": {"mon": ["15:00-18:00", "19:30-20:00"], "sat": []}}
    grid = model.hours_grid(policy)
    assert [h for h, on in enumerate(grid["mon"]) if on] == [15, 16, 17, 19]
    assert not any(grid["sat"]) and all(grid["sun"])
    assert model.windows_of(grid["mon"]) == ["15:00-18:00", "19:00-20:00"]
    assert model.windows_of(grid["sat"]) == []
    assert model.windows_of(grid["sun"]) is None  # no restriction: ClearAllowedHours
    assert model.windows_of([True] * 23 + [False]) == ["00:00-23:00"]
    assert model.windows_of([False] * 23 + [True]) == ["23:00-24:00"]
    assert not model.exact_day(policy, "mon") and model.exact_day(policy, "tue")
    after = {**grid, "tue": [False] * 24}
    assert model.changed_days(grid, after) == ["tue"]


def test_app_rows_merge_rules_by_title():
    rows = model.app_rows({"blocked_apps": ["/usr/games/sl"], "allowed_apps": ["firefox"],
                           "app_limits_minutes": {"/usr/games/sl": 30, "/usr/bin/mines": 20}},
                          {"/usr/bin/mines": "Mines"})
    assert [(r.title, r.blocked, r.allowed, r.limit) for r in rows] == [
        ("firefox", False, True, None), ("Mines", False, False, 20), ("sl", True, False, 30)]
    assert rows[2].subtitle == "Blocked, 30 min a day"
    assert rows[0].subtitle == "Allowed"


def test_request_rows_and_audit_lines():
    created = dt.datetime(2026, 11, 29, 15, 4).timestamp()
    pending = model.request_row((3, 1001, "alice", 30, "homework", "pending", 0, 0, int(created), 0))
    assert (pending.id, pending.child, pending.pending, pending.title) == (3, "alice", True, "alice asks for 30 min")
    assert pending.subtitle == "“homework” (Sun 15:04)"
    approved = model.request_row((4, 1001, "alice", 30, "x", "approved", 20, 0, int(created), 1))
    assert approved.subtitle.startswith("Approved: 20 min given.") and not approved.pending
    title, sub = model.audit_line((1, int(created), 0, "SetDailyLimit", "alice", "90", "45"), {0: "root"})
    assert title == "SetDailyLimit alice" and sub == "2026-11-29 15:04 by root: 90 → 45"
    # whole policies before and after: only what changed
    before = json.dumps({"daily_limit_minutes": 90, "blocked_apps": [], "weekly_limit_minutes": 600})
    after = json.dumps({"daily_limit_minutes": 90, "blocked_apps": ["/usr/bin/sniff"], "weekly_limit_minutes": 600})
    title, sub = model.audit_line((2, int(created), 0, "block_app", "uid:1006", before, after),
                                  {1006: "alice"})
    assert title == "block_app alice"
    assert sub.endswith('by uid 0: blocked_apps: [] → ["/usr/bin/sniff"]')
    assert model.change_text('{"state": "pending"}', '{"state": "approved", "granted_minutes": 20}') == \
        'granted_minutes: — → 20; state: "pending" → "approved"'
    assert model.change_text("", "") == ""
    assert model.change_text('{"allowed_hours": {"mon": ["15:00-20:00"], "tue": []}}',
                             '{"allowed_hours": {"mon": ["15:00-21:00"], "tue": []}}') == \
        'allowed_hours.mon: ["15:00-20:00"] → ["15:00-21:00"]'


def test_program_of_desktop_entries():
    which = {"gnome-mines": "/usr/games/gnome-mines"}.get
    assert program_of("gnome-mines", which) == "/usr/games/gnome-mines"
    assert program_of("/bin/sh", which) is None  # a wrapper says nothing about the app
    assert program_of("flatpak", which) is None
    assert program_of("missing", which) is None


def test_child_texts():
    assert tray_text({"left_seconds": 1500, "blocked": False}) == ("25 min left", "appointment-soon-symbolic")
    assert tray_text({"left_seconds": -1})[0] == "No time limit"
    assert tray_text({"left_seconds": 0, "blocked": True, "blocked_reason": "daily"})[0] == "Time is up"
    assert answer_text(True, 20) == "A parent gave you 20 more minutes."
    assert answer_text(False, 0) == "A parent said no this time."


def test_signals_only_from_the_daemon_with_the_contract_signature():
    from dots_desktop.family import Family

    family = Family.__new__(Family)  # the check alone, without a connection
    family.owner = ""
    assert not family.accepts(":1.5", "PolicyChanged", "(uu)"), "no daemon: nothing is believed"
    family.owner = ":1.5"
    assert family.accepts(":1.5", "PolicyChanged", "(uu)")
    assert not family.accepts(":1.9", "PolicyChanged", "(uu)"), "another connection"
    assert not family.accepts("", "PolicyChanged", "(uu)")
    assert not family.accepts(":1.5", "PolicyChanged", "(ss)"), "wrong signature"
    assert not family.accepts(":1.5", "Unknown", "(uu)")
