"""Make a list of D-Bus method calls over ONE system-bus connection, as
whoever runs this (the tests run it as real users with setpriv).

    family_calls.py [--repeat N] [--concurrent]  < JSON list of
        {"dest", "path", "iface", "member", "signature", "args"}

prints {"results": [{"ok": body} | {"error": name, "message": text}, ...],
"elapsed_s": wall time of all calls, "call_ms": [each call's round trip]}.
With --repeat the list is made N times; with --concurrent every call is in
flight at once (results keep the input order).
"""

import argparse
import asyncio
import json
import sys
import time

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.signature import get_signature_tree

from dots_cli.client import plain


def _body(signature, args):
    """JSON has no bytes: an "ay" argument given as a list of ints is sent as bytes."""
    types = get_signature_tree(signature).types
    return [bytes(a) if t.signature == "ay" and isinstance(a, list) else a for t, a in zip(types, args)]


async def one(bus, request):
    started = time.monotonic()
    reply = await bus.call(Message(destination=request["dest"], path=request["path"],
                                   interface=request["iface"], member=request["member"],
                                   signature=request["signature"],
                                   body=_body(request["signature"], request["args"])))
    ms = (time.monotonic() - started) * 1000
    if reply.message_type == MessageType.ERROR:
        return {"error": reply.error_name, "message": (reply.body or [""])[0]}, ms
    return {"ok": plain(reply.body)}, ms


async def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--concurrent", action="store_true")
    args = parser.parse_args(argv)
    requests = json.load(sys.stdin) * args.repeat
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    started = time.monotonic()
    if args.concurrent:
        answers = await asyncio.gather(*(one(bus, r) for r in requests))
    else:
        answers = [await one(bus, r) for r in requests]
    elapsed = time.monotonic() - started
    bus.disconnect()
    print(json.dumps({"results": [a for a, _ in answers], "elapsed_s": elapsed,
                      "call_ms": [ms for _, ms in answers]}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
