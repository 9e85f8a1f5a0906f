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

Signals are believed only from their rightful sender (bus_trust):
``NameOwnerChanged`` from the bus, batches from the collector's current
unique name, checked to be root's when it took the name. A forged "the
collector left", a fake batch framing a sibling, a batch id of 2^64-1 that
would make us acknowledge everything: all ignored and counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import peewee
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from dots_common import names
from dots_common.packed import unpack_file_structs
from dots_common.records import (PACKED_MONITORS, RECORD_TYPES, SIGNAL_NAMES, Record,
                                 batch_field_names, field_names, signal_signature)

from .bus_trust import Rejections, connection_uid, from_bus_daemon, name_owner
from .clock import wall_offset_ns
from .collector_client import CollectorCallError, CollectorClient, CollectorUnavailable
from .history import store_rows
from .schema import IngestedBatch

log = logging.getLogger("dots.policyd.collector")

MONITOR_OF_SIGNAL = {sig: mon for mon, sig in SIGNAL_NAMES.items()}
#: where uid sits in each monitor's struct
UID_AT = {mon: field_names(cls).index("uid") for mon, cls in RECORD_TYPES.items()}
#: a batch signal's signature per monitor (the contract's)
SIGNATURE = {mon: signal_signature(mon) for mon in RECORD_TYPES}
#: packed batches' bytes -> structs (dots_common.records.PACKED_MONITORS)
UNPACKERS = {"filesystem": unpack_file_structs}
assert set(UNPACKERS) == PACKED_MONITORS
#: where a struct's event count sits, for monitors whose batches group
#: identical events (dots_common.records.BATCH_EXTRAS)
COUNT_AT = {mon: batch_field_names(mon).index("count") for mon in RECORD_TYPES
            if "count" in batch_field_names(mon)}
SYNC_RETRY_SECONDS = 0.2
ACK_EVERY = 32  # batches; an ack is also sent whenever the queue runs dry


def batch_key(instance: str, batch: int) -> str:
    """Zero-padded so that the text order is the numeric order."""
    return f"{instance}:{batch:020d}"


def last_stored(db: peewee.Database, instance: str) -> int:
    row = (IngestedBatch.select(peewee.fn.MAX(IngestedBatch.batch_id))
           .where(IngestedBatch.batch_id.startswith(f"{instance}:")).scalar())
    return int(row.rsplit(":", 1)[1]) if row else 0


class CollectorLink:
    def __init__(self, bus: MessageBus, db: peewee.Database,
                 children: Callable[[], Iterable[int]],
                 on_records: Callable[[str, list[Record]], None] | None = None,
                 on_presence: Callable[[bool], None] | None = None,
                 client: CollectorClient | None = None,
                 rejections: Rejections | None = None) -> None:
        """``on_records(monitor, records)`` sees each batch once it is
        stored (one record per struct: a group of identical file events is
        one); ``on_presence(present)`` hears the collector come and go."""
        self.bus = bus
        self.db = db
        self.children = children
        self.on_records = on_records
        self.on_presence = on_presence
        self.client = client or CollectorClient(bus)
        self.rejections = rejections or Rejections()
        self.instance = ""
        #: the collector's unique name, checked to be root's; "" = none
        self.owner = ""
        self._pending_owner = ""
        self.queue: asyncio.Queue[tuple[str, int, str, list[Any]]] = asyncio.Queue()
        # one writer thread: peewee keeps a connection per thread
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dots-ingest")
        self.wanted: set[int] = set()
        self.stored_batches = 0
        self.stored_events = 0
        self.malformed_batches = 0
        self._tasks: list[asyncio.Task] = []

    # --- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        self.bus.add_message_handler(self._on_message)
        for rule in (f"type='signal',sender='{names.COLLECTOR_BUS_NAME}',interface='{names.COLLECTOR_INTERFACE}'",
                     f"type='signal',sender='{names.DBUS_BUS_NAME}',member='NameOwnerChanged',"
                     f"arg0='{names.COLLECTOR_BUS_NAME}'"):
            await self.bus.call(Message(destination=names.DBUS_BUS_NAME, path=names.DBUS_PATH,
                                        interface=names.DBUS_INTERFACE, member="AddMatch",
                                        signature="s", body=[rule]))
        self._tasks.append(asyncio.create_task(self._store_loop()))
        await self.sync()

    async def stop(self) -> None:
        """Store what is queued, then stop."""
        await self.queue.join()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.writer.shutdown(wait=True)

    async def _adopt(self, unique: str) -> bool:
        """Believe ``unique`` as the collector only if root owns it."""
        self._pending_owner = unique
        self.owner = ""
        if not unique:
            return False
        uid = await connection_uid(self.bus, unique)
        if self._pending_owner != unique:
            return False  # it changed again meanwhile
        if uid != 0:
            self.rejections.reject("collector-not-root")
            log.error("%s owns %s but runs as uid %s, not root: not believed",
                      unique, names.COLLECTOR_BUS_NAME, uid)
            return False
        self.owner = unique
        return True

    async def sync(self) -> None:
        """Push the children's uids and replay what we have not stored.
        A missing collector is not an error: it is synced when it appears;
        one still loading is asked again until it is ready."""
        if not self.owner and not await self._adopt(await name_owner(self.bus, names.COLLECTOR_BUS_NAME)):
            log.warning("collector not on the bus (or not root's); waiting for it")
            return
        while True:
            try:
                status = await self.client.status()
            except CollectorUnavailable:
                log.warning("collector not on the bus; waiting for it")
                return
            except CollectorCallError as e:
                log.info("collector not ready (%s); asking again", e)
            else:
                if status.ready:
                    break
            await asyncio.sleep(SYNC_RETRY_SECONDS)
        self.instance = status.instance
        await self.push_uids()
        loop = asyncio.get_running_loop()
        after = await loop.run_in_executor(self.writer, last_stored, self.db, self.instance)
        try:
            replayed = await self.client.replay(self.instance, after)
        except CollectorCallError as e:
            log.warning("cannot ask the collector to replay: %s", e)
        else:
            if replayed:
                log.info("collector replays %d batches after %d", replayed, after)

    async def push_uids(self) -> None:
        """Call when the children change: the collector watches only them."""
        self.wanted = set(self.children())
        try:
            await self.client.set_monitored_uids(sorted(self.wanted))
        except CollectorCallError as e:
            log.warning("cannot set monitored uids: %s", e)

    # --- signals --------------------------------------------------------------
    def _on_message(self, msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL:
            return
        if msg.member == "NameOwnerChanged":
            self._on_owner_changed(msg)
        elif msg.interface == names.COLLECTOR_INTERFACE:
            self._on_collector_signal(msg)

    def _on_owner_changed(self, msg: Message) -> None:
        if not from_bus_daemon(msg):
            self.rejections.reject("forged-name-owner-changed", msg)
            return
        name, _old, new = msg.body
        if name != names.COLLECTOR_BUS_NAME:
            return
        # batches of a new instance wait for sync(), which replays them
        self.instance = ""
        self._pending_owner = new
        self.owner = ""
        if self.on_presence:
            self.on_presence(bool(new))
        if new:
            log.info("collector appeared on the bus")
            asyncio.ensure_future(self._appeared(new))
        else:
            log.warning("collector left the bus")

    async def _appeared(self, unique: str) -> None:
        if await self._adopt(unique):
            await self.sync()

    def _on_collector_signal(self, msg: Message) -> None:
        if not msg.sender or msg.sender != self.owner or msg.path != names.COLLECTOR_PATH:
            if msg.sender and msg.sender == self._pending_owner:
                return  # the collector itself, not checked yet: replayed after sync()
            self.rejections.reject("not-from-the-collector", msg)
            return
        if msg.member not in MONITOR_OF_SIGNAL or not self.instance:
            return  # before sync(): the replay brings this batch again
        body = msg.body
        monitor = MONITOR_OF_SIGNAL[msg.member]
        if not body or isinstance(body[0], bool) or not isinstance(body[0], int) \
                or not 0 < body[0] < 2**64:
            self.malformed_batches += 1
            log.error("malformed %s signal from the collector (%s): ignored", msg.member, msg.signature)
            return
        # records that cannot be read fail in the store loop, which logs
        # and acknowledges them (a replay would fail again)
        well_formed = msg.signature == SIGNATURE[monitor]
        # a batch of the wrong layout is logged and acknowledged in its turn
        self.queue.put_nowait((self.instance, body[0], monitor, body[1] if well_formed else None))

    async def _ack(self, instance: str, batch: int) -> None:
        try:
            await self.client.ack(instance, batch)
        except CollectorCallError as e:
            log.warning("cannot acknowledge batch %d: %s", batch, e)

    async def _store_loop(self) -> None:
        """Nothing ends this loop but stop(): a batch that cannot be read is
        logged and acknowledged; one that cannot be stored now is left to
        the collector's replay."""
        loop = asyncio.get_running_loop()
        unacked = 0
        while True:
            instance, batch, monitor, events = await self.queue.get()
            try:
                if events is None:
                    raise TypeError("its signature is not the record layout of the contract")
                unpack = UNPACKERS.get(monitor)
                rows = self._records(monitor, unpack(events) if unpack else events)
                fresh = await loop.run_in_executor(self.writer, store_rows, self.db, monitor,
                                                   batch_key(instance, batch), rows,
                                                   wall_offset_ns())
                if fresh and self.on_records and rows:
                    cls = RECORD_TYPES[monitor]
                    width = len(field_names(cls))
                    try:
                        # one record per struct: a group of identical events is one
                        self.on_records(monitor, [cls(*row[:width]) for row in rows])
                    except Exception:
                        log.exception("handling a %s batch failed", monitor)
                if fresh:  # (a replayed batch stored before is not counted again)
                    self.stored_batches += 1
                    count_at = COUNT_AT.get(monitor)
                    self.stored_events += (len(rows) if count_at is None
                                           else sum(row[count_at] for row in rows))
                unacked += 1
                if unacked >= ACK_EVERY or self.queue.empty():
                    await self._ack(instance, batch)
                    unacked = 0
            except (ValueError, TypeError, KeyError, AttributeError, IndexError) as e:
                # a batch no database can hold: replaying it would fail again
                self.malformed_batches += 1
                log.error("dropped unstorable %s batch %d: %s", monitor, batch, e)
                await self._ack(instance, batch)
            except asyncio.CancelledError:
                raise
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


async def start_collector_link(bus: MessageBus, db: peewee.Database,
                               children: Callable[[], Iterable[int]], **callbacks) -> CollectorLink:
    link = CollectorLink(bus, db, children, **callbacks)
    await link.start()
    return link
