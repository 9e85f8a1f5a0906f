"""Issue 14's accounting of storms: for each monitor's storm, run with the
collector monitoring the storm's user (``--stdout``), how many events were
generated, delivered and lost (delivered + lost must equal generated),
the rate they were offered at, and the collector's CPU per delivered
event end to end (ring buffer to stdout: from the storm's start to 0.3 s
after its end, all threads, from schedstat; loading and detaching are not
counted), and its resident memory after loading.

"generated": the storm program's own count of the operations that make
events (posix_spawn = fork + exec + exit; file open / write / read /
unlink; connect + accept + 2 closes per loopback connection; completed
disk requests are not countable by the workload). Every run also reads
the kernel's own count from the pinned maps before the collector stops:
``submitted.records`` (records committed to the ring buffer, common.h) and the
ring's ``lost_events``; for disk, "generated" is that count, so delivered
+ lost = generated checks that every record the kernel committed came out
of the collector. (Disk's "lost" also holds completions the kernel did not
show us: ``unseen`` counts them, apart from the ring's.) One collector run per
storm, started before and stopped after it; ``rounds`` runs per storm.
"""

from __future__ import annotations

import glob
import os
import time
from typing import Any

from .procs import BENCH_PIN_DIR, Collector
from .util import summarize
from .workloads import Workspace, calibrate, run_storm

STORM_MONITORS = ("process", "filesystem", "network", "disk")
SETTLE_S = 0.3
#: events the storm makes that its own count leaves out: the process
#: storm's own exec (setpriv -> storm) and exit
EXTRA_EVENTS = {"process": 2}
#: storms whose own count is the monitor's events (disk requests are not)
COUNTED = ("process", "filesystem", "network")


def _sched_ns(pid: int) -> tuple[int, int]:
    """(CPU time, time runnable but waiting for a CPU) of every thread of a
    process, in ns (schedstat: exact, where /proc/PID/stat counts 10 ms
    ticks)."""
    cpu = wait = 0
    for task in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(task) as f:
                fields = f.read().split()
            cpu, wait = cpu + int(fields[0]), wait + int(fields[1])
        except (OSError, ValueError, IndexError):
            pass
    return cpu, wait


def _cpu_ns(pid: int) -> int:
    """CPU time of every thread of a process, in ns."""
    return _sched_ns(pid)[0]


def _steal_ms() -> int:
    """Time the hypervisor ran something else on this VM's CPUs, summed
    over them (/proc/stat's steal, in USER_HZ ticks of 10 ms): a collector
    on a stolen vCPU cannot read its rings, and the guest cannot see why."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) * 1000 // os.sysconf("SC_CLK_TCK")


def _rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _kernel_count(monitor: str, name: str, words: int = 1) -> int | None:
    """The sum over CPUs of a monitor's pinned per-CPU counter [0]: its
    first u64 (of ``words``: `submitted` holds records, then bytes)."""
    import ctypes
    from pathlib import Path

    from dots_collector import libbpf

    try:
        fd = libbpf.obj_get(Path(BENCH_PIN_DIR) / monitor / f"map_{name}")
    except OSError:
        return None
    try:
        values = (ctypes.c_uint64 * (words * libbpf.possible_cpus()))()
        if not libbpf.lookup(fd, ctypes.c_uint32(0), values):
            return None
        return sum(values[::words])
    finally:
        os.close(fd)


def _kernel_skipped(monitor: str) -> int | None:
    """Runs of the monitor's programs the kernel skipped (recursion_misses):
    events of the storm among them would be lost without a count."""
    from pathlib import Path

    from dots_collector import libbpf
    from dots_collector.maps import open_programs

    try:
        fds = open_programs(Path(BENCH_PIN_DIR) / monitor)
    except OSError:
        return None
    try:
        return sum(libbpf.prog_recursion_misses(fd) for fd in fds)
    finally:
        for fd in fds:
            os.close(fd)


def _one(ws: Workspace, monitor: str, iterations: int, user) -> dict[str, Any]:
    observer = Collector([monitor], [user.uid]).start()
    pid = observer.process.pid
    rss = _rss_kib(pid)
    cpu0 = _cpu_ns(pid)
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    try:
        storm = run_storm(ws, monitor, iterations, user)
        # the collector reads what is left at its next tick (ticker.TICK)
        time.sleep(SETTLE_S)
        cpu_total = (_cpu_ns(pid) - cpu0) / 1e9
        # the kernel's count, while the pins exist (a clean stop removes them)
        submitted = _kernel_count(monitor, "submitted", words=2)
        ring_lost = _kernel_count(monitor, "lost_events")
        # disk: issued requests whose completion the monitor did not match
        unseen = _kernel_count(monitor, "unseen") if monitor == "disk" else None
        skipped = _kernel_skipped(monitor)
    finally:
        counts = observer.stop()
    wall = time.monotonic() - t0
    delivered, lost = counts["events"], counts["lost"]
    if monitor in COUNTED:
        generated = storm.get("events")
        if generated is not None:
            generated += EXTRA_EVENTS.get(monitor, 0)
    else:  # the kernel's count: committed, plus lost (ring full or skipped)
        generated = None if submitted is None else submitted + lost
    cpu_storm = cpu_total
    return {
        "iterations": iterations, "elapsed_s": storm["elapsed_s"], "wall_s": round(wall, 3),
        "generated": generated, "delivered": delivered, "lost": lost,
        "generated_by": "workload" if monitor in COUNTED else "kernel",
        "kernel_submitted": submitted, "kernel_ring_lost": ring_lost,
        **({"kernel_unseen": unseen} if monitor == "disk" else {}),
        "kernel_skipped": skipped,
        "accounted": (delivered + lost == generated) if generated is not None else None,
        "offered_per_s": round((generated if generated is not None else delivered + lost)
                               / storm["elapsed_s"]),
        "collector_cpu_s": round(cpu_total, 4),
        "collector_rss_kib": rss,
        "cpu_us_per_event": round(cpu_total / delivered * 1e6, 2) if delivered else None,
        "loadavg_1min": load,
    }


def run(ws: Workspace, settings, progress, monitors=STORM_MONITORS, rounds: int | None = None) -> dict:
    """Storms of about 2 s bare (1 s in quick mode), 3 rounds (1 quick)."""
    user = ws.user("dots-bench")
    rounds = rounds or (1 if settings.quick else 3)
    seconds = max(settings.storm_seconds, 1.0 if settings.quick else 2.0)
    out: dict[str, Any] = {"method": __doc__.strip(), "monitors": {}}
    for monitor in monitors:
        cal = calibrate(ws, monitor, user, seconds)
        runs = []
        for rnd in range(rounds):
            r = _one(ws, monitor, cal["iterations"], user)
            runs.append(r)
            progress(f"{monitor} round {rnd + 1}/{rounds}: generated {r['generated']}, delivered "
                     f"{r['delivered']}, lost {r['lost']} ({r['offered_per_s']} ev/s offered); "
                     f"collector {r['cpu_us_per_event']} µs/event; load {r['loadavg_1min']:.2f}")
        out["monitors"][monitor] = {
            "calibration": cal, "runs": runs,
            "lost_total": sum(r["lost"] for r in runs),
            "all_accounted": all(r["accounted"] is not False for r in runs),
            "cpu_us_per_event": summarize(r["cpu_us_per_event"] for r in runs),
            "offered_per_s": summarize(r["offered_per_s"] for r in runs),
        }
    return out
