"""A policy turned into the enforcers' rules."""

from __future__ import annotations

from dots_policyd.policy import Policy
from dots_policyd.rules import app_paths, rules_for


def test_bare_names_are_found_on_the_search_path_and_unknown_ones_left_out():
    assert app_paths(["ls", "/opt/game/bin/game", "no-such-program-dots"]) == [
        "/opt/game/bin/game", "/usr/bin/ls"]


def test_rules_join_addresses_domains_and_apps_over_their_limit():
    policy = Policy(blocked_apps=["/usr/games/tetris"], blocked_sites=["10.0.0.0/8", "::1", "games.example"],
                    allow_list_only=True, allowed_apps=["ls"])
    rules = rules_for(policy, {"games.example": {"192.0.2.10", "2001:db8::10"}}, ["/usr/bin/id"])
    assert rules.blocked_paths == ["/usr/bin/id", "/usr/games/tetris"]
    assert rules.allow_list and rules.allowed_paths == ["/usr/bin/ls"]
    assert set(rules.blocked_networks) == {"10.0.0.0/8", "::1/128", "192.0.2.10", "2001:db8::10"}


def test_time_up_switches_to_only_the_always_allowed_apps():
    policy = Policy(blocked_apps=["/usr/games/tetris"], always_allowed_apps=["/usr/bin/id"],
                    at_end_only_always_allowed=True)
    during = rules_for(policy, {})
    assert not during.allow_list and during.blocked_paths == ["/usr/games/tetris"]
    after = rules_for(policy, {}, time_is_up=True)
    assert after.allow_list and after.allowed_paths == ["/usr/bin/id"]
    assert after.blocked_paths == ["/usr/games/tetris"]
    locking = Policy(always_allowed_apps=["/usr/bin/id"])
    assert not rules_for(locking, {}, time_is_up=True).allow_list, "the policy did not ask for it"
