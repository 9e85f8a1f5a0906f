"""This machine's screen-time intervals, kept in its local database first.

Every span the screen-time engine counts is written here (one committed
row per span, consecutive spans merged) before anything is sent to the
household, so a lost network or a killed daemon loses nothing. A row's
``uploaded_end`` is the end the household database has acknowledged; rows
where it differs from ``end_at`` are what reconciliation sends. The
upload is an upsert keyed by (machine, row id) that never shrinks an
interval, so sending a row twice counts it once.
"""

from __future__ import annotations

import peewee

from ..db import storage_errors

#: a span starting within this many seconds of the previous end extends it
MERGE_GAP = 1.0
#: rows are cut at this length so that an upsert stays small
MAX_ROW_SECONDS = 3600.0

Row = tuple[int, str, float, float]  # id, member, start, end (Unix seconds)


class Journal:
    def __init__(self, db: peewee.Database) -> None:
        self.db = db
        self._last: dict[str, tuple[int, float, float]] = {}  # member -> (id, start, end)

    def _sql(self, text: str, params: tuple = ()) -> peewee.Any:
        return self.db.execute_sql(text.replace("?", self.db.param), params)

    @storage_errors("cannot journal screen time")
    def add(self, member: str, start: float, end: float) -> None:
        """Record that ``member`` used this machine from ``start`` to ``end``."""
        if end <= start:
            return
        last = self._last.get(member)
        with self.db.atomic():
            if last is None:
                row = self._sql("SELECT id, start_at, end_at FROM household_interval WHERE member = ? "
                                "ORDER BY id DESC LIMIT 1", (member,)).fetchone()
                last = (int(row[0]), float(row[1]), float(row[2])) if row else None
            if (last is not None and last[2] - MERGE_GAP <= start <= last[2] + MERGE_GAP
                    and end - last[1] <= MAX_ROW_SECONDS):
                new_end = max(end, last[2])
                self._sql("UPDATE household_interval SET end_at = ? WHERE id = ?", (new_end, last[0]))
                self._last[member] = (last[0], last[1], new_end)
                return
            cursor = self._sql("INSERT INTO household_interval (member, start_at, end_at) VALUES (?, ?, ?)",
                               (member, start, end))
            row_id = cursor.lastrowid if self.db.param == "?" else None
            if row_id is None:
                row_id = self._sql("SELECT max(id) FROM household_interval WHERE member = ?",
                                   (member,)).fetchone()[0]
            self._last[member] = (int(row_id), start, end)

    @storage_errors("cannot read the screen-time journal")
    def intervals(self, member: str, low: float, high: float) -> list[tuple[float, float]]:
        rows = self._sql("SELECT start_at, end_at FROM household_interval "
                         "WHERE member = ? AND end_at > ? AND start_at < ?", (member, low, high))
        return [(float(a), float(b)) for a, b in rows.fetchall()]

    @storage_errors("cannot read the screen-time journal")
    def pending(self, limit: int = 5000) -> list[Row]:
        rows = self._sql("SELECT id, member, start_at, end_at FROM household_interval "
                         "WHERE uploaded_end <> end_at ORDER BY id LIMIT ?", (limit,))
        return [(int(i), m, float(a), float(b)) for i, m, a, b in rows.fetchall()]

    @storage_errors("cannot update the screen-time journal")
    def acknowledge(self, rows: list[Row]) -> None:
        """The household now holds these rows up to the end they had when sent."""
        with self.db.atomic():
            for row_id, _member, _start, end in rows:
                self._sql("UPDATE household_interval SET uploaded_end = ? WHERE id = ?", (end, row_id))

    @storage_errors("cannot prune the screen-time journal")
    def prune(self, before: float) -> None:
        """Forget intervals that ended before ``before`` and that the household holds."""
        with self.db.atomic():
            self._sql("DELETE FROM household_interval WHERE end_at < ? AND uploaded_end = end_at", (before,))

    @storage_errors("cannot read the screen-time journal")
    def count_pending(self) -> int:
        return int(self._sql("SELECT count(*) FROM household_interval "
                             "WHERE uploaded_end <> end_at").fetchone()[0])

    @storage_errors("cannot read the household state")
    def get_state(self, key: str) -> str | None:
        row = self._sql("SELECT value FROM household_state WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    @storage_errors("cannot write the household state")
    def set_state(self, key: str, value: str | None) -> None:
        with self.db.atomic():
            self._sql("DELETE FROM household_state WHERE key = ?", (key,))
            if value is not None:
                self._sql("INSERT INTO household_state (key, value) VALUES (?, ?)", (key, value))
