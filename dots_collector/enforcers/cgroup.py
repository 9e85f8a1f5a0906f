"""Where cgroup v2 is mounted: the network enforcer attaches there.

Its hooks are BPF links (libbpf.link_create) rather than BPF_PROG_ATTACH:
links coexist with other programs on the same cgroup (multi-attach)
instead of replacing them, and can be pinned (pinning.py), so the rules
stay in force while a crashed collector restarts; a clean stop removes
the pins and with them the hooks.
"""

from __future__ import annotations


def cgroup2_mount(mounts: str = "/proc/mounts") -> str:
    """Where the cgroup v2 hierarchy is mounted (unified or hybrid)."""
    with open(mounts) as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                return fields[1].replace("\\040", " ")
    raise RuntimeError("no cgroup2 hierarchy is mounted (see /proc/mounts)")
