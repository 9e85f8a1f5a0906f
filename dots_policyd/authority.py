"""polkit client: may this bus name perform this action? Fail closed.

``CheckAuthorization`` with subject ``system-bus-name`` (polkit itself
resolves the name to a process and user) and no interaction (flags 0: a
system daemon has no way to show an authentication dialog). Anything but a
clear "yes" within the timeout is a "no": polkit not running, an error
reply, a malformed reply, or a slow polkit. The call is awaited, so other
callers are served while one waits.
"""

from __future__ import annotations

import asyncio
import logging
import time

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from dots_common import names


log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0  # seconds
#: polkit checks in flight at once: the system bus refuses more than 128
#: pending replies per connection (max_replies_per_connection), and the
#: daemon's own connection also waits for the bus and the collector
MAX_IN_FLIGHT = 64
_SUBJECT_KIND = "system-bus-name"
_REPLY_SIGNATURE = "(bba{ss})"
_FLAGS_NONE = 0  # no AllowUserInteraction
_FLAGS_ALLOW_USER_INTERACTION = 1
#: how long polkit may take when it asks the person for a password
INTERACTIVE_TIMEOUT = 60.0


class Authority:
    """Asks polkit on ``bus``; counts answers for the logs and tests."""

    def __init__(self, bus: MessageBus, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.bus = bus
        self.timeout = timeout
        self.checks = 0
        self.refusals = 0
        self.failures = 0  # polkit could not answer (counted in refusals too)
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def check(self, sender: str, action: str, interactive: bool = False) -> bool:
        """True only when polkit says ``sender`` is authorized for ``action``.
        ``interactive``: the caller set ALLOW_INTERACTIVE_AUTHORIZATION on its
        call (a desktop app), so polkit may ask the person through the
        desktop's authentication agent (auth_admin_keep) — we never show a
        password field; the deadline is then INTERACTIVE_TIMEOUT."""
        self.checks += 1
        started = time.monotonic()
        allowed = await self._ask(sender, action, interactive)
        if not allowed:
            self.refusals += 1
        log.debug("polkit: %s %s %s (%.1f ms)", sender, "may" if allowed else "may not",
                  action, (time.monotonic() - started) * 1000)
        return allowed

    async def _ask(self, sender: str, action: str, interactive: bool = False) -> bool:
        if not sender:
            return False  # no bus name, no subject: never authorized
        message = Message(
            destination=names.POLKIT_BUS_NAME, path=names.POLKIT_PATH,
            interface=names.POLKIT_INTERFACE, member="CheckAuthorization",
            signature="(sa{sv})sa{ss}us",
            body=[[_SUBJECT_KIND, {"name": Variant("s", sender)}], action, {},
                  _FLAGS_ALLOW_USER_INTERACTION if interactive else _FLAGS_NONE, ""])
        timeout = INTERACTIVE_TIMEOUT if interactive else self.timeout
        try:
            # the deadline covers the wait for a slot too: a stalled polkit
            # refuses everyone within the timeout, never later
            reply = await asyncio.wait_for(self._call(message), timeout)
        except asyncio.TimeoutError:
            return self._failed(f"no answer within {timeout:g} s")
        except Exception as exc:  # disconnected bus, marshalling, anything: refuse
            return self._failed(f"{type(exc).__name__}: {exc}")
        if reply is None:
            return self._failed("no reply")
        if reply.message_type == MessageType.ERROR:
            return self._failed(f"{reply.error_name}: {(reply.body or [''])[0]}")
        if reply.signature != _REPLY_SIGNATURE:
            return self._failed(f"unexpected reply signature {reply.signature!r}")
        is_authorized = reply.body[0][0]
        return is_authorized is True

    async def _call(self, message: Message) -> Message | None:
        async with self._slots:
            return await self.bus.call(message)

    def _failed(self, why: str) -> bool:
        self.failures += 1
        log.warning("polkit could not be asked (%s): refusing", why)
        return False
