"""Issue 14's accounting of storms: for each monitor's storm, run with the
collector monitoring the storm's user (``--stdout``), how many events were
generated, delivered and lost (delivered + lost must equal generated),
the rate they were offered at, and the collector's CPU per delivered
event end to end (ring buffer to stdout, the drain at stop included).

"generated": the storm program's own count of the operations that make
events (posix_spawn = fork + exec + exit; file open / write / read /
unlink; connect + accept + 2 closes per loopback connection; completed
disk requests are not countable by the workload, so disk gives delivered
and lost only). One collector run per storm, started before and stopped
after it; ``rounds`` runs per storm.
"""

from __future__ import annotations

import os
import time
from typing import Any

from .procs import Collector
from .util import cpu_seconds, summarize
from .workloads import Workspace, calibrate, run_storm

STORM_MONITORS = ("process", "filesystem", "network", "disk")


def _one(ws: Workspace, monitor: str, iterations: int, user) -> dict[str, Any]:
    observer = Collector([monitor], [user.uid]).start()
    pid = observer.process.pid
    cpu0 = cpu_seconds(pid) or 0.0
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    try:
        storm = run_storm(ws, monitor, iterations, user)
        cpu_storm = (cpu_seconds(pid) or 0.0) - cpu0
    finally:
        # the stop drains what is left: its CPU counts too (read just
        # before the process is reaped, from its children's-time-free stat)
        import threading

        last = {"cpu": cpu0}

        def sample() -> None:
            while observer.process.poll() is None:
                c = cpu_seconds(pid)
                if c is not None:
                    last["cpu"] = c
                time.sleep(0.01)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        counts = observer.stop()
        t.join(timeout=5)
    wall = time.monotonic() - t0
    generated = storm.get("events")
    delivered, lost = counts["events"], counts["lost"]
    cpu_total = last["cpu"] - cpu0
    return {
        "iterations": iterations, "elapsed_s": storm["elapsed_s"], "wall_s": round(wall, 3),
        "generated": generated, "delivered": delivered, "lost": lost,
        "accounted": (delivered + lost == generated) if generated is not None else None,
        "offered_per_s": round(generated / storm["elapsed_s"]) if generated else None,
        "collector_cpu_storm_s": round(cpu_storm, 3),
        "collector_cpu_total_s": round(cpu_total, 3),
        "cpu_us_per_event": round(cpu_total / delivered * 1e6, 2) if delivered else None,
        "loadavg_1min": load,
    }


def run(ws: Workspace, settings, progress, monitors=STORM_MONITORS, rounds: int | None = None) -> dict:
    user = ws.user("dots-bench")
    rounds = rounds or max(1, settings.pairs)
    out: dict[str, Any] = {"method": __doc__.strip(), "monitors": {}}
    for monitor in monitors:
        cal = calibrate(ws, monitor, user, settings.storm_seconds)
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
