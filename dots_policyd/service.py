"""Thin glue between the bus and the core: install the dispatcher, export
the object, turn the core's events into the contract's signals, own the
name. Everything that decides anything lives in dispatch/api/family.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from dbus_fast import Message, MessageType, NameFlag, RequestNameReply, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface
from dbus_fast.signature import get_signature_tree

from dots_common import names

from .api import build_routes
from .audience import Audience
from .authority import Authority
from .caller import CallerIdentity
from .contract import Contract
from .dispatch import Dispatcher
from .family import ChildRemoved, Event, Family, PolicyChanged, RequestAnswered, RequestCreated

log = logging.getLogger(__name__)


class _Object(ServiceInterface):
    """An empty export of the interface: it makes the object exist for
    dbus-fast's Properties/ObjectManager defaults. Methods never reach it
    (the dispatcher takes them first); signals are sent by :class:`Signals`."""

    def __init__(self) -> None:
        super().__init__(names.FAMILY_INTERFACE)


class Signals:
    """Sends the contract's signals (with the contract's signatures), each
    unicast to the connections its :class:`Audience` allows, in the order
    they were emitted. ``emit`` may be called from any thread."""

    def __init__(self, bus: MessageBus, contract: Contract, audience: Audience) -> None:
        self.bus = bus
        self.signatures = contract.signals
        self.audience = audience
        self.sent = 0  # unicast messages
        self._queue: asyncio.Queue[tuple[str, str, list[Any]]] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.audience.start()
        self._task = asyncio.create_task(self._send_loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.audience.stop()

    def emit(self, member: str, *body: Any) -> None:
        signature = self.signatures[member]
        get_signature_tree(signature).verify(list(body))
        item = (member, signature, list(body))
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None or self._loop is None:
            self._queue.put_nowait(item)
        else:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    async def _send_loop(self) -> None:
        while True:
            member, signature, body = await self._queue.get()
            try:
                recipients = await self.audience.recipients(member, body)
            except Exception:
                log.exception("cannot tell who may hear %s: not sent", member)
                continue
            for name in recipients:
                if self.bus.connected:
                    self.bus.send(Message(message_type=MessageType.SIGNAL, destination=name,
                                          path=names.FAMILY_PATH, interface=names.FAMILY_INTERFACE,
                                          member=member, signature=signature, body=body))
                    self.sent += 1

    def on_event(self, event: Event) -> None:
        """The core's committed changes, as signals."""
        if isinstance(event, PolicyChanged):
            self.emit("PolicyChanged", event.uid, event.version)
        elif isinstance(event, ChildRemoved):
            self.emit("PolicyChanged", event.uid, 0)
        elif isinstance(event, RequestCreated):
            self.emit("RequestCreated", event.id, event.uid, event.minutes)
        elif isinstance(event, RequestAnswered):
            self.emit("RequestAnswered", event.id, event.uid, event.approved, event.minutes)


DaemonStatus = Callable[[], Awaitable[dict[str, Variant]]]


class FamilyService:
    """``org.dots.Family1`` on a connected bus."""

    def __init__(self, bus: MessageBus, family: Family, authority: Authority,
                 identity: CallerIdentity, signals: Signals, contract: Contract,
                 daemon_status: DaemonStatus | None = None,
                 household: Callable[[], Any] | None = None) -> None:
        """Everything it works with is handed in (see build_service);
        ``daemon_status`` is what GetDaemonStatus answers; ``household``
        gives the household calls in household mode (None alone)."""
        self.bus = bus
        self.family = family
        self.contract = contract
        self.authority = authority
        self.dispatcher = Dispatcher(bus, build_routes(family, daemon_status, household), authority,
                                     identity, self.contract)
        self.signals = signals

    async def start(self) -> None:
        """Route first, then own the name: no call can arrive unrouted."""
        self.bus.add_message_handler(self.dispatcher.handle)
        self.bus.export(names.FAMILY_PATH, _Object())
        await self.signals.start()
        self.family.subscribe(self.signals.on_event)
        reply = await self.bus.request_name(names.FAMILY_BUS_NAME, NameFlag.DO_NOT_QUEUE)
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            raise RuntimeError(f"could not own {names.FAMILY_BUS_NAME} on the system bus ({reply.name}); "
                               "is another dots-policyd running?")
        log.info("on the system bus as %s", names.FAMILY_BUS_NAME)

    async def stop(self) -> None:
        await self.signals.stop()
        await self.dispatcher.close()
        self.bus.remove_message_handler(self.dispatcher.handle)
