"""Identical events of one batch as one struct with a count, on the way to
the bus (the contract: BATCH_EXTRAS in dots_common.records and the
FileEvents signal in dbus/org.dots.Collector1.xml).

A process that opens the same file 100,000 times a second makes 100,000
events that differ only in their time: one struct per event would cost the
collector's marshalling, dbus-daemon and the policy daemon's decoding and
storing more CPU than this machine has, and tell the parent nothing more
than "this, N times, between t0 and t1". Only the wire is grouped: the
collector's retainer keeps the rows as read (a replay groups them again,
into the same structs) and ``--stdout`` prints one line per event.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

from dots_common.packed import pack_file_structs
from dots_common.records import PACKED_MONITORS, FileEvent, field_names

U64_MAX = 2**64 - 1

_FILE = field_names(FileEvent)
_BYTES, _TS = _FILE.index("bytes"), _FILE.index("ts_ns")
#: what makes two file events "the same": every field but bytes and ts_ns
_file_key = operator.itemgetter(*(i for i, n in enumerate(_FILE) if n not in ("bytes", "ts_ns")))


def group_file_rows(rows: list[tuple]) -> list[tuple]:
    """FileEvent rows -> FileEvents structs (the record's fields, count,
    last_ts_ns), in the order of each group's first event: ts_ns the
    earliest, last_ts_ns the latest, bytes the sum (at most 2^64-1)."""
    groups: dict[tuple, list] = {}
    get = groups.get
    for r in rows:
        key = _file_key(r)
        g = get(key)
        if g is None:
            groups[key] = [r, 1, r[_BYTES], r[_TS], r[_TS]]
        else:
            g[1] += 1
            g[2] += r[_BYTES]
            ts = r[_TS]
            if ts < g[3]:
                g[3] = ts
            elif ts > g[4]:
                g[4] = ts
    if len(groups) == len(rows):  # nothing to group: the common case off a storm
        return [(*r, 1, r[_TS]) for r in rows]
    out = []
    for r, count, nbytes, first, last in groups.values():
        if count > 1:
            r = list(r)
            r[_BYTES] = min(nbytes, U64_MAX)
            r[_TS] = first
        out.append((*r, count, last))
    return out


#: per monitor, rows -> the structs its batch signal carries
GROUPERS: dict[str, Callable[[list[tuple]], list[tuple]]] = {"filesystem": group_file_rows}
#: per packed monitor (dots_common.records.PACKED_MONITORS), structs -> bytes
PACKERS: dict[str, Callable[[list[tuple]], bytes]] = {"filesystem": pack_file_structs}
assert set(PACKERS) == PACKED_MONITORS


def to_wire(monitor: str, rows: list[tuple]) -> list[tuple] | bytes:
    """A batch's rows as its signal carries them: grouped, then packed."""
    group = GROUPERS.get(monitor)
    structs = group(rows) if group else rows
    pack = PACKERS.get(monitor)
    return pack(structs) if pack else structs
