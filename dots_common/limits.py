"""Limits and lists both daemons must agree on."""

from __future__ import annotations

#: the collector's monitors, in the order they load and are listed
MONITORS: tuple[str, ...] = ("process", "filesystem", "network", "memory", "disk")

#: uids one collector watches or enforces upon at most (children on one
#: machine: far fewer); every per-uid kernel table is sized for this
MAX_UIDS = 1024

#: (uid_t)-1 means "no uid": the largest uid a rule may name
MAX_UID = 2**32 - 2

#: login.defs UID_MIN: accounts below are system accounts, never children
MIN_CHILD_UID = 1000
NOBODY_UID = 65534
