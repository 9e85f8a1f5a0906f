"""The ``--stdout`` sink: one flat JSON object per event, one per line."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from dots_common.records import Record



class JsonLinesSink:
    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out

    def publish(self, monitor: str, batch_id: int, records: list[Record]) -> None:
        write = self.out.write
        for record in records:
            write(json.dumps(record.to_json(), separators=(",", ":")) + "\n")
        self.out.flush()

    def lost(self, monitor: str, total: int) -> None:
        self.out.write(json.dumps({"monitor": monitor, "type": "lost", "lost": total}) + "\n")
        self.out.flush()
