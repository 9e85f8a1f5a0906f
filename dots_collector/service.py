"""The collector on D-Bus: a thin layer over core.Collector.

Publishes each monitor's batches as a signal carrying an array of structs
(file events: identical ones grouped, the structs packed in bytes:
grouping.py) and answers the few methods the policy daemon may call. Who may call or
listen is the bus policy's job (dbus/org.dots.Collector1.conf); the
contract is dbus/org.dots.Collector1.xml.

(No ``from __future__ import annotations`` here: dbus-fast reads the
D-Bus signatures from the annotations as written.)
"""

import asyncio
import logging
from typing import Any

from dbus_fast import BusType, DBusError, RequestNameReply, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, method, signal

from dots_common import names
from dots_common.records import SIGNAL_NAMES, signal_signature

from .core import Collector, CollectorError, InvalidArgument
from .grouping import to_wire

log = logging.getLogger("dots.collector.bus")

#: seconds a kill may take before its caller gets an error; the kill runs
#: in a thread, so the event loop (every other call, every batch) never
#: waits on a child's processes (a stopped helper, an executable on a
#: filesystem that does not answer)
KILL_TIMEOUT = 20.0


def to_dbus_error(error: CollectorError) -> DBusError:
    """Core errors become named D-Bus errors, here and nowhere else."""
    kind = "InvalidArgs" if isinstance(error, InvalidArgument) else "Failed"
    return DBusError(f"{names.COLLECTOR_ERROR}.{kind}", str(error))


class CollectorInterface(ServiceInterface):
    def __init__(self) -> None:
        super().__init__(names.COLLECTOR_INTERFACE)
        self.collector: Collector | None = None

    # --- signals: one batch of records each (batch_signal, below) --------
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
    def StopMonitoring(self) -> None:
        self._collector().stop_monitoring()

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

    # --- enforcement (only root and dots-policyd get here: bus policy) ---------
    @method()
    def SetBlockedExecutables(self, uid: "u", paths: "as") -> "a(stts)a(ss)":
        try:
            return resolved_reply(*self._collector().set_blocked_executables(uid, paths))
        except CollectorError as e:
            raise to_dbus_error(e) from e

    @method()
    def SetAllowList(self, uid: "u", enabled: "b", paths: "as") -> "a(stts)a(ss)":
        try:
            return resolved_reply(*self._collector().set_allow_list(uid, enabled, paths))
        except CollectorError as e:
            raise to_dbus_error(e) from e

    @method()
    def SetBlockedAddresses(self, uid: "u", cidrs: "as") -> "as":
        try:
            return self._collector().set_blocked_addresses(uid, cidrs)
        except CollectorError as e:
            raise to_dbus_error(e) from e

    @method()
    def SetWebFilter(self, uid: "u", dns_port: "q", offline: "b", allow_only: "b") -> None:
        try:
            self._collector().set_web_filter(uid, dns_port, offline, allow_only)
        except CollectorError as e:
            raise to_dbus_error(e) from e

    @method()
    def AddFilterAddresses(self, uid: "u", kind: "s", entries: "a(su)") -> "u":
        try:
            return self._collector().add_filter_addresses(uid, kind, entries)
        except CollectorError as e:
            raise to_dbus_error(e) from e

    @method()
    def ForgetFilterAddresses(self, uid: "u", kind: "s") -> "u":
        try:
            return self._collector().forget_filter_addresses(uid, kind)
        except CollectorError as e:
            raise to_dbus_error(e) from e

    @method()
    async def KillUserProcesses(self, uid: "u") -> "u":
        return await self._in_thread(self._collector().kill_user_processes, uid)

    @method()
    async def KillExecutable(self, uid: "u", path: "s") -> "u":
        return await self._in_thread(self._collector().kill_executable, uid, path)

    async def _in_thread(self, action, *args):
        try:
            return await asyncio.wait_for(asyncio.to_thread(action, *args), KILL_TIMEOUT)
        except asyncio.TimeoutError:
            raise DBusError(f"{names.COLLECTOR_ERROR}.Failed",
                            f"not done within {KILL_TIMEOUT:g} s (it goes on in the background)") from None
        except CollectorError as e:
            raise to_dbus_error(e) from e

    @method()
    def GetEnforcement(self) -> "a{sv}":
        return enforcement_variants(self._collector().enforcement_state())

    def _collector(self) -> Collector:
        if self.collector is None:
            raise DBusError(f"{names.COLLECTOR_ERROR}.Failed", "monitors are not loaded yet")
        return self.collector


def batch_signal(name: str, signature: str):
    """A batch signal ``(batch id, structs)``; its D-Bus signature is
    derived from the record type (dots_common.records.signal_signature)."""
    def emit(self, batch, events):
        return [batch, events]

    emit.__name__ = emit.__qualname__ = name
    emit.__annotations__ = {"return": signature}
    return signal(name=name)(emit)


for _monitor, _signal_name in SIGNAL_NAMES.items():
    setattr(CollectorInterface, _signal_name, batch_signal(_signal_name, signal_signature(_monitor)))


def status_variants(status: dict[str, Any]) -> dict[str, Variant]:
    return {
        "ready": Variant("b", status["ready"]),
        "monitors": Variant("as", status["monitors"]),
        "delivered": Variant("a{st}", status["delivered"]),
        "lost": Variant("a{st}", status["lost"]),
        "skipped": Variant("a{st}", status["skipped"]),
        "ringbuf_bytes": Variant("a{st}", status["ringbuf_bytes"]),
        "uids": Variant("au", status["uids"]),
        "monitoring": Variant("s", status["monitoring"]),
        "batches_sent": Variant("t", status["batches_sent"]),
        "uptime_s": Variant("d", status["uptime_s"]),
        "instance": Variant("s", status["instance"]),
        "last_batch": Variant("t", status["last_batch"]),
        "retained_events": Variant("t", status["retained_events"]),
        "acked_upto": Variant("t", status["acked_upto"]),
        "dropped_unacked": Variant("t", status["dropped_unacked"]),
        "enforcers": Variant("as", status["enforcers"]),
        "pins_reused": Variant("as", status["pins_reused"]),
        "load_ms": Variant("t", status["load_ms"]),
    }


def resolved_reply(found, rejected) -> list:
    """(path, st_dev, inode, sha256) per program identified; (path, reason)
    per path that was not."""
    return [[[i.path, i.dev, i.ino, i.sha256] for i in found],
            [[path, reason] for path, reason in rejected]]


def enforcement_variants(state: dict[str, Any]) -> dict[str, Variant]:
    return {
        "enforcers": Variant("as", state["enforcers"]),
        "blocked_executables": Variant("a{uas}", state["blocked_executables"]),
        "allow_lists": Variant("a{uas}", state["allow_lists"]),
        "blocked_addresses": Variant("a{uas}", state["blocked_addresses"]),
        "kernel_blocked": Variant("a{ua(tt)}", {uid: [list(e) for e in entries]
                                                for uid, entries in state["kernel_blocked"].items()}),
        "default_allowed": Variant("as", state["default_allowed"]),
        "exec_blocked": Variant("t", state["exec_blocked"]),
        "connect_blocked": Variant("t", state["connect_blocked"]),
        "web_filters": Variant("a{u(qbb)}", {u: list(w) for u, w in state["web_filters"].items()}),
        "dns_redirected": Variant("t", state["dns_redirected"]),
        "lost": Variant("a{st}", state["lost"]),
    }


class BusSink:
    """Sends each batch as the monitor's signal (file events grouped and
    packed: grouping.py)."""

    #: the policy daemon acknowledges batches and asks for a replay after
    #: a restart (core.Collector.ack, replay)
    replayable = True

    def __init__(self, interface: CollectorInterface) -> None:
        self.interface = interface
        self.emitters = {monitor: getattr(interface, signal_name)
                         for monitor, signal_name in SIGNAL_NAMES.items()}

    def publish(self, monitor: str, batch_id: int, rows: list[tuple]) -> None:
        self.emitters[monitor](batch_id, to_wire(monitor, rows))

    def lost(self, monitor: str, total: int) -> None:
        self.interface.EventsLost(monitor, total)


class PatientSocket:
    """The bus socket as dbus-fast's writer sees it: send() on a full socket
    buffer writes nothing instead of raising.

    dbus-fast (5.2) takes the BlockingIOError of a non-blocking send() for a
    broken connection and closes it: a burst of batches faster than
    dbus-daemon reads them (a storm) cut the collector off the bus, its
    name gone, while it went on running. Writing 0 bytes makes the writer
    wait for the socket to become writable, as it does after a short
    write."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def send(self, data: Any) -> int:
        try:
            return self._sock.send(data)
        except BlockingIOError:
            return 0

    def sendmsg(self, *args: Any) -> int:
        try:
            return self._sock.sendmsg(*args)
        except BlockingIOError:
            return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


async def connect(interface: CollectorInterface) -> MessageBus:
    """Connect to the system bus (or DBUS_SYSTEM_BUS_ADDRESS), export the
    interface and own the collector's name."""
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    writer = getattr(bus, "_writer", None)
    if writer is not None and hasattr(writer, "sock"):
        writer.sock = PatientSocket(writer.sock)
    else:
        log.warning("dbus-fast has no writer socket to wrap: a burst may disconnect the collector")
    bus.export(names.COLLECTOR_PATH, interface)
    reply = await bus.request_name(names.COLLECTOR_BUS_NAME)
    if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
        bus.disconnect()
        raise RuntimeError(f"could not own {names.COLLECTOR_BUS_NAME} on the system bus ({reply.name}); "
                           "is another collector running?")
    log.info("on the system bus as %s", names.COLLECTOR_BUS_NAME)
    return bus
