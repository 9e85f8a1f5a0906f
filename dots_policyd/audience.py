"""Who may hear a signal of ``org.dots.Family1``.

The signals carry a child's activity (``AppBlocked`` has the path the
child ran, ``AppTimeWarning`` and ``LimitReached`` name its apps). A
broadcast would reach every local user, so nothing is broadcast: each
signal is sent, unicast, to the connections allowed to see it:

* a signal about a child (its uid among the arguments): that child's own
  connections and the parents';
* ``TamperDetected``: the parents' only.

A parent is a connection polkit authorizes for ``org.dots.family.view``
(asked once per connection, without interaction). The connections on the
bus are learnt from the bus itself (``ListNames``, then
``NameOwnerChanged`` from ``org.freedesktop.DBus`` only); each one's uid
is asked of the bus, never taken from a message.
"""

from __future__ import annotations

import asyncio
import logging

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from dots_common import names
from dots_common.limits import MIN_CHILD_UID

from .authority import Authority
from .bus_trust import from_bus_daemon
from .caller import CallerIdentity
from .errors import NotAuthorized

log = logging.getLogger("dots.policyd.audience")

#: position of the child's uid among a signal's arguments; absent = parents only
UID_ARG = {"PolicyChanged": 0, "TimeWarning": 0, "LimitReached": 0, "AppBlocked": 0,
           "AppTimeWarning": 0, "RequestCreated": 1, "RequestAnswered": 1}


class Audience:
    def __init__(self, bus: MessageBus, identity: CallerIdentity, authority: Authority) -> None:
        self.bus = bus
        self.identity = identity
        self.authority = authority
        self.connections: set[str] = set()
        self._parent: dict[str, asyncio.Task[bool]] = {}

    async def start(self) -> None:
        self.bus.add_message_handler(self._on_message)
        await self._bus_call("AddMatch", "s", [f"type='signal',sender='{names.DBUS_BUS_NAME}',"
                                               "member='NameOwnerChanged'"])
        reply = await self._bus_call("ListNames")
        if reply is not None and reply.signature == "as":
            self.connections |= {n for n in reply.body[0] if n.startswith(":")}
        self.connections.discard(self.bus.unique_name or "")

    def stop(self) -> None:
        self.bus.remove_message_handler(self._on_message)
        for task in self._parent.values():
            task.cancel()

    async def _bus_call(self, member: str, signature: str = "", body: list | None = None) -> Message | None:
        try:
            reply = await asyncio.wait_for(self.bus.call(Message(
                destination=names.DBUS_BUS_NAME, path=names.DBUS_PATH, interface=names.DBUS_INTERFACE,
                member=member, signature=signature, body=body or [])), 10.0)
        except asyncio.TimeoutError:
            return None
        return None if reply is None or reply.message_type == MessageType.ERROR else reply

    def _on_message(self, msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL or msg.member != "NameOwnerChanged":
            return
        if not from_bus_daemon(msg):
            return  # forged (counted once, by the collector link, which sees it too)
        name, _old, new = msg.body
        if not name.startswith(":") or name == self.bus.unique_name:
            return
        if new:
            self.connections.add(name)
        else:
            self.connections.discard(name)
            task = self._parent.pop(name, None)
            if task is not None:
                task.cancel()

    async def _is_parent(self, name: str) -> bool:
        task = self._parent.get(name)
        if task is None:
            task = asyncio.ensure_future(self.authority.check(name, names.ACTION_VIEW))
            self._parent[name] = task
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            return False

    async def _allowed(self, name: str, child: int | None) -> bool:
        try:
            uid = await self.identity.uid(name)
        except NotAuthorized:
            return False
        if child is not None and uid == child:
            return True
        if uid != 0 and uid < MIN_CHILD_UID:
            return False  # system accounts are never parents
        return await self._is_parent(name)

    async def recipients(self, member: str, body: list) -> list[str]:
        """The unique names that may hear this signal."""
        where = UID_ARG.get(member)
        child = body[where] if where is not None else None
        names_now = sorted(self.connections)
        allowed = await asyncio.gather(*(self._allowed(n, child) for n in names_now))
        return [n for n, ok in zip(names_now, allowed) if ok]
