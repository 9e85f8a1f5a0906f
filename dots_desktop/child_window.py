"""The child's small window (opened from the tray icon): today's time and
limits, the "ask for more time" form (minutes and a reason), and the
parent's answer when it comes (the daemon's RequestAnswered signal for
this user's request). It calls only what a child may: GetStatus("") and
RequestTime; the daemon takes the uid from the bus, never from us."""

from __future__ import annotations

import os
import sys
from typing import Any

import gi

gi.require_version("Gtk", "4.0")
gi.require_version("Adw", "1")
from gi.repository import Adw, Gio, GLib, Gtk  # noqa: E402

from . import model  # noqa: E402
from .child_model import answer_text  # noqa: E402
from .family import Family, system_bus  # noqa: E402
from .widgets import button, minutes_spin, named, row  # noqa: E402

APP_ID = "org.dots.Family.Child"


class ChildWindow(Adw.ApplicationWindow):
    def __init__(self, app: Adw.Application, family: Family) -> None:
        super().__init__(application=app, title="My screen time", default_width=460, default_height=620)
        self.family = family
        self.uid = os.getuid()
        self.request_id = 0
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL)
        box.append(Adw.HeaderBar())
        page = Adw.PreferencesPage()
        box.append(page)
        self.set_content(box)

        today = Adw.PreferencesGroup(title="Today")
        self.left, self.used, self.limit = Gtk.Label(), Gtk.Label(), Gtk.Label()
        today.add(row("Time left", suffixes=[self.left]))
        today.add(row("Time used", suffixes=[self.used]))
        today.add(row("Today's limit", suffixes=[self.limit]))
        self.hours = row("Allowed now")
        today.add(self.hours)
        page.add(today)

        ask = Adw.PreferencesGroup(title="Need more time?",
                                   description="Ask a parent: say how many minutes and why.")
        self.ask_group = ask
        self.minutes = minutes_spin("Minutes to ask for", 15, upper=720, step=5)
        ask.add(row("Minutes", suffixes=[self.minutes]))
        self.reason = named(Gtk.Entry(placeholder_text="Why? (for example: homework)", hexpand=True,
                                      valign=Gtk.Align.CENTER, max_length=500), "Reason")
        ask.add(row("Reason", suffixes=[self.reason]))
        self.send = button("Ask", "Ask for more time", self._ask, style="suggested-action")
        ask.add(row("", suffixes=[self.send], name="Send the request"))
        page.add(ask)

        family.subscribe(self._signal)
        self.reload()
        GLib.timeout_add_seconds(30, lambda: self.reload() or True)

    def reload(self) -> None:
        self.family.call("GetStatus", "s", [""], self._show)

    def _show(self, result: Any, error: str) -> None:
        if error:
            self.hours.set_title(error)
            return
        status = result[0]
        today = model.Today.from_status(status)
        self.left.set_label(today.left)
        self.used.set_label(today.used)
        self.limit.set_label(today.limit)
        self.hours.set_title(today.state)

    def _ask(self) -> None:
        self.send.set_sensitive(False)
        self.ask_group.set_description("Asking…")

        def done(result: Any, error: str) -> None:
            self.send.set_sensitive(True)
            if error:
                self.ask_group.set_description(f"Could not ask: {error}")
                return
            self.request_id = result[0]
            self.ask_group.set_description("Asked. A parent will answer soon.")
            self.reload()
        self.family.call("RequestTime", "us", [int(self.minutes.get_value()), self.reason.get_text().strip()],
                         done)

    def _signal(self, member: str, args: tuple) -> None:
        if member == "RequestAnswered" and args[1] == self.uid:
            self.ask_group.set_description(answer_text(args[2], args[3]))
            self.reload()
        elif member in ("TimeWarning", "LimitReached", "PolicyChanged") and args[0] == self.uid:
            self.reload()


class ChildApp(Adw.Application):
    def __init__(self) -> None:
        super().__init__(application_id=APP_ID, flags=Gio.ApplicationFlags.DEFAULT_FLAGS)
        GLib.set_application_name("My screen time")
        self.window: ChildWindow | None = None

    def do_activate(self) -> None:
        if self.window is None:
            try:
                self.window = ChildWindow(self, Family(system_bus()))
            except GLib.Error as exc:
                print(f"dots-child-window: cannot reach the system bus: {exc.message}", file=sys.stderr)
                self.quit()
                return
        self.window.present()


def main(argv: list[str] | None = None) -> None:
    sys.exit(ChildApp().run(argv if argv is not None else sys.argv))


if __name__ == "__main__":
    main()
