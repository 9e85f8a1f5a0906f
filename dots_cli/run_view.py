"""The live view of ``make run``: what a parent cares about, from
``org.dots.Family1`` calls (refreshed every few seconds and at once after a
signal) and signals (shown as they come, from the name's owner only).

On a terminal it is a ``rich`` Live view; on a pipe it prints a new
snapshot whenever what it shows changed (so a log or a test can read it).
It also prints the exact commands to try next (:class:`Suggestions`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import pwd
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from dots_common import names

from .client import DEFAULT_SYSTEM_BUS, plain

REFRESH = 3.0  # seconds between full refreshes
SIGNALS = {"PolicyChanged": "uu", "TimeWarning": "uu", "LimitReached": "us", "AppBlocked": "us",
           "AppTimeWarning": "usu", "RequestCreated": "uuu", "RequestAnswered": "uubu",
           "TamperDetected": "ss"}
#: harmless programs to suggest blocking, the first one present
APP_CANDIDATES = ("/usr/games/sl", "/usr/bin/nano", "/usr/bin/vim.tiny", "/usr/bin/top", "/usr/bin/id")


def duration(seconds: int) -> str:
    if seconds < 0:
        return "no limit"
    hours, rest = divmod(int(seconds) // 60, 60)
    return f"{hours} h {rest:02d} min" if hours else f"{rest} min"


def clock(unix: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(unix))


# --- what to try next ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Suggestions:
    """The commands a newcomer types in another terminal, exactly."""

    user: str
    app: str
    dotsctl: str  # how to invoke dotsctl (a path, and the bus when not the default)
    create_user: bool  # no candidate account: make one first

    @classmethod
    def for_machine(cls, address: str, user: str = "", app: str = "") -> Suggestions:
        venv_dotsctl = str(Path(sys.executable).parent / "dotsctl")
        on_path = shutil.which("dotsctl")
        dotsctl = "dotsctl" if on_path and os.path.realpath(on_path) == os.path.realpath(venv_dotsctl) \
            else venv_dotsctl
        if address != DEFAULT_SYSTEM_BUS:
            dotsctl = f"env DBUS_SYSTEM_BUS_ADDRESS={address} {dotsctl}"
        candidate = user or first_candidate_user()
        app = app or next((a for a in APP_CANDIDATES if os.access(a, os.X_OK)), "/usr/bin/id")
        return cls(user=candidate or "kid", app=app, dotsctl=dotsctl, create_user=not candidate)

    def commands(self) -> list[tuple[str, str]]:
        """(what it does, the command line)."""
        u, q = self.user, shlex.quote
        steps = []
        if self.create_user:
            steps.append(("make an account for the child", f"useradd -m {q(u)}"))
        steps += [
            ("make the user a child (as root or a member of dots-parents)",
             f"{self.dotsctl} child add {q(u)} --preset 8-12"),
            ("set a daily limit: 90 minutes on weekdays, 2 hours at the weekend",
             f"{self.dotsctl} limit daily {q(u)} 90 --weekend 120"),
            ("block an app", f"{self.dotsctl} app block {q(u)} {q(self.app)}"),
            ("try it as the child: it is killed at once", f"runuser -u {q(u)} -- {q(self.app)}"),
            ("ask for more time as the child (then: dotsctl approve ID)",
             f"runuser -u {q(u)} -- {self.dotsctl} request 15 homework"),
        ]
        return steps

    def text(self) -> str:
        lines = ["Try next, from another terminal:"]
        for what, command in self.commands():
            lines += [f"  # {what}", f"  $ {command}"]
        return "\n".join(lines)


def first_candidate_user() -> str:
    """A regular account that is neither a parent nor a system user."""
    try:
        import grp
        parents = set(grp.getgrnam(names.PARENTS_GROUP).gr_mem)
    except KeyError:
        parents = set()
    for pw in sorted(pwd.getpwall(), key=lambda p: p.pw_uid):
        if 1000 <= pw.pw_uid < 60000 and pw.pw_name not in parents \
                and not pw.pw_shell.endswith(("nologin", "false")):
            return pw.pw_name
    return ""


# --- what the daemon says --------------------------------------------------------------

@dataclasses.dataclass
class ChildView:
    uid: int
    name: str
    status: dict[str, Any]
    programs: list[tuple[float, str]]  # recent execs: (time, path)
    blocked: list[tuple[float, str]]  # exec_blocked: (time, path)


@dataclasses.dataclass
class Snapshot:
    children: list[ChildView] = dataclasses.field(default_factory=list)
    pending: list[list[Any]] = dataclasses.field(default_factory=list)
    daemon: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str = ""


def split_events(events: list[dict[str, Any]], keep: int = 6) -> tuple[list, list]:
    """Recent distinct programs and blocked attempts, newest first."""
    programs: list[tuple[float, str]] = []
    blocked: list[tuple[float, str]] = []
    seen: set[str] = set()
    for e in events:
        path = e.get("path") or e.get("comm", "")
        if e.get("type") == "exec_blocked" and len(blocked) < keep:
            blocked.append((e.get("time", 0.0), path))
        elif e.get("type") == "exec" and path not in seen and len(programs) < keep:
            seen.add(path)
            programs.append((e.get("time", 0.0), path))
    return programs, blocked


def render(snap: Snapshot, log: list[tuple[float, str]], tips: str) -> Group:
    """The whole view as a rich renderable (plain text when not a terminal)."""
    kids = Table(title="Children today", expand=True)
    for col in ("child", "used", "left", "limit", "state", "pending"):
        kids.add_column(col)
    for c in snap.children:
        s = c.status
        state = f"blocked ({s.get('blocked_reason')})" if s.get("blocked") else \
            ("ok" if s.get("in_window", True) else "outside hours")
        kids.add_row(f"{c.name} ({c.uid})", duration(s.get("used_seconds", 0)),
                     duration(s.get("left_seconds", -1)), duration(s.get("limit_seconds", -1)),
                     state, str(s.get("pending_requests", 0)))
    if not snap.children:
        kids.add_row("no children yet", "", "", "", "", "")
    progs = Table(title="Recent programs", expand=True)
    progs.add_column("child")
    progs.add_column("time")
    progs.add_column("program")
    blocks = Table(title="Blocked attempts", expand=True)
    blocks.add_column("child")
    blocks.add_column("time")
    blocks.add_column("program")
    for c in snap.children:
        for when, path in c.programs:
            progs.add_row(c.name, clock(when), path)
        for when, path in c.blocked:
            blocks.add_row(c.name, clock(when), f"BLOCKED {path}")
    pend = Table(title="Pending requests (dotsctl approve ID / dotsctl deny ID)", expand=True)
    for col in ("id", "child", "minutes", "reason"):
        pend.add_column(col)
    for row in snap.pending:
        pend.add_row(str(row[0]), row[2], str(row[3]), row[4])
    events = "\n".join(f"{clock(t)} {text}" for t, text in log[-8:]) or "nothing yet"
    d = snap.daemon
    head = (f"collector connected: {d.get('collector_connected')}, events stored: "
            f"{d.get('events_stored', 0)}, lost: {d.get('events_lost', 0)}") if d else ""
    parts: list[Any] = [kids, progs, blocks, pend, Panel(events, title="Signals from the daemon"),
                        Panel(tips, title="Try next")]
    if head:
        parts.insert(0, head)
    if snap.error:
        parts.insert(0, f"[red]{snap.error}[/red]")
    return Group(*parts)


def describe(member: str, body: list[Any]) -> str:
    """A signal in words for the log panel."""
    def who(uid: int) -> str:
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return str(uid)
    if member == "AppBlocked":
        return f"{who(body[0])}: BLOCKED {body[1]}"
    if member == "LimitReached":
        return f"{who(body[0])}: limit reached ({body[1]})"
    if member == "TimeWarning":
        return f"{who(body[0])}: {body[1]} min left"
    if member == "RequestCreated":
        return f"{who(body[1])} asks for {body[2]} min (request {body[0]})"
    if member == "RequestAnswered":
        return f"request {body[0]} of {who(body[1])}: {'approved' if body[2] else 'denied'}"
    if member == "PolicyChanged":
        return f"{who(body[0])}: policy changed (version {body[1]})"
    return f"{member} {body}"


# --- the loop --------------------------------------------------------------------------

class Watcher:
    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus
        self.owner = ""
        self.log: list[tuple[float, str]] = []
        self.poke = asyncio.Event()

    async def call(self, member: str, signature: str = "", *args: Any) -> list[Any]:
        reply = await asyncio.wait_for(self.bus.call(Message(
            destination=names.FAMILY_BUS_NAME, path=names.FAMILY_PATH,
            interface=names.FAMILY_INTERFACE, member=member, signature=signature,
            body=list(args))), 30)
        if reply.message_type == MessageType.ERROR:
            raise RuntimeError(f"{member}: {reply.error_name}: {(reply.body or [''])[0]}")
        return plain(reply.body)

    async def start(self) -> None:
        self.bus.add_message_handler(self._handle)
        for rule in ("type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',"
                     f"arg0='{names.FAMILY_BUS_NAME}'",
                     f"type='signal',sender='{names.FAMILY_BUS_NAME}',interface='{names.FAMILY_INTERFACE}'"):
            await self.bus.call(Message(destination=names.DBUS_BUS_NAME, path=names.DBUS_PATH,
                                        interface=names.DBUS_INTERFACE, member="AddMatch",
                                        signature="s", body=[rule]))
        reply = await self.bus.call(Message(destination=names.DBUS_BUS_NAME, path=names.DBUS_PATH,
                                            interface=names.DBUS_INTERFACE, member="GetNameOwner",
                                            signature="s", body=[names.FAMILY_BUS_NAME]))
        self.owner = reply.body[0] if reply.message_type == MessageType.METHOD_RETURN else ""

    def _handle(self, msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL:
            return
        if msg.member == "NameOwnerChanged" and msg.sender == names.DBUS_BUS_NAME:
            self.owner = msg.body[2]
            self.log.append((time.time(), "policy daemon " + ("is back" if self.owner else "went away")))
        elif (msg.interface == names.FAMILY_INTERFACE and msg.sender == self.owner
              and SIGNALS.get(msg.member) == msg.signature):
            self.log.append((time.time(), describe(msg.member, msg.body)))
        else:
            return
        del self.log[:-50]
        self.poke.set()

    async def snapshot(self) -> Snapshot:
        snap = Snapshot()
        try:
            snap.daemon = (await self.call("GetDaemonStatus"))[0]
            for uid, name in (await self.call("ListChildren"))[0]:
                status = (await self.call("GetStatus", "s", name))[0]
                events = (await self.call("GetRecentEvents", "ssu", name, "process", 300))[0]
                programs, blocked = split_events(events)
                snap.children.append(ChildView(uid, name, status, programs, blocked))
            snap.pending = (await self.call("ListRequests", "s", "pending"))[0]
        except Exception as exc:  # daemon restarting, polkit slow: say it, keep going
            snap.error = f"cannot read from the policy daemon: {exc}"
        return snap


async def watch(address: str, tips: Suggestions, on_children: Callable[[list[int]], None]) -> None:
    """Show the view until cancelled (Ctrl-C)."""
    bus = await MessageBus(bus_address=address).connect()
    watcher = Watcher(bus)
    await watcher.start()
    tty = sys.stdout.isatty()
    console = Console()
    print(tips.text(), flush=True)
    last = ""
    live = Live(console=console, auto_refresh=False, screen=False) if tty else None
    if live:
        live.start()
    try:
        while True:
            snap = await watcher.snapshot()
            on_children([c.uid for c in snap.children])
            view = render(snap, watcher.log, tips.text())
            if live:
                live.update(view, refresh=True)
            else:
                buffer = io.StringIO()
                Console(file=buffer, width=110, color_system=None).print(view)
                text = buffer.getvalue()
                if text != last:
                    print(f"--- {clock(time.time())} ---\n{text}", flush=True)
                    last = text
            watcher.poke.clear()
            try:
                await asyncio.wait_for(watcher.poke.wait(), REFRESH)
            except asyncio.TimeoutError:
                pass
    finally:
        if live:
            live.stop()
        bus.disconnect()
