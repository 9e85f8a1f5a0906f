"""Send forged signals as whoever runs it (a child, another user):

    forge_signal.py JSON
        JSON: a list of {"destination": D or "", "path": P, "interface": I,
        "member": M, "signature": S, "body": [...]}; prints {"sent": n}.
The bus stamps the real sender; that is what the receiver must check."""

import asyncio
import json
import sys

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus


async def main(spec: str) -> None:
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    sent = 0
    for s in json.loads(spec):
        bus.send(Message(message_type=MessageType.SIGNAL, destination=s.get("destination") or None,
                         path=s["path"], interface=s["interface"], member=s["member"],
                         signature=s["signature"], body=s["body"]))
        sent += 1
    # a round trip: everything sent before it has left
    await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                           interface="org.freedesktop.DBus", member="GetId"))
    print(json.dumps({"sent": sent}), flush=True)
    bus.disconnect()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
