"""Section 4: memory after a 1-million-event run.

The deployed configuration (every monitor and the enforcers) publishes on
a private bus to bench/ingest_runner.py (the policy daemon's collector
link, as dots-policyd, SQLite). The bench user runs the paced open storm
at half the highest rate the throughput section sustained (at most 25,000,
10,000 ev/s when that section did not run) until a million events have
gone through.
Then: VmRSS and VmHWM (peak) of the collector and of the ingest process,
and the kernel memory of every BPF map (ring buffers included) and
program the collector holds (memlock from /proc/PID/fdinfo, the figure
``bpftool map show`` / ``prog show`` print).
"""

from __future__ import annotations

import shutil
from typing import Any

from . import util
from .procs import policyd_dir
from .throughput import Pipeline, target_file
from .util import proc_memory
from .workloads import BENCH_USER, Workspace, json_result, run_as

from dots_common.limits import MONITORS  # noqa: E402
POLICYD_TARGET_KIB = 80 * 1024
KERNEL_TARGET_BYTES = 4 * 1024 * 1024  # issue 14: 4 MiB at the defaults


def run(ws: Workspace, settings, progress) -> dict:
    user = ws.user(BENCH_USER)
    sustained = util.CONTEXT.get("sustained_rate") or 20_000
    # half the rate the file-only pipeline sustained: the deployed collector
    # runs every monitor, and a backlog would measure the backlog
    rate = min(25_000, max(2000, int(sustained * 0.5) // 100 * 100))
    seconds = settings.memory_events / rate
    workdir = policyd_dir()
    out: dict[str, Any] = {"method": __doc__.strip(), "events_target": settings.memory_events,
                           "rate": rate, "policyd_target_kib": POLICYD_TARGET_KIB,
                           "kernel_target_bytes": KERNEL_TARGET_BYTES}
    pipe = Pipeline(ws, str(workdir / "dots.db"), [user.uid], monitors=MONITORS, enforcers=True)
    try:
        out["kernel"] = util.bpf_memory(pipe.collector.pid)
        out["collector_loaded"] = proc_memory(pipe.collector.pid)
        out["runner_started"] = dict(pipe.runner.status)
        progress(f"{settings.memory_events} events at {rate} ev/s (~{seconds:.0f}s); kernel side "
                 f"{out['kernel']['total_bytes'] / 1048576:.1f} MiB in {out['kernel']['maps']} maps "
                 f"and {out['kernel']['programs']} programs")
        before = pipe.status()
        stored0 = pipe.runner.stored
        load = json_result(run_as(user, [ws.path("paced_open"), str(rate), f"{seconds:.2f}",
                                         target_file(ws)], timeout=seconds + 600))
        reached, lag = pipe.runner.wait_stored(stored0 + load["iterations"])
        after = pipe.status()
        out["events"] = load["iterations"]
        out["stored"] = pipe.runner.stored - stored0
        out["caught_up"] = reached
        out["lag_s"] = round(lag, 2)
        out["kernel_lost"] = sum(after["lost"].values()) - sum(before["lost"].values())
        out["dropped_unacked"] = after["dropped_unacked"] - before["dropped_unacked"]
        out["collector"] = proc_memory(pipe.collector.pid)
        out["runner"] = {k: pipe.runner.status.get(k) for k in ("VmRSS", "VmHWM")}
        out["retained_events"] = after.get("retained_events")
        progress(f"stored {out['stored']}/{out['events']} (kernel lost {out['kernel_lost']}); "
                 f"collector RSS {out['collector']['VmRSS'] / 1024:.0f} MiB "
                 f"(peak {out['collector']['VmHWM'] / 1024:.0f}), policyd ingest RSS "
                 f"{out['runner']['VmRSS'] / 1024:.0f} MiB (peak {out['runner']['VmHWM'] / 1024:.0f})")
    finally:
        pipe.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return out
