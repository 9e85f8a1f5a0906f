"""A BPF ring buffer read from its mmap'ed pages, a whole batch per call.

bcc's reader calls a ctypes callback per record (tens of µs per event once
the epoll and asyncio wake-ups are counted). Here one call copies
everything the producer has committed since the last call in one slice and
returns the records' (offset, length) in that copy; the caller decodes them
with precompiled ``struct.Struct``s. No bcc in this module.

Kernel layout (kernel/bpf/ringbuf.c, as libbpf reads it):

* page 0, read-write: ``consumer_pos`` (u64), which we advance;
* page 1, read-only: ``producer_pos`` (u64); the data pages follow it,
  mapped twice in a row, so a record that wraps is contiguous;
* each record: u32 length (bit 31 BUSY: reserved, not yet committed;
  bit 30 DISCARD), u32 page offset, then the data, padded to 8 bytes.

x86-64's memory order makes plain loads acquire loads: a header read as
committed in the copy was written before its data, which the copy reads
after it.
"""

from __future__ import annotations

import mmap
import os
import struct

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HDR_SIZE = 8
_POS = struct.Struct("<Q")

Spans = list[tuple[int, int]]


class RingReader:
    """Consumer side of one BPF_MAP_TYPE_RINGBUF map."""

    def __init__(self, map_fd: int, data_bytes: int) -> None:
        if data_bytes & (data_bytes - 1) or data_bytes % PAGE_SIZE:
            raise ValueError(f"ring buffer size {data_bytes} is not a power-of-two number of pages")
        self.size = data_bytes
        self.mask = data_bytes - 1
        self._cons = mmap.mmap(map_fd, PAGE_SIZE, mmap.MAP_SHARED,
                               mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._prod = mmap.mmap(map_fd, PAGE_SIZE + 2 * data_bytes, mmap.MAP_SHARED,
                               mmap.PROT_READ, offset=PAGE_SIZE)
        #: records handed out so far, and wake-ups (calls that found data)
        self.records = 0
        self.batches = 0

    def pending_bytes(self) -> int:
        return _POS.unpack_from(self._prod, 0)[0] - _POS.unpack_from(self._cons, 0)[0]

    def read(self) -> tuple[bytes, Spans]:
        """Everything committed now: (copy, [(offset, length) per record]).
        The records are consumed (their space is given back to the kernel)
        before this returns."""
        cons = _POS.unpack_from(self._cons, 0)[0]
        prod = _POS.unpack_from(self._prod, 0)[0]
        if prod == cons:
            return b"", []
        start = PAGE_SIZE + (cons & self.mask)
        buf = self._prod[start:start + (prod - cons)]
        # records start 8-aligned: their u32 length words read as items of
        # a u32 view (cheaper than a struct unpack per record)
        words = memoryview(buf)[:(prod - cons) & ~3].cast("I")
        spans: Spans = []
        append = spans.append
        off, end = 0, prod - cons
        while off < end:
            length = words[off >> 2]
            if length & BUSY_BIT:
                break  # reserved, not committed yet: the next read gets it
            size = length & ~(BUSY_BIT | DISCARD_BIT)
            if not length & DISCARD_BIT:
                append((off + HDR_SIZE, size))
            off += (size + HDR_SIZE + 7) & ~7
        words.release()
        if off:
            _POS.pack_into(self._cons, 0, cons + off)
        self.records += len(spans)
        self.batches += 1
        return buf, spans

    def close(self) -> None:
        self._cons.close()
        self._prod.close()
