"""``make bench``: the benchmarks of issue 8, end to end.

    make bench            # full run (5 pairs, 9 for the ordinary workload, ~2 s storms,
                          # 1M-event memory run)
    make bench QUICK=1    # smoke run: 2 pairs, small storms, short steps

Options (also as environment variables): --quick (QUICK=1), --only
SECTION[,SECTION] (BENCH_ONLY=accounting,offered,overhead,throughput,memory,latency,scale),
--pairs N (BENCH_PAIRS), --no-report (write the JSON only);
BENCH_MONITORS=filesystem,network[,mixed] limits the overhead section to
those storms (and the mixed workload).

Writes bench/results/<YYYY-MM-DD>.json (every raw run and the summaries),
then bench/report.py turns it into bench/results/<date>.png and the README
section between <!-- bench:start --> and <!-- bench:end -->.
Progress goes to stderr. Must run as root (it loads eBPF programs and runs
the workloads as dedicated users).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lib import accounting, latency, memory, offered, overhead, scale, throughput  # noqa: E402
from lib.util import BENCH, REPO, Progress, SectionError, Settings  # noqa: E402
from lib.workloads import Workspace  # noqa: E402

#: section -> (function, minutes a full run takes on a quiet 2-core machine)
SECTIONS = {
    "accounting": (accounting.run, 3.0),
    "offered": (offered.run, 3.0),
    "overhead": (overhead.run, 9.5),
    "throughput": (throughput.run, 3.0),
    "memory": (memory.run, 1.5),
    "latency": (latency.run, 0.5),
    "scale": (scale.run, 4.5),
}
QUICK_MINUTES = {"accounting": 1.5, "offered": 0.5, "overhead": 3.0, "throughput": 1.0, "memory": 0.3, "latency": 0.2, "scale": 1.0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   default=os.environ.get("QUICK", "") not in ("", "0"))
    p.add_argument("--only", default=os.environ.get("BENCH_ONLY", ""),
                   help="comma-separated sections: " + ",".join(SECTIONS))
    p.add_argument("--pairs", type=int, default=int(os.environ.get("BENCH_PAIRS", "0")) or None)
    p.add_argument("--out", type=Path, default=BENCH / "results")
    p.add_argument("--no-report", action="store_true")
    return p.parse_args(argv)


def machine() -> dict:
    def sh(*argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
        except OSError:
            return ""

    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"kernel": platform.release(), "cpus": os.cpu_count(), "cpu_model": cpu,
            "memory_gib": round(mem_kib / 1048576, 1), "python": platform.python_version(),
            "bpftrace": sh("bpftrace", "--version"), "git_rev": sh("git", "-C", str(REPO), "rev-parse", "--short", "HEAD"),
            "git_dirty": bool(sh("git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no")),
            "hostname": platform.node()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("bench/run.py: must run as root (eBPF, setpriv, test users)")
    settings = Settings.quick_() if args.quick else Settings.full()
    if args.pairs:
        settings.pairs = settings.mixed_pairs = args.pairs
    wanted = [s for s in (args.only.split(",") if args.only else SECTIONS) if s]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        sys.exit(f"unknown section(s): {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    progress = Progress()
    minutes = sum((QUICK_MINUTES if args.quick else {k: v[1] for k, v in SECTIONS.items()})[s]
                  for s in wanted)
    progress(f"{'QUICK' if args.quick else 'FULL'} run: {', '.join(wanted)}; "
             f"expect about {minutes:.0f} min on a quiet 2-core machine")
    today = dt.date.today().isoformat()
    args.out.mkdir(parents=True, exist_ok=True)
    out_json = args.out / f"{today}.json"
    results: dict = {}
    if args.only and out_json.exists():  # a partial run updates today's file
        try:
            results = json.loads(out_json.read_text())
        except ValueError:
            results = {}
    mach = machine()
    results.update({
        "meta": {"date": today, "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                 "mode": "quick" if args.quick else "full", "settings": vars(settings),
                 "sections": wanted, "all_sections": list(SECTIONS), "machine": mach,
                 "loadavg_start": os.getloadavg()},
    })
    ws = Workspace()
    try:
        for name in wanted:
            fn, est = SECTIONS[name]
            progress.enter(name, QUICK_MINUTES[name] * 60 if args.quick else est * 60)
            t0 = time.monotonic()
            try:
                results[name] = fn(ws, settings, progress)
            except SectionError as e:
                progress(f"not measured: {e}")
                results[name] = {"error": str(e)}
            except Exception as e:  # keep the other sections' figures
                progress(f"FAILED: {e!r}")
                results[name] = {"error": f"{type(e).__name__}: {e}",
                                 "traceback": traceback.format_exc()}
            results[name + "_duration_s"] = round(time.monotonic() - t0, 1)
            # sections of one file may come from runs of different modes and loads
            results[name + "_run"] = {"mode": "quick" if args.quick else "full",
                                      "finished": dt.datetime.now().astimezone().isoformat(
                                          timespec="seconds"),
                                      "loadavg_end": os.getloadavg(),
                                      "git": mach["git_rev"] + ("+" if mach["git_dirty"] else "")}
            progress(f"--- done in {results[name + '_duration_s']:.0f}s")
            # write after every section: an interrupted run keeps what it measured
            results["meta"]["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
            results["meta"]["loadavg_end"] = os.getloadavg()
            results["meta"]["duration_s"] = round(time.monotonic() - progress.start, 1)
            out_json.write_text(json.dumps(results, indent=1, default=str) + "\n")
    finally:
        ws.cleanup()
    progress.section = ""
    shown = out_json.relative_to(REPO) if out_json.is_relative_to(REPO) else out_json
    progress(f"results: {shown}")
    if not args.no_report:
        import report

        report.main([str(out_json)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
