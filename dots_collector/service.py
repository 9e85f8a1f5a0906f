"""The collector on D-Bus: a thin layer over core.Collector.

Publishes each monitor's batches as a signal carrying an array of structs
and answers the few methods the policy daemon may call. Who may call or
listen is the bus policy's job (dbus/org.dots.Collector1.conf); the
contract is dbus/org.dots.Collector1.xml.

(No ``from __future__ import annotations`` here: dbus-fast reads the
D-Bus signatures from the annotations as written.)
"""

import logging
from typing import Any

from dbus_fast import BusType, DBusError, RequestNameReply, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, method, signal

from . import names
from .core import Collector, CollectorError, InvalidArgument
from .records import SIGNAL_NAMES, Record

log = logging.getLogger("dots.collector.bus")


def to_dbus_error(error: CollectorError) -> DBusError:
    """Core errors become named D-Bus errors, here and nowhere else."""
    kind = "InvalidArgs" if isinstance(error, InvalidArgument) else "Failed"
    return DBusError(f"{names.ERROR_PREFIX}.{kind}", str(error))


class CollectorInterface(ServiceInterface):
    def __init__(self) -> None:
        super().__init__(names.INTERFACE)
        self.collector: Collector | None = None

    # --- signals: one batch of records each, with its batch id -----------
    @signal()
    def ProcessEvents(self, batch, events) -> "ta(suuuussit)":
        return [batch, events]

    @signal()
    def FileEvents(self, batch, events) -> "ta(suussuitts)":
        return [batch, events]

    @signal()
    def NetworkEvents(self, batch, events) -> "ta(suusqssqqttt)":
        return [batch, events]

    @signal()
    def MemorySamples(self, batch, events) -> "ta(uustttttt)":
        return [batch, events]

    @signal()
    def DiskEvents(self, batch, events) -> "ta(uusuttustt)":
        return [batch, events]

    @signal()
    def EventsLost(self, monitor, total) -> "st":
        return [monitor, total]

    # --- methods --------------------------------------------------------------
    @method()
    def SetMonitoredUids(self, uids: "au") -> "au":
        try:
            return self._collector().set_uids(uids)
        except CollectorError as e:
            raise to_dbus_error(e) from e

    @method()
    def AckBatches(self, instance: "s", upto: "t") -> None:
        self._collector().ack(instance, upto)

    @method()
    def ReplayBatches(self, instance: "s", after: "t") -> "u":
        try:
            return self._collector().replay(instance, after)
        except CollectorError as e:
            raise to_dbus_error(e) from e

    @method()
    def GetStatus(self) -> "a{sv}":
        return status_variants(self._collector().status())

    def _collector(self) -> Collector:
        if self.collector is None:
            raise DBusError(f"{names.ERROR_PREFIX}.Failed", "monitors are not loaded yet")
        return self.collector


def status_variants(status: dict[str, Any]) -> dict[str, Variant]:
    return {
        "ready": Variant("b", status["ready"]),
        "monitors": Variant("as", status["monitors"]),
        "delivered": Variant("a{st}", status["delivered"]),
        "lost": Variant("a{st}", status["lost"]),
        "ringbuf_bytes": Variant("a{st}", status["ringbuf_bytes"]),
        "uids": Variant("au", status["uids"]),
        "batches_sent": Variant("t", status["batches_sent"]),
        "uptime_s": Variant("d", status["uptime_s"]),
        "instance": Variant("s", status["instance"]),
        "last_batch": Variant("t", status["last_batch"]),
        "retained_events": Variant("t", status["retained_events"]),
        "acked_upto": Variant("t", status["acked_upto"]),
        "dropped_unacked": Variant("t", status["dropped_unacked"]),
    }


class BusSink:
    """Sends each batch as the monitor's signal."""

    def __init__(self, interface: CollectorInterface) -> None:
        self.interface = interface
        self.emitters = {monitor: getattr(interface, signal_name)
                         for monitor, signal_name in SIGNAL_NAMES.items()}

    def publish(self, monitor: str, batch_id: int, records: list[Record]) -> None:
        self.emitters[monitor](batch_id, [r.to_dbus() for r in records])

    def lost(self, monitor: str, total: int) -> None:
        self.interface.EventsLost(monitor, total)


async def connect(interface: CollectorInterface) -> MessageBus:
    """Connect to the system bus (or DBUS_SYSTEM_BUS_ADDRESS), export the
    interface and own the collector's name."""
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    bus.export(names.OBJECT_PATH, interface)
    reply = await bus.request_name(names.BUS_NAME)
    if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
        bus.disconnect()
        raise RuntimeError(f"could not own {names.BUS_NAME} on the system bus ({reply.name}); "
                           "is another collector running?")
    log.info("on the system bus as %s", names.BUS_NAME)
    return bus
