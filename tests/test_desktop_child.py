"""The child's view, with the real policy daemon and polkitd on the private
system bus and real users:

* the child's window (dots_desktop.child_window) under Xvfb, driven through
  the accessibility tree: it shows today's time, asks for more time with a
  reason, and shows the parent's answer when it comes;
* the agent's StatusNotifierItem on a private session bus where the test
  plays the StatusNotifierWatcher: the item registers, its title says the
  time left and follows a parent's answer, and activating it opens the
  child's window.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, method

from tests.desktop_session import DesktopSession
from tests.helpers import REPO, VENV_PYTHON, as_user, wait_for
from tests.test_agent import SessionBus, bus_call, plain

pytestmark = [pytest.mark.bus]


def left_now(parent, child_user: str) -> int:
    """Minutes left today, as the daemon says (earlier tests' grants count)."""
    return parent.ok("GetStatus", "s", child_user)[0]["left_seconds"] // 60


def minutes_of(text: str) -> int:
    """Back from "2 h 05 min left" / "45 min" to minutes."""
    words = text.split()
    if len(words) < 2 or not words[0].isdigit():
        return -1  # not a time (the item's title before its first answer)
    return int(words[0]) * 60 + int(words[2]) if words[1] == "h" else int(words[0])


@pytest.fixture
def child(policyd_daemon, family_client, parent_user, child_user):
    parent = family_client(parent_user)
    parent.ok("AddChild", "ss", child_user, "8-12")
    # only the daily budget binds, whatever the time of day the tests run at
    # (near the end of the preset's allowed hours a grant could not show)
    parent.ok("ClearAllowedHours", "sas", child_user, ["all"])
    yield parent
    for row in parent.ok("ListRequests", "s", "pending")[0]:
        parent.ok("AnswerRequest", "ubu", row[0], False, 0)
    parent.ok("RemoveChild", "s", child_user)


def test_child_window_asks_and_shows_the_answer(child, child_user):
    parent = child
    left = left_now(parent, child_user)
    window = DesktopSession(child_user, "org.dots.Family.Child",
                            [VENV_PYTHON, "-m", "dots_desktop.child_window"])
    try:
        # the child's own processes use time meanwhile (no logind here): a minute of slack
        wait_for(lambda: abs(minutes_of(window.texts("Time left", role="list item")[1]) - left) <= 1,
                 timeout=30, what="today's time left")
        assert window.unnamed() == [], "every control has an accessible name"
        window.value("Minutes to ask for", set=20)
        window.type("Reason", "science homework")
        window.click("Ask for more time", role="push button")
        pending = wait_for(lambda: [r for r in parent.ok("ListRequests", "s", "pending")[0]
                                    if r[2] == child_user], timeout=20, what="the request")
        assert (pending[0][3], pending[0][4]) == (20, "science homework")
        window.find("Asked. A parent will answer soon.")
        window.screenshot("child-window-asked")
        parent.ok("AnswerRequest", "ubu", pending[0][0], True, 0)
        window.find("A parent gave you 20 more minutes.", timeout=20)
        wait_for(lambda: minutes_of(window.texts("Time left", role="list item")[1]) >= left + 18,
                 timeout=20, what="the time left to grow by the answer")
        window.screenshot("child-window-answered")
    finally:
        window.close()


def test_child_window_with_the_keyboard_alone(child, child_user):
    """Tab, arrow keys, typing and space: no pointer at all."""
    parent = child
    window = DesktopSession(child_user, "org.dots.Family.Child",
                            [VENV_PYTHON, "-m", "dots_desktop.child_window"])
    try:
        window.tab_to("spin button", "Minutes to ask for")
        start = window.value("Minutes to ask for")
        window.key("Up")
        window.key("Up")
        wait_for(lambda: window.value("Minutes to ask for") == start + 10, timeout=5, what="two steps up")
        window.tab_to("text", "Reason")
        window.send(op="type_focused", text="asked with the keyboard")
        window.tab_to("push button", "Ask for more time")
        window.key("space")
        pending = wait_for(lambda: [r for r in parent.ok("ListRequests", "s", "pending")[0]
                                    if r[2] == child_user], timeout=20, what="the request")
        assert (pending[0][3], pending[0][4]) == (start + 10, "asked with the keyboard")
    finally:
        window.close()


class Watcher(ServiceInterface):
    """org.kde.StatusNotifierWatcher, as a desktop shell provides it."""

    def __init__(self) -> None:
        super().__init__("org.kde.StatusNotifierWatcher")
        self.items: list[str] = []

    @method()
    def RegisterStatusNotifierItem(self, service: "s"):  # noqa: F821
        self.items.append(service)


async def _serve_watcher(address: str, watcher: Watcher, stop: asyncio.Event) -> None:
    bus = await MessageBus(bus_address=address).connect()
    bus.export("/StatusNotifierWatcher", watcher)
    await bus.request_name("org.kde.StatusNotifierWatcher")
    await stop.wait()
    bus.disconnect()


def test_tray_item_shows_time_left_and_opens_the_window(child, child_user, family_client, system_bus):
    parent = child
    left = left_now(parent, child_user)
    session = SessionBus()
    watcher, stop = Watcher(), None
    loop = asyncio.new_event_loop()
    workdir = Path(tempfile.mkdtemp(prefix="dots-tray-"))
    workdir.chmod(0o777)
    opened = workdir / "opened"
    agent = None
    try:
        stop = asyncio.Event()
        server = loop.create_task(_serve_watcher(session.address, watcher, stop))
        loop.run_until_complete(asyncio.sleep(0.3))
        agent = subprocess.Popen(as_user(child_user, [str(REPO / ".venv" / "bin" / "dots-agent"), "-v"], env={
            "DBUS_SESSION_BUS_ADDRESS": session.address, "DOTS_CHILD_WINDOW": f"/usr/bin/touch {opened}"}),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def registered():
            loop.run_until_complete(asyncio.sleep(0.05))
            return watcher.items
        service = wait_for(registered, timeout=30, what="the item to register")[0]
        assert service.startswith("org.kde.StatusNotifierItem-")

        def title() -> str:
            return plain(bus_call(session.address, service, "/StatusNotifierItem",
                                  "org.freedesktop.DBus.Properties", "Get", "ss",
                                  ["org.kde.StatusNotifierItem", "Title"])[0])
        # the child's own processes use time meanwhile (no logind here): a minute of slack
        wait_for(lambda: abs(minutes_of(title()) - left) <= 1, timeout=20, what="the time left")

        request = family_client(child_user).ok("RequestTime", "us", 10, "one more level")[0]
        parent.ok("AnswerRequest", "ubu", request, True, 0)
        wait_for(lambda: minutes_of(title()) >= left + 8, timeout=20,
                 what="the title to follow the parent's answer")

        bus_call(session.address, service, "/StatusNotifierItem", "org.kde.StatusNotifierItem",
                 "Activate", "ii", [0, 0])
        wait_for(opened.exists, timeout=20, what="the child's window to open")
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(timeout=20)
        if stop is not None:
            stop.set()
            loop.run_until_complete(server)
        loop.close()
        session.stop()
        for f in workdir.iterdir():
            f.unlink()
        os.rmdir(workdir)
