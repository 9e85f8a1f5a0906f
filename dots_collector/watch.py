"""``python -m dots_collector.watch``: print the collector's signals as JSON
lines (the same lines as ``dots-collector --stdout``). A debugging client:
only root and dots-policyd may receive the collector's signals. A grouped
struct (FileEvents: identical events with their count) prints as one
line with "count" and "last_ts_ns" added."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

from dots_common import names
from dots_common.packed import unpack_file_structs
from dots_common.records import RECORD_TYPES, SIGNAL_NAMES, batch_field_names, field_names


MONITOR_OF_SIGNAL = {sig: mon for mon, sig in SIGNAL_NAMES.items()}


async def watch() -> None:
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def on_message(msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL or msg.interface != names.COLLECTOR_INTERFACE:
            return
        if msg.member == "EventsLost":
            print(json.dumps({"monitor": msg.body[0], "type": "lost", "lost": msg.body[1]}))
        elif msg.member in MONITOR_OF_SIGNAL:
            monitor = MONITOR_OF_SIGNAL[msg.member]
            cls = RECORD_TYPES[monitor]
            width = len(field_names(cls))
            extras = batch_field_names(monitor)[width:]
            structs = msg.body[1]
            if msg.member == "FileEvents":  # packed (dots_common/packed.py)
                structs = unpack_file_structs(structs)
            for values in structs:
                line = cls.from_dbus(values[:width]).to_json()
                line.update(zip(extras, values[width:]))
                print(json.dumps(line, separators=(",", ":")))
        sys.stdout.flush()

    bus.add_message_handler(on_message)
    await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                           interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                           body=[f"type='signal',interface='{names.COLLECTOR_INTERFACE}'"]))
    await stop.wait()
    bus.disconnect()


if __name__ == "__main__":
    asyncio.run(watch())
