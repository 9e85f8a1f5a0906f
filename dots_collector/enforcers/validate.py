"""Checks on enforcement requests from the bus: every bad value is a
ValueError with a sentence for the caller, raised before anything changes."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from typing import Any

from dots_common.limits import MAX_UID

MAX_PATHS = 1024
MAX_PATH_BYTES = 4096
MAX_NETWORKS = 4096

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def enforced_uid(uid: Any) -> int:
    """A uid rules may apply to: never root (blocking or killing root's
    programs would take the machine down), never the "-1" uid."""
    if not isinstance(uid, int) or isinstance(uid, bool) or not 0 <= uid <= MAX_UID:
        raise ValueError(f"invalid uid {uid!r}")
    if uid == 0:
        raise ValueError("uid 0 (root) is never subject to enforcement")
    return uid


def path(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"invalid path {value!r}")
    if "\0" in value or len(value.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise ValueError(f"path too long or holding NUL: {value[:80]!r}...")
    if not value.startswith("/"):
        raise ValueError(f"path must be absolute: {value!r}")
    return value


def paths(values: Iterable[Any]) -> list[str]:
    values = list(values)
    if len(values) > MAX_PATHS:
        raise ValueError(f"too many paths: {len(values)} (at most {MAX_PATHS})")
    return list(dict.fromkeys(path(v) for v in values))


MAX_TTL = 7 * 86400


def port(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise ValueError(f"invalid port {value!r}")
    return value


def filter_entries(kind: Any, values: Iterable[Any]) -> tuple[str, list[tuple[str, int]]]:
    """("deny"|"allow", [(address, ttl seconds)]) from the filtering resolver."""
    if kind not in ("deny", "allow"):
        raise ValueError(f"kind must be 'deny' or 'allow', not {str(kind)[:20]!r}")
    values = list(values)
    if len(values) > MAX_NETWORKS:
        raise ValueError(f"too many addresses: {len(values)} (at most {MAX_NETWORKS})")
    out = []
    for entry in values:
        try:
            address, ttl = entry
            text = str(ipaddress.ip_address(address))
        except (TypeError, ValueError):
            raise ValueError(f"not an (address, ttl) entry: {str(entry)[:80]!r}") from None
        if not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 < ttl <= MAX_TTL:
            raise ValueError(f"ttl of {text} must be 1 to {MAX_TTL} seconds, not {ttl!r}")
        out.append((text, ttl))
    return kind, out


def networks(values: Iterable[Any]) -> list[Network]:
    """Addresses or CIDR ranges, IPv4 or IPv6; host bits are dropped
    ("10.1.2.3/8" is 10.0.0.0/8). Sorted, deduplicated."""
    values = list(values)
    if len(values) > MAX_NETWORKS:
        raise ValueError(f"too many addresses: {len(values)} (at most {MAX_NETWORKS})")
    out: set[Network] = set()
    for value in values:
        if not isinstance(value, str) or len(value) > 64:
            raise ValueError(f"not an IP address or CIDR range: {str(value)[:64]!r}")
        try:
            out.add(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as e:
            raise ValueError(f"not an IP address or CIDR range: {value!r} ({e})") from None
    return sorted(out, key=lambda n: (n.version, n.network_address, n.prefixlen))
