"""Who is calling: the unix uid behind a bus name, asked of the bus itself
(``org.freedesktop.DBus.GetConnectionUnixUser``), never taken from a
method's arguments.

Unique names are never reused during a bus's lifetime, so a uid learnt for
one stays true; the cache is bounded and only holds unique names. Calls
arriving together from one sender share one lookup.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from .errors import NotAuthorized

CACHE_SIZE = 4096
TIMEOUT = 5.0


class CallerIdentity:
    def __init__(self, bus: MessageBus, timeout: float = TIMEOUT) -> None:
        self.bus = bus
        self.timeout = timeout
        self._uids: OrderedDict[str, int] = OrderedDict()
        self._lookups: dict[str, asyncio.Task[int]] = {}

    async def uid(self, sender: str | None) -> int:
        """The caller's uid; :class:`NotAuthorized` when the bus cannot say."""
        if not sender or not sender.startswith(":"):
            raise NotAuthorized("the caller has no unique bus name")
        if sender in self._uids:
            self._uids.move_to_end(sender)
            return self._uids[sender]
        lookup = self._lookups.get(sender)
        if lookup is None:
            lookup = asyncio.get_running_loop().create_task(self._ask(sender))
            self._lookups[sender] = lookup
            lookup.add_done_callback(lambda _: self._lookups.pop(sender, None))
        uid = await asyncio.shield(lookup)
        self._uids[sender] = uid
        if len(self._uids) > CACHE_SIZE:
            self._uids.popitem(last=False)
        return uid

    async def _ask(self, sender: str) -> int:
        try:
            reply = await asyncio.wait_for(self.bus.call(Message(
                destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus", member="GetConnectionUnixUser",
                signature="s", body=[sender])), self.timeout)
        except Exception as exc:
            raise NotAuthorized(f"cannot identify the caller: {type(exc).__name__}") from None
        if reply is None or reply.message_type != MessageType.METHOD_RETURN or reply.signature != "u":
            raise NotAuthorized("cannot identify the caller (it may have left the bus)")
        return reply.body[0]
