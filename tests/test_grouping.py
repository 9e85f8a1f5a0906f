"""The collector groups identical file events of a batch into one struct
with a count on the way to the bus (dots_collector/grouping.py) and packs
the structs in bytes (dots_common/packed.py), which the policy daemon
unpacks, refusing anything malformed (the contract: BATCH_EXTRAS,
PACKED_MONITORS, FileEvents in dbus/org.dots.Collector1.xml)."""

from __future__ import annotations

import pytest

from dots_collector.grouping import U64_MAX, group_file_rows
from dots_common.packed import HEAD, pack_file_structs, unpack_file_structs
from dots_collector.service import BusSink, CollectorInterface
from dots_common.records import batch_field_names

SEC = 10**9


def ev(type_="open", pid=7, path="/home/kid/a", result=3, nbytes=0, ts=0, new_path="", comm="cat"):
    return (type_, pid, 1001, comm, path, 0, result, nbytes, ts, new_path)


def test_identical_events_become_one_struct_with_count_first_and_last_time():
    rows = [ev(ts=5), ev(ts=9), ev(ts=7)]
    assert group_file_rows(rows) == [(*ev(ts=5), 3, 9)]


def test_events_that_differ_in_anything_but_time_and_bytes_stay_apart():
    rows = [ev(ts=1), ev(pid=8, ts=2), ev(path="/home/kid/b", ts=3), ev(result=-13, ts=4),
            ev("read", ts=5), ev(comm="sh", ts=6), ev("rename", new_path="/x", ts=7),
            ev("rename", new_path="/y", ts=8)]
    out = group_file_rows(rows)
    assert out == [(*r, 1, r[8]) for r in rows], "one struct each, in order, count 1"


def test_bytes_are_summed_and_groups_keep_the_order_of_their_first_event():
    rows = [ev("read", nbytes=4096, ts=1), ev("write", nbytes=10, ts=2),
            ev("read", nbytes=100, ts=3), ev("write", nbytes=2**64 - 1, ts=4)]
    out = group_file_rows(rows)
    assert out == [(*ev("read", nbytes=4196, ts=1), 2, 3),
                   (*ev("write", nbytes=U64_MAX, ts=2), 2, 4)], "a sum beyond 64 bits is capped"


def test_the_sum_of_counts_is_the_number_of_events():
    rows = [ev(pid=i % 3, ts=i) for i in range(1000)]
    out = group_file_rows(rows)
    count_at = batch_field_names("filesystem").index("count")
    assert len(out) == 3 and sum(r[count_at] for r in out) == 1000
    assert all(len(r) == len(batch_field_names("filesystem")) for r in out)


def test_the_bus_sink_sends_file_batches_grouped_and_others_as_they_are():
    sent = []

    class Emitters(CollectorInterface):
        pass

    sink = BusSink(Emitters())
    sink.emitters = {m: (lambda batch, rows, m=m: sent.append((m, batch, rows))) for m in sink.emitters}
    sink.publish("filesystem", 4, [ev(ts=1), ev(ts=2)])
    process_rows = [("exec", 1, 0, 1001, 1001, "true", "/usr/bin/true", 0, 5)] * 2
    sink.publish("process", 5, process_rows)
    assert sent[1] == ("process", 5, process_rows)
    assert sent[0][:2] == ("filesystem", 4) and isinstance(sent[0][2], bytes)
    assert unpack_file_structs(sent[0][2]) == [(*ev(ts=1), 2, 2)]


def test_packed_structs_round_trip_hostile_text_and_extreme_values():
    rows = [(*ev("rename", path="/home/kid/\u00e9t\u00e9 \"'\n\\x", ts=2**64 - 1,
                 new_path="/home/kid/" + "a" * 4000, comm="x" * 15), 2**32 - 1, 2**64 - 1),
            (*ev(result=-(2**31), nbytes=2**64 - 1, ts=0), 1, 0),
            (*ev(path="", comm="", type_=""), 1, 0)]
    assert unpack_file_structs(pack_file_structs(rows)) == rows
    assert unpack_file_structs(b"") == []


@pytest.mark.parametrize("row", [
    (*ev(pid=-1), 1, 0),            # beyond u32
    (*ev(nbytes=2**64), 1, 0),      # beyond u64
    (*ev(comm="c" * 256), 1, 0),    # a length beyond its header field
    (*ev(path="p" * 70000), 1, 0),
])
def test_values_the_layout_cannot_hold_are_refused_when_packing(row):
    with pytest.raises(ValueError):
        pack_file_structs([row])


def test_bytes_that_are_not_well_formed_structs_are_refused():
    good = pack_file_structs([(*ev(ts=1), 3, 2)])
    bad = [good[:HEAD.size - 1], good[:-1], good + b"\0", good + good[:HEAD.size],
           good.replace(b"/home/kid/a", b"/home/kid\0a"), good.replace(b"/home/kid/a", b"/home/kid\xff")]
    for data in bad:
        with pytest.raises(ValueError):
            unpack_file_structs(data)
