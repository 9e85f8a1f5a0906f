"""Memory monitor loader: per-process allocation totals aggregated in the
kernel (see memory.bpf.c), sampled every interval with each process's
resident set from /proc/<pid>/statm.

The kernel counters only grow (page bytes may wait in per-CPU slots,
added in when sampled: memory.bpf.c count_pages); each sample carries how much they grew since
the previous sample of that pid, so reading the map never races with the
probes that update it. No ring buffer carries samples: the number of
records is bounded by (active processes) x (1 / interval), however many
allocations happen. The ring buffer only carries a wake-up: an exec by a
watched user while the kmem probes are detached.

The resident set is read from /proc for each live process in the map at
each sample (one small read per watched process per interval), not from
kmem:rss_stat: that tracepoint fires on every page fault, and attached it
was 60 % of the monitor's cost on an allocation storm (memory.bpf.c). A
process's last sample reports the resident set of its previous sample
(its /proc entry is gone by then); a process that lives less than one
interval is reported with the resident set of the sample that saw it, or
0 if none did.

The kmem probes (every allocation on the machine hits them) are attached
only while a watched process runs (probe_gate.py): from that exec, from
set_uids() finding one in /proc, and until a sample finds every watched
process gone. Allocations made in the millisecond or so between such an
exec and the attach are not counted.
"""

from __future__ import annotations

import ctypes
import logging
import os
import struct
import time
from collections.abc import Iterable
from pathlib import Path

from dots_common.records import MemorySample

from ..pinning import raw_tracepoint_function
from .base import DEFAULT_RINGBUF_KIB_PER_CPU, PAGE_SIZE, Monitor, cstr
from .probe_gate import ProbeGate

log = logging.getLogger(__name__)

# struct mem_stats (memory.bpf.c)
STATS = struct.Struct("<QQQQQII16s")
#: an exited process's entry is kept this long, so that the pages its exit
#: frees (after sched_process_exit) are still counted in its last sample
EXIT_GRACE_NS = 100_000_000
#: page_slots indices (memory.bpf.c)
SLOT_ALLOC, SLOT_FREE = 0, 1
#: An entry stays until the sample after its process's exit (plus the
#: grace above): thousands of short-lived processes a second (an exec
#: storm, a build) would fill the map within one interval, and every
#: allocation of a process without an entry is lost. Once this share of
#: the map was created since the last sample, the kernel wakes us to
#: sample at once (WAKE_BUSY); while a sample finds the map fuller than
#: it, the next one comes after BUSY_INTERVAL.
BUSY_FILL = 0.25
BUSY_INTERVAL = 0.1
#: wake-up records (memory.bpf.c)
WAKE_EXEC, WAKE_BUSY = 1, 2
NO_RING_KIB_PER_CPU = 4
EXIT_FORMAT = Path("/sys/kernel/tracing/events/sched/sched_process_exit/format")
#: the probes attached only while a watched process runs
GATED = ("kmem:kmalloc", "kmem:kfree", "kmem:mm_page_alloc", "kmem:mm_page_free")
#: /proc is scanned for watched processes at most this often (s), besides
#: set_uids(): while the probes are detached (an exec wakes us sooner), and
#: while they are attached but no sample shows a live watched process
PROC_SCAN_GAP = 10.0


class MemoryMonitor(Monitor):
    name = "memory"
    record_type = MemorySample
    #: kmalloc/kfree in an interrupt that comes while the same probe runs
    #: are skipped (raw tracepoints skip only themselves): a few dozen at a
    #: start, which the allocation totals then miss; no sample is lost
    skips_lose_events = False

    def __init__(self, kib_per_cpu: int = DEFAULT_RINGBUF_KIB_PER_CPU,
                 extra_cflags: Iterable[str] = (), interval: float = 1.0,
                 max_pids: int = 2048, max_ptrs: int = 4096,
                 track_free: bool = True) -> None:
        # nothing goes through its ring buffer: the smallest one (two pages),
        # whatever size the other monitors get
        del kib_per_cpu
        super().__init__(NO_RING_KIB_PER_CPU, extra_cflags)
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.tick_interval = interval
        #: the configured interval (tick_interval shrinks while busy)
        self.interval = interval
        self.max_pids = max_pids
        self.max_ptrs = max_ptrs
        self.track_free = track_free
        #: pid -> (bytes_alloc, bytes_freed, pages_alloc, pages_freed,
        #: resident bytes) as last reported
        self.last: dict[int, tuple] = {}
        self.samples = 0
        self.gate = ProbeGate({})
        self._proc_scanned = 0.0

    def cflags(self) -> list[str]:
        flags = [*super().cflags(), f"-DMAX_PIDS={self.max_pids}",
                 f"-DBUSY_CREATED={max(64, int(self.max_pids * BUSY_FILL))}",
                 f"-DMAX_PTRS={self.max_ptrs}", f"-DDOTS_PAGE_SIZE={PAGE_SIZE}"]
        if self.track_free:
            flags.append("-DTRACK_FREE")
        try:
            if "group_dead" in EXIT_FORMAT.read_text():
                flags.append("-DEXIT_HAS_GROUP_DEAD")
        except OSError:
            pass
        return flags

    @property
    def gated(self) -> tuple[str, ...]:
        return GATED if self.track_free else tuple(t for t in GATED if t != "kmem:kfree")

    # --- the gate on the kmem probes ----------------------------------------------
    def attach(self) -> None:
        """(bcc, loader or tests) Take the kmem probes back from bcc: they
        are attached only while a watched process runs."""
        programs = {}
        for tracepoint in self.gated:
            fn = self.bpf.funcs[raw_tracepoint_function(tracepoint)]
            self.bpf.detach_raw_tracepoint(tracepoint.split(":")[1].encode())
            programs[tracepoint] = os.dup(fn.fd)  # bcc closes its own
        self.gate = ProbeGate(programs)

    def gated_programs(self) -> dict[str, int]:
        return self.gate.programs

    def open_pinned(self, directory: Path, layouts: dict) -> None:
        super().open_pinned(directory, layouts)
        self.gate = ProbeGate.pinned(directory, self.gated)

    def _gate(self, attached: bool) -> None:
        """Attach or detach the kmem probes, and tell the exec probe. An
        attach the kernel refuses (out of file descriptors, say) is logged
        and tried again at the next exec or /proc look; the collector goes
        on with its other monitors."""
        if attached:
            try:
                self.gate.open()
            except OSError as e:
                log.error("cannot attach the kmem probes: %s", e)
        else:
            self.gate.close()
        self.bpf[b"gate"][ctypes.c_int(0)] = ctypes.c_uint32(int(self.gate.is_open))

    def watched_running(self) -> bool:
        """Whether a watched user has a process now (/proc; a process's
        directory belongs to its effective uid)."""
        self._proc_scanned = time.monotonic()
        if self.watching is None:
            return True
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid in self.watching:
                        return True
                except OSError:
                    pass  # gone
        return False

    def set_uids(self, uids: Iterable[int]) -> None:
        """Also forget the processes of uids no longer monitored (and those
        recorded before the filter was first set); attach the kmem probes
        if a newly watched user runs something, detach them if nobody
        watched does."""
        wanted = set(uids)
        super().set_uids(wanted)
        if wanted:
            table = self.bpf[b"stats"]
            for key, raw in self._entries():
                if STATS.unpack(raw)[5] not in wanted:  # uid
                    self._forget(table, key)
        self._settle_gate()

    def _settle_gate(self) -> None:
        """Attach the kmem probes if a watched process runs, else detach
        them; then look again: a process that exec'd after the first look
        but before the exec probe was told, sent no wake-up, and is in
        /proc by now."""
        if self.watched_running():
            self._gate(True)
            return
        self._gate(False)
        if self.watched_running():
            self._gate(True)

    def monitor_nobody(self) -> None:
        super().monitor_nobody()
        self._gate(False)

    def decode_rows(self, buf: bytes, spans: list[tuple[int, int]]) -> list[tuple]:
        """The ring buffer carries only wake-ups: a watched user exec'd
        while the kmem probes were detached, or the map is filling with
        short-lived processes (sample now: :attr:`sample_soon`)."""
        if not spans:
            return []
        if not self.gate.is_open:
            self._gate(True)
        if any(buf[off:off + 4] == WAKE_BUSY.to_bytes(4, "little") for off, _ in spans):
            self.sample_soon = True
        return []

    def close(self) -> None:
        self.gate.release()
        super().close()

    # --- sampling -----------------------------------------------------------
    def _entries(self) -> list[tuple[int, bytes]]:
        table = self.bpf[b"stats"]
        try:
            items = list(table.items_lookup_batch())
        except Exception:  # kernel without batch ops: one syscall per key
            items = table.items()
        return [(k if isinstance(k, int) else k.value, bytes(v)) for k, v in items]

    def _pending_pages(self) -> dict[int, list[int]]:
        """pid -> [page bytes allocated, freed] the per-CPU slots hold and
        have not yet added to its entry (memory.bpf.c count_pages). Read
        after the entries: a slot emptied in between makes this sample
        short by what it held, the next one has it; nothing is counted
        twice."""
        pending: dict[int, list[int]] = {}
        table = self.bpf[b"page_slots"]
        for which in (SLOT_ALLOC, SLOT_FREE):
            for slot in table[which]:
                if slot.bytes and slot.tgid:
                    pending.setdefault(slot.tgid, [0, 0])[which] += slot.bytes
        return pending

    def _forget(self, table, pid: int) -> None:
        try:
            del table[ctypes.c_uint32(pid)]
        except KeyError:
            pass
        self.last.pop(pid, None)

    def periodic(self, final: bool = False) -> list[MemorySample]:
        """One sample per process whose counters or resident set changed
        since its previous sample; entries of exited processes are
        reported one last time and removed."""
        if self.bpf is None:
            return []
        now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        table = self.bpf[b"stats"]
        out: list[MemorySample] = []
        alive = False
        entries = self._entries()
        pending = self._pending_pages()
        for pid, raw in entries:
            b_alloc, b_freed, p_alloc, p_freed, exit_ts, uid, _, comm = STATS.unpack(raw)
            previous = self.last.get(pid)
            if previous is None or b_alloc < previous[0] or b_freed < previous[1]:
                previous = (0, 0, 0, 0, 0)  # first sample (or a reused pid)
            slots = pending.get(pid, (0, 0))
            # a slot emptied between the two reads: never below what was reported
            p_alloc = max(p_alloc + slots[0], previous[2])
            p_freed = max(p_freed + slots[1], previous[3])
            counters = (b_alloc, b_freed, p_alloc, p_freed)
            resident = None if exit_ts else resident_bytes(pid)
            # gone: its exit was stamped a while ago, or /proc has no such
            # process although its exit was not seen (the map was full then)
            gone = (now - exit_ts >= EXIT_GRACE_NS) if exit_ts else resident is None
            if resident is None:
                resident = previous[4]  # what the last look at /proc saw
            current = (*counters, resident)
            if current != previous:
                out.append(MemorySample(
                    pid=pid, uid=uid, comm=cstr(comm),
                    bytes_alloc=b_alloc - previous[0], bytes_freed=b_freed - previous[1],
                    pages_alloc_bytes=p_alloc - previous[2],
                    pages_freed_bytes=p_freed - previous[3],
                    rss_bytes=resident, ts_ns=now))
                self.last[pid] = current
            if gone:
                self._forget(table, pid)
            elif not exit_ts and self.wants(uid):
                alive = True
        self.samples += len(out)
        self.sample_soon = False
        self.bpf[b"created"][ctypes.c_int(0)] = ctypes.c_uint64(0)
        busy = len(entries) > BUSY_FILL * self.max_pids
        self.tick_interval = min(self.interval, BUSY_INTERVAL) if busy else self.interval
        self._review_gate(alive, final)
        return out

    def _review_gate(self, alive: bool, final: bool) -> None:
        """Detach the kmem probes once no watched process runs (a sample
        shows none alive and /proc agrees); while detached, look in /proc
        now and then for one an exec did not announce (a process that
        changed its uid without exec)."""
        if final:
            return
        if time.monotonic() - self._proc_scanned < PROC_SCAN_GAP:
            return
        if not self.gate.is_open or not alive:
            self._settle_gate()



def resident_bytes(pid: int) -> int | None:
    """file + anon + shmem pages resident, in bytes (/proc/<pid>/statm's
    second field); None if the process is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return None
