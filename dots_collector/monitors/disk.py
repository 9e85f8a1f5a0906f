"""Disk I/O monitor loader: completed block requests with latency, attributed
to the process that queued them (see disk.bpf.c).

``periodic()`` produces no records: it sweeps the kernel's pending map of
entries that will never complete (bios merged into other requests, I/O on
bio-based devices, completions not matched), so stale entries
do not linger; issued ones are counted in ``lost``.
"""

from __future__ import annotations

import ctypes
import struct
import time
from collections.abc import Iterable

from dots_common.records import DiskEvent

from .. import btf
from .base import DEFAULT_RINGBUF_KIB_PER_CPU, Monitor

# struct disk_event (disk.bpf.c)
EVENT = struct.Struct("<QQQIIIII10s16s2x")
# struct io_owner (disk.bpf.c): queue_ts, issue_ts, then pid, uid, bytes, pad, comm, rwbs
OWNER_TS = struct.Struct("<QQ")
#: what the completion's raw tracepoint reads of a struct request, at the
#: running kernel's offsets (disk.bpf.c)
BTF_OFFSETS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("OFF_RQ_SECTOR", "request", ("__sector",)),
    ("OFF_RQ_Q", "request", ("q",)),
    ("OFF_Q_DISK", "request_queue", ("disk",)),
    ("OFF_DISK_MAJOR", "gendisk", ("major",)),
    ("OFF_DISK_FIRST_MINOR", "gendisk", ("first_minor",)),
)
#: disk.bpf.c `queued`: the entries user space swept out of `pending`
Q_SWEPT = 2


class DiskMonitor(Monitor):
    name = "disk"
    record_type = DiskEvent
    fixed_records = True  # one struct, reserved in one place

    def __init__(self, kib_per_cpu: int = DEFAULT_RINGBUF_KIB_PER_CPU,
                 extra_cflags: Iterable[str] = (), interval: float = 5.0,
                 stale_after: float = 30.0, max_pending: int = 1024) -> None:
        super().__init__(kib_per_cpu, extra_cflags)
        self.tick_interval = interval
        self.stale_after_ns = int(stale_after * 1e9)
        self.max_pending = max_pending
        #: pending entries removed by the sweep (never completed)
        self.stale = 0
        #: of those, issued ones: completions not matched to their request
        self.missed = 0

    def cflags(self) -> list[str]:
        return [*super().cflags(), f"-DMAX_PENDING={self.max_pending}",
                *btf.cflags(BTF_OFFSETS)]

    def decode_rows(self, buf: bytes, spans: list[tuple[int, int]]) -> list[tuple]:
        """DiskEvent rows: pid, uid, comm, dev, sector, bytes, nr_sector, rw,
        latency_ns, ts_ns."""
        unpack = EVENT.unpack_from
        texts = self.texts
        out = []
        for off, _size in spans:
            (ts_ns, latency_ns, sector, pid, uid, dev, nr_sector, nbytes,
             rwbs, comm) = unpack(buf, off)
            out.append((pid, uid, texts[comm], dev, sector, nbytes, nr_sector, texts[rwbs],
                        latency_ns, ts_ns))
        return out

    def periodic(self, final: bool = False) -> list[DiskEvent]:
        if self.bpf is not None:
            self.sweep()
        return []

    def lost_causes(self) -> dict[str, int]:
        """Ring buffer full, and completions not matched to their request
        (issued requests found again at their sector's next queueing, or
        swept by age: see disk.bpf.c)."""
        causes = super().lost_causes()
        unseen = sum(self.bpf[b"unseen"][ctypes.c_int(0)])
        causes["completion not seen"] = unseen + self.missed
        return causes

    def pending_count(self) -> int:
        return len(self._pending())

    def sweep(self, max_age: float | None = None) -> int:
        """Delete pending entries queued or issued more than max_age seconds
        ago (default: stale_after); an issued one is a completion we missed,
        counted in lost. Return how many went."""
        now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        max_age_ns = self.stale_after_ns if max_age is None else int(max_age * 1e9)
        table = self.bpf[b"pending"]
        removed = 0
        for key, value in self._pending():
            queue_ts, issue_ts = OWNER_TS.unpack_from(bytes(value))
            if now - max(queue_ts, issue_ts) < max_age_ns:
                continue
            try:
                del table[key]
            except KeyError:
                continue  # completed meanwhile
            removed += 1
            if issue_ts:
                self.missed += 1
        if removed:  # disk.bpf.c `queued`: this process is the only writer of Q_SWEPT
            counts = self.bpf[b"queued"]
            slot = ctypes.c_int(Q_SWEPT)
            counts[slot] = ctypes.c_uint64(counts[slot].value + removed)
        self.stale += removed
        return removed

    def _pending(self) -> list:
        table = self.bpf[b"pending"]
        try:
            return list(table.items_lookup_batch())
        except Exception:  # kernel without batch ops: one syscall per key
            return table.items()
