"""A child's policy as the collector's enforcers take it: absolute program
paths and network ranges (no D-Bus here). Which programs an app name means
is apps.Apps's one rule; the collector then blocks them by identity, so
links, copies and modified copies elsewhere are caught too."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from dots_identity.naming import SEARCH_PATH, Roots

from .apps import Apps
from .policy import Policy

_APPS = Apps()


def app_paths(apps: Iterable[str], search_path: str = SEARCH_PATH) -> list[str]:
    """Absolute paths stay as they are; any other name becomes the
    programs it means (search path, menu name, Flatpak, Snap). Unknown
    names are left out (with a log line)."""
    resolver = _APPS if search_path == SEARCH_PATH else Apps(Roots(search_path=search_path))
    return resolver.programs(apps)


@dataclasses.dataclass(frozen=True)
class Rules:
    blocked_paths: list[str]
    allow_list: bool
    allowed_paths: list[str]
    blocked_networks: list[str]

    @classmethod
    def clear(cls) -> Rules:
        return cls([], False, [], [])


def only_always_allowed_at_end(policy: Policy) -> bool:
    """The hook for screen time: at the limit or the end of the allowed
    hours, True means "push rules_for(..., time_is_up=True) instead of
    locking the session" (only always-allowed apps and the desktop's own
    programs run), False means the policy's end_action."""
    return policy.at_end_only_always_allowed and bool(policy.always_allowed_apps)


def rules_for(policy: Policy, domain_addresses: dict[str, set[str]],
              limited_apps: Iterable[str] = (), extra_networks: Iterable[str] = (),
              time_is_up: bool = False) -> Rules:
    """``limited_apps``: apps whose daily limit is used up, blocked until
    tomorrow; ``extra_networks``: refused to every child (the known DoH
    endpoints). ``time_is_up``: screen time is over and the policy lets the
    always-allowed apps on (only_always_allowed_at_end): allow-list mode
    with those apps, the desktop's own programs being the collector's
    default list."""
    networks = {str(n) for n in policy.blocked_networks()}
    networks.update(extra_networks)
    networks.update(a for addresses in domain_addresses.values() for a in addresses)
    blocked = app_paths([*policy.blocked_apps, *limited_apps])
    if time_is_up and only_always_allowed_at_end(policy):
        allowed = app_paths(policy.always_allowed_apps)
        return Rules(blocked_paths=blocked, allow_list=True, allowed_paths=allowed,
                     blocked_networks=sorted(networks))
    allowed_names = [*policy.allowed_apps, *policy.always_allowed_apps]
    return Rules(blocked_paths=blocked,
                 allow_list=policy.allow_list_only,
                 allowed_paths=app_paths(allowed_names) if policy.allow_list_only else [],
                 blocked_networks=sorted(networks))
