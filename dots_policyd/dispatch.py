"""ONE dispatcher for every ``org.dots.Family1`` method call.

dbus-fast's ``@method`` handlers never see the caller's bus name, so the
interface's calls are taken in a message handler
(``bus.add_message_handler``), which sees the whole message:

1. a member that is not in the routing table is refused (UnknownMethod):
   authorization is required by default, there is no unrouted path;
2. the arguments' signature must be the route's, else ``InvalidArgs``
   before anything runs;
3. the caller's uid is asked of the bus and polkit is asked whether the
   caller's bus name holds the route's action; both are awaited in a task,
   so one slow polkit answer blocks no other caller; anything but "yes"
   is ``NotAuthorized``;
4. only then the route's handler runs;
5. core errors become named D-Bus errors here, and only here.

Introspection of the object answers with the contract XML; Properties and
Peer are left to dbus-fast's defaults (the object exports an empty
interface so that ``Properties.GetAll`` works).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from dbus_fast import Message, MessageFlag, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.signature import get_signature_tree

from dots_common import names

from .authority import Authority
from .caller import CallerIdentity
from .contract import Contract
from .db import StorageError
from .errors import FamilyError, NotAuthorized

log = logging.getLogger(__name__)

INVALID_ARGS = f"{names.FAMILY_ERROR}.InvalidArgs"
FAILED = f"{names.FAMILY_ERROR}.Failed"
UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"


@dataclasses.dataclass(frozen=True)
class Call:
    """What a handler knows about its caller: the bus name (the polkit
    subject) and the uid the bus vouches for."""

    sender: str
    uid: int
    authority: Authority

    async def holds(self, action: str) -> bool:
        """Ask polkit about one more action (e.g. a child asking about
        another child needs ``view`` too)."""
        return await self.authority.check(self.sender, action)


Handler = Callable[..., Awaitable[list[Any]]]


@dataclasses.dataclass(frozen=True)
class Route:
    action: str  # polkit action the caller must hold
    signature: str  # arguments
    out_signature: str  # reply
    handler: Handler  # async (call, *args) -> reply body


def error_reply(msg: Message, exc: BaseException) -> Message:
    """The named D-Bus error for an exception (core errors by name; the
    rest as Failed, details only in the log)."""
    if isinstance(exc, FamilyError):
        return Message.new_error(msg, f"{names.FAMILY_ERROR}.{exc.dbus_name}", str(exc))
    if isinstance(exc, StorageError):
        log.error("%s: %s", msg.member, exc)
        return Message.new_error(msg, FAILED, "the database is unavailable; see the daemon's log")
    log.error("%s failed", msg.member, exc_info=exc)
    return Message.new_error(msg, FAILED, f"internal error ({type(exc).__name__}); see the daemon's log")


class Dispatcher:
    """Routes the interface's method calls on one object path."""

    def __init__(self, bus: MessageBus, routes: Mapping[str, Route], authority: Authority,
                 identity: CallerIdentity, contract: Contract) -> None:
        check_routes(routes, contract)
        self.bus = bus
        self.routes = dict(routes)
        self.authority = authority
        self.identity = identity
        self.introspection = contract.introspection
        self.tasks: set[asyncio.Task[None]] = set()
        self.served = 0

    # --- the message handler (synchronous: it only decides and spawns) ---------

    def handle(self, msg: Message) -> Message | bool | None:
        """dbus-fast message handler: a returned Message is sent as the
        reply, True means "handled" (the reply follows from a task), None
        lets dbus-fast's default handling continue."""
        if msg.message_type is not MessageType.METHOD_CALL or msg.path != names.FAMILY_PATH:
            return None
        if msg.interface == "org.freedesktop.DBus.Introspectable":
            if msg.member == "Introspect" and msg.signature == "":
                return Message.new_method_return(msg, "s", [self.introspection])
            return None
        if msg.interface is None and msg.member not in self.routes:
            return None  # default handling: UnknownMethod
        if msg.interface not in (names.FAMILY_INTERFACE, None):
            return None  # Properties, Peer, ObjectManager: dbus-fast's defaults
        route = self.routes.get(msg.member)
        if route is None:
            return Message.new_error(msg, UNKNOWN_METHOD, f"{names.FAMILY_INTERFACE} has no method "
                                     f"{msg.member!r}")
        if msg.signature != route.signature or msg.unix_fds:
            return Message.new_error(
                msg, INVALID_ARGS, f"{msg.member} takes arguments of type ({route.signature}), "
                f"got ({msg.signature})")
        log.debug("call %s from %s", msg.member, msg.sender)
        task = asyncio.get_running_loop().create_task(self._serve(msg, route))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    # --- the asynchronous part ------------------------------------------------------

    async def _serve(self, msg: Message, route: Route) -> None:
        try:
            reply = await self._run(msg, route)
        except asyncio.CancelledError:
            reply = Message.new_error(msg, FAILED, "the daemon is stopping")
            self._send(msg, reply)
            raise
        self._send(msg, reply)

    async def _run(self, msg: Message, route: Route) -> Message:
        try:
            uid = await self.identity.uid(msg.sender)
            interactive = bool(msg.flags & MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION)
            if not await self.authority.check(msg.sender, route.action, interactive):
                raise NotAuthorized(f"{msg.member} needs polkit authorization {route.action}")
            body = await route.handler(Call(msg.sender, uid, self.authority), *msg.body)
            get_signature_tree(route.out_signature).verify(body)
            self.served += 1
            return Message.new_method_return(msg, route.out_signature, body)
        except Exception as exc:
            return error_reply(msg, exc)

    def _send(self, msg: Message, reply: Message) -> None:
        if msg.flags & MessageFlag.NO_REPLY_EXPECTED or not self.bus.connected:
            return
        try:
            self.bus.send(reply)
        except Exception:
            log.exception("cannot send the reply to %s", msg.member)

    async def close(self) -> None:
        """Cancel the calls in flight (their callers get Failed)."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def check_routes(routes: Mapping[str, Route], contract: Contract) -> None:
    """The table must route exactly the contract's methods, with its
    signatures: a method added to the XML cannot go unauthorized or unrouted."""
    problems = []
    for member, (sig_in, sig_out) in contract.methods.items():
        route = routes.get(member)
        if route is None:
            problems.append(f"{member} is not routed")
        elif (route.signature, route.out_signature) != (sig_in, sig_out):
            problems.append(f"{member} is routed as ({route.signature})->({route.out_signature}), "
                            f"the contract says ({sig_in})->({sig_out})")
        elif route.action not in names.ACTIONS:
            problems.append(f"{member} has unknown polkit action {route.action!r}")
    problems += [f"{member} is not in the contract" for member in routes if member not in contract.methods]
    if problems:
        raise ValueError("routing table and contract disagree: " + "; ".join(problems))
