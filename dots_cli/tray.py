"""The child's time left at a glance: a StatusNotifierItem
(``org.kde.StatusNotifierItem`` on the session bus; KDE shows it natively,
GNOME with the AppIndicator extension), registered with
``org.kde.StatusNotifierWatcher`` when one runs (and again whenever a
watcher appears). Its title and tooltip say the time left today, from the
daemon's GetStatus("") (every minute, and at once when the agent hears a
signal about this child); activating it opens the child's window
(dots_desktop.child_window) with the "ask for more time" form.

No GTK here: it lives in dots-agent's asyncio loop (dbus-fast). No
``from __future__ import annotations``: dbus-fast reads the D-Bus
signatures from the annotations.
"""

import asyncio
import logging
import os
import subprocess
import sys
from typing import Any

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property, method, signal

from dots_common import names
from dots_desktop.child_model import tray_text

log = logging.getLogger("dots.agent.tray")

ITEM_PATH = "/StatusNotifierItem"
ITEM_INTERFACE = "org.kde.StatusNotifierItem"
WATCHER = ("org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher", "org.kde.StatusNotifierWatcher")
REFRESH = 60.0  # seconds
#: the child's window, run with the agent's own Python (Debian's gi is linked in)
WINDOW_COMMAND = [sys.executable, "-m", "dots_desktop.child_window"]


class StatusItem(ServiceInterface):
    """The item's D-Bus face; ``on_activate`` when the child clicks it."""

    def __init__(self, on_activate) -> None:
        super().__init__(ITEM_INTERFACE)
        self.on_activate = on_activate
        self.title = "DOTS Family Mode"
        self.icon = "appointment-new-symbolic"

    def show(self, title: str, icon: str) -> None:
        changed_title, changed_icon = title != self.title, icon != self.icon
        self.title, self.icon = title, icon
        if changed_title:
            self.NewTitle()
            self.NewToolTip()
        if changed_icon:
            self.NewIcon()

    @dbus_property(access=PropertyAccess.READ)
    def Category(self) -> "s":
        return "ApplicationStatus"

    @dbus_property(access=PropertyAccess.READ)
    def Id(self) -> "s":
        return "dots-family-child"

    @dbus_property(access=PropertyAccess.READ)
    def Title(self) -> "s":
        return self.title

    @dbus_property(access=PropertyAccess.READ)
    def Status(self) -> "s":
        return "NeedsAttention" if "up" in self.title or "Outside" in self.title else "Active"

    @dbus_property(access=PropertyAccess.READ)
    def IconName(self) -> "s":
        return self.icon

    @dbus_property(access=PropertyAccess.READ)
    def ToolTip(self) -> "(sa(iiay)ss)":
        return [self.icon, [], self.title, "Click to see today's time or ask for more"]

    @dbus_property(access=PropertyAccess.READ)
    def ItemIsMenu(self) -> "b":
        return False

    @dbus_property(access=PropertyAccess.READ)
    def WindowId(self) -> "i":
        return 0

    @method()
    def Activate(self, x: "i", y: "i"):
        self.on_activate()

    @method()
    def SecondaryActivate(self, x: "i", y: "i"):
        self.on_activate()

    @method()
    def ContextMenu(self, x: "i", y: "i"):
        self.on_activate()

    @method()
    def Scroll(self, delta: "i", orientation: "s"):
        return None

    @signal()
    def NewTitle(self):
        return None

    @signal()
    def NewIcon(self):
        return None

    @signal()
    def NewToolTip(self):
        return None


class Tray:
    """The item on the session bus, fed from the system bus."""

    def __init__(self, session_bus: MessageBus, system_bus: MessageBus) -> None:
        self.session_bus = session_bus
        self.system_bus = system_bus
        self.item = StatusItem(self.open_window)
        self.service = f"org.kde.StatusNotifierItem-{os.getpid()}-1"
        self.window: subprocess.Popen | None = None
        self.task: asyncio.Task | None = None
        self.asked = 0  # refreshes started; only the newest one's answer is shown
        self.pending: set[asyncio.Task] = set()  # asyncio keeps only weak references

    async def start(self) -> None:
        self.session_bus.export(ITEM_PATH, self.item)
        await self.session_bus.request_name(self.service)
        self.session_bus.add_message_handler(self._watcher_appeared)
        await self._call(self.session_bus, (names.DBUS_BUS_NAME, names.DBUS_PATH, names.DBUS_INTERFACE),
                         "AddMatch", "s", ["type='signal',sender='org.freedesktop.DBus',"
                                           f"member='NameOwnerChanged',arg0='{WATCHER[0]}'"])
        await self.register()
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def register(self) -> None:
        reply = await self._call(self.session_bus, WATCHER, "RegisterStatusNotifierItem", "s", [self.service])
        if reply is None or reply.message_type == MessageType.ERROR:
            log.info("no StatusNotifierWatcher on the session bus: the item waits for one")
        else:
            log.info("registered %s with the StatusNotifierWatcher", self.service)

    def _watcher_appeared(self, msg: Message) -> None:
        if (msg.message_type == MessageType.SIGNAL and msg.member == "NameOwnerChanged"
                and msg.sender == names.DBUS_BUS_NAME and msg.body[0] == WATCHER[0] and msg.body[2]):
            self._spawn(self.register())

    @staticmethod
    async def _call(bus: MessageBus, dest: tuple, member: str, signature: str, body: list) -> Any:
        try:
            return await asyncio.wait_for(bus.call(Message(
                destination=dest[0], path=dest[1], interface=dest[2], member=member,
                signature=signature, body=body)), 10)
        except (asyncio.TimeoutError, EOFError, OSError):
            return None

    async def refresh(self) -> None:
        """Ask the daemon for this child's status; show it."""
        family = (names.FAMILY_BUS_NAME, names.FAMILY_PATH, names.FAMILY_INTERFACE)
        self.asked += 1
        mine = self.asked
        reply = await self._call(self.system_bus, family, "GetStatus", "s", [""])
        if reply is None or reply.message_type == MessageType.ERROR or mine != self.asked:
            return
        status = {k: v.value for k, v in reply.body[0].items()}
        self.item.show(*tray_text(status))

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    def poke(self) -> None:
        """A signal about this child arrived: refresh now."""
        self._spawn(self.refresh())

    async def _loop(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(REFRESH)

    def open_window(self) -> None:
        """Start the window; when it runs already, GTK's single instance
        hands the activation to it (the new process exits at once)."""
        if self.window is not None:
            self.window.poll()  # reap a closed one
        command = os.environ.get("DOTS_CHILD_WINDOW", "").split() or WINDOW_COMMAND
        self.window = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        log.info("opened the child's window (pid %d)", self.window.pid)

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
