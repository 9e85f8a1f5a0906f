"""Turn a bench results file into the README's bench section and a chart.

    .venv/bin/python bench/report.py bench/results/<date>.json

Rewrites only what lies between ``<!-- bench:start -->`` and
``<!-- bench:end -->`` in README.md (the markers are appended when
missing), and writes bench/results/<date>.png when matplotlib is installed
(otherwise the section says the chart was skipped). Every figure is a
median with its min–max over the paired runs; the "targets missed" list is
derived from the data.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import report14  # noqa: E402  (bench/ is on sys.path: run.py, or run as a script)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
README = REPO / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
from dots_common.limits import MONITORS  # noqa: E402
from dots_collector.enforcers.exec_wire import MAX_EXE_ENTRIES  # noqa: E402
from dots_collector.enforcers.net_block import MAX_BLOCKED_NETS  # noqa: E402
from lib.memory import KERNEL_TARGET_BYTES  # noqa: E402
MIB = 1024 * 1024


# --- formatting ---------------------------------------------------------------------------
def ratio(s: dict | None) -> str:
    if not s:
        return "—"
    if s["n"] == 1:
        return f"{s['median']:.3f}× (1 run)"
    return f"{s['median']:.3f}× ({report14.spread(s)})"


def cell(text: Any) -> str:
    """Text for a Markdown table cell (a | would split it)."""
    return str(text).replace("|", "\\|")


def pct(s: dict | None) -> str:
    return "—" if not s else f"{(s['median'] - 1) * 100:+.1f} %"


def num(v: Any, unit: str = "") -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.1f}{unit}"
    return f"{v:,}{unit}"


def med(s: dict | None, fmt: str = "{:,.0f}") -> str:
    if not s:
        return "—"
    if s["min"] == s["max"]:
        return fmt.format(s["median"])
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}–{fmt.format(s['max'])})"


def lost_note(d: dict) -> str:
    """ " (n % lost)" when the monitored runs lost events: the ratio then
    stands for less work than the storm made."""
    runs = [r for r in d.get("runs", []) if r.get("condition") == "monitored"]
    lost = sum(r.get("lost") or 0 for r in runs)
    seen = sum(r.get("events") or 0 for r in runs)
    return f" ({lost / max(1, lost + seen):.0%} lost)" if lost and lost / max(1, lost + seen) >= 0.01 else ""


def share(summary: dict, cond: str) -> str:
    """The observer's CPU share during the timed runs (median)."""
    v = get(summary, cond, "observer_cpu_share", "median")
    return "—" if v is None else f"{v:.0%}"


def mib(b: float | None) -> str:
    return "—" if b is None else f"{b / MIB:.1f} MiB"


def kib_mib(k: float | None) -> str:
    return "—" if k is None else f"{k / 1024:.0f} MiB"


def ms(s: dict | None, key: str) -> str:
    if not s:
        return "—"
    v = s[key]
    return f"{v * 1000:.1f} µs" if v < 0.1 else f"{v:.2f} ms"


def get(d: Any, *path: str, default: Any = None) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


# --- targets --------------------------------------------------------------------------------
def targets(r: dict) -> tuple[list[str], list[str]]:
    """(missed, met) sentences, from the data."""
    missed: list[str] = []
    met: list[str] = []
    ov = r.get("overhead", {})
    for m in MONITORS:
        d = get(ov, "monitors", m, default={})
        if not d or "error" in d:
            if d:
                missed.append(f"{m}: not measured ({d['error']})")
            continue
        s = d["summary"]
        mon, fil, bt = (get(s, c, "ratio") for c in ("monitored", "filtered", "bpftrace"))
        ev_rate = None
        ev = get(s, "monitored", "events", "median")
        el = get(s, "monitored", "elapsed_s", "median")
        if ev and el:
            ev_rate = ev / el
        cost = get(ov, "userspace_cost", "by_monitor", m)
        lost = get(s, "monitored", "lost_total") or 0
        seen = sum(r.get("events") or 0 for r in d["runs"] if r["condition"] == "monitored")
        lost_share = lost / max(1, lost + seen)
        if mon:
            line = f"{m} storm monitored {ratio(mon)} (target ≤ 1.10×)"
            if lost_share > 0.01 and mon["median"] <= 1.10:
                missed.append(f"{line}: not met in substance: {lost_share:.0%} of the events were "
                              "lost, so the collector did less than the full work")
            elif mon["median"] > 1.10:
                share = get(s, "monitored", "observer_cpu_share", "median")
                per_ev = get(s, "monitored", "observer_cpu_us_per_event", "median")
                if ev_rate and ev_rate > 1000:
                    why = (f"{ev_rate:,.0f} events/s reach user space during the storm; the "
                           "collector's Python thread used "
                           + (f"{share:.0%} of a CPU ({per_ev:.0f} µs per event, wake-ups "
                              "included)" if share is not None and per_ev else "CPU")
                           + " of the 2 the storm also runs on")
                    if cost:
                        why += (f"; the decoding itself is {cost['decode_us']:.1f} µs and the "
                                f"--stdout JSON line {cost['json_line_us']:.1f} µs per event "
                                f"(the bus path {cost['bus_path_us']:.1f} µs), the rest is "
                                "per-wake-up overhead (epoll, asyncio) and caches the storm "
                                "keeps cold")
                    if fil and fil["median"] > 1.03:
                        why += f"; the filtered-out cost ({ratio(fil)}) comes on top"
                else:
                    busy = get(s, "filtered_busy", "ratio")
                    why = ("the probes' in-kernel work per tracepoint hit (this monitor aggregates "
                           "in the kernel, so few events reach user space): compare the "
                           + (f"filtered-out cost with the probes attached, {ratio(busy)}"
                              if busy else f"filtered-out {ratio(fil)}"))
                missed.append(f"{line}: {why}")
            else:
                met.append(line)
        busy = get(s, "filtered_busy", "ratio")
        if busy:
            line = (f"{m} storm filtered out with a watched user running a process {ratio(busy)} "
                    "(target ≤ 1.03×)")
            (missed if busy["median"] > 1.03 else met).append(
                line + (": " + FILTER_WHY[m] if busy["median"] > 1.03 else ""))
        if fil:
            line = f"{m} storm filtered out {ratio(fil)} (target ≤ 1.03×)"
            if busy and fil["median"] > 1.03:
                missed.append(f"{line}: nothing of ours runs (the kmem probes are detached while "
                              "nobody watched runs): the pairs' spread on this machine")
            elif fil["median"] > 1.03:
                missed.append(f"{line}: the tracepoints still run for every uid; "
                              + FILTER_WHY.get(m, "the uid check is the only work done"))
            else:
                met.append(line)
        if mon and bt:
            line = f"{m}: ours {ratio(mon)} vs bpftrace {ratio(bt)} (target: below bpftrace)"
            if lost_share > 0.01:
                missed.append(f"{line}: not comparable: we lost {lost_share:.0%} of the events, "
                              "bpftrace "
                              + ("none" if not get(s, "bpftrace", "lost_total") else
                                 f"{get(s, 'bpftrace', 'lost_total'):,}"))
            elif mon["median"] >= bt["median"]:
                missed.append(f"{line}: bpftrace prints a line from the kernel; we also decode "
                              "each record into a typed record and serialize it in Python")
            else:
                met.append(line)
        if lost:
            missed.append(f"{m}: {lost:,} events lost in the monitored runs "
                          f"({lost_share:.1%} of them): "
                          + ("completions the monitor did not match (its own bookkeeping: "
                             "the kernel showed them all), or a full ring buffer" if m == "disk" else
                             "the ring buffer filled up while the collector's thread waited for "
                             "a CPU (see the events/s and µs per event above)"))
    mixed = get(ov, "mixed", default={})
    if mixed and "error" not in mixed:
        by_monitor: dict[str, int] = {}
        for run in mixed.get("runs", []):
            for name, n in (run.get("lost_by_monitor") or {}).items():
                by_monitor[name] = by_monitor.get(name, 0) + n
        if by_monitor:
            missed.append("ordinary workload: events lost in the monitored runs: "
                          + ", ".join(f"{k} {v:,}" for k, v in by_monitor.items())
                          + (" (disk's count includes completions the kernel never "
                             "showed us)" if "disk" in by_monitor else ""))
        mon = get(mixed, "summary", "monitored", "ratio")
        if mon:
            line = f"ordinary workload, all monitors + enforcers {ratio(mon)} (target ≤ 1.03×)"
            (missed if mon["median"] > 1.03 else met).append(
                line + (": see the per-monitor costs above; the build forks and opens a lot"
                        if mon["median"] > 1.03 else ""))
    tp = r.get("throughput", {})
    for db in ("sqlite", "postgresql"):
        d = tp.get(db) or {}
        if not d:
            continue
        if "error" in d:
            missed.append(f"throughput ({db}): not measured ({d['error']})")
            continue
        rate = d.get("max_zero_lost_rate", 0)
        line = (f"throughput to {db}: 0 lost up to {rate:,} events/s "
                f"({d.get('knee_note')}) (target ≥ 100,000/s)")
        if rate < 100_000:
            unpaced = next((s for s in d["steps"] if s.get("unpaced")), None)
            extra = ""
            if unpaced:
                extra = (f"; unpaced the workload makes {unpaced['achieved_rate']:,} opens/s and "
                         f"{unpaced['kernel_lost'] / max(1, unpaced['expected']):.0%} are lost in the "
                         "kernel")
            paced = [st for st in d["steps"] if not st.get("unpaced") and st.get("cpu_us_per_event")]
            cpu = ""
            if paced:
                ref = max(paced, key=lambda st: st["achieved_rate"])
                c = ref["cpu_us_per_event"]
                total = sum(c.values())
                cpu = (f"; CPU per stored event at {ref['achieved_rate']:,} ev/s: "
                       + ", ".join(f"{k} {v} µs" for k, v in c.items())
                       + f" — {total:.0f} µs in all, so the pipeline needs "
                       f"{total * ref['achieved_rate'] / 1e6:.1f} CPUs at that rate and "
                       f"{total * 100_000 / 1e6:.1f} at 100,000/s on this 2-CPU machine, and the "
                       f"policy daemon's ingest alone tops out near "
                       f"{1e6 / max(0.1, c.get('policyd_ingest', 0.1)):,.0f} ev/s on one CPU")
            missed.append(f"{line}: the kernel found no room in the ring buffer for some "
                          "events (counted as lost)" + cpu + extra)
        else:
            met.append(line)
    mem = r.get("memory", {})
    if mem and "error" not in mem:
        hwm = get(mem, "runner", "VmHWM")
        if hwm is not None:
            line = (f"policy daemon ingest after {mem.get('stored', 0):,} events: RSS "
                    f"{kib_mib(get(mem, 'runner', 'VmRSS'))}, peak {kib_mib(hwm)} (target ≤ 80 MB)")
            (missed if hwm > 80 * 1024 else met).append(line)
        if mem.get("kernel_lost") or mem.get("dropped_unacked"):
            missed.append(f"memory run at {mem.get('rate', 0):,} ev/s with every monitor: "
                          f"{mem.get('kernel_lost', 0):,} events lost in the kernel and "
                          f"{mem.get('dropped_unacked', 0):,} dropped by the collector's retainer "
                          "(the policy daemon fell more than 100,000 events behind: nothing slows "
                          "the source down)")
        k = get(mem, "kernel", "total_bytes")
        if k is not None:
            line = (f"kernel memory of maps, ring buffers and programs {mib(k)} "
                    f"(target ≤ {mib(KERNEL_TARGET_BYTES)})")
            if k > KERNEL_TARGET_BYTES:
                big = ", ".join(f"{m['name']} ({m['kind']}, {m['max_entries']:,} entries, "
                                f"{mib(m['memlock'])})" for m in get(mem, "kernel", "largest_maps",
                                                                       default=[])[:5])
                missed.append(f"{line}: LRU maps and ring buffers are preallocated (hash maps grow with their entries), and five ring buffers of 2 x 128 KiB alone are 1.25 MiB; largest: {big}")
            else:
                met.append(line)
    lat = r.get("latency", {})
    for key, label in (("exec_known", "blocked exec (known inode)"),
                       ("exec_fresh_copy", "blocked exec (fresh copy)"),
                       ("exec_new_at_blocked_path", "blocked exec (new program at a blocked path)")):
        d = lat.get(key)
        if d and d.get("not_killed"):
            missed.append(f"{label}: {d['not_killed']} of {d['runs']} runs were not killed "
                          f"(statuses {d['statuses']})")
    d = lat.get("connect_blocked")
    if d and d["eperm"] < d["runs"]:
        missed.append(f"blocked connect: {d['runs'] - d['eperm']} of {d['runs']} not denied")
    for key in ("exec_error", "connect_error", "lock_error"):
        if lat.get(key):
            missed.append(f"latency ({key.split('_')[0]}): not measured ({lat[key]})")
    sc = r.get("scale", {})
    for kind in ("addresses", "apps"):
        for n, d in (get(sc, kind, "by_entries", default={}) or {}).items():
            if d.get("in_force") is not None and d["in_force"] < d["requested"]:
                cap = (f"net_block.bpf.c's LPM trie holds MAX_BLOCKED_NETS = {MAX_BLOCKED_NETS:,} "
                       "entries for all uids (SetBlockedAddresses takes at most 4,096 per uid)"
                       if kind == "addresses"
                       else f"exec_block.bpf.c's block map holds MAX_EXE_ENTRIES = "
                       f"{MAX_EXE_ENTRIES:,} entries for all uids (SetBlockedExecutables takes at "
                       "most 1,024 paths per call)")
                missed.append(f"{int(n):,} blocked {kind} requested, {d['in_force']:,} in force: "
                              f"{cap}; the call that would overflow it is refused "
                              f"({d.get('error')})")
    return missed, met


FILTER_WHY = {
    "process": "fork/exec/exit probes, plus the exec path's own probes",
    "filesystem": "about 36 syscall tracepoints (open*/read*/write*/close*/unlink*/rename*, "
                  "enter and exit) each do a uid lookup, and every read/write exit a hash lookup",
    "network": "inet_sock_set_state runs the uid check, sock_send/recv_length a hash lookup "
               "per send/receive",
    "memory": "kmalloc/kfree and page alloc/free fire hundreds of times per iteration (with a "
              "watched user logged in; with nobody watched running they are not attached)",
    "disk": "block_bio_queue runs the uid check, the other block probes a hash lookup",
}


# --- the section ---------------------------------------------------------------------------------
def section(r: dict, chart: str | None, chart_note: str) -> str:
    meta = r.get("meta", {})
    mach = meta.get("machine", {})
    out: list[str] = []
    w = out.append
    quick = meta.get("mode") == "quick"
    w("## Benchmarks\n")
    w(f"Generated by `make bench` ({'**QUICK smoke run — not representative**' if quick else 'full run'}) "
      f"on {meta.get('date')}: kernel {mach.get('kernel')}, {mach.get('cpus')} CPUs "
      f"({mach.get('cpu_model')}), {mach.get('memory_gib')} GiB, {mach.get('bpftrace')}, "
      f"git {mach.get('git_rev')}{' (dirty)' if mach.get('git_dirty') else ''}; "
      f"{meta.get('duration_s', 0) / 60:.1f} min; load average at start "
      f"{', '.join(f'{x:.2f}' for x in meta.get('loadavg_start', []))}, at end "
      f"{', '.join(f'{x:.2f}' for x in meta.get('loadavg_end', []))}. "
      f"Raw runs: `bench/results/{meta.get('date')}.json`. "
      "Ratios are timed/bare of paired, alternated runs: median (min–max). "
      "`make bench QUICK=1` is a 2-pair smoke run; `bench/run.py --help` for the options. "
      "Workloads run as the local accounts `dots-bench`, `dots-bench-2` … `dots-bench-20` "
      "(created when missing, kept); `dots-bench-idle` is the uid the filtered-out runs watch.\n")
    ran = meta.get("sections") or []
    if ran and set(ran) != set(meta.get("all_sections") or ran):
        w(f"The last run was `bench/run.py --only {','.join(ran)}` (the figures above are its "
          "own); the other sections' figures come from the earlier runs named with their "
          "revision, time and load just above the table.\n")
    if meta.get("note"):
        w(f"_This file gathers several runs (the header above is the last one's, "
          f"sections {', '.join(meta.get('sections', []))}): {meta['note']}._\n")
    load = meta.get("loadavg_start") or [0]
    busiest = max(load[0], (meta.get("loadavg_end") or [0])[0])
    if busiest > 0.5 * (mach.get("cpus") or 1):
        w(f"**The machine was busy during this run (load average up to {busiest:.2f} on "
          f"{mach.get('cpus')} CPUs, the benchmark's own load included): the spreads below "
          "show that noise; rerun on a quiet machine for figures to rely on.**\n")
    if chart:
        w(f"![benchmarks](bench/results/{chart})\n")
    else:
        w(f"_{chart_note}_\n")

    w(report14.table(r))
    w(report14.notes())
    missed, met = targets(r)
    w("### Targets missed\n")
    w("_Derived from the figures below by bench/report.py._\n")
    if missed:
        for line in missed:
            w(f"* {line}")
    else:
        w("* none")
    w("")
    if met:
        w("<details><summary>Targets met</summary>\n")
        for line in met:
            w(f"* {line}")
        w("\n</details>\n")

    ov = r.get("overhead")
    if ov:
        w("### 1–2. Overhead per monitor, beside bpftrace\n")
        if ov.get("error"):
            w(f"Not measured: {ov['error']}\n")
        else:
            w(f"Each storm runs as the user `dots-bench` for about "
              f"{get(r, 'meta', 'settings', 'storm_seconds', default=2.0):g} s bare "
              f"({get(r, 'meta', 'settings', 'pairs', default='?')} rounds, "
              f"{get(r, 'meta', 'settings', 'mixed_pairs', default=get(r, 'meta', 'settings', 'pairs', default='?'))}"
              " for the ordinary workload; every condition "
              "paired with its own bare run just before it, order rotating). *monitored*: "
              "`dots-collector --stdout --no-enforcers --monitors NAME --uid <dots-bench>`, its "
              "JSON lines read and counted by the harness (every event decoded in user space); "
              "*filtered out*: the same collector watching another uid (for memory, which "
              "attaches its kmem probes only while a watched process runs: in brackets, "
              "the same with the watched uid running a `sleep`); *bpftrace*: "
              "`bench/bpftrace/NAME.bt` on the same tracepoints (its events: printed lines and "
              "map entries). Events and lost are per run; the memory monitor aggregates in the "
              "kernel and sends one sample per process per second, by design. *CPU*: the "
              "observer process's own CPU time during the timed run, as a share of one CPU "
              "(the probes' time is charged to the workload).\n")
            w("| monitor | storm | bare (s) | monitored | filtered out | bpftrace | ours vs seed claim "
              "| events ours / bpftrace | lost ours / bpftrace | CPU of collector / bpftrace |")
            w("|---|---|---|---|---|---|---|---|---|---|")
            for m in MONITORS:
                d = get(ov, "monitors", m, default={})
                if not d or "error" in d:
                    w(f"| {m} | not measured: {d.get('error', 'skipped') if d else 'skipped'} "
                      "| | | | | | | | |")
                    continue
                s = d["summary"]
                w(f"| {m} | {cell(d['workload'])}, {d['iterations']:,} iterations "
                  f"| {med(get(s, 'monitored', 'bare_elapsed_s'), '{:.2f}')} "
                  f"| {ratio(get(s, 'monitored', 'ratio'))} | {ratio(get(s, 'filtered', 'ratio'))}"
                  + (f" ({ratio(get(s, 'filtered_busy', 'ratio'))} with a watched process running)"
                     if get(s, 'filtered_busy', 'ratio') else "") + " "
                  f"| {ratio(get(s, 'bpftrace', 'ratio'))} "
                  f"| {pct(get(s, 'monitored', 'ratio'))} vs {d['seed_claim']}{lost_note(d)} "
                  f"| {med(get(s, 'monitored', 'events'))} / {med(get(s, 'bpftrace', 'events'))} "
                  f"| {get(s, 'monitored', 'lost_total', default=0):,} / "
                  f"{get(s, 'bpftrace', 'lost_total', default=0):,} "
                  f"| {share(s, 'monitored')} / {share(s, 'bpftrace')} |")
            mx = ov.get("mixed") or {}
            if mx and "error" not in mx:
                s = mx["summary"]
                w(f"| **ordinary** (all monitors + enforcers) | {cell(mx['workload'])} "
                  f"| {med(get(s, 'monitored', 'bare_elapsed_s'), '{:.2f}')} "
                  f"| {ratio(get(s, 'monitored', 'ratio'))} | — | {ratio(get(s, 'bpftrace', 'ratio'))} "
                  f"| {pct(get(s, 'monitored', 'ratio'))} "
                  f"| {med(get(s, 'monitored', 'events'))} / {med(get(s, 'bpftrace', 'events'))} "
                  f"| {get(s, 'monitored', 'lost_total', default=0):,} / "
                  f"{get(s, 'bpftrace', 'lost_total', default=0):,} "
                  f"| {share(s, 'monitored')} / {share(s, 'bpftrace')} |")
            elif mx:
                w(f"| **ordinary** | not measured: {mx['error']} | | | | | | | | |")
            w("")
            rows = [(m, get(ov, "monitors", m, "kernel_memory", default={})) for m in MONITORS]
            rows = [(m, k) for m, k in rows if k and "total_bytes" in k]
            if rows:
                w("Kernel memory per monitor (maps incl. ring buffer, programs; memlock): "
                  + "; ".join(f"{m} {mib(k['total_bytes'])} (largest: "
                              f"{k['largest_maps'][0]['name']} {mib(k['largest_maps'][0]['memlock'])})"
                              for m, k in rows) + ".\n")
    uc = get(r, "overhead", "userspace_cost", "by_monitor")
    if uc:
        w("User-space cost per event in the collector and the policy daemon (µs, measured in "
          "process without BPF, best of 3): `decode()` of a ring buffer record, the `--stdout` "
          "JSON line, and the bus path (`to_dbus` + marshalling a 1,024-event batch signal); "
          "`from_dbus` on the policy daemon's side.\n")
        w("| monitor | decode | JSON line | to_dbus | marshall | --stdout path | bus path "
          "| from_dbus |")
        w("|---|---|---|---|---|---|---|---|")
        for m, c in uc.items():
            w(f"| {m} | {c['decode_us']} | {c['json_line_us']} | {c['to_dbus_us']} "
              f"| {c['dbus_marshall_us']} | {c['stdout_path_us']} "
              f"(≤ {c['stdout_max_events_per_s']:,}/s) | {c['bus_path_us']} "
              f"(≤ {c['bus_max_events_per_s']:,}/s) | {c['from_dbus_us']} |")
        w("")
    tp = r.get("throughput")
    if tp:
        w("### 3. Throughput, kernel → policy daemon's database\n")
        if tp.get("error"):
            w(f"Not measured: {tp['error']}\n")
        else:
            w("Collector (filesystem monitor) on a private bus → the policy daemon's collector "
              "link as `dots-policyd` storing every batch (bench/ingest_runner.py). The bench user "
              "opens a file at a paced rate (one event per open) for a few seconds per step. "
              "*0 lost*: nothing lost in the kernel or missing from the database; *sustained*: "
              "and the database caught up within 2 s of the end.\n")
            w("| database | 0 lost up to | sustained up to | knee | best end-to-end | unpaced | target |")
            w("|---|---|---|---|---|---|---|")
            for db in ("sqlite", "postgresql"):
                d = tp.get(db) or {}
                if not d:
                    continue
                if "error" in d:
                    w(f"| {db} | not measured: {d['error']} | | | | | |")
                    continue
                unpaced = next((s for s in d["steps"] if s.get("unpaced")), None)
                up = (f"{unpaced['achieved_rate']:,} opens/s, {unpaced['kernel_lost']:,} lost "
                      f"({unpaced['kernel_lost'] / max(1, unpaced['expected']):.0%})" if unpaced else "—")
                w(f"| {db} | {d['max_zero_lost_rate']:,} ev/s | {d['max_sustained_rate']:,} ev/s "
                  f"| {d['knee_note']} | {d['best_end_to_end_rate']:,} ev/s | {up} | ≥ 100,000 ev/s |")
            w("")
            w("<details><summary>Every step</summary>\n")
            w("| db | target ev/s | achieved | stored / expected | kernel lost | missing | lag (s) "
              "| end-to-end ev/s | CPU µs/event: collector / ingest / dbus-daemon |")
            w("|---|---|---|---|---|---|---|---|---|")
            for db in ("sqlite", "postgresql"):
                for s in get(tp, db, "steps", default=[]) or []:
                    target = "unpaced" if s.get("unpaced") else f"{s['target_rate']:,}"
                    w(f"| {db} | {target} "
                      f"| {s['achieved_rate']:,} | {s['stored']:,} / {s['expected']:,} "
                      f"| {s['kernel_lost']:,} | {s['missing']:,} | {s['lag_s']} "
                      f"| {s['end_to_end_rate']:,} | "
                      + " / ".join(str(get(s, "cpu_us_per_event", k, default="—"))
                                   for k in ("collector", "policyd_ingest", "dbus_daemon"))
                      + " |")
            w("\n</details>\n")
    mem = r.get("memory")
    if mem:
        w("### 4. Memory\n")
        if mem.get("error"):
            w(f"Not measured: {mem['error']}\n")
        else:
            w(f"Deployed collector (all monitors + enforcers) → policy daemon ingest (SQLite), "
              f"{mem.get('events', 0):,} events at {mem.get('rate', 0):,} ev/s "
              f"({mem.get('stored', 0):,} stored, {mem.get('kernel_lost', 0):,} lost in the kernel, "
              f"{mem.get('dropped_unacked', 0):,} dropped unacknowledged by the collector's "
              "retainer).\n")
            k = mem.get("kernel", {})
            w("| what | resident | peak (VmHWM) | target |")
            w("|---|---|---|---|")
            w(f"| collector, loaded | {kib_mib(get(mem, 'collector_loaded', 'VmRSS'))} "
              f"| {kib_mib(get(mem, 'collector_loaded', 'VmHWM'))} | — |")
            w(f"| collector, after the run | {kib_mib(get(mem, 'collector', 'VmRSS'))} "
              f"| {kib_mib(get(mem, 'collector', 'VmHWM'))} | — |")
            w(f"| policy daemon ingest, started | {kib_mib(get(mem, 'runner_started', 'VmRSS'))} "
              f"| {kib_mib(get(mem, 'runner_started', 'VmHWM'))} | — |")
            w(f"| policy daemon ingest, after the run | {kib_mib(get(mem, 'runner', 'VmRSS'))} "
              f"| {kib_mib(get(mem, 'runner', 'VmHWM'))} | ≤ 80 MB |")
            w(f"| kernel: {k.get('maps', 0)} maps + {k.get('programs', 0)} programs "
              f"| {mib(k.get('total_bytes'))} (maps {mib(k.get('map_bytes'))} of which ring buffers "
              f"{mib(k.get('ringbuf_bytes'))}; programs {mib(k.get('prog_bytes'))}) | — | "
              f"≤ {mib(KERNEL_TARGET_BYTES)} |")
            w("")
            if k.get("largest_maps"):
                w("Largest maps: " + ", ".join(f"`{m['name']}` {m['kind']} × {m['max_entries']:,} = "
                                                f"{mib(m['memlock'])}" for m in k["largest_maps"]) + ".\n")
    lat = r.get("latency")
    if lat:
        w("### 5. Enforcement latency\n")
        if lat.get("error"):
            w(f"Not measured: {lat['error']}\n")
        w("| case | outcome | median | p99 | runs |")
        w("|---|---|---|---|---|")
        for key, label in (("exec_known", "exec → kill, blocked program (known inode, in kernel)"),
                           ("exec_fresh_copy", "exec → kill, fresh copy (same size: in kernel)"),
                           ("exec_new_at_blocked_path",
                            "exec → kill, new program at a blocked path (hash/path, user space)"),
                           ("baseline_exec", "baseline: spawn → exit of an allowed no-op")):
            d = lat.get(key)
            if d:
                s = d["killed_latency"] if key != "baseline_exec" else d["all"]
                outcome = (f"{d['killed']}/{d['runs']} killed" if key != "baseline_exec"
                           else "exit 0")
                w(f"| {label} | {outcome} | {ms(s, 'median_ms')} | {ms(s, 'p99_ms')} | {d['runs']} |")
        if lat.get("exec_error"):
            w(f"| exec → kill | not measured: {lat['exec_error']} | | | |")
        for key, label in (("connect_blocked", "blocked connect → EPERM (call time)"),
                           ("connect_baseline", "baseline: refused loopback connect")):
            d = lat.get(key)
            if d:
                outcome = (f"{d['eperm']}/{d['runs']} EPERM" if key == "connect_blocked"
                           else f"errno {d['errnos']}")
                w(f"| {label} | {outcome} | {ms(d['latency'], 'median_ms')} "
                  f"| {ms(d['latency'], 'p99_ms')} | {d['runs']} |")
        if lat.get("connect_error"):
            w(f"| blocked connect | not measured: {lat['connect_error']} | | | |")
        d = lat.get("lock")
        if d:
            s = d["latency"]
            w(f"| limit reached → LockSession answered (deciding tick) | {len(d.get('raw_ns', []))} locked, "
              f"{d['failures']} failures | {ms(s, 'median_ms')} | {ms(s, 'p99_ms')} "
              f"| {len(d.get('raw_ns', []))} |")
            w(f"| limit reached → lock, worst case (tick every {d['tick_seconds']:.0f} s) | bound | — "
              f"| ≤ {d['limit_to_lock_bound_ms'] / 1000:.2f} s | — |")
        if lat.get("lock_error"):
            w(f"| limit → lock | not measured: {lat['lock_error']} | | | |")
        w("")
    sc = r.get("scale")
    if sc:
        w("### 6. Scale\n")
        if sc.get("error"):
            w(f"Not measured: {sc['error']}\n")
        u = sc.get("uids") or {}
        if u.get("by_uids"):
            w(f"Monitored children: {u['workload']} ({u['iterations']:,} iterations in all); "
              "deployed collector on a private bus + policy daemon ingest storing for the N children.\n")
            w("| uids | ratio monitored / bare | stored per run | lost | ingest RSS (peak) |")
            w("|---|---|---|---|---|")
            for n, d in u["by_uids"].items():
                if "error" in d:
                    w(f"| {n} | not measured: {d['error']} | | | |")
                    continue
                w(f"| {n} | {ratio(d['ratio'])} | {med(d['stored'])} | {d['lost_total']:,} "
                  f"| {kib_mib(get(d, 'policyd_ingest_kib', 'VmRSS'))} "
                  f"({kib_mib(get(d, 'policyd_ingest_kib', 'VmHWM'))}) |")
            w("")
        elif u.get("error"):
            w(f"Monitored children: not measured: {u['error']}\n")
        rows = []
        for kind in ("addresses", "apps"):
            d = sc.get(kind) or {}
            if d.get("error"):
                rows.append(f"| {kind} | not measured: {d['error']} | | | | | |")
            for n, e in (d.get("by_entries") or {}).items():
                if "error" in e and "in_force" not in e:
                    rows.append(f"| {kind} | {int(n):,}: not measured: {e['error']} | | | | | |")
                    continue
                rows.append(f"| {kind} | {int(n):,} | {e['in_force']:,} "
                            f"| {e['fill_s']} s | {ratio(e['ratio'])} "
                            f"| {kib_mib(get(e, 'collector_kib', 'VmRSS'))} "
                            f"| {mib(get(e, 'kernel', 'map_bytes'))} |")
        if rows:
            w("Blocked entries in the enforcers' maps (addresses: "
              f"{get(sc, 'addresses', 'workload', default='—')}; apps: "
              f"{get(sc, 'apps', 'workload', default='—')}): ratio = storm with the bench uid's "
              "rules set / cleared (the other entries stay), same collector.\n")
            w("| kind | requested | in force | fill time | ratio | collector RSS | kernel maps |")
            w("|---|---|---|---|---|---|---|")
            out.extend(rows)
            w("")
    return "\n".join(out).rstrip() + "\n"


# --- the chart ---------------------------------------------------------------------------------
def chart(r: dict, path: Path) -> str | None:
    """Write the PNG; None and a reason when it cannot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "chart skipped: matplotlib is not installed in the venv"
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    quick = get(r, "meta", "mode") == "quick"
    fig.suptitle(f"DOTS Family Mode benchmarks, {get(r, 'meta', 'date')}"
                 + (" (QUICK smoke run)" if quick else ""))
    # overhead
    ax = axes[0][0]
    names = [m for m in MONITORS if get(r, "overhead", "monitors", m, "summary")]
    has_mixed = bool(get(r, "overhead", "mixed", "summary"))
    labels = names + (["ordinary"] if has_mixed else [])
    conds = [("monitored", "tab:blue"), ("filtered", "tab:green"), ("bpftrace", "tab:orange")]
    width = 0.26
    for i, (cond, color) in enumerate(conds):
        xs, ys, lo, hi = [], [], [], []
        for j, name in enumerate(labels):
            s = (get(r, "overhead", "mixed", "summary", cond, "ratio") if name == "ordinary"
                 else get(r, "overhead", "monitors", name, "summary", cond, "ratio"))
            if s:
                xs.append(j + (i - 1) * width)
                ys.append(s["median"])
                lo.append(s["median"] - s["min"])
                hi.append(s["max"] - s["median"])
        if xs:
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, color=color, label=cond)
    ax.axhline(1.10, color="red", ls="--", lw=1, label="1.10× target")
    ax.axhline(1.03, color="grey", ls=":", lw=1, label="1.03× target")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("time / bare time")
    ax.set_ylim(bottom=0.8)
    ax.set_title("Overhead (median, min–max)")
    ax.legend(fontsize=8)
    # throughput
    ax = axes[0][1]
    for db, color in (("sqlite", "tab:blue"), ("postgresql", "tab:purple")):
        steps = [s for s in get(r, "throughput", db, "steps", default=[]) or [] if not s.get("unpaced")]
        steps.sort(key=lambda s: s["target_rate"])
        if not steps:
            continue
        xs = [s["achieved_rate"] for s in steps]
        ax.plot(xs, [s["end_to_end_rate"] for s in steps], "o-", color=color,
                label=f"{db}: stored ev/s")
        ax.plot(xs, [s["kernel_lost"] / max(1, s["seconds"]) for s in steps], "x--", color=color,
                label=f"{db}: lost ev/s")
    ax.axvline(100_000, color="red", ls="--", lw=1, label="100,000 ev/s target")
    ax.set_xscale("log")
    ax.set_xlabel("offered events/s")
    ax.set_ylabel("events/s")
    ax.set_title("Throughput to the database")
    ax.legend(fontsize=8)
    # latency
    ax = axes[1][0]
    lat = r.get("latency") or {}
    items = []
    for key, label in (("exec_known", "exec kill\nknown"), ("exec_fresh_copy", "exec kill\ncopy"),
                       ("exec_new_at_blocked_path", "exec kill\nnew at path"),
                       ("baseline_exec", "plain\nexec+exit"), ("connect_blocked", "connect\nEPERM"),
                       ("lock", "limit→lock\n(tick)")):
        d = lat.get(key)
        if not d:
            continue
        s = d.get("killed_latency") or d.get("all") or d.get("latency")
        if key == "baseline_exec":
            s = d.get("all")
        if s:
            items.append((label, s["median_ms"], s["p99_ms"]))
    if items:
        ax.bar(range(len(items)), [i[1] for i in items], color="tab:cyan", label="median")
        ax.scatter(range(len(items)), [i[2] for i in items], color="black", marker="_", s=300,
                   label="p99")
        ax.set_xticks(range(len(items)), [i[0] for i in items], fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("ms")
        ax.legend(fontsize=8)
    ax.set_title("Enforcement latency")
    # scale
    ax = axes[1][1]
    u = get(r, "scale", "uids", "by_uids", default={}) or {}
    xs = [int(n) for n, d in u.items() if d.get("ratio")]
    if xs:
        ys = [u[str(n)]["ratio"]["median"] for n in xs]
        ax.plot(xs, ys, "o-", label="monitored uids: ratio vs bare")
    for kind, marker in (("addresses", "s"), ("apps", "^")):
        e = get(r, "scale", kind, "by_entries", default={}) or {}
        pts = [(d["in_force"], d["ratio"]["median"]) for d in e.values() if d.get("ratio")]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker + "--",
                    label=f"blocked {kind} in maps: ratio set / cleared")
    ax.set_xscale("log")
    ax.axhline(1.0, color="grey", lw=0.5)
    ax.set_xlabel("uids / entries")
    ax.set_ylabel("ratio")
    ax.set_title("Scale")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None


def update_readme(text: str, readme: Path = README) -> None:
    content = readme.read_text()
    if START not in content or END not in content:
        content = content.rstrip("\n") + f"\n\n{START}\n{END}\n"
    head, rest = content.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{text}{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        # the bench's own files (YYYY-MM-DD.json), not the other benches'
        # (identity-…, web_filter-…) that share the directory
        results = sorted((HERE / "results").glob("[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9].json"))
        if not results:
            sys.exit("usage: report.py RESULTS.json")
        argv = [str(results[-1])]
    path = Path(argv[0]).resolve()
    r = json.loads(path.read_text())
    png = path.with_suffix(".png")
    note = chart(r, png)
    text = section(r, None if note else png.name, note or "")
    update_readme(text)
    print(f"report: README.md bench section updated; "
          f"{'chart ' + str(png.relative_to(REPO)) if not note else note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
