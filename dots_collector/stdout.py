"""The ``--stdout`` sink: one flat JSON object per event, one per line.

Rows (tuples in a record's field order) are rendered through one
%-template per record type, derived from the record's fields: the same
text as ``json.dumps(record.to_json(), separators=(",", ":"))`` at a
fifth of its cost (no dict, no encoder object per line).
"""

from __future__ import annotations

import json
import sys
from json.encoder import encode_basestring_ascii
from typing import TextIO

from dots_common.records import RECORD_TYPES, Record, field_names


def line_template(cls: type[Record]) -> tuple[str, tuple[bool, ...]]:
    """('{"monitor":"…","a":%s,"b":%d…}\\n', which fields are text)."""
    hints = [cls.__dataclass_fields__[n].type for n in field_names(cls)]
    texts = tuple(h in (str, "str") for h in hints)
    parts = [f'"monitor":{json.dumps(cls.MONITOR)}']
    parts += [f"{json.dumps(n)}:{'%s' if t else '%d'}" for n, t in zip(field_names(cls), texts)]
    return "{" + ",".join(parts) + "}\n", texts


def line_renderer(cls: type[Record]):
    """row -> JSON line of a record type."""
    template, texts = line_template(cls)
    text_at = [i for i, t in enumerate(texts) if t]

    def render(row: tuple) -> str:
        values = list(row)
        for i in text_at:
            values[i] = encode_basestring_ascii(values[i])
        return template % tuple(values)

    return render


RENDERERS = {monitor: line_renderer(cls) for monitor, cls in RECORD_TYPES.items()}


class JsonLinesSink:
    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out

    def publish(self, monitor: str, batch_id: int, rows: list[tuple]) -> None:
        render = RENDERERS[monitor]
        self.out.write("".join([render(row) for row in rows]))
        self.out.flush()

    def lost(self, monitor: str, total: int) -> None:
        self.out.write(json.dumps({"monitor": monitor, "type": "lost", "lost": total}) + "\n")
        self.out.flush()
