"""The memory monitor's mm_owner map (mm address -> process) is a plain hash that
grows with its entries: nothing may stay in it for a process that is gone,
or it would fill up with the dead (an LRU would evict them, at ~80 bytes of
kernel memory per entry preallocated)."""

from __future__ import annotations

import ctypes
import time

import pytest

from tests.helpers import uid_of
from tests.test_monitor_memory import INTERVAL, released, started_held

pytestmark = pytest.mark.bpf

TOUCH = "import mmap\nm = mmap.mmap(-1, 8 << 20)\nm.write(b'x' * (8 << 20))\nprint('done')\n"


def owners(monitor) -> dict[int, int]:
    return {k.value: v.value for k, v in monitor.bpf[b"mm_owner"].items()}


def test_no_owner_entry_outlives_its_process(load_monitor, child_user):
    run = load_monitor("memory", uids=[uid_of(child_user)], interval=INTERVAL)
    pids = []
    for _ in range(5):
        proc = started_held(child_user, TOUCH)  # run once the kmem probes are attached
        released(run, proc)
        out, _ = proc.communicate(timeout=30)
        assert out == "done\n"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        time.sleep(INTERVAL)
        samples = run.drain()
        pids += [s.pid for s in samples if s.comm.startswith("python")]
        if len(set(pids)) >= 5 and not set(pids) & set(run.monitor.last):
            break
    assert len(set(pids)) >= 5, "a sample of every process"
    assert not set(pids) & set(run.monitor.last), "every exited process forgotten"
    assert not set(pids) & set(owners(run.monitor).values()), "no owner entry for the dead"



def test_forgetting_a_process_whose_exit_was_not_seen_drops_its_owner_entry(load_monitor,
                                                                           child_user):
    """An entry whose exit the kernel did not stamp (the map was full, the
    filter changed) is forgotten when /proc says the process is gone; its
    mm's owner entry goes with it."""
    uid = uid_of(child_user)
    run = load_monitor("memory", uids=[uid], interval=INTERVAL)
    stats, mm_owner = run.monitor.bpf[b"stats"], run.monitor.bpf[b"mm_owner"]
    gone = 4_000_000 + 17          # above any pid_max: no such process
    leaf = stats.Leaf()
    leaf.uid, leaf.mm = uid, 0x5EED  # the mm's address (memory.bpf.c)
    stats[ctypes.c_uint32(gone)] = leaf
    mm_owner[ctypes.c_uint64(0x5EED)] = ctypes.c_uint32(gone)
    run.monitor.periodic()         # its first sample
    run.monitor.periodic()         # nothing new, and /proc/<pid> is gone: forgotten
    assert gone not in {k.value for k in stats.keys()}
    assert 0x5EED not in owners(run.monitor)
