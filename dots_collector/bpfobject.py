"""One BPF object with its maps and its ring buffer: the base of every
monitor (monitors/base.py) and every enforcer (enforcers/base.py).

Written once here: the source text (``<name>.bpf.c`` with common.h pasted
in), the compile flags, compiling and attaching with bcc (in the loader,
loader.py) or opening what the loader pinned (maps.py), the lost counter,
and reading the ring buffer from its mmap'ed pages a batch at a time
(ringbuf.py) instead of one bcc ctypes callback per record.

A subclass names its source (``name``, ``source_dir``) and its record type,
and decodes: ``decode(data)`` for one record, or ``decode_batch`` for a
whole read when it can do better than one call per record.
"""

from __future__ import annotations

import collections
import ctypes
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from dots_common.limits import MAX_UIDS
from dots_common.records import Record

from . import libbpf
from .ringbuf import PAGE_SIZE, RingReader, Spans

log = logging.getLogger(__name__)

MONITORS_DIR = Path(__file__).resolve().parent / "monitors"
COMMON_H = MONITORS_DIR / "common.h"
DEFAULT_RINGBUF_KIB_PER_CPU = 128
#: records decoded per consume() call at most: a storm on one ring buffer
#: cannot starve the others (the timer and the next wake-up call again)
MAX_RECORDS_PER_CONSUME = 8192
#: while consume() decodes, it copies what the kernel committed meanwhile
#: out of the ring after every this many records: the ring is emptied every
#: 1-2 ms however big the read being decoded (decoding a full ring took
#: 6-7 ms, long enough at 250,000 records/s for the ring to fill again)
CHUNK_RECORDS = 512
#: copied but not yet decoded, at most (bytes): past it the records stay in
#: the ring, which then fills and counts its losses as it would without.
#: 8 MiB is ~75,000 file records: 0.3 s of 250,000/s, many times what a
#: collector that stops for a few ms needs, and a bound on what a flood
#: can make the collector hold (four monitors: 32 MiB)
MAX_BACKLOG_BYTES = 8 << 20

Deliver = Callable[[Record], None]
#: rows: tuples in a record type's field order (Record.to_dbus order)
DeliverRows = Callable[[list[tuple]], None]


def ringbuf_pages(kib_per_cpu: int, ncpus: int | None = None) -> int:
    """A BPF ring buffer is shared by all CPUs and must be a power-of-two
    number of pages: round kib_per_cpu x ncpus up to one."""
    import os

    ncpus = ncpus or os.cpu_count() or 1
    wanted = max(1, kib_per_cpu * 1024 * ncpus // PAGE_SIZE)
    pages = 1
    while pages < wanted:
        pages <<= 1
    return pages


def cstr(raw: bytes) -> str:
    """A NUL-terminated C string as text (undecodable bytes escaped)."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")


class DecodeCache(dict):
    """``cache[raw]`` is ``decode(raw)`` (by default ``cstr``), remembered:
    the same few names, paths and addresses come back record after record
    (a storm opens one file 100,000 times a second), and a dict hit costs a
    fifth of a split and a decode. Bounded: emptied when it reaches
    ``limit`` entries."""

    __slots__ = ("decode", "limit")

    def __init__(self, decode: Callable[[bytes], str] = cstr, limit: int = 4096) -> None:
        super().__init__()
        self.decode = decode
        self.limit = limit

    def __missing__(self, raw: bytes) -> str:
        if len(self) >= self.limit:
            self.clear()
        text = self[raw] = self.decode(raw)
        return text


class BpfObject:
    """Programs, maps, a ring buffer ``events`` and a per-CPU ``lost_events``
    counter (common.h), compiled from one source file."""

    name: ClassVar[str]
    record_type: ClassVar[type[Record]]
    #: the directory of ``<name>.bpf.c``
    source_dir: ClassVar[Path] = MONITORS_DIR
    #: for log lines: "monitor" or "enforcer"
    kind: ClassVar[str] = "BPF object"
    default_kib_per_cpu: ClassVar[int] = DEFAULT_RINGBUF_KIB_PER_CPU
    #: a skipped run of one of its programs may drop an event (False: the
    #: programs only add to counters, which then miss that run: memory)
    skips_lose_events: ClassVar[bool] = True
    #: every record is one struct of one size (the ring reader then cuts a
    #: read into records without walking it: ringbuf.py)
    fixed_records: ClassVar[bool] = False

    def __init__(self, kib_per_cpu: int | None = None, extra_cflags: Iterable[str] = ()) -> None:
        self.pages = ringbuf_pages(kib_per_cpu or self.default_kib_per_cpu)
        self.extra_cflags = list(extra_cflags)
        self.bpf: Any = None
        self.delivered = 0
        self._reader: RingReader | None = None
        self._deliver: Deliver | None = None
        self._deliver_rows: DeliverRows | None = None
        #: (copy, records) read from the ring, not yet decoded (consume())
        self._backlog: collections.deque[tuple[bytes, Spans]] = collections.deque()
        self._backlog_bytes = 0

    # --- building -----------------------------------------------------------
    @property
    def ringbuf_bytes(self) -> int:
        return self.pages * PAGE_SIZE

    @property
    def source(self) -> Path:
        return self.source_dir / f"{self.name}.bpf.c"

    @property
    def wakeup_shift(self) -> int:
        """log2 of the bytes a CPU commits between two wake-ups of the
        reader (common.h wakeup_flags): half the ring divided by the CPUs,
        rounded down to a power of two, so that a wake-up comes before half
        the ring is full even when every CPU produces."""
        import os

        share = max(PAGE_SIZE, self.ringbuf_bytes // 2 // (os.cpu_count() or 1))
        return share.bit_length() - 1

    def cflags(self) -> list[str]:
        return ["-Wno-ignored-attributes", f"-DRINGBUF_PAGES={self.pages}",
                f"-DMAX_MONITORED_UIDS={MAX_UIDS}", f"-DWAKEUP_SHIFT={self.wakeup_shift}",
                *self.extra_cflags]

    def program_text(self) -> str:
        """The source with common.h pasted in: bcc rewrites map methods only
        in the main text, never in an included header."""
        return self.source.read_text().replace('#include "common.h"', COMMON_H.read_text(), 1)

    def compile(self) -> Any:
        """The bcc BPF object of this source (bcc attaches TRACEPOINT_PROBEs
        and RAW_TRACEPOINT_PROBEs itself)."""
        from bcc import BPF  # imported here: only the loader needs bcc

        return BPF(text=self.program_text().encode(), cflags=self.cflags())

    def spec(self) -> dict[str, Any]:
        """What the compiled object depends on besides the code (pinning.py
        fingerprints it): a pinned object is reused only if it matches."""
        return {"name": self.name, "pages": self.pages, "extra_cflags": self.extra_cflags}

    # --- building (the loader, or a test in its own process) --------------------
    def build(self) -> None:
        """Compile and attach with bcc."""
        self.bpf = self.compile()
        self.attach()

    def attach(self) -> None:
        """Hook for programs bcc does not attach itself (raw tracepoints by
        another name, cgroup hooks): made here, as links."""

    def link_fds(self) -> list[int]:
        """Links :meth:`attach` made, for pinning."""
        return []

    def gated_programs(self) -> dict[str, int]:
        """Programs pinned unattached ("category:event" -> fd), which the
        object attaches itself when it needs them (monitors/probe_gate.py)."""
        return {}

    def load(self) -> None:
        """Compile, attach, then ``after_load``, all in this process (tests;
        the collector has the loader do it and opens the pins)."""
        self.build()
        self.after_load()
        log.info("%s %s loaded (%d KiB ring buffer)", self.kind, self.name,
                 self.ringbuf_bytes // 1024)

    def open_pinned(self, directory: Path, layouts: dict[str, Any]) -> None:
        """Open the maps the loader pinned (no bcc), then ``after_load``."""
        from .maps import PinnedMaps

        self.bpf = PinnedMaps(directory, layouts)
        self.after_load()

    def after_load(self) -> None:
        """Hook for subclasses that seed maps (it runs again whenever a
        collector re-opens pinned maps, so it must be idempotent)."""

    def close(self) -> None:
        """Release the object: a bcc object detaches its programs; pinned
        maps are only closed (unpinning is the collector's, pinning.py)."""
        self._backlog.clear()
        self._backlog_bytes = 0
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self.bpf is not None:
            self.bpf.cleanup()
            self.bpf = None
            log.info("%s %s closed", self.kind, self.name)

    # --- events ---------------------------------------------------------------
    @property
    def lost(self) -> int:
        """Events lost, whatever the cause (see :meth:`lost_causes`)."""
        return sum(self.lost_causes().values())

    def lost_causes(self) -> dict[str, int]:
        """Events lost by cause, for the log: here only those the kernel
        dropped because the ring buffer was full."""
        return {"ring buffer full": sum(self.bpf[b"lost_events"][ctypes.c_int(0)])}

    @property
    def skipped(self) -> int:
        """Runs of this object's programs the kernel skipped (their
        recursion_misses): a watched user's events among them are lost
        without a count, and unwatched users' runs count too, so this is
        not part of ``lost``. Probes that run in interrupt context are raw
        tracepoints (common.h), which keeps it at 0."""
        fds = getattr(self.bpf, "program_fds", None)  # pinned (maps.PinnedMaps)
        if fds is None:  # loaded here by bcc
            fds = [fn.fd for fn in self.bpf.funcs.values()]
        return sum(libbpf.prog_recursion_misses(fd) for fd in fds)

    @property
    def ring_fd(self) -> int:
        return self.bpf[b"events"].map_fd

    def doze(self, on: bool) -> None:
        """Ask the kernel to wake the reader at the next commit (common.h
        `doze`: the reader stops its timer while nothing comes)."""
        self.bpf[b"doze"][ctypes.c_int(0)] = ctypes.c_uint32(int(on))

    def open(self, deliver: Deliver, deliver_rows: DeliverRows | None = None) -> None:
        """From :meth:`consume` on, hand every decoded record to ``deliver``;
        or, given ``deliver_rows``, each read's records at once as rows
        (tuples in the record's field order: the collector's fast path,
        which never builds a Record object)."""
        self._deliver = deliver
        self._deliver_rows = deliver_rows
        self._reader = RingReader(self.ring_fd, self.ringbuf_bytes, self.fixed_records)

    def consume(self) -> bool:
        """Decode and deliver what the ring buffer holds now, without
        waiting, up to MAX_RECORDS_PER_CONSUME records; True when some are
        left (in the ring or copied out: call again).

        The ring is read into a backlog of copies, and read again after
        every CHUNK_RECORDS records decoded: its space goes back to the
        kernel within a few ms while a big read is decoded."""
        if self._reader is None:
            return False
        backlog = self._backlog
        budget = MAX_RECORDS_PER_CONSUME
        self._pull()
        while backlog and budget > 0:
            buf, spans = backlog[0]
            n = min(CHUNK_RECORDS, budget)
            if len(spans) > n:
                part = spans[:n]
                backlog[0] = (buf, spans[n:])
            else:
                part = spans
                backlog.popleft()
                self._backlog_bytes -= len(buf)
            budget -= len(part)
            self._deliver_part(buf, part)
            self._pull()
        return bool(backlog)

    def _pull(self) -> None:
        """Copy what the kernel committed into the backlog (room allowing)."""
        if self._backlog_bytes < MAX_BACKLOG_BYTES:
            buf, spans = self._reader.read()
            if spans:
                self._backlog.append((buf, spans))
                self._backlog_bytes += len(buf)

    def _deliver_part(self, buf: bytes, spans: Spans) -> None:
        if self._deliver_rows is not None:
            rows = self.decode_rows(buf, spans)
            self.delivered += len(rows)
            self._deliver_rows(rows)
            return
        records = self.decode_batch(buf, spans)
        self.delivered += len(records)
        if self._deliver is not None:
            for record in records:
                self._deliver(record)

    def decode_rows(self, buf: bytes, spans: Spans) -> list[tuple]:
        """The records of one read as rows (a subclass with a faster way
        overrides this, and decode_batch builds on it)."""
        return [tuple(r.to_dbus()) for r in self.decode_batch(buf, spans)]

    def decode_batch(self, buf: bytes, spans: Spans) -> list[Record]:
        """The records of one read (None from decode() drops a record)."""
        decode = self.decode
        out = [decode(buf[off:off + size]) for off, size in spans]
        return [r for r in out if r is not None]

    def decode(self, data: bytes) -> Record | None:
        """One ring buffer record."""
        raise NotImplementedError

    def readers(self) -> list[tuple[int, Callable[[], None]]]:
        """File descriptors the event loop watches, with what to call when
        one is readable."""
        return [(self.ring_fd, self.consume)]

    def state(self) -> dict[str, Any]:
        """What the object holds, for GetEnforcement (enforcers)."""
        return {}

    @property
    def ring_stats(self) -> dict[str, int]:
        """Reads that found data, and records read."""
        r = self._reader
        return {"reads": r.batches if r else 0, "records": r.records if r else 0}
