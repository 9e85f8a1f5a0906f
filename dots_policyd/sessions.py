"""Where the children's sessions come from: logind when it is on the bus,
else the children's processes in /proc (one pseudo-session per child that
has any). Also the calls that end a session."""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
from collections.abc import Iterable

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from .screentime import SessionState

log = logging.getLogger("dots.policyd.sessions")

from dots_common.names import LOGIND_BUS_NAME as LOGIND
from dots_common.names import LOGIND_MANAGER as MANAGER
from dots_common.names import LOGIND_PATH
from dots_common.names import LOGIND_SESSION as SESSION


class LogindError(Exception):
    pass


#: seconds a logind call may take before it counts as failed
CALL_TIMEOUT = 5.0


class Logind:
    """logind's calls, each bounded in time. Replies come from the owner of
    logind's name, which only root may own (the system bus policy); no
    logind signal is listened to (sessions are polled)."""

    def __init__(self, bus: MessageBus, timeout: float = CALL_TIMEOUT) -> None:
        self.bus = bus
        self.timeout = timeout

    async def _call(self, dest: str, path: str, iface: str, member: str, signature: str = "",
                    body: list | None = None) -> list:
        try:
            reply = await asyncio.wait_for(self.bus.call(Message(
                destination=dest, path=path, interface=iface, member=member,
                signature=signature, body=body or [])), self.timeout)
        except asyncio.TimeoutError:
            raise LogindError(f"{member}: no answer in {self.timeout:g} s") from None
        if reply is None:
            raise LogindError(f"{member}: no reply")
        if reply.message_type == MessageType.ERROR:
            raise LogindError(f"{member}: {reply.error_name}: {(reply.body or [''])[0]}")
        return reply.body

    async def available(self) -> bool:
        body = await self._call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                "org.freedesktop.DBus", "NameHasOwner", "s", [LOGIND])
        return bool(body[0])

    async def sessions(self, uids: Iterable[int]) -> list[SessionState]:
        wanted = set(uids)
        listed = (await self._call(LOGIND, LOGIND_PATH, MANAGER, "ListSessions"))[0]
        states = []
        try:
            for session_id, uid, _user, _seat, path in listed:
                if uid not in wanted:
                    continue
                props = (await self._call(LOGIND, path, "org.freedesktop.DBus.Properties", "GetAll",
                                          "s", [SESSION]))[0]
                value = lambda name, default: props[name].value if name in props else default  # noqa: E731
                states.append(SessionState(session_id, uid, active=bool(value("Active", True)),
                                           idle=bool(value("IdleHint", False)),
                                           locked=bool(value("LockedHint", False))))
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            raise LogindError(f"malformed session list: {e}") from None
        return states

    async def lock(self, session_id: str) -> None:
        await self._call(LOGIND, LOGIND_PATH, MANAGER, "LockSession", "s", [session_id])

    async def terminate(self, session_id: str) -> None:
        await self._call(LOGIND, LOGIND_PATH, MANAGER, "TerminateSession", "s", [session_id])

    async def stop_lingering(self, uid: int) -> None:
        """SetUserLinger(uid, false): needs polkit's
        org.freedesktop.login1.set-user-linger for dots-policyd (granted by
        polkit/49-org.dots.family.rules)."""
        await self._call(LOGIND, LOGIND_PATH, MANAGER, "SetUserLinger", "ubb", [uid, False, False])


#: where logind keeps one empty file per lingering user (named after the user)
LINGER_DIR = "/var/lib/systemd/linger"


def lingering(uids: Iterable[int], linger_dir: str = LINGER_DIR) -> list[int]:
    """The uids among ``uids`` whose user manager lingers (runs without a
    session: a child could keep processes running there all night)."""
    try:
        names = set(os.listdir(linger_dir))
    except OSError:
        return []
    out = []
    for uid in uids:
        try:
            if pwd.getpwuid(uid).pw_name in names:
                out.append(uid)
        except KeyError:
            continue
    return out


def without_session(sessions: list[SessionState], uids: Iterable[int],
                    proc: str = "/proc") -> list[SessionState]:
    """Children with processes but no logind session (a lingering user
    manager, a ``systemd-run --user`` unit, what a closed session left):
    one pseudo-session each, flagged idle so that only what the kernel sees
    them do counts, and ended by killing."""
    with_session = {s.uid for s in sessions}
    return proc_sessions([u for u in uids if u not in with_session], proc, idle=True)


#: the prefix of a pseudo-session made of a child's processes (no logind)
PROC_SESSION = "proc-"


def proc_sessions(uids: Iterable[int], proc: str = "/proc", idle: bool = False) -> list[SessionState]:
    """Without logind: a child with any running process is 'in a session'."""
    wanted = set(uids)
    present: set[int] = set()
    for entry in os.scandir(proc):
        if entry.name.isdigit():
            try:
                uid = entry.stat(follow_symlinks=False).st_uid
            except OSError:
                continue
            if uid in wanted:
                present.add(uid)
    return [SessionState(f"{PROC_SESSION}{uid}", uid, idle=idle) for uid in sorted(present)]
