"""The policy document: validation, messages, normalisation, pure edits,
JSON schema and age-group presets."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json

import pydantic
import pytest

from dots_policyd.policy import (
    MAX_DOCUMENT_BYTES,
    MAX_LIST,
    Policy,
    PolicyError,
    block_app,
    block_site,
    policy_json_schema,
    set_allowed_hours,
    set_daily_limit,
    unblock_app,
    unblock_site,
)
from dots_policyd.presets import list_presets, preset_names, preset_policy

MONDAY = dt.date(2024, 1, 1)
SATURDAY = dt.date(2024, 1, 6)


def reject(document: dict | str) -> str:
    """The PolicyError message a document gets (and check it is one line)."""
    text = document if isinstance(document, str) else json.dumps(document)
    with pytest.raises(PolicyError) as info:
        Policy.from_json(text)
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < 600, "a message must not echo huge input"
    return message


# --- valid documents ---------------------------------------------------------------

def test_defaults_are_no_limits_and_standard_warnings():
    policy = Policy.from_json("{}")
    assert policy.daily_limit_minutes is None and policy.weekend_limit_minutes is None
    assert policy.weekly_limit_minutes is None
    assert policy.warning_minutes == [15, 5, 1]
    assert policy.end_action == "lock"
    assert policy.allowed_hours == {} and policy.blocked_apps == [] and not policy.allow_list_only


def test_full_document_is_normalised_and_round_trips():
    policy = Policy.from_json(json.dumps({
        "daily_limit_minutes": 90,
        "weekend_limit_minutes": 150,
        "weekly_limit_minutes": 600,
        "allowed_hours": {"sun": [], "mon": ["19:00-20:00", "9:00-12:00", "12:00-15:30"]},
        "blocked_apps": ["/usr/bin/../games/steam", "steam", "steam"],
        "allow_list_only": True,
        "allowed_apps": ["/usr/bin/firefox", "gnome-terminal"],
        "app_limits_minutes": {"minecraft": 45, "/usr/bin/supertux2": 0},
        "blocked_sites": ["WWW.Example.COM.", "10.0.0.0/8", "2001:DB8:0:0::1", "2001:db8::/32",
                          "bücher.de", "192.0.2.7", "www.example.com"],
        "warning_minutes": [1, 5, 15, 5, 10],
        "end_action": "terminate",
        "file_alerts": ["/home/*/Documents/secret*", "*.key"],
    }))
    assert policy.allowed_hours == {"mon": ["09:00-12:00", "12:00-15:30", "19:00-20:00"], "sun": []}
    assert policy.blocked_apps == ["/usr/games/steam", "steam"]
    assert policy.blocked_sites == ["www.example.com", "10.0.0.0/8", "2001:db8::1", "2001:db8::/32",
                                    "xn--bcher-kva.de", "192.0.2.7"]
    assert policy.warning_minutes == [15, 10, 5, 1]
    assert Policy.from_json(policy.to_json()) == policy
    assert policy.blocked_domains() == ["www.example.com", "xn--bcher-kva.de"]
    assert policy.blocked_networks() == [ipaddress.ip_network(n) for n in
                                         ("10.0.0.0/8", "2001:db8::1/128", "2001:db8::/32", "192.0.2.7/32")]


def test_limits_and_windows_by_day():
    policy = Policy.from_dict({"daily_limit_minutes": 60, "weekend_limit_minutes": 120,
                               "allowed_hours": {"mon": ["15:30-18:00", "19:00-24:00"]}})
    assert policy.daily_limit_for(MONDAY) == 60
    assert policy.daily_limit_for(SATURDAY) == 120
    assert policy.windows_for(MONDAY) == [(930, 1080), (1140, 1440)]
    assert policy.windows_for(SATURDAY) is None


def test_policy_is_immutable():
    policy = Policy()
    with pytest.raises(pydantic.ValidationError):
        policy.daily_limit_minutes = 5  # type: ignore[misc]


# --- invalid documents: clear, one-line messages --------------------------------------

@pytest.mark.parametrize("document, expected", [
    ({"daily_limit_minutes": -5}, "daily_limit_minutes: Input should be greater than or equal to 0 (got -5)"),
    ({"weekend_limit_minutes": 1441}, "weekend_limit_minutes: Input should be less than or equal to 1440"),
    ({"weekly_limit_minutes": -1}, "weekly_limit_minutes: Input should be greater than or equal to 0"),
    ({"app_limits_minutes": {"minecraft": -10}}, "app_limits_minutes.minecraft: Input should be greater than"),
    ({"daily_limit_minutes": "60"}, "daily_limit_minutes: Input should be a valid integer (got '60')"),
    ({"daily_limit_minutes": True}, "daily_limit_minutes: Input should be a valid integer (got True)"),
    ({"allowed_hours": {"mon": ["18:00-15:30"]}}, "allowed_hours.mon[0]: time window '18:00-15:30' ends before it starts"),
    ({"allowed_hours": {"tue": ["10:00-10:00"]}}, "time window '10:00-10:00' ends before it starts"),
    ({"allowed_hours": {"mon": ["15:00-18:00", "17:30-19:00"]}},
     "allowed_hours.mon: time windows 15:00-18:00 and 17:30-19:00 overlap"),
    ({"allowed_hours": {"mon": ["09:00-12:00", "09:00-12:00"]}}, "overlap"),
    ({"allowed_hours": {"funday": ["09:00-12:00"]}},
     "allowed_hours: unknown weekday 'funday' (expected one of mon, tue, wed, thu, fri, sat, sun)"),
    ({"allowed_hours": {"mon": ["25:00-26:00"]}}, "time window '25:00-26:00' has an invalid time of day"),
    ({"allowed_hours": {"mon": ["09:60-10:00"]}}, "has an invalid time of day"),
    ({"allowed_hours": {"mon": ["noon-3pm"]}}, "time window 'noon-3pm' is not of the form HH:MM-HH:MM"),
    ({"blocked_sites": ["exa mple.com"]}, "blocked_sites[0]: malformed domain name 'exa mple.com'"),
    ({"blocked_sites": ["-bad-.example"]}, "malformed domain name '-bad-.example'"),
    ({"blocked_sites": ["a..b"]}, "malformed domain name 'a..b'"),
    ({"blocked_sites": ["x" * 64 + ".com"]}, "malformed domain name"),
    ({"blocked_sites": ["300.1.1.1"]}, "malformed IP address '300.1.1.1'"),
    ({"blocked_sites": ["1.2.3"]}, "malformed IP address '1.2.3'"),
    ({"blocked_sites": ["2001:db8::g"]}, "malformed IP address '2001:db8::g'"),
    ({"blocked_sites": ["10.0.0.1/8"]}, "address range '10.0.0.1/8' has host bits set (did you mean 10.0.0.0/8?)"),
    ({"blocked_sites": ["10.0.0.0/33"]}, "malformed address range '10.0.0.0/33'"),
    ({"blocked_sites": ["fe80::1%eth0"]}, "scoped IPv6 addresses cannot be blocked"),
    ({"blocked_apps": ["bin/steam"]}, "blocked_apps[0]: app 'bin/steam' must be an absolute path or a bare program name"),
    ({"allowed_apps": [".."]}, "app '..' is not a program name"),
    ({"blocked_apps": ["/"]}, "is a directory"),
    ({"allow_list_only": True}, "allow_list_only needs at least one entry in allowed_apps"),
    ({"warning_minutes": [5, 0]}, "warning_minutes[1]: Input should be greater than 0 (got 0)"),
    ({"warning_minutes": [-1]}, "Input should be greater than 0"),
    ({"end_action": "explode"}, "end_action: Input should be 'lock' or 'terminate' (got 'explode')"),
    ({"file_alerts": ["secret.txt"]}, "file pattern 'secret.txt' must start with '/' or '*'"),
    ({"blocked_app": ["steam"]}, "unknown field 'blocked_app'"),
    ({"blocked_sites": "example.com"}, "blocked_sites: Input should be a valid array (got 'example.com')"),
])
def test_invalid_field_is_rejected_with_a_clear_message(document, expected):
    message = reject(document)
    assert message.startswith("invalid policy: ")
    assert expected in message


def test_oversized_list_is_rejected():
    message = reject({"blocked_apps": [f"app{i}" for i in range(MAX_LIST + 1)]})
    assert f"blocked_apps: List should have at most {MAX_LIST} items" in message


def test_oversized_string_is_rejected_without_echoing_it():
    message = reject({"blocked_sites": ["a" * 200_000 + ".com"]})
    assert "blocked_sites[0]: String should have at most 255 characters" in message


def test_oversized_document_is_rejected_before_parsing():
    message = reject('{"blocked_apps": ["' + "x" * MAX_DOCUMENT_BYTES + '"]}')
    assert "policy document too large" in message


def test_not_json_and_not_an_object():
    assert "not valid JSON" in reject("{nope")
    assert "Input should be an object" in reject("[]")


def test_several_errors_are_summarised_on_one_line():
    message = reject({"daily_limit_minutes": -1, "weekend_limit_minutes": -2, "weekly_limit_minutes": -3,
                      "end_action": "x", "foo": 1})
    assert "daily_limit_minutes" in message and "and 2 more problem(s)" in message


# --- pure edits ----------------------------------------------------------------------

def test_set_daily_limit_returns_a_new_policy():
    before = Policy()
    after = set_daily_limit(before, 45)
    weekend = set_daily_limit(after, 90, weekend=True)
    assert (before.daily_limit_minutes, after.daily_limit_minutes) == (None, 45)
    assert (weekend.daily_limit_minutes, weekend.weekend_limit_minutes) == (45, 90)
    assert set_daily_limit(weekend, None).daily_limit_minutes is None


def test_set_daily_limit_validates():
    policy = Policy()
    with pytest.raises(PolicyError, match="daily_limit_minutes: Input should be greater than or equal to 0"):
        set_daily_limit(policy, -1)
    with pytest.raises(PolicyError, match="valid integer"):
        set_daily_limit(policy, "10")  # type: ignore[arg-type]
    assert policy.daily_limit_minutes is None


def test_set_allowed_hours_for_a_set_of_days():
    policy = set_allowed_hours(Policy(), ["weekdays"], ["19:00-20:00", "15:30-18:00"])
    assert policy.allowed_hours == {d: ["15:30-18:00", "19:00-20:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
    policy = set_allowed_hours(policy, ["sat", "SUN"], [])
    assert policy.allowed_hours["sat"] == [] and policy.allowed_hours["sun"] == []
    policy = set_allowed_hours(policy, ["mon"], None)
    assert "mon" not in policy.allowed_hours and "tue" in policy.allowed_hours


def test_set_allowed_hours_rejects_bad_input_and_changes_nothing():
    policy = Policy()
    with pytest.raises(PolicyError, match="unknown weekday 'someday'"):
        set_allowed_hours(policy, ["mon", "someday"], ["09:00-10:00"])
    with pytest.raises(PolicyError, match="allowed_hours.mon: time windows 09:00-12:00 and 11:00-13:00 overlap"):
        set_allowed_hours(policy, ["mon"], ["09:00-12:00", "11:00-13:00"])
    assert policy.allowed_hours == {}


def test_block_and_unblock_app():
    policy = block_app(Policy(), "/usr/bin/../bin/steam")
    assert policy.blocked_apps == ["/usr/bin/steam"]
    assert block_app(policy, "/usr/bin/steam") is policy  # already blocked: unchanged
    policy = block_app(policy, "minecraft")
    assert unblock_app(policy, "/usr/bin/steam").blocked_apps == ["minecraft"]
    assert unblock_app(policy, "not-blocked") is policy
    with pytest.raises(PolicyError, match="must be an absolute path or a bare program name"):
        block_app(policy, "games/steam")
    with pytest.raises(PolicyError, match="must be 1 to 4096 characters"):
        block_app(policy, "x" * 1_000_000)


def test_block_and_unblock_site():
    policy = block_site(Policy(), " Example.ORG. ")
    assert policy.blocked_sites == ["example.org"]
    policy = block_site(policy, "2001:DB8::/32")
    assert policy.blocked_sites == ["example.org", "2001:db8::/32"]
    assert unblock_site(policy, "EXAMPLE.org").blocked_sites == ["2001:db8::/32"]
    with pytest.raises(PolicyError, match="malformed domain name"):
        block_site(policy, "not a domain")
    with pytest.raises(PolicyError, match="has host bits set"):
        block_site(policy, "192.168.1.1/24")


# --- JSON schema ---------------------------------------------------------------------

def test_json_schema_describes_every_field():
    schema = json.loads(policy_json_schema())
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(Policy.model_fields)
    hours = schema["properties"]["allowed_hours"]
    assert hours["propertyNames"]["enum"] == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    assert schema["properties"]["daily_limit_minutes"]["anyOf"][0]["minimum"] == 0
    assert schema["properties"]["end_action"]["enum"] == ["lock", "terminate"]


# --- presets -------------------------------------------------------------------------

def test_presets_by_age_group():
    assert preset_names() == ["5-7", "8-12", "13-17"]
    policies = [preset_policy(name) for name in preset_names()]
    weekday = [p.daily_limit_minutes for p in policies]
    weekend = [p.weekend_limit_minutes for p in policies]
    assert weekday == sorted(weekday) and len(set(weekday)) == 3
    assert all(we > wd for wd, we in zip(weekday, weekend))
    bedtimes = [p.windows_for(MONDAY)[-1][1] for p in policies]
    assert bedtimes == sorted(bedtimes) and len(set(bedtimes)) == 3, "younger children stop earlier"
    for preset in list_presets():
        assert preset.description and Policy.from_json(preset.policy.to_json()) == preset.policy


def test_preset_policies_are_independent_copies():
    first = preset_policy("8-12")
    first.blocked_apps.append("mutated")
    assert preset_policy("8-12").blocked_apps == []


def test_unknown_preset():
    with pytest.raises(PolicyError, match=r"unknown preset '4-6' \(expected one of 5-7, 8-12, 13-17\)"):
        preset_policy("4-6")
