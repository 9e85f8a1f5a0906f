"""``dots-agent``: the DOTS Family Mode agent in a child's desktop session.

It listens to the policy daemon's signals (``org.dots.Family1`` on the
system bus) about its OWN user and shows them as desktop notifications
(``org.freedesktop.Notifications`` on the session bus): time running out
(with an "Ask for more time" button), time up, answers to requests, and
programs blocked. The button asks the parents for more time
(``RequestTime``). It never touches the database or the collector.

Signals are taken only from the current owner of ``org.dots.Family1``
(the bus lets only the daemon's user own it), so another program cannot
make the agent show fake warnings; button presses only from the current
owner of ``org.freedesktop.Notifications``; owner changes only from the
bus itself. The daemon sends a child's signals to that child's (and the
parents') connections only.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from dots_common import names

from .tray import Tray

log = logging.getLogger("dots.agent")

FAMILY = (names.FAMILY_BUS_NAME, names.FAMILY_PATH, names.FAMILY_INTERFACE)
NOTIFY = (names.NOTIFICATIONS_BUS_NAME, names.NOTIFICATIONS_PATH, names.NOTIFICATIONS_INTERFACE)
DBUS = (names.DBUS_BUS_NAME, names.DBUS_PATH, names.DBUS_INTERFACE)

APP_NAME = "DOTS Family Mode"
ASK_ACTION = "ask-more-time"
ASK_LABEL = "Ask for more time"
DEFAULT_MINUTES = 15
DEFAULT_REASON = "asked from the desktop notification"

#: the contract's signals the agent shows, with their signatures
SHOWN = {"TimeWarning": "uu", "LimitReached": "us", "AppTimeWarning": "usu",
         "RequestAnswered": "uubu", "AppBlocked": "us"}
#: position of the uid among a signal's arguments (default 0)
UID_ARG = {"RequestAnswered": 1}

URGENCY_LOW, URGENCY_NORMAL, URGENCY_CRITICAL = 0, 1, 2


# --- what to show ----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Note:
    """One notification: what the child reads, and whether it offers the
    "Ask for more time" button. ``slot`` groups notifications that replace
    each other (a new time warning replaces the previous one)."""

    summary: str
    body: str
    ask: bool = False
    urgency: int = URGENCY_NORMAL
    icon: str = "dialog-information"
    slot: str = ""


def _minutes(n: int) -> str:
    return f"{n} minute{'s' if n != 1 else ''}"


def note_for(member: str, args: list[Any]) -> Note | None:
    """The notification for one of the daemon's signals (args after uid)."""
    if member == "TimeWarning":
        (left,) = args
        return Note(f"{_minutes(left)} of screen time left",
                    "Save your work now: when the time is up, the screen locks.",
                    ask=True, urgency=URGENCY_CRITICAL if left <= 1 else URGENCY_NORMAL,
                    icon="appointment-soon", slot="time")
    if member == "LimitReached" and args[0].startswith("app:"):
        app = args[0][4:]
        name = os.path.basename(app) or app
        return Note(f"Time is up for {name}",
                    f"{name} has used its time for today; it is blocked until tomorrow.",
                    urgency=URGENCY_CRITICAL, icon="appointment-missed")
    if member == "LimitReached":
        (limit,) = args
        text = {
            "daily": ("Screen time is up for today", "Your screen time for today is used up.", True),
            "weekly": ("Screen time is up for this week", "Your screen time for this week is used up.", True),
            "hours": ("Outside your allowed hours", "It is not a time when you may use the computer.", False),
            "app": ("An app reached its time limit", "That program's time for today is used up.", False),
        }.get(limit, ("Time is up", f"A limit was reached ({limit}).", False))
        return Note(text[0], text[1], ask=text[2], urgency=URGENCY_CRITICAL, icon="appointment-missed",
                    slot="time")
    if member == "RequestAnswered":
        _request_id, approved, minutes = args
        if approved:
            return Note(f"You got {_minutes(minutes)} more", "A parent approved your request.",
                        icon="emblem-ok", slot="time")
        return Note("No more time this time", "A parent declined your request.",
                    icon="dialog-information")
    if member == "AppBlocked":
        (app,) = args
        name = os.path.basename(app) or app
        return Note(f"{name} is blocked", f"A parent has blocked {app}.", icon="action-unavailable")
    if member == "AppTimeWarning":
        app, left = args
        name = os.path.basename(app) or app
        return Note(f"{_minutes(left)} left for {name}",
                    f"{name} closes when its time for today is used up.", icon="appointment-soon")
    return None


# --- the buses -------------------------------------------------------------------------

async def call(bus: MessageBus, dest: tuple[str, str, str], member: str, signature: str = "",
               body: list[Any] | None = None, timeout: float = 30.0) -> Message:
    return await asyncio.wait_for(bus.call(Message(
        destination=dest[0], path=dest[1], interface=dest[2], member=member,
        signature=signature, body=body or [])), timeout)


async def add_match(bus: MessageBus, rule: str) -> None:
    reply = await call(bus, DBUS, "AddMatch", "s", [rule])
    if reply.message_type == MessageType.ERROR:
        raise RuntimeError(f"AddMatch {rule!r}: {reply.error_name}")


async def name_owner(bus: MessageBus, name: str) -> str:
    reply = await call(bus, DBUS, "GetNameOwner", "s", [name])
    return "" if reply.message_type == MessageType.ERROR else reply.body[0]


class Notifier:
    """org.freedesktop.Notifications on the session bus: shows notes,
    remembers which ones offer the ask button, reports button presses."""

    def __init__(self, bus: MessageBus, on_ask: Callable[[], None]) -> None:
        self.bus = bus
        self.on_ask = on_ask
        self.asking_ids: set[int] = set()
        self.slots: dict[str, int] = {}
        #: the notification server's unique name: button presses only from it
        self.owner = ""

    async def start(self) -> None:
        self.bus.add_message_handler(self._handle)
        await add_match(self.bus, "type='signal',sender='org.freedesktop.DBus',"
                                  "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                                  f"arg0='{NOTIFY[0]}'")
        await add_match(self.bus, f"type='signal',sender='{NOTIFY[0]}',path='{NOTIFY[1]}',"
                                  f"interface='{NOTIFY[2]}'")
        self.owner = await name_owner(self.bus, NOTIFY[0])

    async def show(self, note: Note) -> int:
        replaces = self.slots.get(note.slot, 0) if note.slot else 0
        actions = [ASK_ACTION, ASK_LABEL] if note.ask else []
        hints = {"urgency": Variant("y", note.urgency),
                 "desktop-entry": Variant("s", "dots-agent"),
                 "category": Variant("s", "x-dots.family")}
        try:
            reply = await call(self.bus, NOTIFY, "Notify", "susssasa{sv}i",
                               [APP_NAME, replaces, note.icon, note.summary, note.body, actions,
                                hints, -1])
        except asyncio.TimeoutError:
            log.warning("the notification server did not answer: %s", note.summary)
            return 0
        if reply.message_type == MessageType.ERROR:
            log.warning("cannot show a notification (%s): %s", reply.error_name, note.summary)
            return 0
        nid = reply.body[0]
        if note.slot:
            self.slots[note.slot] = nid
        if note.ask:
            self.asking_ids.add(nid)
        else:
            self.asking_ids.discard(nid)  # a replacement without the button
        log.info("notification %d: %s", nid, note.summary)
        return nid

    def _handle(self, msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL:
            return None
        if msg.member == "NameOwnerChanged" and msg.sender == DBUS[0] and msg.signature == "sss" \
                and msg.body[0] == NOTIFY[0]:
            self.owner = msg.body[2]
            return None
        if msg.interface != NOTIFY[2]:
            return None
        if not self.owner or msg.sender != self.owner or msg.path != NOTIFY[1]:
            log.debug("ignored %s from %s: not the notification server", msg.member, msg.sender)
            return None
        if msg.member == "ActionInvoked" and msg.signature == "us":
            nid, key = msg.body
            if key == ASK_ACTION and nid in self.asking_ids:
                self.asking_ids.discard(nid)  # one request per button
                self.on_ask()
        elif msg.member == "NotificationClosed" and msg.signature == "uu":
            self.asking_ids.discard(msg.body[0])
        return None


class FamilySignals:
    """org.dots.Family1's signals about one uid, from the name's current
    owner only; ``on_signal(member, args_after_uid)``."""

    def __init__(self, bus: MessageBus, uid: int, on_signal: Callable[[str, list[Any]], None]) -> None:
        self.bus = bus
        self.uid = uid
        self.on_signal = on_signal
        self.owner = ""
        self.signatures = dict(SHOWN)

    async def start(self) -> None:
        self.bus.add_message_handler(self._handle)
        await add_match(self.bus, "type='signal',sender='org.freedesktop.DBus',"
                                  "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                                  f"arg0='{FAMILY[0]}'")
        await add_match(self.bus, f"type='signal',sender='{FAMILY[0]}',path='{FAMILY[1]}',"
                                  f"interface='{FAMILY[2]}'")
        self.owner = await name_owner(self.bus, FAMILY[0])
        if not self.owner:
            log.warning("the policy daemon (%s) is not running; waiting for it", FAMILY[0])

    def _handle(self, msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL:
            return None
        if msg.member == "NameOwnerChanged" and msg.sender == DBUS[0] and msg.signature == "sss" \
                and msg.body[0] == FAMILY[0]:
            self.owner = msg.body[2]
            log.info("policy daemon %s", "is back" if self.owner else "went away")
            return None
        if msg.interface != FAMILY[2] or msg.path != FAMILY[1]:
            return None
        if not self.owner or msg.sender != self.owner:
            log.warning("ignored %s from %s: not the policy daemon", msg.member, msg.sender)
            return None
        expected = self.signatures.get(msg.member)
        if expected is None or msg.signature != expected:
            return None
        where = UID_ARG.get(msg.member, 0)
        if msg.body[where] != self.uid:
            return None
        self.on_signal(msg.member, msg.body[:where] + msg.body[where + 1:])
        return None


class Agent:
    def __init__(self, system_bus: MessageBus, session_bus: MessageBus, uid: int,
                 minutes: int = DEFAULT_MINUTES, reason: str = DEFAULT_REASON) -> None:
        self.system_bus = system_bus
        self.minutes = minutes
        self.reason = reason
        self.notifier = Notifier(session_bus, self._ask)
        self.family = FamilySignals(system_bus, uid, self._on_signal)
        self.tasks: set[asyncio.Task] = set()
        self.tray = Tray(session_bus, system_bus)  # time left at a glance, the child's window

    async def start(self) -> None:
        await self.notifier.start()
        await self.family.start()
        await self.tray.start()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _on_signal(self, member: str, args: list[Any]) -> None:
        self.tray.poke()
        note = note_for(member, args)
        if note is not None:
            self._spawn(self.notifier.show(note))

    def _ask(self) -> None:
        self._spawn(self.request_time())

    async def request_time(self) -> None:
        try:
            reply = await call(self.system_bus, FAMILY, "RequestTime", "us", [self.minutes, self.reason])
        except asyncio.TimeoutError:
            await self.notifier.show(Note("Could not ask for more time",
                                          "The family controls did not answer. Try again later."))
            return
        if reply.message_type == MessageType.ERROR:
            message = reply.body[0] if reply.body else reply.error_name
            log.warning("RequestTime: %s: %s", reply.error_name, message)
            await self.notifier.show(Note("Could not ask for more time", str(message),
                                          icon="dialog-warning"))
            return
        log.info("asked for %d minutes (request %d)", self.minutes, reply.body[0])
        await self.notifier.show(Note(f"Asked for {_minutes(self.minutes)} more",
                                      "A parent will answer soon.", icon="mail-send"))


# --- main ------------------------------------------------------------------------------

def session_bus_address() -> str | None:
    address = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    if address:
        return address
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    path = os.path.join(runtime, "bus")
    return f"unix:path={path}" if os.path.exists(path) else None


async def run(args: argparse.Namespace) -> int:
    session_address = session_bus_address()
    if session_address is None:
        log.error("no session bus (DBUS_SESSION_BUS_ADDRESS is not set): "
                  "dots-agent runs inside a desktop session")
        return 1
    try:
        system_bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        session_bus = await MessageBus(bus_address=session_address).connect()
    except Exception as exc:
        log.error("cannot connect to the buses: %s", exc)
        return 1
    agent = Agent(system_bus, session_bus, os.getuid(), args.minutes, args.reason)
    await agent.start()
    print(f"dots-agent: ready (uid {os.getuid()})", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waits = {asyncio.ensure_future(stop.wait()): 0,
             asyncio.ensure_future(session_bus.wait_for_disconnect()): 0,  # session over
             asyncio.ensure_future(system_bus.wait_for_disconnect()): 1}
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    code = max(waits[t] for t in done)
    if code:
        log.error("lost the system bus")
    for bus in (system_bus, session_bus):
        if bus.connected:
            bus.disconnect()
    return code


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="dots-agent", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=int, default=DEFAULT_MINUTES,
                   help="minutes asked for by the 'Ask for more time' button (default %(default)s)")
    p.add_argument("--reason", default=DEFAULT_REASON, help="the reason sent with the request")
    p.add_argument("--verbose", "-v", action="store_true", help="log what happens")
    args = p.parse_args(argv)
    if not 1 <= args.minutes <= 720:
        p.error("--minutes must be 1 to 720")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="dots-agent: %(message)s", stream=sys.stderr)
    try:
        sys.exit(asyncio.run(run(args)))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
