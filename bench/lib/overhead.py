"""Sections 1 and 2: overhead per monitor, and the bpftrace peer.

Each monitor gets its own storm, run as the bench user and timed by the
workload itself. Conditions, each run right after its own bare run (a
pair), the order of the conditions rotating from round to round:

* monitored: ``dots-collector --stdout --no-enforcers --monitors NAME
  --uid BENCH`` with its stdout read by this process, which counts the JSON
  lines (every event decoded and serialized in user space; "lost" lines
  give the kernel's lost counter);
* filtered: the same collector monitoring another uid (that runs nothing):
  the tracepoints fire, the in-kernel uid check says no (the memory
  monitor attaches its kmem probes only while a watched process runs, so
  here they are not attached at all);
* filtered_busy (memory only): the same, while the watched uid runs a
  ``sleep`` (a child logged in beside the user of the storm): the kmem
  probes are attached and the uid check says no;
* bpftrace: bench/bpftrace/NAME.bt on the same tracepoints, printing (or
  aggregating) the same events for the bench uid, read by this process.

The collector and bpftrace are started before and stopped after each
timed run (never attached during a bare run). The mixed workload runs
with every monitor and the enforcers (the deployed configuration).
"""

from __future__ import annotations

import subprocess
from typing import Any

from . import decode_cost
from .procs import BpfTrace, Collector, combined_bpftrace
from .util import BENCH, SectionError, bpf_memory, cpu_seconds, ratio_summary, summarize
from .workloads import (IDLE_USER, MIXED_DESCRIPTION, STORM_DESCRIPTIONS, Mixed, Workspace,
                        calibrate, run_storm, spawn_kw)

from dots_common.limits import MONITORS  # noqa: E402
SEED_CLAIMS = {"process": "1–2 %", "filesystem": "2–5 %", "network": "1–3 %",
               "memory": "3–7 %", "disk": "2–4 %"}
CONDITIONS = ["monitored", "filtered", "bpftrace"]
#: monitors whose probes are attached only while a watched process runs
GATED_MONITORS = {"memory"}
BPFTRACE_DIR = BENCH / "bpftrace"


def _run_condition(cond: str, monitors: list[str], uid: int, idle_uid: int, script,
                   workload, enforcers: bool = False, want_kernel_memory: bool = False,
                   idle_user=None) -> dict:
    """Start the observer, run the workload, stop the observer."""
    run: dict[str, Any] = {"condition": cond}
    if cond == "filtered_busy":  # the watched uid has a process (started first)
        holder = subprocess.Popen(["sleep", "3600"], **spawn_kw(idle_user))
        try:
            return _run_condition("filtered", monitors, uid, idle_uid, script, workload,
                                  enforcers, want_kernel_memory) | {"condition": cond}
        finally:
            holder.kill()
            holder.wait()
    if cond == "bpftrace":
        observer: Any = BpfTrace(script, uid).start()
    else:
        observer = Collector(monitors, [uid if cond == "monitored" else idle_uid],
                             enforcers=enforcers).start()
        if want_kernel_memory:
            run["kernel_memory"] = bpf_memory(observer.pid)
    cpu0 = cpu_seconds(observer.process.pid)
    try:
        run.update(workload())
        cpu1 = cpu_seconds(observer.process.pid)
    finally:
        run.update(observer.stop())
    if cpu0 is not None and cpu1 is not None:
        # the observer's own CPU time during the timed run (user space only:
        # the probes' time is charged to the workload)
        run["observer_cpu_s"] = round(cpu1 - cpu0, 3)
        run["observer_cpu_share"] = round((cpu1 - cpu0) / max(run["elapsed_s"], 1e-6), 3)
    return run


def _summaries(runs: list[dict], conditions: list[str]) -> dict:
    out = {}
    for cond in conditions:
        pairs = [(r["bare_elapsed_s"], r["elapsed_s"]) for r in runs if r["condition"] == cond]
        mine = [r for r in runs if r["condition"] == cond]
        out[cond] = {
            "ratio": ratio_summary(pairs),
            "elapsed_s": summarize(r["elapsed_s"] for r in mine),
            "bare_elapsed_s": summarize(r["bare_elapsed_s"] for r in mine),
            "events": summarize(r.get("events") for r in mine),
            "lost": summarize(r.get("lost") for r in mine),
            "lost_total": sum(r.get("lost") or 0 for r in mine),
            "startup_s": summarize(r.get("startup_s") for r in mine),
            "observer_cpu_share": summarize(r.get("observer_cpu_share") for r in mine),
            "observer_cpu_us_per_event": summarize(
                r["observer_cpu_s"] / r["events"] * 1e6 for r in mine
                if r.get("observer_cpu_s") is not None and r.get("events")),
        }
    return out


def paired_rounds(progress, label: str, pairs: int, conditions: list[str], bare, conditioned) -> list[dict]:
    """bare, X, bare, Y, ... with X, Y, ... rotating each round."""
    runs = []
    for rnd in range(pairs):
        order = conditions[rnd % len(conditions):] + conditions[:rnd % len(conditions)]
        for cond in order:
            b = bare()
            try:
                x = conditioned(cond, first=(rnd == 0))
            except SectionError as e:
                progress(f"{label} round {rnd + 1}: {cond} failed: {e}")
                runs.append({"round": rnd, "condition": cond, "error": str(e),
                             "bare_elapsed_s": b["elapsed_s"], "elapsed_s": None})
                continue
            x["round"] = rnd
            x["bare_elapsed_s"] = b["elapsed_s"]
            x["ratio"] = x["elapsed_s"] / b["elapsed_s"] if b["elapsed_s"] else None
            runs.append(x)
            extra = f", {x.get('events', 0)} events, {x.get('lost', 0)} lost" if "lost" in x else ""
            progress(f"{label} round {rnd + 1}/{pairs} {cond}: bare {b['elapsed_s']:.3f}s, "
                     f"{cond} {x['elapsed_s']:.3f}s (x{x['ratio']:.3f}){extra}")
    return runs


def run_monitor(ws: Workspace, settings, progress, monitor: str) -> dict:
    user = ws.user("dots-bench")
    idle = ws.user(IDLE_USER)
    cal = calibrate(ws, monitor, user, settings.storm_seconds)
    iterations = cal["iterations"]
    progress(f"{monitor}: {iterations} iterations (~{settings.storm_seconds:.1f}s bare)")
    script = BPFTRACE_DIR / f"{monitor}.bt"
    kernel_memory: dict = {}

    def bare():
        return run_storm(ws, monitor, iterations, user)

    def conditioned(cond, first):
        run = _run_condition(cond, [monitor], user.uid, idle.uid, script,
                             lambda: run_storm(ws, monitor, iterations, user),
                             want_kernel_memory=first and cond == "monitored", idle_user=idle)
        if "kernel_memory" in run:
            kernel_memory.update(run.pop("kernel_memory"))
        return run

    conditions = CONDITIONS + (["filtered_busy"] if monitor in GATED_MONITORS else [])
    runs = paired_rounds(progress, monitor, settings.pairs, conditions, bare, conditioned)
    summary = _summaries(runs, conditions)

    def fmt(cond: str) -> str:
        r = summary[cond]["ratio"]
        return "—" if not r else f"{(r['median'] - 1) * 100:+.1f} % ({r['min']:.2f}–{r['max']:.2f}×)"

    busy = f" ({fmt('filtered_busy')} with a watched process running)" \
        if "filtered_busy" in summary else ""
    progress(f"{monitor}: monitored {fmt('monitored')}, filtered out {fmt('filtered')}{busy}, "
             f"bpftrace {fmt('bpftrace')}; the seed claims {SEED_CLAIMS[monitor]}")
    return {"workload": STORM_DESCRIPTIONS[monitor], "calibration": cal,
            "iterations": iterations, "seed_claim": SEED_CLAIMS[monitor],
            "runs": runs, "summary": summary, "kernel_memory": kernel_memory}


def run_mixed(ws: Workspace, settings, progress) -> dict:
    user = ws.user("dots-bench")
    idle = ws.user(IDLE_USER)
    mixed = Mixed(ws, user, settings.mixed_files)
    mixed.run()  # warm-up: compiler and source tree in the page cache
    script = combined_bpftrace([BPFTRACE_DIR / f"{m}.bt" for m in MONITORS],
                               ws.root / "all.bt")
    kernel_memory: dict = {}
    conditions = ["monitored", "bpftrace"]

    def conditioned(cond, first):
        run = _run_condition(cond, MONITORS, user.uid, idle.uid, script, mixed.run,
                             enforcers=True, want_kernel_memory=first and cond == "monitored")
        if "kernel_memory" in run:
            kernel_memory.update(run.pop("kernel_memory"))
        return run

    runs = paired_rounds(progress, "mixed", settings.mixed_pairs, conditions, mixed.run,
                         conditioned)
    return {"workload": MIXED_DESCRIPTION.format(files=settings.mixed_files),
            "collector": "all five monitors + enforcers, --stdout, uid = bench user",
            "runs": runs, "summary": _summaries(runs, conditions),
            "kernel_memory_all": kernel_memory}


def run(ws: Workspace, settings, progress) -> dict:
    out: dict[str, Any] = {"method": __doc__.strip(), "monitors": {}}
    out["userspace_cost"] = decode_cost.run()
    progress("user-space cost per event (µs, --stdout path / bus path): " + ", ".join(
        f"{m} {c['stdout_path_us']:.1f} / {c['bus_path_us']:.1f}"
        for m, c in out["userspace_cost"]["by_monitor"].items()))
    import os

    only = [m for m in os.environ.get("BENCH_MONITORS", "").split(",") if m]
    for monitor in [m for m in MONITORS if not only or m in only]:
        try:
            out["monitors"][monitor] = run_monitor(ws, settings, progress, monitor)
        except SectionError as e:
            progress(f"{monitor}: not measured: {e}")
            out["monitors"][monitor] = {"error": str(e), "seed_claim": SEED_CLAIMS[monitor]}
    if only and "mixed" not in only:
        return out
    try:
        out["mixed"] = run_mixed(ws, settings, progress)
    except SectionError as e:
        progress(f"mixed: not measured: {e}")
        out["mixed"] = {"error": str(e)}
    return out
