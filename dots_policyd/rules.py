"""A child's policy as the collector's enforcers take it: absolute program
paths and network ranges (no D-Bus here)."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterable

from .policy import Policy

#: where a bare app name ("supertux2") is looked up, as a login shell would
SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/games:/usr/games"


def app_paths(apps: Iterable[str], search_path: str = SEARCH_PATH) -> list[str]:
    """Absolute paths stay as they are; a bare name becomes the program the
    search path finds (the collector then blocks it by inode and content,
    so copies and links elsewhere are caught too). Unknown names are left out."""
    paths = []
    for app in apps:
        found = app if app.startswith("/") else shutil.which(app, path=search_path)
        if found:
            paths.append(found)
    return sorted(set(paths))


@dataclasses.dataclass(frozen=True)
class Rules:
    blocked_paths: list[str]
    allow_list: bool
    allowed_paths: list[str]
    blocked_networks: list[str]

    @classmethod
    def clear(cls) -> Rules:
        return cls([], False, [], [])


def rules_for(policy: Policy, domain_addresses: dict[str, set[str]],
              limited_apps: Iterable[str] = (), extra_networks: Iterable[str] = ()) -> Rules:
    """``limited_apps``: apps whose daily limit is used up, blocked until tomorrow;
    ``extra_networks``: refused to every child (the known DoH endpoints)."""
    networks = {str(n) for n in policy.blocked_networks()}
    networks.update(extra_networks)
    networks.update(a for addresses in domain_addresses.values() for a in addresses)
    return Rules(blocked_paths=app_paths([*policy.blocked_apps, *limited_apps]),
                 allow_list=policy.allow_list_only,
                 allowed_paths=app_paths(policy.allowed_apps) if policy.allow_list_only else [],
                 blocked_networks=sorted(networks))
