"""What the probes cost for a user nobody watches, measured by the kernel:
the run time of every BPF program the collector holds (BPF_ENABLE_STATS:
run_time_ns and run_cnt per program, what ``bpftool prog show`` prints),
summed over each storm of bench/workloads run by ``dots-bench`` while the
collector watches only ``dots-bench-idle``.

    sudo .venv/bin/python bench/probe_cost.py [--code DIR] [--rounds N] [--watched]
                                              [--monitors memory,network]

``--code DIR`` runs the collector from another checkout's sources (e.g. the
main branch's, for a before/after comparison): PYTHONPATH=DIR.
Unlike the overhead section's wall-clock ratios this does not depend on
what else runs on the machine (other programs' time is not counted), so
two versions can be compared on a busy machine. Statistics are on only
while this runs (the fd from BPF_ENABLE_STATS is closed at the end).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib import util  # noqa: E402
from lib.workloads import STORMS, Workspace, run_storm  # noqa: E402

BPF_ENABLE_STATS, BPF_STATS_RUN_TIME, SYS_BPF = 32, 0, 321
MONITORS = ("process", "filesystem", "network", "memory", "disk")


def enable_stats() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    attr = (ctypes.c_uint32 * 2)(BPF_STATS_RUN_TIME, 0)
    fd = libc.syscall(SYS_BPF, BPF_ENABLE_STATS, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "BPF_ENABLE_STATS")
    return fd


def prog_ids(pid: int) -> set[int]:
    ids = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:bpf-prog":
                info = util._fdinfo(pid, fd)
                ids.add(int(info["prog_id"]))
        except (OSError, KeyError):
            continue
    return ids


def snapshot(ids: set[int]) -> dict[int, tuple[str, int, int]]:
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True)
    return {p["id"]: (p.get("name", "?"), p.get("run_time_ns", 0), p.get("run_cnt", 0))
            for p in json.loads(out.stdout) if p["id"] in ids}


def start_collector(uid: int, code: str | None) -> subprocess.Popen:
    env = dict(os.environ, **({"PYTHONPATH": code} if code else {}))
    proc = subprocess.Popen([util.COLLECTOR_BIN, "--stdout", "--no-enforcers", "--rules-file", "",
                             "--uid", str(uid)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env, cwd="/")
    assert proc.stderr is not None
    for line in proc.stderr:
        if "ready" in line:
            return proc
    raise SystemExit(f"collector ({code or 'this checkout'}) exited: {proc.wait()}")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--code", help="also run a collector from this checkout (PYTHONPATH=DIR), "
                                   "side by side: both see the same events")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--watched", action="store_true",
                    help="watch the storm's own user (the monitored cost) instead of "
                         "an idle one (the cost for a user nobody watches)")
    ap.add_argument("--monitors", default=",".join(MONITORS),
                    help="comma-separated storms to run (default: all five)")
    ap.add_argument("--other-first", action="store_true",
                    help="start the other checkout's collector first (programs on one "
                         "tracepoint run in attach order; the first one pays more)")
    args = ap.parse_args()
    ws = Workspace()
    user = ws.user("dots-bench")
    idle = ws.user("dots-bench-idle")
    versions = {"this": None, **({"other": args.code} if args.code else {})}
    if args.other_first:
        versions = dict(reversed(list(versions.items())))
    procs: dict[str, subprocess.Popen] = {}
    stats_fd = -1
    try:
        for label, code in versions.items():
            procs[label] = start_collector((user if args.watched else idle).uid, code)
        owner = {i: label for label, proc in procs.items() for i in prog_ids(proc.pid)}
        stats_fd = enable_stats()
        results = {}
        for monitor in args.monitors.split(","):
            iterations = STORMS[monitor][1] * 2
            rounds = []
            for _ in range(args.rounds):
                before = snapshot(set(owner))
                result = run_storm(ws, monitor, iterations, user)
                after = snapshot(set(owner))
                per: dict[str, dict[str, tuple[int, int]]] = {label: {} for label in procs}
                for i, (name, ns, cnt) in after.items():
                    _, ns0, cnt0 = before.get(i, (name, 0, 0))
                    if cnt > cnt0:
                        per[owner[i]][name] = (ns - ns0, cnt - cnt0)
                rounds.append((per, result.get("iterations", iterations)))
            results[monitor] = report(monitor, rounds)
        print(json.dumps(results))
    finally:
        if stats_fd >= 0:
            os.close(stats_fd)
        for proc in procs.values():
            stop(proc)
        ws.cleanup()
    return 0


def report(monitor: str, rounds: list) -> dict:
    """Per version: probe time per storm iteration (median of rounds) and
    ns per run of each program (all rounds together)."""
    labels = list(rounds[0][0])
    out: dict = {}
    for label in labels:
        totals = sorted(sum(ns for ns, _ in per[label].values()) / done for per, done in rounds)
        progs: dict[str, list[int]] = {}
        for per, _ in rounds:
            for name, (ns, cnt) in per[label].items():
                acc = progs.setdefault(name, [0, 0])
                acc[0] += ns
                acc[1] += cnt
        out[label] = {"probe_ns_per_iteration": round(totals[len(totals) // 2]),
                      "programs": {n: {"runs": c, "ns_per_run": round(ns / c, 1)}
                                   for n, (ns, c) in progs.items()}}
    print(f"{monitor}: probe ns per storm iteration (median of {len(rounds)}): "
          + ", ".join(f"{label} {out[label]['probe_ns_per_iteration']:,}" for label in labels),
          flush=True)
    first = out[labels[0]]["programs"]
    for name in sorted(first, key=lambda n: -first[n]["runs"] * first[n]["ns_per_run"])[:10]:
        cells = [f"{out[label]['programs'].get(name, {}).get('ns_per_run', '-'):>7} ns"
                 for label in labels]
        print(f"    {name:<44} {first[name]['runs']:>9} runs  " + "  ".join(cells), flush=True)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
