"""Drive a GTK app through the accessibility tree, as a screen reader would.

Run INSIDE a desktop session of its own (``xvfb-run -a dbus-run-session``)
as the user the app should run as: it starts the AT-SPI bus
(``/usr/libexec/at-spi-bus-launcher --launch-immediately``), then the app
(the argv after ``--``, with GTK_A11Y=atspi), then answers one JSON request
per stdin line with one JSON line ({"ok": ...} or {"error": ...}):

  {"op": "find", "name": N, "role": R?, "timeout": s?}   -> {"role", "name", "states"}
  {"op": "click", "name": N, "role": R?}                  (the accessible's first action)
  {"op": "value", "name": N, "set": v?}                   (the Value interface)
  {"op": "text", "name": N}                               (the Text interface, else the name)
  {"op": "type", "name": N, "text": T}                    (an entry's text)
  {"op": "texts", "name": N}                              (the labels inside it: a row's text)
  {"op": "unnamed"}                                       (controls without an accessible name)
  {"op": "key", "key": K}                                 (press and release a key: Tab, space…)
  {"op": "type_focused", "text": T}                       (type on the keyboard)
  {"op": "focused"}                                       (what has the keyboard focus)
  {"op": "names"}                                         (every showing (role, name))
  {"op": "screenshot", "path": P}                         (the app's window as a PNG)

Controls are found by accessible name only: what the tests can find, a
screen reader user can reach.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import gi

gi.require_version("Atspi", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

from tests.helpers import wait_for  # noqa: E402  (PYTHONPATH is the repository)

LAUNCHER = "/usr/libexec/at-spi-bus-launcher"


def session_has(name: str) -> bool:
    bus = Gio.bus_get_sync(Gio.BusType.SESSION)
    reply = bus.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                          "NameHasOwner", GLib.Variant("(s)", (name,)), None, 0, 5000, None)
    return reply.unpack()[0]


class Driver:
    def __init__(self, app_argv: list[str], app_id: str) -> None:
        self.launcher = subprocess.Popen([LAUNCHER, "--launch-immediately"], stdout=subprocess.DEVNULL)
        wait_for(lambda: session_has("org.a11y.Bus"), timeout=30, what="the AT-SPI bus")
        import pyatspi  # after the bus exists

        self.pyatspi = pyatspi
        self.app_id = app_id
        self.app = subprocess.Popen(app_argv, env={**os.environ, "GTK_A11Y": "atspi"})
        wait_for(lambda: self.app.poll() is not None or self._apps(), timeout=60, interval=0.1,
                 what="the app on the AT-SPI bus")
        if self.app.poll() is not None:
            raise RuntimeError(f"the app exited with {self.app.returncode}")

    def _apps(self) -> list:
        desktop = self.pyatspi.Registry.getDesktop(0)
        return [desktop[i] for i in range(desktop.childCount) if desktop[i] is not None]

    def _walk(self, acc, out: list, depth: int = 0) -> None:
        if acc is None or depth > 60:
            return
        try:
            states = acc.getState()
            if depth > 1 and not states.contains(self.pyatspi.STATE_VISIBLE):
                return
            out.append(acc)
            for i in range(acc.childCount):
                self._walk(acc.getChildAtIndex(i), out, depth + 1)
        except Exception:  # the tree changed under us: skip that branch
            return

    def all(self) -> list:
        """Every visible accessible of every live application on the bus."""
        out: list = []
        for app in self._apps():
            self._walk(app, out)
        return out

    def each(self, fn) -> list:
        """fn(accessible) for every accessible that still exists when asked
        (rows are replaced while we walk: their objects go away)."""
        out = []
        for acc in self.all():
            try:
                value = fn(acc)
            except Exception:
                continue
            if value is not None:
                out.append(value)
        return out

    def lookup(self, name: str, role: str | None = None, timeout: float = 20):
        def find():
            for acc in self.all():
                try:
                    if acc.name == name and (role is None or acc.getRoleName() == role):
                        return acc
                except Exception:
                    continue
            return None
        return wait_for(find, timeout=timeout, interval=0.1,
                        what=f"an accessible named {name!r}" + (f" ({role})" if role else ""))

    def describe(self, acc) -> dict:
        states = [self.pyatspi.stateToString(s) for s in acc.getState().getStates()]
        return {"role": acc.getRoleName(), "name": acc.name, "states": states}

    def handle(self, req: dict):
        op = req["op"]
        if op == "find":
            return self.describe(self.lookup(req["name"], req.get("role"), req.get("timeout", 20)))
        if op == "click":
            acc = self.lookup(req["name"], req.get("role"))
            action = acc.queryAction() if "Action" in acc.get_interfaces() else None
            if action is not None and action.nActions > 0:
                action.doAction(0)
            else:  # a list row: select it, as arrow keys would
                acc.parent.querySelection().selectChild(acc.getIndexInParent())
            return self.describe(acc)
        if op == "value":
            value = self.lookup(req["name"], req.get("role")).queryValue()
            if "set" in req:
                value.currentValue = float(req["set"])
            return value.currentValue
        if op == "text":
            acc = self.lookup(req["name"], req.get("role"))
            try:
                return acc.queryText().getText(0, -1)
            except NotImplementedError:
                return acc.name
        if op == "type":  # replace an entry's text, as typing would
            acc = self.lookup(req["name"], req.get("role"))
            try:
                if acc.queryEditableText().setTextContents(req["text"]):
                    return "editable text"
            except Exception:  # GTK 4.8 has no EditableText: focus it and type on the keyboard
                pass
            try:
                focused = acc.queryComponent().grabFocus()
            except Exception:
                focused = False
            if not focused:  # click into it (XTest, through the registry)
                box = acc.queryComponent().getExtents(self.pyatspi.DESKTOP_COORDS)
                self.pyatspi.Registry.generateMouseEvent(box.x + box.width // 2, box.y + box.height // 2,
                                                         "b1c")
            # the X server keeps the click and the keys in order: no waiting for the focus.
            # GTK 4.8 exposes no Text on an entry: the test checks what arrived.
            self.pyatspi.Registry.generateKeyboardEvent(0, req["text"], self.pyatspi.KEY_STRING)
            return "keyboard"
        if op == "texts":  # the labels inside a named accessible (a row), in order
            out: list = []
            self._walk(self.lookup(req["name"], req.get("role")), out, 2)
            return [a.name for a in out if a.getRoleName() == "label"]
        if op == "unnamed":  # controls a screen reader could not name
            controls = {"push button", "toggle button", "check box", "spin button", "text", "combo box",
                        "page tab", "list item", "slider", "level bar", "menu button", "entry",
                        "switch", "radio button"}
            return self.each(lambda a: [a.getRoleName(), a.name] if a.getRoleName() in controls
                             and (not a.name or a.name.startswith(("Gtk", "Adw"))) else None)
        if op == "key":  # one key on the keyboard (an X keysym name: Tab, space, Return)
            from gi.repository import Gdk  # noqa: PLC0415  (only for the keysym table)
            self.pyatspi.Registry.generateKeyboardEvent(Gdk.keyval_from_name(req["key"]), None,
                                                        self.pyatspi.KEY_SYM)
            return True
        if op == "type_focused":  # type into whatever has the focus
            self.pyatspi.Registry.generateKeyboardEvent(0, req["text"], self.pyatspi.KEY_STRING)
            return True
        if op == "focused":  # what has the keyboard focus
            return self.each(lambda a: [a.getRoleName(), a.name]
                             if a.getState().contains(self.pyatspi.STATE_FOCUSED) else None)
        if op == "names":
            return self.each(lambda a: [a.getRoleName(), a.name] if a.name else None)
        if op == "tree":
            out = []
            def rec(acc, depth):
                if acc is None or depth > 12:
                    return
                out.append("  " * depth + f"{acc.getRoleName()} {acc.name!r} {acc.childCount} "
                           + ",".join(self.pyatspi.stateToString(s) for s in acc.getState().getStates()))
                for i in range(acc.childCount):
                    rec(acc.getChildAtIndex(i), depth + 1)
            for app in self._apps():
                rec(app, 0)
            return out
        if op == "screenshot":  # the app's window (its frame's extents) from the X server
            from PIL import ImageGrab

            frame = next(a for a in self.all() if a.getRoleName() == "frame")
            box = frame.queryComponent().getExtents(self.pyatspi.DESKTOP_COORDS)
            image = ImageGrab.grab()
            if box.width > 0 and box.height > 0:
                image = image.crop((box.x, box.y, box.x + box.width, box.y + box.height))
            image.save(req["path"])
            return [image.width, image.height]
        raise ValueError(f"unknown op {op!r}")

    def close(self) -> None:
        for p in (self.app, self.launcher):
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=10)


def main() -> None:
    app_id, sep, *app_argv = sys.argv[1:]
    assert sep == "--", "usage: desktop_driver.py APP_ID -- ARGV..."
    driver = Driver(app_argv, app_id)
    print(json.dumps({"ready": True}), flush=True)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                print(json.dumps({"ok": driver.handle(json.loads(line))}), flush=True)
            except Exception as exc:  # the test reads it and fails with the message
                print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
    finally:
        driver.close()


if __name__ == "__main__":
    main()
