"""A small D-Bus client the tests run as other users (dots-policyd, a child,
a stranger) to see the bus exactly as those users do.

    bus_client.py call DEST PATH IFACE MEMBER SIGNATURE JSON_ARGS
        prints {"ok": result} or {"error": name, "message": text}
    bus_client.py listen SENDER IFACE
        prints "ready", then one JSON line per signal from SENDER, until the
        test's marker signal (interface org.dots.Test, member Marker) arrives,
        then a final {"done": true} line.

Signals that pass the bus policy are printed; the marker proves the client
was listening all along (the bus delivers to one client in order).
"""

import asyncio
import json
import sys

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

from dots_cli.client import plain
from dots_common.packed import unpack_file_structs

MARKER_IFACE = "org.dots.Test"


async def call(dest, path, iface, member, signature, args_json):
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    reply = await bus.call(Message(destination=dest, path=path, interface=iface, member=member,
                                   signature=signature, body=json.loads(args_json)))
    if reply.message_type == MessageType.ERROR:
        print(json.dumps({"error": reply.error_name, "message": (reply.body or [""])[0]}))
    else:
        print(json.dumps({"ok": plain(reply.body)}))
    bus.disconnect()


async def listen(sender, iface):
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    done = asyncio.Event()

    def on_message(msg):
        if msg.message_type != MessageType.SIGNAL:
            return
        if msg.interface == MARKER_IFACE:
            done.set()
        elif msg.interface == iface:
            body = msg.body
            if msg.member == "FileEvents" and msg.signature == "tay":
                # packed structs (dots_common/packed.py): shown as the structs
                body = [body[0], unpack_file_structs(body[1])]
            print(json.dumps({"member": msg.member, "signature": msg.signature,
                              "body": plain(body)}), flush=True)

    bus.add_message_handler(on_message)
    for rule in (f"type='signal',sender='{sender}',interface='{iface}'",
                 f"type='signal',interface='{MARKER_IFACE}'"):
        await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                               interface="org.freedesktop.DBus", member="AddMatch",
                               signature="s", body=[rule]))
    print("ready", flush=True)
    await done.wait()
    print(json.dumps({"done": True}), flush=True)
    bus.disconnect()


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    asyncio.run({"call": call, "listen": listen}[command](*rest))
