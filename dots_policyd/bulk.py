"""Bulk insert of raw events on each driver's fast path, for the history's
ingest (history.store_rows). peewee's insert_many builds SQL text in
Python for every value (27 µs an event); here SQLite gets executemany on
one prepared statement and PostgreSQL gets COPY. No models: a table name,
its columns and the rows."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from typing import Any

import peewee

from .db import dialect

EPOCH = dt.datetime(1970, 1, 1)


class TimeText:
    """Naive-UTC time of a Unix microsecond count as the text both drivers
    store for a datetime (``str(datetime)``: "YYYY-MM-DD HH:MM:SS[.ffffff]"),
    the date and time of day built once per second: a batch's events fall
    in a few seconds, and a datetime object per event costs more than its
    row's insert."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, us: int) -> str:
        second, frac = divmod(us, 1_000_000)
        if second != self._second:
            self._second = second
            self._prefix = str(EPOCH + dt.timedelta(seconds=second))
        return f"{self._prefix}.{frac:06d}" if frac else self._prefix


def insert_rows(db: peewee.Database, table: str, columns: Sequence[str],
                rows: list[tuple[Any, ...]]) -> None:
    """Bulk insert on the driver's fast path (peewee's insert_many builds
    SQL text in Python per value: 27 µs an event): SQLite's executemany on
    one prepared statement, PostgreSQL's COPY. Driver errors are peewee's
    (peewee.__exception_wrapper__), as through peewee."""
    cursor = db.cursor()
    with peewee.__exception_wrapper__:
        if dialect(db) == "sqlite":
            marks = ",".join("?" * len(columns))
            cursor.executemany(f'INSERT INTO "{table}" ({",".join(columns)}) '
                               f"VALUES ({marks})", rows)
        else:
            cursor.copy_expert(f'COPY "{table}" ({",".join(columns)}) FROM STDIN',
                               io.StringIO("".join(map(_copy_line, rows))))


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r",
                               "\0": ""})


def _copy_line(row: Sequence[Any]) -> str:
    """One row in COPY's text format (NUL, which PostgreSQL text cannot
    hold, is dropped, as the driver would refuse it)."""
    out = []
    for v in row:
        if isinstance(v, str):
            out.append(v.translate(_COPY_ESCAPES))
        elif isinstance(v, bool) or not isinstance(v, (int, dt.datetime)):
            raise TypeError(f"cannot store {v!r} in a raw event table")
        elif isinstance(v, int):
            out.append(str(v))
        else:
            out.append(v.isoformat(" "))
    return "\t".join(out) + "\n"
