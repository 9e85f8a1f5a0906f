"""Where the user-space time goes: the collector's per-event work measured
in this process, without BPF, on the path the collector takes — each
monitor's ``decode_rows()`` of a read of 1,024 ring buffer records (as
ringbuf.py hands them over: one copy, (offset, length) per record), the
``--stdout`` JSON line (stdout.py's template), and the D-Bus path
(``to_dbus``: the bus sink's rows -> structs, 0 but for the file monitor,
whose identical events are grouped (grouping.py); marshalling a 1,024-event
batch signal of those structs), and on the policy daemon's side
``from_dbus`` (only when a Record is wanted: the store path takes the
structs as they are; ``unmarshall``: dbus-fast reading the signal, which
the policy daemon pays for every struct, and for the file monitor the
unpacking of its packed structs, dots_common/packed.py; the file
monitor's ``dbus_marshall`` includes packing). The batch's 1,024 events all differ (another pid
each): the worst case, where grouping saves nothing; ``grouped_*`` is the
file monitor's path for 1,024 identical events (one struct). ``store_us``:
history.store_rows of those structs into a fresh SQLite database
(executemany, one transaction, fsync as deployed). Microseconds per event
(best of 3)."""

from __future__ import annotations

import json
import time

N = 5000


def _best(fn, n: int = N, reps: int = 3) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def _samples() -> dict:
    """monitor -> (monitor instance, one raw ring buffer record)."""
    from dots_collector.monitors import disk, filesystem, network, process

    comm = b"bench\0".ljust(16, b"\0")
    path = b"/tmp/dots-bench/some/file.txt\0".ljust(256, b"\0")
    out = {}
    out["process"] = (process.ProcessMonitor(),
                      process.HEAD.pack(123, 1, 4242, 4241, 1000, 1000, 0, comm)
                      + b"/usr/bin/true\0")  # an exec record ends after its path
    out["filesystem"] = (filesystem.FilesystemMonitor(),
                         filesystem.EVENT.pack(123, 4096, 7, 3, 5, 4242, 1000, 0, comm, path))
    out["network"] = (network.NetworkMonitor(),
                      network.EVENT.pack(123, 0, 0, 7, 0xffff0000, 100, 4, 4242, 1000, 2, 40000, 80, 0,
                                         bytes([127, 0, 0, 1]).ljust(16, b"\0"),
                                         bytes([127, 0, 0, 1]).ljust(16, b"\0"), comm))
    out["disk"] = (disk.DiskMonitor(),
                   disk.EVENT.pack(123, 50000, 2048, 4242, 1000, 254 << 20, 8, 4096, b"WS", comm))
    return out


def _distinct(monitor: str, rows: list[tuple]) -> list[tuple]:
    """The rows with another pid each (nothing to group)."""
    from dots_common.records import RECORD_TYPES, field_names

    at = field_names(RECORD_TYPES[monitor]).index("pid")
    return [(*r[:at], 10_000 + i, *r[at + 1:]) for i, r in enumerate(rows)]


def _store_cost(monitor: str, structs: list[tuple], events: int | None = None) -> float:
    """µs per event of storing one batch of ``structs`` (``events`` events)
    with the history's ingest, into a fresh SQLite database (best of 3)."""
    import tempfile
    from pathlib import Path

    from dots_policyd.db import open_database
    from dots_policyd.history import store_rows
    from dots_policyd.migrations import migrate

    with tempfile.TemporaryDirectory() as tmp:
        db = open_database(str(Path(tmp) / "cost.db"))
        migrate(db)
        best = float("inf")
        for i in range(4):  # the first one warms up
            t0 = time.perf_counter()
            store_rows(db, monitor, f"cost:{i}", structs, 0)
            if i:
                best = min(best, time.perf_counter() - t0)
        db.close()
    return round(best / (events or len(structs)) * 1e6, 2)


def run() -> dict:
    import io

    from dbus_fast import Message, MessageType
    from dbus_fast._private.unmarshaller import Unmarshaller

    from dots_collector.grouping import GROUPERS
    from dots_collector.grouping import to_wire
    from dots_common.packed import unpack_file_structs
    from dots_common.records import RECORD_TYPES, SIGNAL_NAMES, signal_signature

    unpackers = {"filesystem": unpack_file_structs}

    import struct

    from dots_collector.stdout import RENDERERS

    results = {}
    for name, (monitor, raw) in _samples().items():
        record = monitor.decode(raw)
        cls = RECORD_TYPES[name]
        read = (struct.pack("<II", len(raw), 0) + raw + b"\0" * (-len(raw) % 8)) * 1024
        step = 8 + len(raw) + (-len(raw) % 8)
        spans = [(i * step + 8, len(raw)) for i in range(1024)]
        batch = _distinct(name, monitor.decode_rows(read, spans))
        row = batch[0]
        group = GROUPERS.get(name, lambda rows: rows)
        structs = group(batch)
        render = RENDERERS[name]
        signature = signal_signature(name)
        unpack = unpackers.get(name)

        def marshall(rows=batch):
            return Message(message_type=MessageType.SIGNAL, path="/org/dots/Collector1",
                           interface="org.dots.Collector1", member=SIGNAL_NAMES[name],
                           signature=signature, body=[1, to_wire(name, rows)])._marshall(False)

        def unmarshall(wire: bytes) -> list:
            events = Unmarshaller(io.BytesIO(wire)).unmarshall().body[1]
            return unpack(events) if unpack else events

        wire = marshall()

        results[name] = {
            "decode_us": round(_best(lambda: monitor.decode_rows(read, spans), n=20) / 1024, 2),
            "json_line_us": round(_best(lambda: render(batch), n=20) / len(batch), 2),
            "to_dbus_us": round(_best(lambda: group(batch), n=20) / 1024, 2) if name in GROUPERS else 0.0,
            "dbus_marshall_us": round(_best(marshall, n=20) / 1024 - (
                _best(lambda: group(batch), n=20) / 1024 if name in GROUPERS else 0), 2),
            "unmarshall_us": round(_best(lambda: unmarshall(wire), n=10) / 1024, 2),
            "wire_bytes": round(len(wire) / 1024, 1),
            "store_us": _store_cost(name, structs),
            "from_dbus_us": round(_best(lambda: cls.from_dbus(batch[0])), 2),
            "ring_record_bytes": len(raw),
        }
        r = results[name]
        r["stdout_path_us"] = round(r["decode_us"] + r["json_line_us"], 2)
        r["bus_path_us"] = round(r["decode_us"] + r["to_dbus_us"] + r["dbus_marshall_us"], 2)
        r["stdout_max_events_per_s"] = int(1e6 / r["stdout_path_us"])
        r["bus_max_events_per_s"] = int(1e6 / r["bus_path_us"])
        if name in GROUPERS:  # 1,024 identical events: one struct
            same = [row] * 1024
            one = group(same)
            r["grouped_to_dbus_us"] = round(_best(lambda: group(same), n=20) / 1024, 2)
            r["grouped_marshall_us"] = round(_best(lambda: marshall(same), n=20) / 1024
                                             - r["grouped_to_dbus_us"], 3)
            r["grouped_store_us"] = _store_cost(name, one, events=1024)
    return {"method": __doc__.strip(), "by_monitor": results}


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
