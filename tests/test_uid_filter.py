"""The monitors' in-kernel uid filter (common.h uid_wanted, monitors/base.py
set_uids): a bitmap array for uids below 65,536, a hash for bigger ones
(LDAP, sssd, idmapped ranges), and the order of writes that never drops a
wanted event while the watched set changes."""

from __future__ import annotations

import ctypes
import subprocess
import time

import pytest

from dots_collector.monitors import base
from dots_collector.monitors.base import Monitor, UID_BIG_ALL, UID_BIG_LISTED, UID_WORDS

from tests.helpers import run_as, uid_of

BIG = 3_000_000_000 + (int(time.time()) % 1000) * 2   # an sssd-style uid, no account


# --- the write order, against a model of the kernel side ----------------------
class FakeTable:
    """A map that records, after every write, what the kernel would hold."""

    def __init__(self, log: list, name: str, array: int | None = None) -> None:
        self.data: dict[int, int] = {i: 0 for i in range(array)} if array else {}
        self.log, self.name = log, name

    def items(self):
        return [(ctypes.c_int(k), ctypes.c_uint64(v)) for k, v in self.data.items()]

    def keys(self):
        return [ctypes.c_uint32(k) for k in self.data]

    def __setitem__(self, key, value) -> None:
        self.data[key.value] = value.value
        self.log.append(self.name)

    def __delitem__(self, key) -> None:
        del self.data[key.value]
        self.log.append(self.name)


class FakeMonitor(Monitor):
    name = "fake"

    def __init__(self) -> None:  # no BPF: only the filter's maps
        self.watching = set()
        self.writes: list[str] = []
        self.states: list[tuple[dict, set]] = []
        self.words = FakeTable(self.writes, "words", UID_WORDS + 1)
        self.big = FakeTable(self.writes, "big")
        self.bpf = {b"uid_filter": self.words, b"monitored_uids": self.big}


def wanted(words: dict[int, int], big: set[int], uid: int) -> bool:
    """uid_wanted() of common.h, in Python."""
    if uid < UID_WORDS * 64:
        return bool(words[uid >> 6] >> (uid & 63) & 1)
    flags = words[UID_WORDS]
    return bool(flags & UID_BIG_ALL) or bool(flags and uid in big)


def check_every_state(mon: FakeMonitor, old: set[int], new: set[int], probes: set[int]) -> None:
    """Replays set_uids(new) write by write: a uid wanted before and after
    is wanted at every step; the end state is exactly new."""
    steps: list[tuple[dict, set]] = []
    real_set, real_del = FakeTable.__setitem__, FakeTable.__delitem__

    def snap():
        steps.append((dict(mon.words.data), set(mon.big.data)))

    def set_and_snap(self, k, v):
        real_set(self, k, v)
        snap()

    def del_and_snap(self, k):
        real_del(self, k)
        snap()

    FakeTable.__setitem__, FakeTable.__delitem__ = set_and_snap, del_and_snap
    try:
        mon.set_uids(new)
    finally:
        FakeTable.__setitem__, FakeTable.__delitem__ = real_set, real_del
    keep = {u for u in probes if (not old or u in old) and (not new or u in new)}
    for words, big in steps:
        for uid in keep:
            assert wanted(words, big, uid), f"uid {uid} dropped on the way from {old} to {new}"
    words, big = dict(mon.words.data), set(mon.big.data)
    for uid in probes:
        assert wanted(words, big, uid) == (not new or uid in new), (uid, new)


def test_write_order_never_drops_a_uid_wanted_before_and_after() -> None:
    mon = FakeMonitor()
    probes = {0, 1, 63, 64, 1000, 1001, 65535, 65536, 70000, BIG, BIG + 1}
    sets = [{1000}, {1000, 1001}, {1001, 70000}, set(), {70000, BIG}, {BIG},
            {0, 63, 64, 65535}, set(), {1000}, {65536}]
    old: set[int] = set()
    mon.set_uids(set())  # the loader's first call: every uid
    old = set()
    for new in sets:
        check_every_state(mon, old, new, probes)
        old = new


def test_uid_words_layout() -> None:
    words = base.uid_words({0, 65, 65535, 65536})
    assert words[0] == 1 and words[1] == 2 and words[1023] == 1 << 63
    assert words[UID_WORDS] == UID_BIG_LISTED
    assert base.uid_words(set())[UID_WORDS] == UID_BIG_ALL


def test_monitor_nobody_clears_everything() -> None:
    mon = FakeMonitor()
    mon.set_uids({5, 70000})
    mon.monitor_nobody()
    assert not any(mon.words.data.values()) and not mon.big.data


# --- on the real kernel ---------------------------------------------------------
def run_uid(uid: int, marker: str) -> None:
    subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                    "/usr/bin/env", f"DOTS_MARK={marker}", "/usr/bin/true"], check=True)


@pytest.mark.bpf
def test_a_big_uid_is_watched_and_its_neighbour_is_not(load_monitor, child_user) -> None:
    small = uid_of(child_user)
    run = load_monitor("process", uids=[BIG])
    run_uid(BIG + 1, "neighbour")
    run_as(child_user, ["/usr/bin/true"])
    run_uid(BIG, "big")
    run.wait_for(lambda r: r.type == "exec" and r.uid == BIG and r.path == "/usr/bin/true",
                 what="the big uid's exec")
    assert not [r for r in run.records if r.uid in (BIG + 1, small)]

    seen_big = [r.uid for r in run.records].count(BIG)   # env and true
    run.monitor.set_uids([small])        # big -> small: the big uid leaves
    run_uid(BIG, "gone")
    run_as(child_user, ["/usr/bin/env", "/usr/bin/true"])
    run.wait_for(lambda r: r.type == "exec" and r.uid == small and r.path == "/usr/bin/env",
                 what="the small uid's marker")
    assert [r.uid for r in run.records].count(BIG) == seen_big

    run.monitor.set_uids([])             # every uid, big ones too
    run_uid(BIG + 1, "every")
    run.wait_for(lambda r: r.type == "exec" and r.uid == BIG + 1, what="any uid's exec")
    assert run.monitor.lost == 0
