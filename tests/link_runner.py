"""Run the policy daemon's collector link alone (as user dots-policyd) for
the durability tests: ``link_runner.py DATABASE CHILD_UID``."""

import asyncio
import signal
import sys

from dbus_fast import BusType
from dbus_fast.aio import MessageBus

from dots_policyd.collector_link import start_collector_link
from dots_policyd.db import open_database
from dots_policyd.migrations import migrate


async def main(database: str, child_uid: int) -> None:
    db = open_database(database)
    migrate(db)
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    link = await start_collector_link(bus, db, lambda: [child_uid])
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await link.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
