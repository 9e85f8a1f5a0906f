"""The policy daemon's end of the collector's signals.

Each batch is stored with its id (``<collector instance>:<batch number>``)
in one transaction, then acknowledged to the collector, so after a crash
(or a kill -9) of this daemon:

* every batch it acknowledged is in the database (the ack follows the
  commit), and
* nothing is stored twice (the id is unique; a replayed batch is ignored).

On start, and whenever the collector (re)appears on the bus, the link
pushes the children's uids to the collector and asks it to replay what
followed the last batch stored for its current instance.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import peewee
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from dots_common import names
from dots_common.records import RECORD_TYPES, SIGNAL_NAMES, Record, field_names

from .history import store_rows
from .schema import IngestedBatch

log = logging.getLogger("dots.policyd.collector")

MONITOR_OF_SIGNAL = {sig: mon for mon, sig in SIGNAL_NAMES.items()}
#: where uid sits in each monitor's struct
UID_AT = {mon: field_names(cls).index("uid") for mon, cls in RECORD_TYPES.items()}
SYNC_RETRY_SECONDS = 0.2
ACK_EVERY = 32  # batches; an ack is also sent whenever the queue runs dry
CLOCK_BOOTTIME = getattr(time, "CLOCK_BOOTTIME", 7)


def batch_key(instance: str, batch: int) -> str:
    """Zero-padded so that the text order is the numeric order."""
    return f"{instance}:{batch:020d}"


def last_stored(db: peewee.Database, instance: str) -> int:
    row = (IngestedBatch.select(peewee.fn.MAX(IngestedBatch.batch_id))
           .where(IngestedBatch.batch_id.startswith(f"{instance}:")).scalar())
    return int(row.rsplit(":", 1)[1]) if row else 0


def wall_offset_ns() -> int:
    """Add to a CLOCK_BOOTTIME timestamp to get Unix time, as of now."""
    return time.time_ns() - time.clock_gettime_ns(CLOCK_BOOTTIME)


class CollectorLink:
    def __init__(self, bus: MessageBus, db: peewee.Database,
                 children: Callable[[], Iterable[int]],
                 on_records: Callable[[str, list[Record]], None] | None = None,
                 on_presence: Callable[[bool], None] | None = None) -> None:
        """``on_records(monitor, records)`` sees each batch once it is
        stored; ``on_presence(present)`` hears the collector come and go."""
        self.bus = bus
        self.db = db
        self.children = children
        self.on_records = on_records
        self.on_presence = on_presence
        self.instance = ""
        self.queue: asyncio.Queue[tuple[str, int, str, list[Any]]] = asyncio.Queue()
        # one writer thread: peewee keeps a connection per thread
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dots-ingest")
        self.wanted: set[int] = set()
        self.stored_batches = 0
        self.stored_events = 0
        self._tasks: list[asyncio.Task] = []

    # --- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        self.bus.add_message_handler(self._on_message)
        for rule in (f"type='signal',sender='{names.COLLECTOR_BUS_NAME}',interface='{names.COLLECTOR_INTERFACE}'",
                     "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',"
                     f"arg0='{names.COLLECTOR_BUS_NAME}'"):
            await self._call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                             "AddMatch", "s", [rule])
        self._tasks.append(asyncio.create_task(self._store_loop()))
        await self.sync()

    async def stop(self) -> None:
        """Store what is queued, then stop."""
        await self.queue.join()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.writer.shutdown(wait=True)

    async def sync(self) -> None:
        """Push the children's uids and replay what we have not stored.
        A missing collector is not an error: it is synced when it appears;
        one still loading is asked again until it is ready."""
        while True:
            reply = await self._call(names.COLLECTOR_BUS_NAME, names.COLLECTOR_PATH,
                                     names.COLLECTOR_INTERFACE, "GetStatus")
            if reply.message_type == MessageType.ERROR:
                if reply.error_name == "org.freedesktop.DBus.Error.ServiceUnknown":
                    log.warning("collector not on the bus; waiting for it")
                    return
                log.info("collector not ready (%s); asking again", reply.error_name)
            elif reply.body[0].get("ready") and reply.body[0]["ready"].value:
                break
            await asyncio.sleep(SYNC_RETRY_SECONDS)
        self.instance = reply.body[0]["instance"].value
        await self.push_uids()
        loop = asyncio.get_running_loop()
        after = await loop.run_in_executor(self.writer, last_stored, self.db, self.instance)
        replay = await self._call(names.COLLECTOR_BUS_NAME, names.COLLECTOR_PATH, names.COLLECTOR_INTERFACE,
                                  "ReplayBatches", "st", [self.instance, after])
        if replay.message_type != MessageType.ERROR and replay.body[0]:
            log.info("collector replays %d batches after %d", replay.body[0], after)

    async def push_uids(self) -> None:
        """Call when the children change: the collector watches only them."""
        self.wanted = set(self.children())
        uids = sorted(self.wanted)
        if uids:
            reply = await self._call(names.COLLECTOR_BUS_NAME, names.COLLECTOR_PATH,
                                     names.COLLECTOR_INTERFACE, "SetMonitoredUids", "au", [uids])
        else:  # an empty list would mean every uid
            reply = await self._call(names.COLLECTOR_BUS_NAME, names.COLLECTOR_PATH,
                                     names.COLLECTOR_INTERFACE, "StopMonitoring")
        if reply.message_type == MessageType.ERROR:
            log.warning("cannot set monitored uids: %s", reply.body)

    # --- signals --------------------------------------------------------------
    def _on_message(self, msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL:
            return
        if msg.member == "NameOwnerChanged" and msg.body[0] == names.COLLECTOR_BUS_NAME:
            # batches of a new instance wait for sync(), which replays them
            self.instance = ""
            if self.on_presence:
                self.on_presence(bool(msg.body[2]))
            if msg.body[2]:
                log.info("collector appeared on the bus")
                asyncio.ensure_future(self.sync())
            else:
                log.warning("collector left the bus")
            return
        if msg.interface == names.COLLECTOR_INTERFACE and msg.member in MONITOR_OF_SIGNAL:
            if not self.instance:
                return  # before sync(): the replay brings this batch again
            batch, events = msg.body
            self.queue.put_nowait((self.instance, batch, MONITOR_OF_SIGNAL[msg.member], events))

    async def _store_loop(self) -> None:
        loop = asyncio.get_running_loop()
        unacked = 0
        while True:
            instance, batch, monitor, events = await self.queue.get()
            try:
                rows = self._records(monitor, events)
                fresh = await loop.run_in_executor(self.writer, store_rows, self.db, monitor,
                                                   batch_key(instance, batch), rows,
                                                   wall_offset_ns())
                if fresh and self.on_records and rows:
                    cls = RECORD_TYPES[monitor]
                    self.on_records(monitor, [cls(*row) for row in rows])
                self.stored_batches += 1
                self.stored_events += len(rows)
                unacked += 1
                if unacked >= ACK_EVERY or self.queue.empty():
                    await self._call(names.COLLECTOR_BUS_NAME, names.COLLECTOR_PATH, names.COLLECTOR_INTERFACE,
                                     "AckBatches", "st", [instance, batch])
                    unacked = 0
            except (ValueError, TypeError) as e:
                # a batch no database can hold: replaying it would fail again
                log.error("dropped unstorable %s batch %d: %s", monitor, batch, e)
                await self._call(names.COLLECTOR_BUS_NAME, names.COLLECTOR_PATH, names.COLLECTOR_INTERFACE,
                                 "AckBatches", "st", [instance, batch])
            except Exception:
                # not acked: the collector keeps it and replays it at the next sync
                log.exception("cannot store %s batch %d", monitor, batch)
            finally:
                self.queue.task_done()

    def _records(self, monitor: str, events: list[Any]) -> list[Any]:
        """The batch's events as rows (each struct's values in the record's
        field order; no Record object per event on the store path). Only
        the children's events are kept (a batch may still hold another
        uid's events from before the filter changed)."""
        at = UID_AT[monitor]
        wanted = self.wanted
        return [e for e in events if e[at] in wanted]

    async def _call(self, dest: str, path: str, iface: str, member: str, signature: str = "",
                    body: list[Any] | None = None) -> Message:
        return await self.bus.call(Message(destination=dest, path=path, interface=iface,
                                           member=member, signature=signature, body=body or []))


async def start_collector_link(bus: MessageBus, db: peewee.Database,
                               children: Callable[[], Iterable[int]], **callbacks) -> CollectorLink:
    link = CollectorLink(bus, db, children, **callbacks)
    await link.start()
    return link
