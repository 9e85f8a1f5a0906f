"""dots-agent for real: run as the child user, with python-dbusmock's
notification_daemon template (a separate process) on a private session
bus standing in for the desktop's notification server.

* With the real policy daemon (private system bus, polkit, real users): a
  parent's answer to the child's request reaches the child as a
  notification; a signal forged by another user is not shown.
* With a stand-in for org.dots.Family1 (dbusmock, on a bus of its own, so
  that the test can emit TimeWarning/LimitReached, which the real daemon
  emits only from its screen-time loop): warnings carry the "Ask for more
  time" action, invoking it calls RequestTime(15, reason), other users'
  signals are ignored, and AppBlocked is shown.

Plus the agent's decisions without any bus (synthetic messages).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from dots_cli import agent as agent_mod
from tests.helpers import REPO, as_user, run_as, uid_of, wait_for

MOCK_IFACE = "org.freedesktop.DBus.Mock"
NOTIFY_PATH = "/org/freedesktop/Notifications"
FAMILY_PATH = "/org/dots/Family1"
DEBIAN_PYTHON = "/usr/bin/python3"
AGENT = str(REPO / ".venv" / "bin" / "dots-agent")
DOTSCTL = str(REPO / ".venv" / "bin" / "dotsctl")


# --- a private session bus and the mocks on it -------------------------------------------

class SessionBus:
    """A private dbus-daemon any local user may connect to (a desktop
    session bus admits only its user; the test's users differ)."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="dots-session-"))
        self.workdir.chmod(0o755)
        self.socket = self.workdir / "bus"
        self.address = f"unix:path={self.socket}"
        config = self.workdir / "session.conf"
        config.write_text(
            '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"\n'
            ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
            "<busconfig><type>session</type><auth>EXTERNAL</auth>\n"
            f"  <listen>{self.address}</listen>\n"
            '  <policy context="default"><allow user="*"/><allow own="*"/>\n'
            '    <allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/>\n'
            "  </policy>\n"
            "</busconfig>\n")
        self.process = subprocess.Popen(
            ["dbus-daemon", f"--config-file={config}", "--nofork",
             "--nopidfile", "--nosyslog"], stdout=subprocess.DEVNULL, stderr=sys.stderr)
        wait_for(lambda: self.socket.exists() or self.process.poll() is not None,
                 what="the private session bus")
        assert self.process.poll() is None, "dbus-daemon (session) exited"

    def env(self) -> dict[str, str]:
        return {**os.environ, "DBUS_SESSION_BUS_ADDRESS": self.address}

    def has_owner(self, name: str) -> bool:
        out = subprocess.run(
            ["dbus-send", f"--bus={self.address}", "--print-reply=literal",
             "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
             "org.freedesktop.DBus.NameHasOwner", f"string:{name}"],
            capture_output=True, text=True)
        return "true" in out.stdout

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)


async def _call(address: str, dest: str, path: str, iface: str, member: str,
                signature: str = "", body: list | None = None) -> list:
    bus = await MessageBus(bus_address=address).connect()
    try:
        reply = await bus.call(Message(destination=dest, path=path, interface=iface, member=member,
                                       signature=signature, body=body or []))
    finally:
        bus.disconnect()
    assert reply.message_type != MessageType.ERROR, (reply.error_name, reply.body)
    return reply.body


def bus_call(address: str, dest: str, path: str, iface: str, member: str, signature: str = "",
             body: list | None = None) -> list:
    return asyncio.run(_call(address, dest, path, iface, member, signature, body))


def plain(v):
    if isinstance(v, Variant):
        return plain(v.value)
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    return v


class Mock:
    """One python-dbusmock process (Debian's python3-dbusmock) on a bus."""

    def __init__(self, bus: SessionBus, name: str, path: str, args: list[str]) -> None:
        self.bus = bus
        self.name = name
        self.path = path
        self.process = subprocess.Popen([DEBIAN_PYTHON, "-m", "dbusmock", "--session", *args],
                                        env=bus.env(), stdout=subprocess.DEVNULL, stderr=sys.stderr)
        wait_for(lambda: bus.has_owner(name) or self.process.poll() is not None,
                 what=f"dbusmock owning {name}")
        assert self.process.poll() is None, f"dbusmock for {name} exited"

    def mock(self, member: str, signature: str = "", body: list | None = None) -> list:
        return bus_call(self.bus.address, self.name, self.path, MOCK_IFACE, member, signature, body)

    def calls(self, method: str | None = None) -> list[list]:
        return [plain(args) for _ts, m, args in self.mock("GetCalls")[0]
                if method is None or m == method]

    def emit(self, iface: str, member: str, signature: str, args: list[Variant]) -> None:
        self.mock("EmitSignal", "sssav", [iface, member, signature, args])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class Notifications(Mock):
    def __init__(self, bus: SessionBus) -> None:
        super().__init__(bus, "org.freedesktop.Notifications", NOTIFY_PATH,
                         ["--template", "notification_daemon"])

    def shown(self) -> list[dict]:
        """Every Notify call: summary, body, actions, id it returned."""
        out = []
        next_id = 1
        for app, replaces, icon, summary, body, actions, hints, timeout in self.calls("Notify"):
            nid = replaces or next_id
            if not replaces:
                next_id += 1
            out.append({"app": app, "id": nid, "replaces": replaces, "summary": summary,
                        "body": body, "actions": actions, "hints": hints})
        return out

    def wait_shown(self, predicate, what: str) -> dict:
        return wait_for(lambda: next((n for n in self.shown() if predicate(n)), None),
                        timeout=20, what=what)

    def invoke(self, nid: int, action: str) -> None:
        self.emit("org.freedesktop.Notifications", "ActionInvoked", "us",
                  [Variant("u", nid), Variant("s", action)])


@pytest.fixture
def session_bus() -> Iterator[SessionBus]:
    bus = SessionBus()
    yield bus
    bus.stop()


@pytest.fixture
def notifications(session_bus) -> Iterator[Notifications]:
    mock = Notifications(session_bus)
    yield mock
    mock.stop()


class AgentProcess:
    def __init__(self, user: str, system_address: str, session_address: str, *args: str) -> None:
        self.process = subprocess.Popen(
            as_user(user, [AGENT, "--verbose", *args],
                    env={"DBUS_SYSTEM_BUS_ADDRESS": system_address,
                         "DBUS_SESSION_BUS_ADDRESS": session_address}),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if "ready" not in line:
            self.process.kill()
            raise AssertionError(f"dots-agent did not start: {line!r} {self.process.stderr.read()}")
        self.log: list[str] = []
        self._reader = threading.Thread(target=lambda: self.log.extend(self.process.stderr),
                                        daemon=True)
        self._reader.start()

    def click(self, notifications: "Notifications", nid: int, action: str) -> None:
        """Invoke ``action`` of notification ``nid`` once the agent knows the
        id (it logs it when the Notify reply arrives: the mock records the
        call before that, and an action for an id the agent has not seen
        yet is ignored, as one from another program's notification is)."""
        wait_for(lambda: any(f"notification {nid}:" in line for line in list(self.log)),
                 timeout=20, what=f"the agent to know notification {nid}")
        notifications.invoke(nid, action)

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=20)
        self._reader.join(timeout=10)
        return code, "".join(self.log)


# --- with a stand-in for the policy daemon -----------------------------------------------

@pytest.mark.bus
def test_agent_warnings_action_and_filtering(session_bus, notifications, child_user, other_user):
    family = Mock(session_bus, "org.dots.Family1", FAMILY_PATH,
                  ["org.dots.Family1", FAMILY_PATH, "org.dots.Family1"])
    family.mock("AddMethod", "sssss", ["org.dots.Family1", "RequestTime", "us", "u", "ret = 41"])
    child, other = uid_of(child_user), uid_of(other_user)

    def emit(member: str, signature: str, *args: Variant) -> None:
        family.emit("org.dots.Family1", member, signature, list(args))

    agent = AgentProcess(child_user, session_bus.address, session_bus.address)
    try:
        # another child's warning, and a forged one (not from the name's owner)
        emit("TimeWarning", "uu", Variant("u", other), Variant("u", 7))

        async def forge() -> None:
            bus = await MessageBus(bus_address=session_bus.address).connect()
            await bus.send(Message.new_signal(FAMILY_PATH, "org.dots.Family1", "TimeWarning", "uu",
                                              [child, 3]))
            bus.disconnect()
        asyncio.run(forge())
        emit("TimeWarning", "uu", Variant("u", child), Variant("u", 10))
        warning = notifications.wait_shown(lambda n: "10 minutes" in n["summary"],
                                           "the 10-minute warning")
        assert warning["summary"] == "10 minutes of screen time left"
        assert warning["app"] == "DOTS Family Mode"
        assert warning["actions"] == ["ask-more-time", "Ask for more time"]
        assert [n["summary"] for n in notifications.shown()] == [warning["summary"]], \
            "another child's or a forged warning was shown"

        # the button asks for time
        agent.click(notifications, warning["id"], "ask-more-time")
        wait_for(lambda: family.calls("RequestTime"), timeout=20, what="RequestTime")
        assert family.calls("RequestTime") == [[15, "asked from the desktop notification"]]
        notifications.wait_shown(lambda n: n["summary"] == "Asked for 15 minutes more",
                                 "the confirmation")

        # time up: replaces the warning, offers the button again
        emit("LimitReached", "us", Variant("u", child), Variant("s", "daily"))
        up = notifications.wait_shown(lambda n: n["summary"] == "Screen time is up for today",
                                      "time up")
        assert up["replaces"] == warning["id"] and up["actions"][0] == "ask-more-time"
        assert up["hints"]["urgency"] == 2

        # the answer
        emit("RequestAnswered", "uubu", Variant("u", 41), Variant("u", child), Variant("b", True),
             Variant("u", 15))
        notifications.wait_shown(lambda n: n["summary"] == "You got 15 minutes more", "the answer")

        # a program's own limit
        emit("AppTimeWarning", "usu", Variant("u", child), Variant("s", "/usr/bin/firefox"),
             Variant("u", 5))
        notifications.wait_shown(lambda n: n["summary"] == "5 minutes left for firefox",
                                 "the app warning")
        emit("LimitReached", "us", Variant("u", child), Variant("s", "app:/usr/bin/firefox"))
        up = notifications.wait_shown(lambda n: n["summary"] == "Time is up for firefox",
                                      "the app's time up")
        assert up["actions"] == []

        # a blocked program
        emit("AppBlocked", "us", Variant("u", child), Variant("s", "/usr/games/sl"))
        blocked = notifications.wait_shown(lambda n: n["summary"] == "sl is blocked", "app blocked")
        assert "/usr/games/sl" in blocked["body"]
    finally:
        code, err = agent.stop()
        family.stop()
    assert code == 0, err
    assert "Traceback" not in err, err


@pytest.mark.bus
def test_agent_custom_minutes(session_bus, notifications, child_user):
    family = Mock(session_bus, "org.dots.Family1", FAMILY_PATH,
                  ["org.dots.Family1", FAMILY_PATH, "org.dots.Family1"])
    family.mock("AddMethod", "sssss", ["org.dots.Family1", "RequestTime", "us", "u", "ret = 7"])
    agent = AgentProcess(child_user, session_bus.address, session_bus.address,
                         "--minutes", "30", "--reason", "need to finish")
    try:
        family.emit("org.dots.Family1", "TimeWarning", "uu",
                    [Variant("u", uid_of(child_user)), Variant("u", 5)])
        warning = notifications.wait_shown(lambda n: n["summary"] == "5 minutes of screen time left",
                                           "the warning")
        agent.click(notifications, warning["id"], "ask-more-time")
        wait_for(lambda: family.calls("RequestTime"), timeout=20, what="RequestTime")
        assert family.calls("RequestTime") == [[30, "need to finish"]]
    finally:
        code, err = agent.stop()
        family.stop()
    assert code == 0, err


# --- with the real policy daemon --------------------------------------------------------

@pytest.mark.bus
def test_agent_with_the_real_daemon(policyd_daemon, family_client, system_bus, session_bus,
                                    notifications, parent_user, child_user, other_user):
    """The daemon's own screen-time loop warns (the agent, a process of the
    child, makes the child 'in a session' for the daemon's /proc fallback);
    the button creates a real request; the parent's answer comes back."""
    parent = family_client(parent_user)
    if child_user not in [n for _, n in parent.ok("ListChildren")[0]]:
        parent.ok("AddChild", "ss", child_user, "")
    parent.ok("SetPolicy", "ss", child_user, "{}")  # no limits yet
    for r in parent.ok("ListRequests", "s", "pending")[0]:
        parent.ok("AnswerRequest", "ubu", r[0], False, 0)
    child = uid_of(child_user)
    agent = AgentProcess(child_user, system_bus.address, session_bus.address)
    try:
        # another user forges a warning on the system bus: never shown
        forged = run_as(other_user, ["dbus-send", "--system", "--type=signal", FAMILY_PATH,
                                     "org.dots.Family1.TimeWarning", f"uint32:{child}", "uint32:1"])
        assert forged.returncode == 0, forged.stderr
        # 14 minutes left today: the daemon warns at its 15-minute threshold
        (status,) = parent.ok("GetStatus", "s", child_user)
        policyd_daemon.sql("DELETE FROM screen_time_daily WHERE uid = ? AND day = ?",
                           [child, status["day"]])
        limited = run_as(parent_user, [DOTSCTL, "limit", "daily", child_user, "14", "--weekend", "14"])
        assert limited.returncode == 0, limited.stderr
        warning = notifications.wait_shown(lambda n: "of screen time left" in n["summary"],
                                           "the daemon's warning")
        assert warning["summary"] in ("14 minutes of screen time left",
                                      "13 minutes of screen time left")
        assert warning["actions"] == ["ask-more-time", "Ask for more time"]

        agent.click(notifications, warning["id"], "ask-more-time")

        def asked():
            out = run_as(parent_user, [DOTSCTL, "requests", "--state", "pending", "--json"])
            assert out.returncode == 0, out.stderr
            return [r for r in json.loads(out.stdout) if r["uid"] == child]
        (request,) = wait_for(asked, timeout=30, what="the request from the notification")
        assert (request["minutes"], request["reason"]) == (15, "asked from the desktop notification")
        notifications.wait_shown(lambda n: n["summary"] == "Asked for 15 minutes more",
                                 "the confirmation")

        answered = run_as(parent_user, [DOTSCTL, "approve", str(request["id"])])
        assert answered.returncode == 0, answered.stderr
        notifications.wait_shown(lambda n: n["summary"] == "You got 15 minutes more",
                                 "the approval from the real daemon")

        # the day's time used up: the daemon says so
        policyd_daemon.sql("UPDATE screen_time_daily SET seconds_used = 99999 WHERE uid = ? "
                           "AND day = ?", [child, status["day"]])
        notifications.wait_shown(lambda n: n["summary"] == "Screen time is up for today",
                                 "the daemon's LimitReached")
        assert not [n for n in notifications.shown() if n["summary"].startswith("1 minute")], \
            "the forged warning was shown"
    finally:
        code, err = agent.stop()
    assert code == 0, err


@pytest.mark.bus
def test_agent_without_session_bus_says_so(system_bus, child_user):
    out = run_as(child_user, [AGENT], env={"XDG_RUNTIME_DIR": "/nonexistent"})
    assert out.returncode == 1
    assert "no session bus" in out.stderr and "Traceback" not in out.stderr


# --- decisions, no bus ------------------------------------------------------------------

def test_note_texts():
    n = agent_mod.note_for("TimeWarning", [1])
    assert n.summary == "1 minute of screen time left" and n.ask and n.urgency == 2
    assert agent_mod.note_for("TimeWarning", [15]).urgency == 1
    assert not agent_mod.note_for("LimitReached", ["hours"]).ask
    assert agent_mod.note_for("RequestAnswered", [3, False, 0]).summary == "No more time this time"
    assert agent_mod.note_for("AppTimeWarning", ["/usr/bin/firefox", 5]).summary == \
        "5 minutes left for firefox"
    assert agent_mod.note_for("LimitReached", ["app:/usr/games/supertux"]).summary == \
        "Time is up for supertux"
    assert agent_mod.note_for("Unknown", []) is None


class _FakeBus:
    def add_message_handler(self, handler) -> None:
        self.handler = handler


def _signal(sender: str, member: str, signature: str, body: list,
            iface: str = "org.dots.Family1", path: str = FAMILY_PATH) -> Message:
    msg = Message.new_signal(path, iface, member, signature, body)
    msg.sender = sender
    return msg


def test_family_signals_filtering():
    got = []
    fs = agent_mod.FamilySignals(_FakeBus(), 1001, lambda m, a: got.append((m, a)))
    fs.owner = ":1.7"
    fs._handle(_signal(":1.7", "TimeWarning", "uu", [1001, 5]))
    fs._handle(_signal(":1.8", "TimeWarning", "uu", [1001, 4]))  # not the owner
    fs._handle(_signal(":1.7", "TimeWarning", "uu", [1002, 3]))  # another child
    fs._handle(_signal(":1.7", "TimeWarning", "us", [1001, "x"]))  # wrong signature
    fs._handle(_signal(":1.7", "RequestAnswered", "uubu", [9, 1001, True, 20]))
    fs._handle(_signal(":1.7", "RequestAnswered", "uubu", [9, 1002, True, 20]))
    fs._handle(_signal(":1.7", "RequestCreated", "uuu", [9, 1001, 20]))  # not for the agent
    # the daemon restarts under another unique name
    fs._handle(_signal("org.freedesktop.DBus", "NameOwnerChanged", "sss",
                       ["org.dots.Family1", ":1.7", ":1.9"], "org.freedesktop.DBus",
                       "/org/freedesktop/DBus"))
    fs._handle(_signal(":1.7", "LimitReached", "us", [1001, "daily"]))  # old owner
    fs._handle(_signal(":1.9", "LimitReached", "us", [1001, "weekly"]))
    assert got == [("TimeWarning", [5]), ("RequestAnswered", [9, True, 20]),
                   ("LimitReached", ["weekly"])]


def test_notifier_asks_once_per_button():
    asks = []
    n = agent_mod.Notifier(_FakeBus(), lambda: asks.append(1))
    n.owner = ":1.2"  # the notification server (button presses only from it)
    n.asking_ids = {4}
    act = lambda nid, key: n._handle(_signal(":1.2", "ActionInvoked", "us", [nid, key],
                                             "org.freedesktop.Notifications", NOTIFY_PATH))
    act(5, "ask-more-time")  # not ours
    act(4, "default")  # another action
    act(4, "ask-more-time")
    act(4, "ask-more-time")  # the same button twice
    assert asks == [1]
    n.asking_ids = {6}
    n._handle(_signal(":1.2", "NotificationClosed", "uu", [6, 2], "org.freedesktop.Notifications",
                      NOTIFY_PATH))
    act(6, "ask-more-time")
    assert asks == [1]


def test_forged_button_presses_and_owner_changes_are_ignored():
    """Issue 12: only the notification server's current owner presses the
    button, and only the bus says who owns a name."""
    asked = []
    notifier = agent_mod.Notifier(_FakeBus(), lambda: asked.append(1))
    notifier.owner = ":1.3"
    notifier.asking_ids = {5}
    notify_iface, notify_path = "org.freedesktop.Notifications", "/org/freedesktop/Notifications"
    notifier._handle(_signal(":1.66", "ActionInvoked", "us", [5, agent_mod.ASK_ACTION],
                             notify_iface, notify_path))  # another program of the session
    # a forged "the server is now :1.66" from that program, then its press
    notifier._handle(_signal(":1.66", "NameOwnerChanged", "sss",
                             ["org.freedesktop.Notifications", ":1.3", ":1.66"],
                             "org.freedesktop.DBus", "/org/freedesktop/DBus"))
    notifier._handle(_signal(":1.66", "ActionInvoked", "us", [5, agent_mod.ASK_ACTION],
                             notify_iface, notify_path))
    assert asked == [] and 5 in notifier.asking_ids
    notifier._handle(_signal(":1.3", "ActionInvoked", "us", [5, agent_mod.ASK_ACTION],
                             notify_iface, notify_path))
    assert asked == [1]

    got = []
    fs = agent_mod.FamilySignals(_FakeBus(), 1001, lambda m, a: got.append((m, a)))
    fs.owner = ":1.7"
    fs._handle(_signal(":1.66", "NameOwnerChanged", "sss", ["org.dots.Family1", ":1.7", ":1.66"],
                       "org.freedesktop.DBus", "/org/freedesktop/DBus"))  # forged
    fs._handle(_signal(":1.66", "LimitReached", "us", [1001, "daily"]))
    assert got == [] and fs.owner == ":1.7"
