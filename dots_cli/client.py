"""A small synchronous client of ``org.dots.Family1`` for dotsctl.

One system-bus connection per process (dbus-fast on a private asyncio
loop); one method per contract method (``dbus/org.dots.Family1.xml``),
returning plain Python values. Every failure becomes a :class:`CliError`:
one line meant for the person at the terminal and the exit code that goes
with it. Nothing here touches the database or the collector.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from dots_common.names import FAMILY_BUS_NAME as BUS_NAME
from dots_common.names import FAMILY_ERROR
from dots_common.names import FAMILY_INTERFACE as INTERFACE
from dots_common.names import FAMILY_PATH as OBJECT_PATH

ERROR_PREFIX = FAMILY_ERROR + "."
DEFAULT_SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"

# exit codes (documented in `dotsctl --help`)
EXIT_OK = 0
EXIT_FAILED = 1  # the daemon refused or failed (bad value, unknown child, ...)
EXIT_USAGE = 2  # wrong command line
EXIT_NOT_AUTHORIZED = 3
EXIT_NOT_RUNNING = 4  # no policy daemon (or no system bus)

#: contract methods a child may call (polkit action org.dots.family.request);
#: every other method needs a parent
CHILD_METHODS = frozenset({"GetStatus", "RequestTime"})

NEEDS_PARENT = "this needs a parent (a member of the group dots-parents, or root)"

#: the daemon's error names, in words
ERROR_WORDS = {
    "InvalidArgs": "invalid argument",
    "InvalidPolicy": "",  # its messages already start with "invalid policy:"
    "UnknownChild": "unknown child",
    "AlreadyExists": "already there",
    "NotFound": "not found",
    "AlreadyAnswered": "already answered",
    "TooManyRequests": "too many requests",
    "StalePolicy": "changed meanwhile",
    "Failed": "the policy daemon failed",
}

NOT_RUNNING_NAMES = frozenset({
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
})


class CliError(Exception):
    """Something the user must hear about: one line, one exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED, dbus_name: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.dbus_name = dbus_name


def not_running(detail: str = "") -> CliError:
    text = ("the DOTS policy daemon is not running (nobody owns org.dots.Family1 on the "
            "system bus); start it with: systemctl start dots-policyd")
    return CliError(text + (f" ({detail})" if detail else ""), EXIT_NOT_RUNNING)


def translate_error(member: str, name: str, message: str) -> CliError:
    """A D-Bus error reply as one line and an exit code."""
    message = " ".join(message.split())  # one line, whatever the daemon sent
    if name == ERROR_PREFIX + "NotAuthorized":
        if member == "GetStatus":
            return CliError("not authorized: you may see only your own status (dotsctl status); "
                            "other users' status needs a parent", EXIT_NOT_AUTHORIZED, name)
        if member in CHILD_METHODS:
            return CliError(f"not authorized: {message}" if message else "not authorized",
                            EXIT_NOT_AUTHORIZED, name)
        return CliError(f"not authorized: {NEEDS_PARENT}", EXIT_NOT_AUTHORIZED, name)
    if name == "org.freedesktop.DBus.Error.AccessDenied":
        return CliError(f"not authorized: the system bus refused the call ({message})",
                        EXIT_NOT_AUTHORIZED, name)
    if name in NOT_RUNNING_NAMES:
        return not_running()
    if name in ("org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.Timeout"):
        return CliError("the policy daemon did not answer in time", EXIT_FAILED, name)
    if name == "org.freedesktop.DBus.Error.UnknownMethod":
        return CliError(f"the policy daemon does not know {member} (is it older than dotsctl?)",
                        EXIT_FAILED, name)
    if name.startswith(ERROR_PREFIX):
        short = name.removeprefix(ERROR_PREFIX)
        words = ERROR_WORDS.get(short, short)
        text = f"{words}: {message}" if words and message else (message or words or short)
        return CliError(text, EXIT_FAILED, name)
    return CliError(f"{name}: {message}" if message else name, EXIT_FAILED, name)


def plain(value: Any) -> Any:
    """D-Bus values without Variants (dicts, lists, numbers, strings)."""
    if isinstance(value, Variant):
        return plain(value.value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def bus_address() -> str:
    return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS


# --- results ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Request:
    id: int
    uid: int
    name: str
    minutes: int
    reason: str
    state: str
    granted_minutes: int
    answered_by: int
    created: int  # Unix seconds
    answered: int  # 0 while pending

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    id: int
    time: int
    actor_uid: int
    action: str
    target: str
    old_value: str
    new_value: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Usage:
    apps: list[dict[str, Any]]  # app, active_seconds, launches
    sites: list[dict[str, Any]]  # site, bytes_sent, bytes_received, connections
    days: list[dict[str, Any]]  # day, used_seconds, granted_seconds


# --- the client ------------------------------------------------------------------------

class FamilyClient:
    """``org.dots.Family1`` over one system-bus connection (lazy)."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._bus: MessageBus | None = None

    def __enter__(self) -> FamilyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._bus is not None:
            self._bus.disconnect()
            self._bus = None
        if not self._loop.is_closed():
            self._loop.close()

    def _run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(asyncio.wait_for(coro, self.timeout))

    @staticmethod
    async def _connect() -> MessageBus:
        return await MessageBus(bus_type=BusType.SYSTEM).connect()

    @property
    def bus(self) -> MessageBus:
        if self._bus is None:
            try:
                self._bus = self._run(self._connect())
            except asyncio.TimeoutError:
                raise CliError(f"the system bus ({bus_address()}) did not answer in time",
                               EXIT_NOT_RUNNING) from None
            except Exception as exc:  # socket missing, refused, auth failed
                raise CliError(f"cannot reach the system bus at {bus_address()} ({exc}); "
                               "is dbus running?", EXIT_NOT_RUNNING) from None
        return self._bus

    def raw_call(self, destination: str, path: str, interface: str, member: str,
                 signature: str = "", body: list[Any] | None = None) -> Message:
        bus = self.bus
        try:
            return self._run(bus.call(Message(destination=destination, path=path,
                                              interface=interface, member=member,
                                              signature=signature, body=body or [])))
        except asyncio.TimeoutError:
            raise CliError(f"no answer to {member} within {self.timeout:.0f} s", EXIT_FAILED) from None
        except (EOFError, OSError) as exc:
            raise CliError(f"lost the system bus ({exc})", EXIT_NOT_RUNNING) from None

    def call(self, member: str, signature: str = "", *args: Any) -> list[Any]:
        """Call a Family1 method; the reply's body without Variants."""
        reply = self.raw_call(BUS_NAME, OBJECT_PATH, INTERFACE, member, signature, list(args))
        if reply.message_type == MessageType.ERROR:
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            raise translate_error(member, reply.error_name or "", text)
        return plain(reply.body)

    def name_has_owner(self, name: str) -> bool:
        reply = self.raw_call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                              "org.freedesktop.DBus", "NameHasOwner", "s", [name])
        return reply.message_type != MessageType.ERROR and bool(reply.body[0])

    def introspect(self) -> str:
        reply = self.raw_call(BUS_NAME, OBJECT_PATH, "org.freedesktop.DBus.Introspectable",
                              "Introspect")
        if reply.message_type == MessageType.ERROR:
            raise translate_error("Introspect", reply.error_name or "", str((reply.body or [""])[0]))
        return reply.body[0]

    # --- the contract's methods -------------------------------------------------------

    def list_children(self) -> list[tuple[int, str]]:
        return [(uid, name) for uid, name in self.call("ListChildren")[0]]

    def list_presets(self) -> list[tuple[str, str]]:
        return [(name, text) for name, text in self.call("ListPresets")[0]]

    def add_child(self, user: str, preset: str = "") -> int:
        return self.call("AddChild", "ss", user, preset)[0]

    def remove_child(self, child: str) -> None:
        self.call("RemoveChild", "s", child)

    def get_policy(self, child: str) -> str:
        return self.call("GetPolicy", "s", child)[0]

    def set_policy(self, child: str, document: str) -> int:
        return self.call("SetPolicy", "ss", child, document)[0]

    def get_versioned_policy(self, child: str) -> tuple[int, str]:
        version, document = self.call("GetVersionedPolicy", "s", child)
        return version, document

    def replace_policy(self, child: str, base_version: int, document: str) -> int:
        return self.call("ReplacePolicy", "sus", child, base_version, document)[0]

    def set_weekly_limit(self, child: str, minutes: int) -> int:
        return self.call("SetWeeklyLimit", "si", child, minutes)[0]

    def set_app_limit(self, child: str, app: str, minutes: int) -> int:
        return self.call("SetAppLimit", "ssi", child, app, minutes)[0]

    def set_allow_list(self, child: str, enabled: bool, add_apps: list[str]) -> int:
        return self.call("SetAllowList", "sbas", child, enabled, add_apps)[0]

    def disallow_app(self, child: str, app: str) -> int:
        return self.call("DisallowApp", "ss", child, app)[0]

    def clear_allowed_hours(self, child: str, days: list[str]) -> int:
        return self.call("ClearAllowedHours", "sas", child, days)[0]

    def set_daily_limit(self, child: str, weekday: int, weekend: int) -> int:
        return self.call("SetDailyLimit", "sii", child, weekday, weekend)[0]

    def set_allowed_hours(self, child: str, days: list[str], windows: list[str]) -> int:
        return self.call("SetAllowedHours", "sasas", child, days, windows)[0]

    def block_app(self, child: str, app: str) -> int:
        return self.call("BlockApp", "ss", child, app)[0]

    def unblock_app(self, child: str, app: str) -> int:
        return self.call("UnblockApp", "ss", child, app)[0]

    def block_site(self, child: str, site: str) -> int:
        return self.call("BlockSite", "ss", child, site)[0]

    def unblock_site(self, child: str, site: str) -> int:
        return self.call("UnblockSite", "ss", child, site)[0]

    def status(self, child: str = "") -> dict[str, Any]:
        return self.call("GetStatus", "s", child)[0]

    def usage(self, child: str, start: str, end: str) -> Usage:
        apps, sites, days = self.call("GetUsageReport", "sss", child, start, end)
        return Usage(
            apps=[{"app": a, "active_seconds": s, "launches": n} for a, s, n in apps],
            sites=[{"site": s, "bytes_sent": tx, "bytes_received": rx, "connections": c}
                   for s, tx, rx, c in sites],
            days=[{"day": d, "used_seconds": u, "granted_seconds": g} for d, u, g in days])

    def recent_events(self, child: str, kind: str, limit: int) -> list[dict[str, Any]]:
        return self.call("GetRecentEvents", "ssu", child, kind, limit)[0]

    def request_time(self, minutes: int, reason: str) -> int:
        return self.call("RequestTime", "us", minutes, reason)[0]

    def list_requests(self, state: str = "") -> list[Request]:
        return [Request(*row) for row in self.call("ListRequests", "s", state)[0]]

    def answer_request(self, request_id: int, approve: bool, minutes: int = 0) -> None:
        self.call("AnswerRequest", "ubu", request_id, approve, minutes)

    def audit_log(self, limit: int) -> list[AuditEntry]:
        return [AuditEntry(*row) for row in self.call("GetAuditLog", "u", limit)[0]]

    def policy_schema(self) -> str:
        return self.call("GetPolicySchema")[0]
