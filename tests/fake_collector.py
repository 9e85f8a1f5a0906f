"""A stand-in for dots-collector on the private bus (run as root, or as
another user to see it refused): owns org.dots.Collector1, answers the
policy daemon's calls, and emits the batch signals the test asks for.

    fake_collector.py INSTANCE
        prints {"ready": unique_name}, then one JSON line per call received
        ({"call": member, "args": [...]}); reads JSON lines on stdin:
        {"member": M, "signature": S, "body": [...]} -> emits that signal.
"""

import asyncio
import json
import sys

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from dots_common import names


def status(instance: str) -> dict:
    return {"ready": Variant("b", True), "instance": Variant("s", instance),
            "lost": Variant("a{st}", {"process": 0}), "uids": Variant("au", []),
            "monitors": Variant("as", ["process"])}


REPLIES = {"GetStatus": "a{sv}", "SetMonitoredUids": "au", "StopMonitoring": "",
           "AckBatches": "", "ReplayBatches": "u", "SetBlockedExecutables": "a(stts)a(ss)",
           "SetAllowList": "a(stts)a(ss)", "SetBlockedAddresses": "as",
           "KillUserProcesses": "u", "KillExecutable": "u"}


async def main(instance: str) -> None:
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()

    def handler(msg: Message):
        if msg.message_type != MessageType.METHOD_CALL or msg.interface != names.COLLECTOR_INTERFACE:
            return None
        print(json.dumps({"call": msg.member, "args": msg.body}), flush=True)
        signature = REPLIES.get(msg.member)
        if signature is None:
            return Message.new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod", msg.member)
        body = {"GetStatus": [status(instance)], "SetMonitoredUids": [[]], "ReplayBatches": [0],
                "SetBlockedExecutables": [[], []], "SetAllowList": [[], []],
                "SetBlockedAddresses": [[]], "KillUserProcesses": [0],
                "KillExecutable": [0]}.get(msg.member, [])
        return Message.new_method_return(msg, signature, body)

    bus.add_message_handler(handler)
    await bus.request_name(names.COLLECTOR_BUS_NAME)
    print(json.dumps({"ready": bus.unique_name}), flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        cmd = json.loads(line)
        # {"hex": "..."} in a body: bytes (an "ay", e.g. packed FileEvents)
        body = [bytes.fromhex(v["hex"]) if isinstance(v, dict) and "hex" in v else v
                for v in cmd["body"]]
        bus.send(Message.new_signal(names.COLLECTOR_PATH, names.COLLECTOR_INTERFACE, cmd["member"],
                                    cmd["signature"], body))
        await bus.call(Message(destination=names.DBUS_BUS_NAME, path=names.DBUS_PATH,
                               interface=names.DBUS_INTERFACE, member="GetId"))  # flushed
        print(json.dumps({"sent": cmd["member"]}), flush=True)
    bus.disconnect()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
