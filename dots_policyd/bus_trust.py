"""Whom the policy daemon believes on the bus.

Any local user may send a signal, and a signal addressed to the daemon's
unique name reaches it whatever its match rules. So a signal is believed
only when it comes from the sender that may send it: ``NameOwnerChanged``
from the bus itself, a service's signals from the CURRENT unique owner of
its well-known name, whose uid was checked when it took the name. Every
other signal is ignored and counted (:class:`Rejections`: reported by
GetDaemonStatus and ``dotsctl doctor``, logged at most once per
``LOG_EVERY`` seconds per reason, never written to the audit log, which a
flood would fill).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from dots_common import names

from .clock import SystemClock

log = logging.getLogger("dots.policyd.trust")

LOG_EVERY = 60.0  # seconds between two log lines about one kind of rejection
LOOKUP_TIMEOUT = 5.0


class Rejections:
    """Counts of ignored signals by reason, with rate-limited logging."""

    def __init__(self, clock: Callable[[], float] = SystemClock().boottime) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self._logged: dict[str, float] = {}
        self._clock = clock

    def reject(self, reason: str, msg: Message | None = None) -> None:
        self.counts[reason] += 1
        now = self._clock()
        last = self._logged.get(reason)
        if last is None or now - last >= LOG_EVERY:
            self._logged[reason] = now
            what = f"{msg.interface}.{msg.member} from {msg.sender}" if msg is not None else ""
            log.warning("ignored a signal (%s) %s; %d so far", reason, what, self.counts[reason])

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def from_bus_daemon(msg: Message) -> bool:
    """A NameOwnerChanged the bus itself sent (sss)."""
    return (msg.sender == names.DBUS_BUS_NAME and msg.path == names.DBUS_PATH
            and msg.interface == names.DBUS_INTERFACE and msg.signature == "sss")


async def _bus_call(bus: MessageBus, member: str, name: str) -> Message | None:
    try:
        return await asyncio.wait_for(bus.call(Message(
            destination=names.DBUS_BUS_NAME, path=names.DBUS_PATH, interface=names.DBUS_INTERFACE,
            member=member, signature="s", body=[name])), LOOKUP_TIMEOUT)
    except (asyncio.TimeoutError, OSError, EOFError):
        return None


async def name_owner(bus: MessageBus, name: str) -> str:
    """The unique name owning ``name`` now, "" if none."""
    reply = await _bus_call(bus, "GetNameOwner", name)
    if reply is None or reply.message_type != MessageType.METHOD_RETURN or reply.signature != "s":
        return ""
    return reply.body[0]


async def connection_uid(bus: MessageBus, unique_name: str) -> int | None:
    """The uid behind a unique name, asked of the bus; None if it cannot say."""
    reply = await _bus_call(bus, "GetConnectionUnixUser", unique_name)
    if reply is None or reply.message_type != MessageType.METHOD_RETURN or reply.signature != "u":
        return None
    return reply.body[0]
