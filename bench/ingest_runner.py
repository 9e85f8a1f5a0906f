"""The policy daemon's ingest alone, for the benchmarks (like
tests/link_runner.py): the collector link storing every batch into
DATABASE (SQLite path or postgresql:// URL) for the children CHILD_UIDS,
run as the user dots-policyd. It prints one JSON status line ten times a
second: stored events and batches, the queue waiting for the writer, and
its own VmRSS / VmHWM (KiB).

usage: ingest_runner.py DATABASE CHILD_UID[,CHILD_UID...]
"""

import asyncio
import json
import signal
import sys
import time

from dbus_fast import BusType
from dbus_fast.aio import MessageBus

from dots_policyd.collector_link import start_collector_link
from dots_policyd.db import open_database
from dots_policyd.migrations import migrate


def memory() -> dict:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0])
    return out


def status(link, **extra) -> None:
    print(json.dumps({"stored_events": link.stored_events if link else 0,
                      "stored_batches": link.stored_batches if link else 0,
                      "queued_batches": link.queue.qsize() if link else 0,
                      "time": time.monotonic(), **memory(), **extra}), flush=True)


async def main(database: str, children: list[int]) -> None:
    db = open_database(database)
    migrate(db)
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    link = await start_collector_link(bus, db, lambda: children)
    status(link, ready=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except asyncio.TimeoutError:
            pass
        status(link)
    await link.stop()
    status(link, stopped=True)
    bus.disconnect()
    db.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], [int(u) for u in sys.argv[2].split(",") if u]))
