"""Issue 14's "nothing lost below 250k events/s offered per monitor, in
bursts of at least 1 s": offered rates no storm on this machine reaches.

The storms of the accounting section are bound by their syscalls and peak
at 5,000-25,000 events/s here. So for each monitor a running collector
(``dots-collector --stdout --monitors NAME --uid BENCH``, as in the
accounting section) is offered records at a set rate by a BPF program of
the bench (bench/flood/flood.bpf.c) that writes into *that collector's*
pinned ring buffer through common.h's own ``output_record``: same ring,
same wake-up threshold, same ``submitted`` and ``lost_events`` counters.
Each getppid() of the bench user (bench/workloads/getppid_flood.c, paced
in 1 ms slots) commits PER_CALL copies of real records of the monitor
(``templates``: a process's fork, exec and exit; a file's open, write and
read; a socket's connect, accept and close; a disk completion), each
stamped with the time. The collector reads, decodes and prints them like
its monitor's own; this process counts the lines.

What is not real: the records' contents repeat, so the collector's
decoded-text caches always hit (a real storm's paths vary more), and no
probe runs for them (the monitors' in-kernel cost is in the overhead
section). What is: the offered rate, the ring buffer, the wake-ups, the
reader, decoding, the JSON lines, the pipe.

The full run does it twice: with the default ring buffers (128 KiB per
CPU per monitor, what the kernel memory target allows), then with
BIGGER_RING_KIB, to show what the ring's size buys at these rates.

Per burst: offered (the flood's own count) and its rate over the burst,
generated (the kernel's: committed + lost, which also holds the monitor's
real events of the generator's exec and exit), delivered (lines), lost
(the ring's counter), delivered + lost = generated, and the collector's
CPU per delivered event (schedstat, from the burst's start until every
committed record is out); and, to tell why a burst lost records, how
long the collector waited runnable for a CPU (schedstat) and how long the
hypervisor ran something else on the VM's CPUs (/proc/stat steal, 10 ms
ticks) over the same span.
"""

from __future__ import annotations

import ctypes
import os
import struct
import time
from pathlib import Path
from typing import Any

from .accounting import _kernel_count, _sched_ns, _steal_ms
from .procs import BENCH_PIN_DIR, Collector
from .util import BENCH, SectionError, summarize

from dots_collector.bpfobject import DEFAULT_RINGBUF_KIB_PER_CPU
from .workloads import Workspace, json_result, run_as

MONITORS = ("process", "filesystem", "network", "disk")
#: records each getppid() commits
PER_CALL = 16
#: events/s offered per burst; 0 = as fast as the generator goes
RATES_FULL = (100_000, 250_000, 250_000, 250_000, 400_000, 0)
RATES_QUICK = (250_000,)
BURST_S_FULL, BURST_S_QUICK = 2.0, 1.0
#: the full run's second pass: every ring buffer this big (KiB per CPU),
#: at the rates where the default loses
BIGGER_RING_KIB = 256
RATES_BIGGER_RING = (250_000, 250_000, 400_000)
#: how long the collector may take to print what was committed
DRAIN_S = 15.0
FLOOD_SOURCE = BENCH / "flood" / "flood.bpf.c"
COMMON_H = Path(__file__).resolve().parents[2] / "dots_collector" / "monitors" / "common.h"
#: common.h's own maps, declared instead from the collector's pins
PINNED = {
    "BPF_PERCPU_ARRAY(lost_events, u64, 1);":
        'BPF_TABLE_PINNED("percpu_array", int, u64, lost_events, 1, "{pins}/map_lost_events");',
    "BPF_PERCPU_ARRAY(submitted, struct ring_count, 1);":
        'BPF_TABLE_PINNED("percpu_array", int, struct ring_count, submitted, 1, '
        '"{pins}/map_submitted");',
    "BPF_ARRAY(doze, u32, 1);":
        'BPF_TABLE_PINNED("array", int, u32, doze, 1, "{pins}/map_doze");',
    # bcc's BPF_RINGBUF_OUTPUT with the pinned map's path in its section name
    "BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);":
        "struct events_table_t {{ int key; u32 leaf; int (*ringbuf_output) (void *, u64, u64); "
        "int (*ringbuf_query) (u64); void* (*ringbuf_reserve) (u64); "
        "void (*ringbuf_discard) (void *, u64); void (*ringbuf_submit) (void *, u64); "
        "u32 max_entries; }}; "
        '__attribute__((section("maps/ringbuf:{pins}/map_events"))) '
        "struct events_table_t events = {{ .max_entries = ((RINGBUF_PAGES) * PAGE_SIZE) }}; "
        "BPF_ANNOTATE_KV_PAIR(events, int, u32);",
}


def templates(monitor: str, uid: int) -> list[bytes]:
    """Real records of ``monitor`` as its probes commit them."""
    from dots_collector.monitors import disk, filesystem, network, process

    comm = b"bench-app".ljust(16, b"\0")
    pid = 4242
    if monitor == "process":
        head = process.HEAD.pack
        return [head(0, 0, pid, 4241, uid, uid, 0, comm),
                head(0, 1, pid, 4241, uid, uid, 0, comm) + b"/home/dots-bench/bin/bench-app\0",
                head(0, 2, pid, 4241, uid, uid, 0, comm)]
    if monitor == "filesystem":
        head = filesystem.HEAD.pack
        path = b"/home/dots-bench/fs/notes-0017.txt\0"
        return [head(0, 0, 0, -2, 0, pid, uid, 0, comm) + path,                # failed open
                head(0, 4096, 77, 5, 6, pid, uid, 0o1101, comm) + path,          # open_write
                head(0, 4096, 78, 6, 5, pid, uid, 0, comm) + path]               # open_read
    if monitor == "network":
        ev = network.EVENT.pack
        lo = bytes([127, 0, 0, 1]).ljust(16, b"\0")
        sk = 0xffff888012345678
        # connect_close, accept_close (a short connection: one record at its
        # close, with its bytes)
        return [ev(0, 1024, 1024, 77, sk, 70, t, pid, uid, 2, 40000, 8080, t == 5,
                   lo, lo, comm) for t in (4, 5)]
    if monitor == "disk":
        return [disk.EVENT.pack(0, 50000, 2048, pid, uid, 254 << 20, 8, 4096, b"WS", comm)]
    raise ValueError(monitor)


def program_text(pins: Path) -> str:
    """flood.bpf.c with common.h pasted in, its ring maps the pinned ones."""
    common = COMMON_H.read_text()
    for declared, pinned in PINNED.items():
        if declared not in common:
            raise SectionError(f"common.h no longer declares {declared!r}: update offered.py")
        common = common.replace(declared, pinned.format(pins=pins))
    return FLOOD_SOURCE.read_text().replace('#include "common.h"', common, 1)


class Flood:
    """The flood program, attached, writing into one collector's ring."""

    def __init__(self, monitor: str, uid: int, kib_per_cpu: int | None = None) -> None:
        from bcc import BPF

        from dots_collector.monitors import monitor_class

        # the ring size and wake-up threshold the collector uses
        obj = monitor_class(monitor)(**({"kib_per_cpu": kib_per_cpu} if kib_per_cpu else {}))
        pins = Path(BENCH_PIN_DIR) / monitor
        if not (pins / "map_events").exists():
            raise SectionError(f"no pinned ring buffer at {pins}")
        self.bpf = BPF(text=program_text(pins).encode(), cflags=[
            *obj.cflags(), "-DDOTS_NO_UID_FILTER", f"-DFLOOD_UID={uid}"])
        blobs = self.bpf[b"templates"]
        records = templates(monitor, uid)
        for i, raw in enumerate(records):
            leaf = blobs.Leaf()
            leaf.len = len(raw)
            ctypes.memmove(ctypes.addressof(leaf) + type(leaf).data.offset, raw, len(raw))
            blobs[ctypes.c_int(i)] = leaf
        setup = self.bpf[b"setup"]
        setup[ctypes.c_int(0)] = ctypes.c_uint32(len(records))
        setup[ctypes.c_int(1)] = ctypes.c_uint32(PER_CALL)

    @property
    def offered(self) -> int:
        return sum(self.bpf[b"offered"][ctypes.c_int(0)])

    def close(self) -> None:
        self.bpf.cleanup()


def _burst(ws: Workspace, user, observer: Collector, flood: Flood, monitor: str,
           rate: int, seconds: float) -> dict[str, Any]:
    pid = observer.process.pid
    sub0 = _kernel_count(monitor, "submitted", words=2)
    lost0 = _kernel_count(monitor, "lost_events")
    lines0, offered0 = observer.events, flood.offered
    (cpu0, wait0), steal0 = _sched_ns(pid), _steal_ms()
    load = os.getloadavg()[0]
    calls = rate // PER_CALL
    gen = json_result(run_as(user, [ws.path("getppid_flood"), str(calls), str(seconds)]))
    offered = flood.offered - offered0
    # every committed record out (or DRAIN_S: then the gap is in the figures)
    deadline = time.monotonic() + DRAIN_S
    while time.monotonic() < deadline:
        committed = _kernel_count(monitor, "submitted", words=2) - sub0
        if observer.events - lines0 >= committed:
            break
        time.sleep(0.05)
    cpu_ns, wait_ns = _sched_ns(pid)
    cpu, steal = (cpu_ns - cpu0) / 1e9, _steal_ms() - steal0
    committed = _kernel_count(monitor, "submitted", words=2) - sub0
    lost = _kernel_count(monitor, "lost_events") - lost0
    delivered = observer.events - lines0
    return {"rate_asked": rate, "calls": gen["iterations"], "elapsed_s": gen["elapsed_s"],
            "offered": offered, "offered_per_s": round(offered / gen["elapsed_s"]),
            "generated": committed + lost, "delivered": delivered, "lost": lost,
            "accounted": delivered + lost == committed + lost,
            "collector_cpu_s": round(cpu, 4),
            "cpu_us_per_event": round(cpu / delivered * 1e6, 2) if delivered else None,
            "collector_wait_ms": round((wait_ns - wait0) / 1e6, 1), "steal_ms": steal,
            "loadavg_1min": load}


def run(ws: Workspace, settings, progress, monitors=MONITORS) -> dict:
    seconds = BURST_S_QUICK if settings.quick else BURST_S_FULL
    out: dict[str, Any] = {"method": __doc__.strip(), "per_call": PER_CALL, "burst_s": seconds,
                           "monitors": run_rings(ws, settings, progress, monitors)}
    if not settings.quick:
        progress(f"again with {BIGGER_RING_KIB} KiB ring buffers per CPU (the default is "
                 f"{DEFAULT_RINGBUF_KIB_PER_CPU})")
        out["bigger_ring_kib_per_cpu"] = BIGGER_RING_KIB
        out["bigger_ring"] = run_rings(ws, settings, progress, monitors, BIGGER_RING_KIB,
                                       rates=RATES_BIGGER_RING)
    return out


def run_rings(ws: Workspace, settings, progress, monitors=MONITORS,
              kib_per_cpu: int | None = None, rates: tuple[int, ...] | None = None) -> dict:
    """Each monitor's bursts, with the collector's ring buffers at
    ``kib_per_cpu`` (None: the default)."""
    rates = rates or (RATES_QUICK if settings.quick else RATES_FULL)
    seconds = BURST_S_QUICK if settings.quick else BURST_S_FULL
    user = ws.user("dots-bench")
    out: dict[str, Any] = {}
    label = f" ({kib_per_cpu} KiB rings)" if kib_per_cpu else ""
    for monitor in monitors:
        extra = (f"--ringbuf-kib={kib_per_cpu}",) if kib_per_cpu else ()
        observer = Collector([monitor], [user.uid], extra=extra).start()
        flood = None
        bursts = []
        try:
            flood = Flood(monitor, user.uid, kib_per_cpu)
            for rate in rates:
                b = _burst(ws, user, observer, flood, monitor, rate, seconds)
                bursts.append(b)
                progress(f"{monitor}{label}: {b['offered']:,} offered at {b['offered_per_s']:,} ev/s "
                         f"({'unpaced' if not rate else f'{rate:,} asked'}): {b['delivered']:,} "
                         f"delivered, {b['lost']:,} lost, delivered + lost = generated: "
                         f"{'yes' if b['accounted'] else 'NO'}; {b['cpu_us_per_event']} µs/event; "
                         f"collector waited for a CPU {b['collector_wait_ms']} ms, steal "
                         f"{b['steal_ms']} ms")
        except SectionError as e:
            progress(f"{monitor}{label}: not measured: {e}")
            out[monitor] = {"error": str(e)}
            continue
        finally:
            if flood is not None:
                flood.close()
            observer.stop()
        out[monitor] = {
            "bursts": bursts,
            "templates": len(templates(monitor, user.uid)),
            "cpu_us_per_event": summarize(b["cpu_us_per_event"] for b in bursts),
        }
    return out
