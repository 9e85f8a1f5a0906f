"""Known DNS-over-HTTPS endpoints (dots_policyd/data/doh-endpoints.txt plus
the parents' additions): host names the filter answers NXDOMAIN, addresses
the kernel refuses, so a browser's built-in encrypted DNS cannot carry a
child's lookups around the filter."""

from __future__ import annotations

import ipaddress
from importlib import resources

from .domains import ListError, normalize


def parse_endpoints(text: str) -> tuple[list[str], list[str]]:
    """(host names, networks) of a list: one host name, address or CIDR
    range a line, "#" comments. ListError names a bad line."""
    hosts: list[str] = []
    networks: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False).with_prefixlen)
            continue
        except ValueError:
            pass
        name = normalize(entry)
        if name is None or entry.replace(".", "").replace("/", "").isdigit():
            raise ListError(f"line {number}: {entry[:60]!r} is not a host name, address or range")
        hosts.append(name)
    return hosts, networks


def builtin() -> tuple[list[str], list[str]]:
    text = resources.files("dots_policyd").joinpath("data/doh-endpoints.txt").read_text()
    return parse_endpoints(text)
