"""What every monitor adds to a BPF object (bpfobject.py): the in-kernel
uid filter (common.h), records made from maps (``periodic``), and the
options it takes from the collector's configuration (``options``).

A monitor subclass names its source file and record type and implements
``decode(data) -> Record | None`` (or ``decode_batch``); everything else
lives here and in bpfobject.py.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from dots_common.records import Record

from ..bpfobject import DEFAULT_RINGBUF_KIB_PER_CPU, MONITORS_DIR, PAGE_SIZE, BpfObject, DecodeCache, cstr

if TYPE_CHECKING:
    from ..config import CollectorConfig

__all__ = ["DEFAULT_RINGBUF_KIB_PER_CPU", "HERE", "PAGE_SIZE", "DecodeCache", "Monitor", "cstr"]

HERE = MONITORS_DIR
# the uid filter (common.h): a bitmap of UID_WORDS u64 words for the uids
# below UID_BITMAP_UIDS, then one word of flags for the bigger ones
UID_WORDS = 1024
UID_BITMAP_UIDS = UID_WORDS * 64
UID_BIG_LISTED, UID_BIG_ALL = 1, 2
ALL_BITS = (1 << 64) - 1


def uid_words(uids: set[int]) -> list[int]:
    """The uid_filter array that watches these uids (empty: every uid)."""
    if not uids:
        return [ALL_BITS] * UID_WORDS + [UID_BIG_ALL]
    words = [0] * (UID_WORDS + 1)
    for uid in uids:
        if uid < UID_BITMAP_UIDS:
            words[uid >> 6] |= 1 << (uid & 63)
        else:
            words[UID_WORDS] = UID_BIG_LISTED
    return words


def read_words(table: Any) -> list[int]:
    """The uid_filter array as the kernel holds it."""
    words = [0] * (UID_WORDS + 1)
    for key, value in table.items():
        words[key.value] = value.value
    return words


def write_word(table: Any, idx: int, word: int) -> None:
    table[ctypes.c_int(idx)] = ctypes.c_uint64(word)


class Monitor(BpfObject):
    """One monitor: a BPF object whose probes report only watched uids."""

    kind: ClassVar[str] = "monitor"
    #: seconds between calls of :meth:`periodic`; None = never
    tick_interval: ClassVar[float | None] = None
    #: set when the kernel asks for :meth:`periodic` before its time
    sample_soon: bool = False

    def __init__(self, kib_per_cpu: int = DEFAULT_RINGBUF_KIB_PER_CPU,
                 extra_cflags: Iterable[str] = ()) -> None:
        super().__init__(kib_per_cpu, extra_cflags)
        #: uids the kernel side reports: None = every uid (user space uses
        #: it for records made from maps, see wants())
        self.watching: set[int] | None = set()
        #: names and paths of records, decoded once (decode_rows)
        self.texts = DecodeCache()

    @classmethod
    def options(cls, config: "CollectorConfig") -> dict[str, Any]:
        """Constructor arguments this monitor takes from the collector's
        configuration (besides the ring buffer size)."""
        return {}

    # --- uid filter -------------------------------------------------------
    def set_uids(self, uids: Iterable[int]) -> None:
        """Monitor only these uids; an empty set monitors every uid. (Until
        the first call the kernel side reports nobody.)

        Order matters: new uids go in before old ones leave (a word of the
        bitmap is first written with its old and new bits, then with the
        new ones only; big uids are added to monitored_uids before the
        flags look there), so no wanted event is dropped while the set
        changes."""
        wanted = set(uids)
        self.watching = wanted or None
        words = self.bpf[b"uid_filter"]
        table = self.bpf[b"monitored_uids"]
        have = read_words(words)
        want = uid_words(wanted)
        current = {k.value for k in table.keys()}
        big = {uid for uid in wanted if uid >= UID_BITMAP_UIDS}
        for idx in range(UID_WORDS):
            if want[idx] & ~have[idx]:
                write_word(words, idx, have[idx] | want[idx])
        for uid in big - current:
            table[ctypes.c_uint32(uid)] = ctypes.c_uint8(1)
        if want[UID_WORDS] & ~have[UID_WORDS]:
            write_word(words, UID_WORDS, have[UID_WORDS] | want[UID_WORDS])
        for idx in range(UID_WORDS + 1):
            if have[idx] & ~want[idx]:
                write_word(words, idx, want[idx])
        for uid in current - big:
            del table[ctypes.c_uint32(uid)]

    def monitor_nobody(self) -> None:
        """Report nothing at all until the next set_uids()."""
        self.watching = set()
        words = self.bpf[b"uid_filter"]
        have = read_words(words)
        for idx in range(UID_WORDS, -1, -1):  # the big uids' flags first
            if have[idx]:
                write_word(words, idx, 0)
        table = self.bpf[b"monitored_uids"]
        for key in list(table.keys()):
            del table[key]

    def wants(self, uid: int) -> bool:
        return self.watching is None or uid in self.watching

    # --- ring buffer records -----------------------------------------------------
    def decode_rows(self, buf: bytes, spans: list[tuple[int, int]]) -> list[tuple]:
        """Each monitor decodes its records straight into rows."""
        raise NotImplementedError

    def decode_batch(self, buf: bytes, spans: list[tuple[int, int]]) -> list[Record]:
        cls = self.record_type
        return [cls(*row) for row in self.decode_rows(buf, spans)]

    def decode(self, data: bytes) -> Record | None:
        out = self.decode_batch(data, [(0, len(data))])
        return out[0] if out else None

    # --- records from maps ------------------------------------------------------
    #: maps holding counters are scanned at most this often (seconds)
    MIN_SCAN_GAP: ClassVar[float] = 1.0
    _last_scan: float = 0.0

    def scan_due(self, final: bool = False) -> bool:
        """Whether a map scan in :meth:`periodic` is due: always at
        shutdown (``final``), else at most once per MIN_SCAN_GAP (or
        tick_interval, when shorter) however often it is called."""
        now = time.monotonic()
        if not final and now - self._last_scan < min(self.MIN_SCAN_GAP,
                                                      self.tick_interval or self.MIN_SCAN_GAP):
            return False
        self._last_scan = now
        return True

    def periodic(self, final: bool = False) -> list[Record]:
        """Records that come from maps rather than the ring buffer (samples,
        counters of long-lived files or sockets), called every
        ``tick_interval`` seconds and once more, with ``final``, at
        shutdown (report everything still counted)."""
        return []
