"""What every monitor shares: compile its ``<name>.bpf.c`` with bcc, keep
its uid filter, count its lost events, and decode its ring buffer records.

A monitor subclass names its source file and record type and implements
``decode(data) -> Record | None``; everything else lives here.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from dots_common.limits import MAX_UIDS
from dots_common.records import Record


log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
DEFAULT_RINGBUF_KIB_PER_CPU = 128
FILTER_NOBODY, FILTER_LISTED, FILTER_ALL = 0, 1, 2  # common.h


def ringbuf_pages(kib_per_cpu: int, ncpus: int | None = None) -> int:
    """A BPF ring buffer is shared by all CPUs and must be a power-of-two
    number of pages: round kib_per_cpu x ncpus up to one."""
    ncpus = ncpus or os.cpu_count() or 1
    wanted = max(1, kib_per_cpu * 1024 * ncpus // PAGE_SIZE)
    pages = 1
    while pages < wanted:
        pages <<= 1
    return pages


class Monitor:
    """One BPF object: programs, uid filter, ring buffer, lost counter."""

    name: ClassVar[str]
    record_type: ClassVar[type[Record]]
    #: seconds between calls of :meth:`periodic`; None = never
    tick_interval: ClassVar[float | None] = None

    def __init__(self, kib_per_cpu: int = DEFAULT_RINGBUF_KIB_PER_CPU,
                 extra_cflags: Iterable[str] = ()) -> None:
        self.pages = ringbuf_pages(kib_per_cpu)
        self.extra_cflags = list(extra_cflags)
        self.bpf: Any = None
        self.delivered = 0
        #: uids the kernel side reports: None = every uid (user space uses
        #: it for records made from maps, see wants())
        self.watching: set[int] | None = set()

    @property
    def ringbuf_bytes(self) -> int:
        return self.pages * PAGE_SIZE

    @property
    def source(self) -> Path:
        return HERE / f"{self.name}.bpf.c"

    def cflags(self) -> list[str]:
        return ["-Wno-ignored-attributes", f"-DRINGBUF_PAGES={self.pages}",
                f"-DMAX_MONITORED_UIDS={MAX_UIDS}", *self.extra_cflags]

    def program_text(self) -> str:
        """The monitor's source with common.h pasted in: bcc rewrites map
        methods only in the main text, never in an included header."""
        common = (HERE / "common.h").read_text()
        return self.source.read_text().replace('#include "common.h"', common, 1)

    def load(self) -> None:
        """Compile and attach (bcc attaches TRACEPOINT_PROBEs itself)."""
        from bcc import BPF  # imported here: only the root daemon needs bcc

        self.bpf = BPF(text=self.program_text().encode(), cflags=self.cflags())
        self.after_load()
        log.info("monitor %s loaded (%d KiB ring buffer)", self.name, self.ringbuf_bytes // 1024)

    def after_load(self) -> None:
        """Hook for monitors that seed maps or attach extra programs."""

    def close(self) -> None:
        if self.bpf is not None:
            self.bpf.cleanup()
            self.bpf = None
            log.info("monitor %s detached", self.name)

    # --- uid filter -------------------------------------------------------
    def set_uids(self, uids: Iterable[int]) -> None:
        """Monitor only these uids; an empty set monitors every uid. (Until
        the first call the kernel side reports nobody.)

        Order matters: new uids go in before the list is put in force, and
        "every uid" is put in force before the old uids are removed, so no
        wanted event is dropped while the set changes."""
        wanted = set(uids)
        self.watching = wanted or None
        table = self.bpf[b"monitored_uids"]
        state = self.bpf[b"filter_state"]
        current = {k.value for k in table.keys()}
        for uid in wanted - current:
            table[ctypes.c_uint32(uid)] = ctypes.c_uint8(1)
        if not wanted:
            state[ctypes.c_int(0)] = ctypes.c_uint32(FILTER_ALL)
        for uid in current - wanted:
            del table[ctypes.c_uint32(uid)]
        if wanted:
            state[ctypes.c_int(0)] = ctypes.c_uint32(FILTER_LISTED)

    def monitor_nobody(self) -> None:
        """Report nothing at all until the next set_uids()."""
        self.watching = set()
        state = self.bpf[b"filter_state"]
        state[ctypes.c_int(0)] = ctypes.c_uint32(FILTER_NOBODY)
        table = self.bpf[b"monitored_uids"]
        for key in list(table.keys()):
            del table[key]

    def wants(self, uid: int) -> bool:
        return self.watching is None or uid in self.watching

    # --- events -------------------------------------------------------------
    @property
    def lost(self) -> int:
        """Events the kernel dropped because the ring buffer was full."""
        return sum(self.bpf[b"lost_events"][ctypes.c_int(0)])

    @property
    def ring_fd(self) -> int:
        return self.bpf[b"events"].map_fd

    def open(self, deliver: Callable[[Record], None]) -> None:
        """Decode every ring buffer record and hand it to ``deliver``."""

        def on_event(_ctx: Any, data: Any, size: int) -> int:
            record = self.decode(ctypes.string_at(data, size))
            if record is not None:
                self.delivered += 1
                deliver(record)
            return 0

        self.bpf[b"events"].open_ring_buffer(on_event)

    def consume(self) -> None:
        """Drain what the ring buffer holds now, without waiting."""
        self.bpf.ring_buffer_consume()

    def decode(self, data: bytes) -> Record | None:
        raise NotImplementedError

    def periodic(self, final: bool = False) -> list[Record]:
        """Records that come from maps rather than the ring buffer (samples,
        counters of long-lived files or sockets), called every
        ``tick_interval`` seconds and once more, with ``final``, at
        shutdown (report everything still counted)."""
        return []


def cstr(raw: bytes) -> str:
    """A NUL-terminated C string as text (undecodable bytes escaped)."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")
