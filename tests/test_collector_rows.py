"""The collector's row path without BPF: the --stdout line of a row is the
JSON of its record, strings escaped as json does; batches of rows are cut
at max_events whatever the size of a read; a ring buffer read is parsed
as the kernel lays it out (busy and discarded records)."""

from __future__ import annotations

import json
import mmap
import socket
import struct
import time

from dots_collector.batcher import Batcher
from dots_collector.ringbuf import BUSY_BIT, DISCARD_BIT, PAGE_SIZE, RingReader
from dots_collector.stdout import RENDERERS
from dots_common.records import DiskEvent, FileEvent, MemorySample, NetworkEvent, ProcessEvent

HOSTILE = 'a"b\\c\n\t\x00é\u2028\ud800'.encode("utf-8", "surrogatepass").decode(
    "utf-8", "backslashreplace")

SAMPLES = [
    ProcessEvent("exec", 1, 2, 3, 4, HOSTILE, "/bin/" + HOSTILE, -9, 2**63),
    FileEvent("rename", 1, 2, "c", "/p", 0o100, -2, 2**64 - 1, 9, HOSTILE),
    NetworkEvent("connect", 1, 2, "c", 10, "::1", "::ffff:7f00:1", 1, 65535, 3, 4, 5),
    # an int subclass (socket's enum), rendered as its number
    NetworkEvent("accept", 1, 2, "c", socket.AF_INET6, "::1", "::1", 0, 0, 0, 0, 0),
    MemorySample(1, 2, "c", 1, 2, 3, 4, 5, 6),
    DiskEvent(1, 2, "c", 3, 4, 5, 6, "WS", 7, 8),
]


def test_stdout_line_of_a_row_is_the_json_of_its_record():
    for record in SAMPLES:
        row = tuple(record.to_dbus())
        line = RENDERERS[record.MONITOR]([row])
        assert line == json.dumps(record.to_json(), separators=(",", ":")) + "\n"
        assert json.loads(line) == record.to_json()
        assert RENDERERS[record.MONITOR]([row, row, row]) == line * 3


def test_escaped_texts_are_remembered_but_bounded_and_never_wrong():
    """The renderer escapes each distinct text once (a bounded cache): past
    its bound, and for texts seen before, every line is still json's."""
    records = [FileEvent("open", i, 2, HOSTILE[: i % 9], f"/home/{HOSTILE}/{i % 6000}", 0, 3, 0, i)
               for i in range(12_000)]
    rows = [tuple(r.to_dbus()) for r in records]
    text = RENDERERS["filesystem"](rows)
    expected = "".join(json.dumps(r.to_json(), separators=(",", ":")) + "\n" for r in records)
    assert text == expected


def test_batches_of_rows_are_cut_at_max_events_and_sent_when_due():
    sent: list[tuple[str, int]] = []
    batcher = Batcher(lambda monitor, rows: sent.append((monitor, len(rows))),
                      max_events=10, max_delay=0.5)
    batcher.extend("process", [(i,) for i in range(7)])
    batcher.extend("process", [(i,) for i in range(25)])
    batcher.add("disk", (1,))
    assert sent == [("process", 10), ("process", 10), ("process", 10)]
    now = time.monotonic()
    batcher.flush_due(tick=0.1, now=now)  # 0.1 s from now they are not 0.5 s old
    assert len(sent) == 3
    batcher.flush_due(tick=0.1, now=now + 0.45)  # next tick they would be
    assert sorted(sent[3:]) == [("disk", 1), ("process", 2)]
    assert sum(n for m, n in sent if m == "process") == 32
    batcher.flush_due(tick=0.1, now=now + 5)
    assert len(sent) == 5  # nothing is sent twice


class FakeRing:
    """A memfd laid out as the kernel maps a ring buffer: consumer page,
    producer page, the data pages twice."""

    def __init__(self, data_bytes: int) -> None:
        import os

        self.fd = os.memfd_create("ring")
        self.size = data_bytes
        os.ftruncate(self.fd, 2 * PAGE_SIZE + data_bytes)
        self.mm = mmap.mmap(self.fd, 2 * PAGE_SIZE + data_bytes)
        self.prod = 0

    def put(self, payload: bytes, flags: int = 0) -> None:
        rec = struct.pack("<II", len(payload) | flags, 0) + payload
        rec += b"\0" * (-len(rec) % 8)
        at = 2 * PAGE_SIZE + (self.prod % self.size)
        self.mm[at:at + len(rec)] = rec
        self.prod += len(rec)
        struct.pack_into("<Q", self.mm, PAGE_SIZE, self.prod)


def test_ring_reader_stops_at_a_busy_record_and_skips_discarded_ones(monkeypatch):
    ring = FakeRing(PAGE_SIZE)
    # the fake is one mapping, not the kernel's double one: read it as is
    monkeypatch.setattr(mmap, "mmap", _single_mapping(ring))
    reader = RingReader(ring.fd, PAGE_SIZE)
    ring.put(b"first")
    ring.put(b"dropped", DISCARD_BIT)
    ring.put(b"second!!")
    ring.put(b"later", BUSY_BIT)
    buf, spans = reader.read()
    assert [buf[o:o + n] for o, n in spans] == [b"first", b"second!!"]
    consumed = struct.unpack_from("<Q", ring.mm, 0)[0]
    assert consumed == 16 + 16 + 16  # up to the busy record, not past it
    assert reader.read()[1] == []  # still busy: nothing more, nothing skipped



def test_ring_reader_of_one_size_records_cuts_without_a_walk_and_still_stops_at_busy(monkeypatch):
    """The fixed-size path (disk, network) gives what the walk gives: all
    records of a clean read, the committed ones before a busy tail, and a
    read with a discarded record falls back to the walk."""
    ring = FakeRing(PAGE_SIZE)
    monkeypatch.setattr(mmap, "mmap", _single_mapping(ring))
    reader = RingReader(ring.fd, PAGE_SIZE, fixed_size=True)
    recs = [bytes([i]) * 12 for i in range(6)]  # 12 bytes: a 24-byte stride
    for r in recs[:3]:
        ring.put(r)
    buf, spans = reader.read()
    assert [buf[o:o + n] for o, n in spans] == recs[:3]
    ring.put(recs[3])
    ring.put(recs[4], BUSY_BIT)
    ring.put(recs[5], BUSY_BIT)
    buf, spans = reader.read()
    assert [buf[o:o + n] for o, n in spans] == [recs[3]]
    assert struct.unpack_from("<Q", ring.mm, 0)[0] == 4 * 24  # not past the busy one
    # the producer commits both: they come on the next read
    for i, at in ((4, 4 * 24), (5, 5 * 24)):
        struct.pack_into("<I", ring.mm, 2 * PAGE_SIZE + at, 12)
    buf, spans = reader.read()
    assert [buf[o:o + n] for o, n in spans] == recs[4:6]
    ring.put(recs[0])
    ring.put(recs[1], DISCARD_BIT)
    ring.put(recs[2])
    buf, spans = reader.read()
    assert [buf[o:o + n] for o, n in spans] == [recs[0], recs[2]]
    assert reader.read()[1] == []

def _single_mapping(ring: FakeRing):
    real = mmap.mmap

    def fake(fd, length, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE,
             offset=0):
        return real(ring.fd, min(length, 2 * PAGE_SIZE + ring.size - offset), flags, prot,
                    offset=offset)

    return fake


def test_a_full_bus_socket_makes_the_writer_wait_not_disconnect():
    from dots_collector.service import PatientSocket

    class Full:
        fileno = staticmethod(lambda: 7)

        def send(self, data):
            raise BlockingIOError

        def sendmsg(self, *args):
            raise BlockingIOError

    sock = PatientSocket(Full())
    assert sock.send(b"x" * 10) == 0
    assert sock.sendmsg([b"x"], []) == 0
    assert sock.fileno() == 7


def test_decoded_texts_are_remembered_but_bounded_and_never_wrong():
    """Names, paths and addresses are decoded once (bpfobject.DecodeCache):
    every record still reads as an uncached decode
    would, the first record of a family included, and the caches stay
    within their limit however many distinct texts pass."""
    from dots_collector.bpfobject import DecodeCache, cstr
    from dots_collector.monitors import network

    texts = DecodeCache(limit=8)
    raws = [f"/p/{i}\0junk".encode() for i in range(50)] + [b"\xff\xfe\0", b"x" * 16]
    for _ in range(2):
        assert [texts[r] for r in raws] == [cstr(r) for r in raws]
        assert len(texts) <= 8

    monitor = network.NetworkMonitor()
    comm = b"curl".ljust(16, b"\0")

    def record(family: int, saddr: bytes, daddr: bytes, pid: int) -> bytes:
        return network.EVENT.pack(1, 0, 0, 0, 0, 0, 4, pid, 1000, family, 1, 2, 0,
                                  saddr.ljust(16, b"\0"), daddr.ljust(16, b"\0"), comm)

    v6 = bytes(15) + b"\1"
    recs = [record(2, bytes([10, 0, 0, i % 7]), bytes([192, 168, 1, 1]), i) for i in range(20)]
    recs += [record(10, v6, v6, 99), record(2, bytes([1, 2, 3, 4]), bytes([5, 6, 7, 8]), 100)]
    buf = b"".join(recs)
    size = network.EVENT.size
    rows = monitor.decode_rows(buf, [(i * size, size) for i in range(len(recs))])
    assert [(r[5], r[6]) for r in rows] == (
        [(f"10.0.0.{i % 7}", "192.168.1.1") for i in range(20)]
        + [("::1", "::1"), ("1.2.3.4", "5.6.7.8")])
    assert all(r[3] == "curl" for r in rows)
    # remembered from the first record on: 7 sources, 1 destination, 2 more
    assert len(monitor._addresses[2]) == 10


# A producer's view of consumer_pos: a C loop on another CPU reading it as
# the kernel does (one 8-byte load) while the reader advances it.
WATCHER = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
int main(int argc, char **argv)
{
    volatile uint64_t *pos = mmap(0, 4096, PROT_READ, MAP_SHARED, atoi(argv[2]), 0);
    uint64_t target = strtoull(argv[1], 0, 10), last = 0;
    if (pos == MAP_FAILED)
        return 2;
    puts("ready");
    fflush(stdout);
    for (;;) {
        uint64_t v = *pos;
        if (v < last) {
            printf("backwards: %llu after %llu\n", (unsigned long long)v, (unsigned long long)last);
            return 1;
        }
        last = v;
        if (v >= target)
            break;
    }
    puts("ok");
    return 0;
}
"""


def test_consumer_position_never_seen_torn_by_a_producer(tmp_path, monkeypatch):
    """The kernel reads consumer_pos with one 8-byte load to decide whether
    the ring is full. Written a byte at a time (struct "<Q"), a producer
    could catch it half written, far behind its real value, and drop a
    record into a nearly empty ring (~1 in 10,000 events at 100,000/s).
    A C watcher spins on the position while 100,000 reads advance it
    across thousands of byte carries: it must never go backwards."""
    import subprocess

    src = tmp_path / "watch.c"
    src.write_text(WATCHER)
    subprocess.run(["gcc", "-O2", "-o", str(tmp_path / "watch"), str(src)], check=True)
    ring = FakeRing(PAGE_SIZE)
    monkeypatch.setattr(mmap, "mmap", _single_mapping(ring))
    reader = RingReader(ring.fd, PAGE_SIZE)
    rounds = 100_000
    target = rounds * 16
    watcher = subprocess.Popen([str(tmp_path / "watch"), str(target), str(ring.fd)],
                               stdout=subprocess.PIPE, text=True, pass_fds=(ring.fd,))
    try:
        assert watcher.stdout.readline().strip() == "ready"
        for _ in range(rounds):
            ring.put(b"12345678")
            assert reader.read()[1]
        out, _ = watcher.communicate(timeout=60)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 0, out
    assert struct.unpack_from("<Q", ring.mm, 0)[0] == target


def flooded_object(ring, first: int, produced, on_decode=lambda: None):
    """A BpfObject on ``ring`` holding the records 0..first-1 (u32 each),
    whose every decode first runs ``on_decode`` and then commits the next
    50 of ``produced``: a producer that goes on while the collector
    decodes. Returns (object, the rows delivered so far)."""
    from dots_collector import bpfobject

    class Numbers(bpfobject.BpfObject):
        name = "numbers"

        def decode_rows(self, buf, spans):
            on_decode()
            for _ in range(50):
                n = next(produced, None)
                if n is not None:
                    ring.put(struct.pack("<I", n))
            return [struct.unpack_from("<I", buf, off) for off, _ in spans]

    obj = Numbers()
    obj._reader = RingReader(ring.fd, 16 * PAGE_SIZE)
    got: list[tuple] = []
    obj._deliver_rows = got.extend
    for n in range(first):
        ring.put(struct.pack("<I", n))
    return obj, got


def test_a_long_decode_gives_the_ring_back_as_it_goes_and_a_budget_leaves_the_rest_in_order(
        monkeypatch):
    """consume() copies what the producer committed meanwhile out of the
    ring after every CHUNK_RECORDS records it decodes (so the ring empties
    every few ms however big a read), stops at its budget and says so, and
    the next call goes on where it stopped: every record once, in order."""
    from dots_collector import bpfobject

    ring = FakeRing(16 * PAGE_SIZE)
    monkeypatch.setattr(mmap, "mmap", _single_mapping(ring))
    monkeypatch.setattr(bpfobject, "CHUNK_RECORDS", 100)
    monkeypatch.setattr(bpfobject, "MAX_RECORDS_PER_CONSUME", 450)
    consumer_at_each_decode: list[int] = []
    # the producer keeps committing while each part decodes
    obj, got = flooded_object(
        ring, 1000, iter(range(1000, 1600)),
        on_decode=lambda: consumer_at_each_decode.append(struct.unpack_from("<Q", ring.mm, 0)[0]))

    assert obj.consume() is True  # the budget ran out first
    assert [r[0] for r in got] == list(range(450))
    # after each part decoded, the next part's decode saw the ring consumed
    # further: what was committed meanwhile had been copied out
    assert consumer_at_each_decode == sorted(consumer_at_each_decode)
    assert len(set(consumer_at_each_decode)) == len(consumer_at_each_decode) == 5
    while obj.consume():
        pass
    assert [r[0] for r in got] == list(range(1600))
    assert obj.delivered == 1600


def test_a_full_backlog_leaves_a_flood_in_the_ring_and_still_delivers_it_in_order(monkeypatch):
    """A flood cannot make the collector hold copies without bound: once the
    backlog holds MAX_BACKLOG_BYTES (the read that crossed it included),
    consume() stops copying, and what the producer commits meanwhile stays
    in the ring (which, full, counts its losses in the kernel). Decoded
    down, the backlog takes the rest: every record once, in order."""
    from dots_collector import bpfobject

    ring = FakeRing(16 * PAGE_SIZE)
    monkeypatch.setattr(mmap, "mmap", _single_mapping(ring))
    monkeypatch.setattr(bpfobject, "CHUNK_RECORDS", 50)
    monkeypatch.setattr(bpfobject, "MAX_RECORDS_PER_CONSUME", 100)
    monkeypatch.setattr(bpfobject, "MAX_BACKLOG_BYTES", 2048)  # 128 records of 16 bytes

    def consumer_pos() -> int:
        return struct.unpack_from("<Q", ring.mm, 0)[0]

    obj, got = flooded_object(ring, 300, iter(range(300, 900)))  # the flood goes on meanwhile

    assert obj.consume() is True
    # the first read took all 300 (4,800 bytes, past the bound); the 100
    # committed during the two decodes were not copied: still in the ring
    assert obj._backlog_bytes == 300 * 16
    assert consumer_pos() == 300 * 16 and ring.prod - consumer_pos() == 100 * 16
    assert [r[0] for r in got] == list(range(100))
    held = [obj._backlog_bytes]
    while obj.consume():
        held.append(obj._backlog_bytes)
    assert max(held) <= 2048 + 16 * PAGE_SIZE  # the bound, plus one read at most
    assert [r[0] for r in got] == list(range(900))
    assert consumer_pos() == ring.prod
