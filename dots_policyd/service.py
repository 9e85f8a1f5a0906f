"""Thin glue between the bus and the core: install the dispatcher, export
the object, turn the core's events into the contract's signals, own the
name. Everything that decides anything lives in dispatch/api/family.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from dbus_fast import Message, NameFlag, RequestNameReply, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface
from dbus_fast.signature import get_signature_tree

from dots_common import names

from .api import build_routes
from .authority import Authority
from .caller import CallerIdentity
from .contract import Contract, load_contract
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
    """Sends the contract's signals (with the contract's signatures)."""

    def __init__(self, bus: MessageBus, contract: Contract) -> None:
        self.bus = bus
        self.signatures = contract.signals

    def emit(self, member: str, *body: Any) -> None:
        signature = self.signatures[member]
        get_signature_tree(signature).verify(list(body))
        if self.bus.connected:
            self.bus.send(Message.new_signal(names.FAMILY_PATH, names.FAMILY_INTERFACE, member,
                                             signature, list(body)))

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

    # for the enforcement code
    def time_warning(self, uid: int, minutes_left: int) -> None:
        self.emit("TimeWarning", uid, minutes_left)

    def limit_reached(self, uid: int, limit: str) -> None:
        self.emit("LimitReached", uid, limit)

    def tamper_detected(self, kind: str, detail: str) -> None:
        self.emit("TamperDetected", kind, detail)


class FamilyService:
    """``org.dots.Family1`` on a connected bus."""

    def __init__(self, bus: MessageBus, family: Family, authority: Authority,
                 contract: Contract | None = None) -> None:
        self.bus = bus
        self.family = family
        self.contract = contract or load_contract()
        self.authority = authority
        #: set by the enforcement once it runs (GetDaemonStatus)
        self.daemon_status: Callable[[], Awaitable[dict[str, Variant]]] | None = None
        #: set in household mode (dots_policyd.household.service.HouseholdCalls)
        self.household: Any = None
        self.dispatcher = Dispatcher(bus, build_routes(family, self._daemon_status, lambda: self.household),
                                     authority,
                                     CallerIdentity(bus), self.contract)
        self.signals = Signals(bus, self.contract)

    async def _daemon_status(self) -> dict[str, Variant]:
        return await self.daemon_status() if self.daemon_status else {}

    async def start(self) -> None:
        """Route first, then own the name: no call can arrive unrouted."""
        self.bus.add_message_handler(self.dispatcher.handle)
        self.bus.export(names.FAMILY_PATH, _Object())
        self.family.subscribe(self.signals.on_event)
        reply = await self.bus.request_name(names.FAMILY_BUS_NAME, NameFlag.DO_NOT_QUEUE)
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            raise RuntimeError(f"could not own {names.FAMILY_BUS_NAME} on the system bus ({reply.name}); "
                               "is another dots-policyd running?")
        log.info("on the system bus as %s", names.FAMILY_BUS_NAME)

    async def stop(self) -> None:
        await self.dispatcher.close()
        self.bus.remove_message_handler(self.dispatcher.handle)
