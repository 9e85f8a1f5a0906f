"""Section 6: how the cost grows.

Monitored children (1, 5, 20 uids): the exec storm's iterations split
across N bench users running at once, timed from the first start to the
last exit. Paired runs: bare (nothing loaded) and monitored (the deployed
collector: every monitor and the enforcers, on a private bus, monitoring
the N uids, started before and stopped after the run) with
bench/ingest_runner.py (the policy daemon's collector link, dots-policyd,
SQLite) storing everything for its N children. After each N: the ingest
process's VmRSS / VmHWM (a fresh one per N).

Blocked entries in the kernel maps (10, 1,000, 100,000 addresses or
programs): one collector (enforcers, the disk monitor filtered out) on a
private bus, filled through its D-Bus methods as the policy daemon would
(at most 4,096 addresses or 1,024 programs per call and uid: the bench
user gets its share, synthetic uids the rest). Paired runs on a loopback
connect storm (addresses: every connect misses the LPM trie) or the exec
storm (programs: every exec misses the block map): the bench uid's own
rules set vs cleared (the other entries stay), so the ratio is what a
rule lookup costs with that many entries in the maps. Also reported:
entries in force, time to fill, collector RSS, kernel map memory.
"""

from __future__ import annotations

import ipaddress
import shutil
import time
from typing import Any

from .overhead import paired_rounds
from .procs import Collector, IngestRunner, PrivateBus, policyd_dir
from .util import SectionError, bpf_memory, proc_memory, ratio_summary, summarize
from .workloads import BENCH_USER, IDLE_USER, Workspace, calibrate, run_split_storm, run_storm

from dots_common.limits import MONITORS  # noqa: E402
ADDR_PER_CALL = 4096
APPS_PER_CALL = 1024
SYNTHETIC_UID0 = 3_000_000


def bench_users(ws: Workspace, n: int) -> list:
    return [ws.user(BENCH_USER)] + [ws.user(f"{BENCH_USER}-{i}") for i in range(2, n + 1)]


# --- monitored uids ---------------------------------------------------------------------------
def uid_scale(ws: Workspace, settings, progress) -> dict:
    user = ws.user(BENCH_USER)
    cal = calibrate(ws, "process", user, settings.storm_seconds)
    iterations = cal["iterations"]
    out: dict[str, Any] = {"iterations": iterations, "workload": "exec storm split across N users",
                           "by_uids": {}}
    for n in settings.scale_uids:
        users = bench_users(ws, n)
        uids = [u.uid for u in users]
        bus = PrivateBus()
        workdir = policyd_dir()
        runner = None
        try:
            runner = IngestRunner(bus, str(workdir / "dots.db"), uids)

            def bare():
                return run_split_storm(ws, "process", iterations, users)

            def conditioned(cond, first):
                collector = Collector(MONITORS, uids, enforcers=True, bus=bus).start()
                try:
                    stored0 = runner.stored
                    r = run_split_storm(ws, "process", iterations, users)
                    r["condition"] = cond
                    # everything the run produced reaches the database before the next run
                    runner.wait_stored(stored0 + r["events"], stall_s=3)
                    r["stored"] = runner.stored - stored0
                    if r["stored"] < r["events"]:
                        progress(f"{n} uids: only {r['stored']} of {r['events']} events stored; "
                                 f"ingest log: {runner.log_tail(5)!r}")
                    status = collector.status()
                    r["lost"] = sum(status["lost"].values())
                    r["events"] = sum(status["delivered"].values())
                finally:
                    r_stop = collector.stop()
                r["startup_s"] = r_stop["startup_s"]
                return r

            runs = paired_rounds(progress, f"{n} uids", settings.scale_pairs, ["monitored"],
                                 bare, conditioned)
            mem = {k: runner.status.get(k) for k in ("VmRSS", "VmHWM")}
            out["by_uids"][str(n)] = {
                "runs": runs,
                "ratio": ratio_summary((r["bare_elapsed_s"], r["elapsed_s"]) for r in runs
                                       if r.get("elapsed_s")),
                "stored": summarize(r.get("stored") for r in runs),
                "lost_total": sum(r.get("lost") or 0 for r in runs),
                "policyd_ingest_kib": mem,
            }
            progress(f"{n} uids: ratio {out['by_uids'][str(n)]['ratio']}, policyd ingest "
                     f"RSS {mem['VmRSS']} KiB (peak {mem['VmHWM']} KiB)")
        except SectionError as e:
            progress(f"{n} uids: not measured: {e}")
            out["by_uids"][str(n)] = {"error": str(e)}
        finally:
            if runner is not None:
                runner.stop()
            bus.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    return out


# --- entries in the enforcement maps --------------------------------------------------------------
def _addresses(n: int) -> list[str]:
    base = int(ipaddress.IPv4Address("10.0.0.0"))
    return [str(ipaddress.IPv4Address(base + 1 + i * 7)) for i in range(n)]


def _apps(ws: Workspace, n: int) -> list[str]:
    d = ws.root / "apps"
    d.mkdir(exist_ok=True)
    paths = []
    for i in range(n):
        p = d / f"app{i:06d}"
        if not p.exists():
            p.write_text(f"#!/bin/sh\n# blocked program {i}\n")
            p.chmod(0o755)
        paths.append(str(p))
    return paths


def _fill(collector: Collector, kind: str, entries: list[str], bench_uid: int) -> dict:
    """Give the bench uid its share and spread the rest over synthetic uids;
    stop at the first refusal (a full map)."""
    per_call = ADDR_PER_CALL if kind == "addresses" else APPS_PER_CALL
    member, sig = (("SetBlockedAddresses", "uas") if kind == "addresses"
                   else ("SetBlockedExecutables", "uas"))
    own, rest = entries[:per_call], entries[per_call:]
    t0 = time.monotonic()
    in_force, error, calls = 0, None, 0
    chunks = [(bench_uid, own)] + [(SYNTHETIC_UID0 + i // per_call, rest[i:i + per_call])
                                   for i in range(0, len(rest), per_call)]
    for uid, chunk in chunks:
        try:
            collector.call(member, sig, [uid, chunk])
            in_force += len(chunk)
            calls += 1
        except SectionError as e:
            error = f"after {in_force} entries: {e}"
            break
    return {"requested": len(entries), "in_force": in_force, "calls": calls, "error": error,
            "fill_s": round(time.monotonic() - t0, 2), "own": own}


def map_scale(ws: Workspace, settings, progress, kind: str, sizes: list[int]) -> dict:
    user = ws.user(BENCH_USER)
    idle = ws.user(IDLE_USER)
    monitor = "network" if kind == "addresses" else "process"  # whose storm
    cal = calibrate(ws, monitor, user, settings.storm_seconds)
    iterations = cal["iterations"]
    out: dict[str, Any] = {"iterations": iterations,
                           "workload": ("loopback connect storm (every connect misses the trie)"
                                        if kind == "addresses" else
                                        "exec storm (every exec misses the block map)"),
                           "by_entries": {}}
    member = "SetBlockedAddresses" if kind == "addresses" else "SetBlockedExecutables"
    for n in sizes:
        bus = PrivateBus()
        collector = None
        try:
            collector = Collector(["disk"], [idle.uid], enforcers=True, bus=bus).start()
            entries = _addresses(n) if kind == "addresses" else _apps(ws, n)
            fill = _fill(collector, kind, entries, user.uid)
            own = fill.pop("own")
            progress(f"{kind} {n}: {fill['in_force']} in force after {fill['fill_s']}s"
                     + (f" ({fill['error']})" if fill["error"] else ""))
            state = {"enforced": True}

            def set_own(on: bool) -> None:
                if state["enforced"] != on:
                    collector.call(member, "uas", [user.uid, own if on else []])
                    state["enforced"] = on

            def bare():  # "bare" here: the bench uid's rules cleared
                set_own(False)
                return run_storm(ws, monitor, iterations, user)

            def conditioned(cond, first):
                set_own(True)
                r = run_storm(ws, monitor, iterations, user)
                r["condition"] = cond
                return r

            runs = paired_rounds(progress, f"{kind} {n}", settings.scale_pairs, ["enforced"],
                                 bare, conditioned)
            out["by_entries"][str(n)] = {
                **fill, "runs": runs,
                "ratio": ratio_summary((r["bare_elapsed_s"], r["elapsed_s"]) for r in runs
                                       if r.get("elapsed_s")),
                "collector_kib": proc_memory(collector.pid),
                "kernel": {k: v for k, v in bpf_memory(collector.pid).items()
                           if k != "largest_maps"},
            }
        except SectionError as e:
            progress(f"{kind} {n}: not measured: {e}")
            out["by_entries"][str(n)] = {"error": str(e)}
        finally:
            if collector is not None:
                collector.stop()
            bus.stop()
    return out


def run(ws: Workspace, settings, progress) -> dict:
    out: dict[str, Any] = {"method": __doc__.strip()}
    for name, fn in (("uids", lambda: uid_scale(ws, settings, progress)),
                     ("addresses", lambda: map_scale(ws, settings, progress, "addresses",
                                                     settings.scale_addresses)),
                     ("apps", lambda: map_scale(ws, settings, progress, "apps",
                                                settings.scale_apps))):
        try:
            out[name] = fn()
        except SectionError as e:
            progress(f"{name}: not measured: {e}")
            out[name] = {"error": str(e)}
    return out
