"""The policy daemon's only caller of ``org.dots.Collector1``.

Every method of the collector's contract the daemon uses, with the
contract's signatures in one place, a bounded wait on each call (a slow or
stopped collector never stalls the daemon), and ``GetStatus`` parsed once
into :class:`CollectorStatus`. Failures come back as
:class:`CollectorUnavailable` (not on the bus) or :class:`CollectorCallError`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from dots_common import names

#: seconds any call to the collector may take (a kill walks /proc: allow more)
CALL_TIMEOUT = 10.0
KILL_TIMEOUT = 30.0
SERVICE_UNKNOWN = "org.freedesktop.DBus.Error.ServiceUnknown"
NAME_HAS_NO_OWNER = "org.freedesktop.DBus.Error.NameHasNoOwner"


class CollectorCallError(Exception):
    """The collector answered with an error, a wrong signature, or not in time."""

    def __init__(self, member: str, name: str, detail: str = "") -> None:
        super().__init__(f"{member}: {name}{f': {detail}' if detail else ''}")
        self.member = member
        self.name = name


class CollectorUnavailable(CollectorCallError):
    """Nobody owns the collector's name."""


@dataclasses.dataclass(frozen=True)
class CollectorStatus:
    ready: bool
    instance: str
    lost: int  # events lost by every monitor's ring buffer together
    uids: tuple[int, ...]
    monitors: tuple[str, ...]

    @classmethod
    def parse(cls, status: dict[str, Any]) -> CollectorStatus:
        """Missing or mistyped keys read as "not ready"."""
        def value(key: str, default: Any) -> Any:
            v = status.get(key)
            return default if v is None else v.value

        lost = value("lost", {})
        return cls(ready=bool(value("ready", False)), instance=str(value("instance", "")),
                   lost=sum(lost.values()) if isinstance(lost, dict) else 0,
                   uids=tuple(value("uids", [])), monitors=tuple(value("monitors", [])))


class CollectorClient:
    def __init__(self, bus: MessageBus, timeout: float = CALL_TIMEOUT) -> None:
        self.bus = bus
        self.timeout = timeout

    async def _call(self, member: str, signature: str = "", body: list[Any] | None = None,
                    reply_signature: str | None = None, timeout: float | None = None) -> list[Any]:
        message = Message(destination=names.COLLECTOR_BUS_NAME, path=names.COLLECTOR_PATH,
                          interface=names.COLLECTOR_INTERFACE, member=member,
                          signature=signature, body=body or [])
        try:
            reply = await asyncio.wait_for(self.bus.call(message), timeout or self.timeout)
        except asyncio.TimeoutError:
            raise CollectorCallError(member, "timeout", "the collector did not answer") from None
        if reply is None:
            raise CollectorCallError(member, "no reply")
        if reply.message_type == MessageType.ERROR:
            detail = str(reply.body[0]) if reply.body else ""
            kind = (CollectorUnavailable if reply.error_name in (SERVICE_UNKNOWN, NAME_HAS_NO_OWNER)
                    else CollectorCallError)
            raise kind(member, reply.error_name or "error", detail)
        if reply_signature is not None and reply.signature != reply_signature:
            raise CollectorCallError(member, "bad reply", f"signature {reply.signature!r}")
        return reply.body

    async def status(self) -> CollectorStatus:
        return CollectorStatus.parse((await self._call("GetStatus", reply_signature="a{sv}"))[0])

    async def set_monitored_uids(self, uids: list[int]) -> None:
        """An empty list stops monitoring (an empty SetMonitoredUids would
        mean every uid)."""
        if uids:
            await self._call("SetMonitoredUids", "au", [sorted(uids)])
        else:
            await self._call("StopMonitoring")

    async def ack(self, instance: str, upto: int) -> None:
        await self._call("AckBatches", "st", [instance, upto])

    async def replay(self, instance: str, after: int) -> int:
        return int((await self._call("ReplayBatches", "st", [instance, after],
                                     reply_signature="u"))[0])

    async def set_blocked_executables(self, uid: int, paths: list[str]) -> None:
        await self._call("SetBlockedExecutables", "uas", [uid, paths])

    async def set_allow_list(self, uid: int, enabled: bool, paths: list[str]) -> None:
        await self._call("SetAllowList", "ubas", [uid, enabled, paths])

    async def set_blocked_addresses(self, uid: int, cidrs: list[str]) -> None:
        await self._call("SetBlockedAddresses", "uas", [uid, cidrs])

    async def set_web_filter(self, uid: int, dns_port: int, offline: bool, allow_only: bool) -> None:
        await self._call("SetWebFilter", "uqbb", [uid, dns_port, offline, allow_only])

    async def add_filter_addresses(self, uid: int, kind: str, entries: list[tuple[str, int]]) -> int:
        """(address, ttl seconds) the filter answered: ``kind`` "deny" or "allow"."""
        return int((await self._call("AddFilterAddresses", "usa(su)",
                                     [uid, kind, [[a, t] for a, t in entries]],
                                     reply_signature="u"))[0])

    async def forget_filter_addresses(self, uid: int, kind: str) -> int:
        return int((await self._call("ForgetFilterAddresses", "us", [uid, kind],
                                     reply_signature="u"))[0])

    async def kill_user_processes(self, uid: int) -> int:
        return int((await self._call("KillUserProcesses", "u", [uid], reply_signature="u",
                                     timeout=KILL_TIMEOUT))[0])

    async def kill_executable(self, uid: int, path: str) -> int:
        return int((await self._call("KillExecutable", "us", [uid, path], reply_signature="u",
                                     timeout=KILL_TIMEOUT))[0])
