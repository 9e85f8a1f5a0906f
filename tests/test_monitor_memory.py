"""Memory monitor on the real kernel, driven by a real test user.

Samples come from periodic(), which the collector calls every tick
interval; these tests call it at that pace themselves (MonitorRun.wait_for
would poll it every 20 ms and so sample every 20 ms).

The kmem probes are attached only while a watched process runs
(probe_gate.py): a workload whose allocations are counted is held at its
first line until the monitor has attached them (started_held, released).
"""

from __future__ import annotations

import ctypes
import subprocess
import time
from types import SimpleNamespace

import pytest

from dots_common.records import MemorySample
from tests.helpers import VENV_PYTHON, as_user, kmem_links, run_as, uid_of

pytestmark = pytest.mark.bpf

MiB = 1 << 20
INTERVAL = 0.25

#: allocate and touch 150 MiB, say so, give it back on a line (and say
#: so), and stay until stdin closes
HOLD_150_MIB = """
import sys
block = bytearray(b"x") * (150 << 20)
print("ready", flush=True)
sys.stdin.readline()
del block
print("freed", flush=True)
sys.stdin.read()
"""

#: churn for a while: map, touch and unmap 1 MiB (256 page allocations and
#: frees), and open/read/close a /proc file (kmalloc and kfree of a seq_file
#: buffer); print how many MiB were touched
CHURN = """
import mmap, sys, time

seconds = float(sys.argv[1])
data = b"x" * (1 << 20)
rounds = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    for _ in range(20):
        m = mmap.mmap(-1, 1 << 20)
        m[:] = data
        m.close()
        with open("/proc/self/stat", "rb") as f:
            f.read()
    rounds += 20
print(rounds)
"""


#: what a held workload runs first: wait for the go
HELD = "import sys\nsys.stdin.readline()\n"


def started_held(user: str, code: str, *args: str) -> subprocess.Popen:
    """A Python workload as ``user``, waiting for a line on stdin before
    it runs ``code`` (its exec is what makes the monitor attach)."""
    return subprocess.Popen(as_user(user, [VENV_PYTHON, "-c", HELD + code, *args]),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def released(run, *procs: subprocess.Popen) -> None:
    """Once the kmem probes are attached, let the held workloads run."""
    deadline = time.monotonic() + 10
    while not run.monitor.gate.is_open:
        assert time.monotonic() < deadline, "the kmem probes were not attached"
        time.sleep(0.02)
        run.monitor.consume()  # the exec's wake-up record
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()


def vm_rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def sample_until(run, done, timeout: float = 20.0) -> list[MemorySample]:
    """Take samples every INTERVAL until done() (then one more tick)."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(INTERVAL)
        run.drain()
    time.sleep(INTERVAL)
    run.drain()
    return run.records


def test_rss_of_a_process_that_touches_150_mib_then_gives_it_back(load_monitor, child_user):
    """The resident set is read from /proc at each sample: it follows a
    living process up and down."""
    uid = uid_of(child_user)
    run = load_monitor("memory", uids=[uid], interval=INTERVAL)
    proc = started_held(child_user, HOLD_150_MIB)
    try:
        released(run, proc)
        assert proc.stdout.readline() == "ready\n"
        deadline = time.monotonic() + 10
        big = None
        while big is None and time.monotonic() < deadline:
            time.sleep(INTERVAL)
            big = next((r for r in run.drain() if r.pid == proc.pid and r.rss_bytes >= 100 * MiB),
                       None)
        assert big is not None, f"no sample with rss >= 100 MiB: {run.records}"
        proc.stdin.write("free\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "freed\n"
        since = len(run.records)
        sample_until(run, lambda: any(r.pid == proc.pid and r.rss_bytes < 60 * MiB
                                      for r in run.records[since:]), timeout=10)
        assert proc.poll() is None, "it shrank while still running"
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
    assert isinstance(big, MemorySample)
    assert big.uid == uid and big.comm.startswith("python")
    mine = [r for r in run.records if r.pid == proc.pid]
    touched = sum(r.pages_alloc_bytes for r in mine)
    assert touched >= 150 * MiB, "every touched page is a page allocation"
    assert big.rss_bytes < 400 * MiB

    # the exit frees the pages; the last sample reports it, then the entry goes
    sample_until(run, lambda: sum(r.pages_freed_bytes for r in run.records
                                  if r.pid == proc.pid) >= 150 * MiB, timeout=10)
    assert proc.pid not in run.monitor.last
    assert run.monitor.lost == 0


def test_an_entry_whose_exit_was_not_seen_is_forgotten_once_proc_says_it_is_gone(
        load_monitor, child_user):
    """An entry whose exit the kernel did not stamp (the map was full, the
    filter changed) is reported once more and removed when /proc has no
    such process."""
    uid = uid_of(child_user)
    run = load_monitor("memory", uids=[uid], interval=INTERVAL)
    stats = run.monitor.bpf[b"stats"]
    gone = 4_000_000 + 17          # above any pid_max: no such process
    leaf = stats.Leaf()
    leaf.uid, leaf.pages_alloc = uid, 4096
    stats[ctypes.c_uint32(gone)] = leaf
    samples = [s for s in run.monitor.periodic() if s.pid == gone]
    assert [(s.pages_alloc_bytes, s.rss_bytes) for s in samples] == [(4096, 0)]
    assert gone not in {k.value for k in stats.keys()}
    assert gone not in run.monitor.last


def test_page_bytes_still_in_the_per_cpu_slots_are_in_the_sample_once(load_monitor, child_user):
    """The page probes keep what they count for the last process on each
    CPU in a per-CPU slot and add it to the process's entry only when
    another process comes (memory.bpf.c count_pages): a sample adds in what
    the slots hold, and what the kernel moves from a slot to the entry
    between two samples is not counted twice."""
    uid = uid_of(child_user)
    run = load_monitor("memory", uids=[uid], interval=INTERVAL)
    idle = subprocess.Popen(as_user(child_user, ["sleep", "60"]))
    try:
        wait_pid = idle.pid
        stats = run.monitor.bpf[b"stats"]
        leaf = stats.Leaf()
        leaf.uid, leaf.pages_alloc, leaf.pages_freed = uid, 4096, 0
        stats[ctypes.c_uint32(wait_pid)] = leaf
        slots = run.monitor.bpf[b"page_slots"]
        ncpus = len(slots[0])
        for which, per_cpu in ((0, 8192), (1, 4096)):
            values = slots[which]
            for cpu in range(ncpus):
                values[cpu].tgid, values[cpu].uid = wait_pid, uid
                values[cpu].ready, values[cpu].bytes = 1, per_cpu
            slots[ctypes.c_int(which)] = values
        samples = [s for _ in range(3) for s in run.monitor.periodic() if s.pid == wait_pid]
        assert sum(s.pages_alloc_bytes for s in samples) == 4096 + 8192 * ncpus
        assert sum(s.pages_freed_bytes for s in samples) == 4096 * ncpus
        assert all(s.pages_alloc_bytes >= 0 and s.pages_freed_bytes >= 0 for s in samples)
    finally:
        idle.kill()
        idle.wait()


#: spawn and reap N short-lived processes as fast as it can
SHORT_LIVED = """
import os, sys
for _ in range(int(sys.argv[1])):
    os.waitpid(os.posix_spawn("/bin/true", ["true"], {}), 0)
print("done", flush=True)
"""


def test_a_storm_of_short_lived_processes_loses_no_allocation(load_monitor, child_user):
    """Each process keeps its entry until the sample after its exit, so
    thousands of processes a second would fill the map within one
    interval, and every allocation of a process without an entry is lost.
    While the map is filling, the kernel wakes the monitor to be sampled
    at once, and it asks to be sampled sooner; driven as the collector's
    ticker drives it (every 0.1 s: read the ring, sample when due or
    asked), nothing is lost."""
    monitor = load_monitor("memory", uids=[uid_of(child_user)], interval=1.0,
                           max_pids=1024).monitor
    proc = started_held(child_user, SHORT_LIVED, "3000")
    released(SimpleNamespace(monitor=monitor), proc)
    proc.stdin.close()
    asked = intervals = 0
    last = time.monotonic()
    deadline = last + 60
    while proc.poll() is None:
        assert time.monotonic() < deadline, "the storm did not end"
        time.sleep(0.1)
        monitor.consume()
        asked += monitor.sample_soon
        if monitor.sample_soon or time.monotonic() - last >= monitor.tick_interval:
            last = time.monotonic()
            monitor.periodic()
            intervals += monitor.tick_interval < 1.0
    for _ in range(3):  # the last exits' entries, after their grace
        time.sleep(0.15)
        monitor.periodic()
    assert proc.stdout.read() == "done\n"
    assert monitor.lost == 0, f"lost {monitor.lost} (woken {asked}, sooner {intervals})"
    assert asked and intervals, "the kernel asked for a sample, the busy map was sampled sooner"
    assert monitor.tick_interval == 1.0, "and at the configured pace once it emptied"


def test_samples_stay_bounded_under_allocation_churn(load_monitor, child_user):
    uid = uid_of(child_user)
    run = load_monitor("memory", uids=[uid], interval=INTERVAL)
    rss_before = vm_rss_kib()
    seconds = 2.0
    started = time.monotonic()
    proc = started_held(child_user, CHURN, str(seconds))
    released(run, proc)
    proc.stdin.close()
    sample_until(run, lambda: proc.poll() is not None)
    elapsed = time.monotonic() - started
    rounds = int(proc.stdout.read())
    mine = [r for r in run.records if r.pid == proc.pid]
    rss_after = vm_rss_kib()

    pages_alloc = sum(r.pages_alloc_bytes for r in mine)
    pages_freed = sum(r.pages_freed_bytes for r in mine)
    kmalloc = sum(r.bytes_alloc for r in mine)
    kfree = sum(r.bytes_freed for r in mine)
    print(f"\nchurn: {rounds} MiB mapped, touched and unmapped in {elapsed:.2f}s "
          f"(~{rounds * 256 * 2 / elapsed:,.0f} page allocs+frees/s, plus kmalloc); "
          f"{len(mine)} samples for the pid, {len(run.records)} in all, "
          f"lost {run.monitor.lost}; collector VmRSS {rss_before} -> {rss_after} KiB")

    # millions of allocations, a handful of samples
    assert rounds * 256 >= 100_000
    assert 1 <= len(mine) <= elapsed / INTERVAL + 3
    assert len({r.ts_ns for r in mine}) == len(mine), "one sample per pid per tick"
    # nothing lost: every page the process touched was counted, alloc and free
    assert run.monitor.lost == 0
    assert pages_alloc >= rounds * MiB
    assert pages_freed >= rounds * MiB
    # kfree sizes come from the kmalloc they free
    assert kmalloc > 0 and 0.8 * kmalloc <= kfree <= kmalloc
    assert rss_after - rss_before < 16 * 1024, "the collector's memory stays bounded"


def test_uid_filter_drops_other_users_in_the_kernel(load_monitor, child_user, other_user):
    uid = uid_of(child_user)
    run = load_monitor("memory", uids=[uid], interval=INTERVAL)
    # a process of the watched user keeps the kmem probes attached: the
    # other user's allocations reach them and the uid check drops them
    marker = started_held(child_user, "bytearray(b'x') * (8 << 20)\nsys.stdin.read()")
    try:
        released(run, marker)
        other = run_as(other_user, [VENV_PYTHON, "-c", CHURN, "0.5"])
        assert other.returncode == 0
        sample_until(run, lambda: any(r.pid == marker.pid for r in run.records), timeout=10)
    finally:
        marker.stdin.close()
        marker.wait(timeout=10)
    assert not [r for r in run.records if r.uid != uid]
    assert run.monitor.lost == 0


def test_a_full_map_counts_lost_events(load_monitor, child_user):
    """The per-process map is bounded: events of processes that find no room
    are counted as lost, not silently dropped."""
    uid = uid_of(child_user)
    run = load_monitor("memory", uids=[uid], interval=INTERVAL, max_pids=2)
    hold = "b = bytearray(b'x') * (4 << 20)\nsys.stdin.read()"
    procs = [started_held(child_user, hold) for _ in range(4)]
    try:
        released(run, *procs)
        time.sleep(1.0)
        run.drain()
        assert run.monitor.lost > 0
        assert len({r.pid for r in run.records}) <= 2
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=10)
    # once they have exited, their entries go and the map has room again
    held = {p.pid for p in procs}
    sample_until(run, lambda: not held & run.monitor.last.keys(), timeout=30)
    marker = started_held(child_user, hold)
    try:
        released(run, marker)
        sample_until(run, lambda: any(r.pid == marker.pid for r in run.records), timeout=30)
    finally:
        marker.stdin.close()
        marker.wait(timeout=10)


def test_kmem_probes_are_attached_only_while_a_watched_process_runs(load_monitor, child_user,
                                                                    other_user, monkeypatch):
    """Nobody watched runs: no kmem probe is attached, so another user's
    allocation storm costs no BPF at all. A watched user's exec attaches
    them (its wake-up record); they go again once it has exited."""
    from dots_collector.monitors import memory

    monkeypatch.setattr(memory, "PROC_SCAN_GAP", 0.0)  # look in /proc at every sample
    uid = uid_of(child_user)
    run = load_monitor("memory", uids=[uid], interval=INTERVAL)
    assert not run.monitor.gate.is_open and kmem_links() == set()
    other = run_as(other_user, [VENV_PYTHON, "-c", CHURN, "0.3"])
    assert other.returncode == 0
    run.drain()
    assert not run.monitor.gate.is_open and kmem_links() == set()
    assert run.records == []

    proc = started_held(child_user, "bytearray(b'x') * (16 << 20)\nsys.stdin.read()")
    try:
        released(run, proc)
        assert kmem_links() == {t.split(":")[1] for t in memory.GATED}
        sample_until(run, lambda: sum(r.pages_alloc_bytes for r in run.records
                                      if r.pid == proc.pid) >= 16 * MiB, timeout=10)
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
    sample_until(run, lambda: not run.monitor.gate.is_open, timeout=10)
    assert kmem_links() == set()
    assert run.monitor.gate.opened == 1 and run.monitor.gate.closed == 1


def test_a_refused_attach_is_logged_and_tried_again(load_monitor, child_user, monkeypatch, caplog):
    """The kernel refusing the kmem links (out of file descriptors) leaves
    the probes detached and the monitor working; the next exec tries again."""
    from dots_collector import libbpf

    real = libbpf.raw_tracepoint_open

    def refused(name: str, prog_fd: int) -> int:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(libbpf, "raw_tracepoint_open", refused)
    run = load_monitor("memory", uids=[uid_of(child_user)], interval=INTERVAL)
    first = started_held(child_user, "sys.stdin.read()")
    try:
        wait_for_log = time.monotonic() + 10
        while "cannot attach the kmem probes" not in caplog.text:
            assert time.monotonic() < wait_for_log, "no error logged"
            time.sleep(0.02)
            run.drain()  # the exec's wake-up record
        assert not run.monitor.gate.is_open
        monkeypatch.setattr(libbpf, "raw_tracepoint_open", real)
        second = started_held(child_user, "bytearray(b'x') * (8 << 20)\nsys.stdin.read()")
        try:
            released(run, second)  # its exec attaches them
            sample_until(run, lambda: any(r.pid == second.pid for r in run.records), timeout=10)
        finally:
            second.stdin.close()
            second.wait(timeout=10)
    finally:
        first.stdin.close()
        first.wait(timeout=10)
