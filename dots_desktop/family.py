"""``org.dots.Family1`` for the GTK apps, over GLib's own D-Bus (Gio), so
that replies and signals arrive in the GTK main loop.

Every call carries ALLOW_INTERACTIVE_AUTHORIZATION: polkit decides, and a
desktop polkit agent may ask the parent for a password (never a field of
ours). Signals are taken only from the current unique owner of the name
(tracked here with a name watch, whatever GLib's own filtering does) and
only with the contract's signature.
Errors reach the caller as one sentence (dots_cli.client's words).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from gi.repository import Gio, GLib

from dots_cli.client import DEFAULT_SYSTEM_BUS, translate_error
from dots_common import names

#: every signal of the contract and its signature (dbus/org.dots.Family1.xml)
SIGNALS = {"PolicyChanged": "(uu)", "TimeWarning": "(uu)", "LimitReached": "(us)",
           "AppBlocked": "(us)", "AppTimeWarning": "(usu)", "RequestCreated": "(uuu)",
           "RequestAnswered": "(uubu)", "TamperDetected": "(ss)"}

Done = Callable[[Any, str], None]  # (result or None, error sentence or "")


def system_bus() -> Gio.DBusConnection:
    """The system bus, honouring DBUS_SYSTEM_BUS_ADDRESS like dotsctl."""
    address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS
    flags = (Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
             | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION)
    return Gio.DBusConnection.new_for_address_sync(address, flags, None, None)


def error_text(member: str, error: GLib.Error) -> str:
    name = Gio.DBusError.get_remote_error(error) or ""
    if name:
        Gio.DBusError.strip_remote_error(error)
        return translate_error(member, name, error.message).message
    return error.message


class Family:
    """Asynchronous calls and signal subscriptions on one connection."""

    def __init__(self, connection: Gio.DBusConnection) -> None:
        self.connection = connection
        self.subscriptions: list[int] = []
        self.owner = ""  # the unique name owning org.dots.Family1 now
        self.watch = Gio.bus_watch_name_on_connection(
            connection, names.FAMILY_BUS_NAME, Gio.BusNameWatcherFlags.NONE,
            lambda _c, _name, owner: setattr(self, "owner", owner),
            lambda _c, _name: setattr(self, "owner", ""))

    def call(self, member: str, signature: str, args: list[Any], done: Done | None = None,
             timeout_ms: int = 120_000) -> None:
        """Call ``member``; ``done(result, error)`` in the main loop with the
        reply's values as a tuple (or None and the error in words). The long
        default timeout leaves a parent time to answer polkit's dialog."""
        params = GLib.Variant(f"({signature})", tuple(args)) if signature else None

        def finish(connection: Gio.DBusConnection, result: Gio.AsyncResult) -> None:
            try:
                reply = connection.call_finish(result).unpack()
            except GLib.Error as exc:
                if done:
                    done(None, error_text(member, exc))
                return
            if done:
                done(reply, "")

        self.connection.call(names.FAMILY_BUS_NAME, names.FAMILY_PATH, names.FAMILY_INTERFACE,
                             member, params, None,
                             Gio.DBusCallFlags.ALLOW_INTERACTIVE_AUTHORIZATION, timeout_ms, None,
                             finish)

    def call_sync(self, member: str, signature: str = "", args: list[Any] | None = None) -> tuple:
        """For start-up and tests; raises RuntimeError with the words."""
        params = GLib.Variant(f"({signature})", tuple(args or [])) if signature else None
        try:
            return self.connection.call_sync(
                names.FAMILY_BUS_NAME, names.FAMILY_PATH, names.FAMILY_INTERFACE, member, params,
                None, Gio.DBusCallFlags.ALLOW_INTERACTIVE_AUTHORIZATION, 30_000, None).unpack()
        except GLib.Error as exc:
            raise RuntimeError(error_text(member, exc)) from None

    def subscribe(self, on_signal: Callable[[str, tuple], None]) -> None:
        """``on_signal(member, args)`` for every contract signal of the daemon."""

        def handler(_conn, sender: str, _path, _iface, member: str, params: GLib.Variant) -> None:
            if self.accepts(sender, member, params.get_type_string()):
                on_signal(member, params.unpack())

        self.subscriptions.append(self.connection.signal_subscribe(
            names.FAMILY_BUS_NAME, names.FAMILY_INTERFACE, None, names.FAMILY_PATH, None,
            Gio.DBusSignalFlags.NONE, handler))

    def accepts(self, sender: str, member: str, signature: str) -> bool:
        """A signal of the contract, from the daemon that owns the name now."""
        return bool(sender) and sender == self.owner and SIGNALS.get(member) == signature

    def close(self) -> None:
        for sid in self.subscriptions:
            self.connection.signal_unsubscribe(sid)
        self.subscriptions.clear()
        Gio.bus_unwatch_name(self.watch)
