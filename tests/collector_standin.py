"""A stand-in for dots-collector on one private bus (a simulated machine
of the household tests): owns org.dots.Collector1 as root, answers the
calls the policy daemon makes, and prints each call as one JSON line
({"member": ..., "body": [...]}) so that a test sees which rules a policy
daemon pushed to "its" collector. Enforces nothing.

Usage: collector_standin.py BUS_ADDRESS
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from dots_common import names

REPLIES = {
    "SetMonitoredUids": ("au", lambda body: [body[0]]),
    "StopMonitoring": ("", lambda body: []),
    "AckBatches": ("", lambda body: []),
    "ReplayBatches": ("u", lambda body: [0]),
    "SetBlockedExecutables": ("a(stts)a(ss)", lambda body: [[], []]),
    "SetAllowList": ("a(stts)a(ss)", lambda body: [[], []]),
    "SetBlockedAddresses": ("as", lambda body: [body[1]]),
    "KillUserProcesses": ("u", lambda body: [0]),
    "KillExecutable": ("u", lambda body: [0]),
}


async def main(address: str) -> None:
    bus = await MessageBus(bus_address=address).connect()
    instance = uuid.uuid4().hex[:12]

    def handle(msg: Message):
        if msg.message_type != MessageType.METHOD_CALL or msg.interface != names.COLLECTOR_INTERFACE:
            return None
        print(json.dumps({"member": msg.member, "body": msg.body}), flush=True)
        if msg.member == "GetStatus":
            return Message.new_method_return(msg, "a{sv}", [{
                "ready": Variant("b", True), "instance": Variant("s", instance),
                "lost": Variant("a{st}", {})}])
        if msg.member in REPLIES:
            signature, body = REPLIES[msg.member]
            return Message.new_method_return(msg, signature, body(msg.body))
        return Message.new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod", msg.member)

    bus.add_message_handler(handle)
    await bus.request_name(names.COLLECTOR_BUS_NAME)
    print(json.dumps({"ready": True}), flush=True)
    await bus.wait_for_disconnect()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
