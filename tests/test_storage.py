"""History storage on real SQLite and real PostgreSQL: exactly-once batch
ingest, atomicity, rollups, retention, reports, the audit log's
immutability (enforced by the database), and storage errors."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import peewee
import psycopg2
import pytest

from dots_policyd import history
from dots_policyd.db import StorageError, dialect, open_database
from dots_policyd.history import (
    AppUsage,
    DayUsage,
    SiteUsage,
    add_app_time,
    add_screen_time,
    app_usage,
    append_audit,
    audit_log,
    daily_usage,
    prune,
    recent_events,
    site_usage,
    store_batch,
)
from dots_policyd.migrations import migrate
from dots_policyd.schema import (
    RAW_MODELS,
    AppUsageDaily,
    AuditLog,
    IngestedBatch,
    ProcessRow,
)

from dots_common.records import DiskEvent, FileEvent, MemorySample, NetworkEvent, ProcessEvent, Record

CHILD, OTHER = 1001, 1002
#: boot clock -> Unix time: ts_ns 0 is 2023-11-14 22:13:20 UTC
OFFSET = 1_700_000_000 * 10**9
BOOT = dt.datetime(2023, 11, 14, 22, 13, 20)
DAY = BOOT.date()
UTC = dt.timezone.utc
SEC = 10**9


def exec_(uid: int, path: str, ts: int, type_: str = "exec") -> ProcessEvent:
    return ProcessEvent(type_, 4000 + ts // SEC, 1, uid, uid, Path(path).name[:15], path, 0, ts)


def net(uid: int, daddr: str, ts: int, type_: str = "bytes", sent: int = 0, received: int = 0) -> NetworkEvent:
    return NetworkEvent(type_, 77, uid, "firefox", 2, "192.168.1.9", daddr, 40000, 443, sent, received, ts)


SAMPLES: dict[str, list[Record]] = {
    "process": [exec_(CHILD, "/usr/bin/bash", 1 * SEC), exec_(CHILD, "", 2 * SEC, "exit")],
    "filesystem": [FileEvent("open", 5, CHILD, "cat", "/etc/hostname", 0o2000000, 3, 0, 3 * SEC),
                   FileEvent("rename", 5, CHILD, "mv", "/tmp/a", 0, 0, 0, 4 * SEC, new_path="/tmp/b"),
                   FileEvent("write", 5, CHILD, "dd", "/tmp/x", 0, 0, 2**40, 5 * SEC)],
    "network": [net(CHILD, "2001:db8::1", 6 * SEC, "connect"), net(CHILD, "93.184.216.34", 7 * SEC, "close", 10, 20)],
    "memory": [MemorySample(9, CHILD, "firefox", 2**33, 2**32, 4096 << 9, 4096, 700 * 2**20, 8 * SEC)],
    "disk": [DiskEvent(9, CHILD, "dd", (259 << 20) | 1, 2**40, 1 << 20, 2048, "W", 1_500_000, 9 * SEC)],
}


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's database lives: a new SQLite file or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "dots.db")
    return request.getfixturevalue("postgres_db_url")


@pytest.fixture
def db(target: str) -> Iterator[peewee.Database]:
    database = open_database(target)
    migrate(database)
    yield database
    database.close()


def count(model: type[peewee.Model]) -> int:
    return model.select().count()


# --- opening -------------------------------------------------------------------------

def test_sqlite_settings(tmp_path: Path):
    db = open_database(tmp_path / "dots.db")
    pragma = lambda name: db.execute_sql(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
    assert pragma("journal_mode") == "wal"
    assert pragma("foreign_keys") == 1
    assert pragma("synchronous") == 1  # NORMAL
    assert pragma("busy_timeout") == 5000
    db.close()


def test_postgresql_url_is_opened_with_a_lock_timeout(postgres_db_url: str):
    db = open_database(postgres_db_url, busy_timeout=2.5)
    assert dialect(db) == "postgresql"
    assert db.execute_sql("SHOW lock_timeout").fetchone()[0] == "2500ms"
    db.close()


# --- ingest --------------------------------------------------------------------------

@pytest.mark.parametrize("monitor", list(SAMPLES))
def test_batch_round_trips_with_utc_time(db: peewee.Database, monitor: str):
    records = SAMPLES[monitor]
    assert store_batch(db, monitor, f"{monitor}-1", records, OFFSET, tz=UTC) is True
    stored = recent_events(db, monitor, CHILD, limit=10)
    assert [s.record for s in stored] == list(reversed(records))
    assert [s.time for s in stored] == [BOOT + dt.timedelta(seconds=r.ts_ns // SEC) for r in reversed(records)]
    model = RAW_MODELS[monitor]
    assert {row.batch_id for row in model.select(model.batch_id)} == {f"{monitor}-1"}


def test_hostile_names_round_trip(db: peewee.Database):
    """A child names files and programs as it likes: tabs, newlines,
    backslashes, COPY's end marker, SQL quotes, text that is not UTF-8
    (escaped by the collector) must come back exactly (PostgreSQL takes
    them through COPY's text format)."""
    names = ["/tmp/a\tb", "/tmp/line\nbreak", "/tmp/back\\slash\\N", "\\.", "\\N",
             "/tmp/it's \"quoted\"; DROP TABLE file_event;--", "/tmp/\r\x1b[31mred",
             "/tmp/caf\u00e9 \U0001F600", "/tmp/\\xff\\xfe"]
    records = [FileEvent("open", 5, CHILD, name[-15:], name, 0, 3, 0, (i + 1) * SEC, new_path=name)
               for i, name in enumerate(names)]
    assert store_batch(db, "filesystem", "hostile", records, OFFSET, tz=UTC) is True
    stored = recent_events(db, "filesystem", CHILD, limit=100)
    assert [s.record for s in stored] == list(reversed(records))


def test_raw_tables_mirror_the_records():
    from dots_common.records import RECORD_TYPES

    from dots_common.records import BATCH_EXTRAS

    for monitor, model in RAW_MODELS.items():
        names = {f.name for f in dataclasses.fields(RECORD_TYPES[monitor])}
        names |= {name for name, _code in BATCH_EXTRAS.get(monitor, ())}
        assert names | {"id", "time", "batch_id"} == set(model._meta.fields), monitor


def test_redelivered_batch_is_stored_once(db: peewee.Database):
    records = [exec_(CHILD, "/usr/bin/bash", i * SEC) for i in range(5)]
    assert store_batch(db, "process", "b-1", records, OFFSET, tz=UTC) is True
    assert store_batch(db, "process", "b-1", records, OFFSET, tz=UTC) is False
    assert store_batch(db, "process", "b-1", records[:1], OFFSET, tz=UTC) is False
    assert count(ProcessRow) == 5 and count(IngestedBatch) == 1
    assert app_usage(db, CHILD, DAY, DAY) == [AppUsage("/usr/bin/bash", 0, 5)]


def test_concurrent_deliveries_of_one_batch_store_it_once(db: peewee.Database):
    records = [exec_(CHILD, "/usr/bin/bash", i * SEC) for i in range(2000)]
    barrier = threading.Barrier(4)
    results: list[bool] = []

    def deliver() -> None:
        barrier.wait()
        try:
            results.append(store_batch(db, "process", "same", records, OFFSET, tz=UTC))
        finally:
            db.close()  # this thread's connection

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert count(ProcessRow) == 2000
    assert app_usage(db, CHILD, DAY, DAY)[0].launches == 2000


def test_failed_batch_leaves_nothing_and_can_be_retried(db: peewee.Database):
    """A batch spanning several INSERT chunks whose last record cannot be
    stored: no row, no rollup and no batch id survive."""
    good = [exec_(CHILD, "/usr/bin/bash", i * SEC) for i in range(3000)]
    with pytest.raises(ValueError, match="batch p-1 holds a value the database cannot store"):
        store_batch(db, "process", "p-1", [*good, exec_(CHILD, "/x", 2**64)], OFFSET, tz=UTC)
    assert count(ProcessRow) == 0 and count(IngestedBatch) == 0 and count(AppUsageDaily) == 0
    assert store_batch(db, "process", "p-1", good, OFFSET, tz=UTC) is True
    assert count(ProcessRow) == 3000


def test_bad_batches_are_refused(db: peewee.Database):
    with pytest.raises(ValueError, match="unknown monitor 'keyboard'"):
        store_batch(db, "keyboard", "k", [], OFFSET)
    with pytest.raises(TypeError, match="a process batch may hold only ProcessEvent records"):
        store_batch(db, "process", "p", SAMPLES["disk"], OFFSET)
    with pytest.raises(ValueError, match="batch id must be 1 to 128 characters"):
        store_batch(db, "process", "", SAMPLES["process"], OFFSET)
    with pytest.raises(ValueError, match="batch id"):
        store_batch(db, "process", "x" * 1_000_000, SAMPLES["process"], OFFSET)
    assert count(IngestedBatch) == 0


def test_grouped_file_events_are_stored_as_one_row_with_their_count(db: peewee.Database):
    """The collector's FileEvents structs group identical events (count,
    last_ts_ns): stored as one row each, read back with both; the batch's
    event count is the sum of the counts."""
    from dots_policyd.history import store_rows

    open_ = ("open", 5, CHILD, "cat", "/etc/hostname", 0, 3, 0, 3 * SEC, "")
    read = ("read", 5, CHILD, "cat", "/etc/hostname", 0, 3, 4096 * 700, 4 * SEC, "")
    assert store_rows(db, "filesystem", "g-1", [(*open_, 700, 3 * SEC + 999), (*read, 1, 4 * SEC)],
                      OFFSET, tz=UTC)
    newest, oldest = recent_events(db, "filesystem", CHILD)
    assert (oldest.record, oldest.count, oldest.last_ts_ns) == (FileEvent(*open_), 700, 3 * SEC + 999)
    assert (newest.record, newest.count, newest.last_ts_ns) == (FileEvent(*read), 1, 4 * SEC)
    assert IngestedBatch.get(IngestedBatch.batch_id == "g-1").events == 701
    # a single event stored as a record counts once
    store_batch(db, "filesystem", "g-2", [FileEvent(*open_[:-2], 5 * SEC)], OFFSET, tz=UTC)
    assert (recent_events(db, "filesystem", CHILD)[0].count,
            recent_events(db, "filesystem", CHILD)[0].last_ts_ns) == (1, 5 * SEC)


@pytest.mark.parametrize("count_", [0, -1])
def test_a_group_of_no_events_is_refused(db: peewee.Database, count_: int):
    from dots_policyd.history import store_rows

    row = ("open", 5, CHILD, "cat", "/etc/hostname", 0, 3, 0, 3 * SEC, "", count_, 3 * SEC)
    with pytest.raises(ValueError, match="count below 1"):
        store_rows(db, "filesystem", "g-0", [row], OFFSET)
    assert count(IngestedBatch) == 0


def test_empty_batch_is_acknowledged_once(db: peewee.Database):
    assert store_batch(db, "memory", "m-0", [], OFFSET) is True
    assert store_batch(db, "memory", "m-0", [], OFFSET) is False


# --- rollups and reports ---------------------------------------------------------------

def test_process_execs_roll_up_into_app_launches(db: peewee.Database):
    hour = 3600 * SEC
    store_batch(db, "process", "p1", [
        exec_(CHILD, "/usr/bin/firefox", 1 * SEC),
        exec_(CHILD, "/usr/bin/firefox", 2 * SEC),
        exec_(CHILD, "/usr/bin/firefox", 3 * SEC, "exit"),  # not a launch
        exec_(CHILD, "/usr/bin/firefox", 3 * SEC, "exec_blocked"),  # not a launch
        exec_(CHILD, "/usr/games/supertux2", 2 * hour),  # 00:13 UTC the next day
        exec_(OTHER, "/usr/bin/firefox", 4 * SEC),
    ], OFFSET, tz=UTC)
    store_batch(db, "process", "p2", [exec_(CHILD, "/usr/bin/firefox", 5 * SEC)], OFFSET, tz=UTC)
    add_app_time(db, CHILD, DAY, "/usr/bin/firefox", 600)
    add_app_time(db, CHILD, DAY, "/usr/bin/firefox", 30)
    next_day = DAY + dt.timedelta(days=1)
    assert app_usage(db, CHILD, DAY, DAY) == [AppUsage("/usr/bin/firefox", 630, 3)]
    assert app_usage(db, CHILD, next_day, next_day) == [AppUsage("/usr/games/supertux2", 0, 1)]
    assert app_usage(db, CHILD, DAY, next_day) == [AppUsage("/usr/bin/firefox", 630, 3),
                                                   AppUsage("/usr/games/supertux2", 0, 1)]
    assert app_usage(db, OTHER, DAY, next_day) == [AppUsage("/usr/bin/firefox", 0, 1)]


def test_rollup_day_is_the_local_day(db: peewee.Database):
    """23:13 UTC is already the next day in UTC+2."""
    tz = dt.timezone(dt.timedelta(hours=2))
    store_batch(db, "process", "p", [exec_(CHILD, "/usr/bin/bash", 3600 * SEC)], OFFSET, tz=tz)
    assert app_usage(db, CHILD, DAY, DAY) == []
    assert app_usage(db, CHILD, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=1))[0].launches == 1


def test_network_events_roll_up_per_site(db: peewee.Database):
    store_batch(db, "network", "n1", [
        net(CHILD, "93.184.216.34", 1 * SEC, "connect"),
        net(CHILD, "93.184.216.34", 2 * SEC, "bytes", 100, 5000),
        net(CHILD, "2001:db8::1", 3 * SEC, "connect"),
        net(CHILD, "2001:db8::1", 4 * SEC, "connect_blocked"),
    ], OFFSET, tz=UTC)
    store_batch(db, "network", "n2", [
        net(CHILD, "93.184.216.34", 5 * SEC, "close", 20, 1000),
        net(CHILD, "93.184.216.34", 6 * SEC, "connect"),
        net(OTHER, "93.184.216.34", 7 * SEC, "bytes", 1, 1),
        # a short connection: its connect and close in one event
        net(CHILD, "93.184.216.34", 8 * SEC, "connect_close", 300, 4000),
        net(CHILD, "93.184.216.34", 9 * SEC, "accept_close", 5, 5),
    ], OFFSET, tz=UTC)
    assert site_usage(db, CHILD, DAY, DAY) == [SiteUsage("93.184.216.34", 425, 10005, 3),
                                               SiteUsage("2001:db8::1", 0, 0, 1)]
    assert site_usage(db, OTHER, DAY, DAY) == [SiteUsage("93.184.216.34", 1, 1, 0)]


def test_daily_usage_covers_every_day_of_the_period(db: peewee.Database):
    add_screen_time(db, CHILD, DAY, used_seconds=1800)
    add_screen_time(db, CHILD, DAY, used_seconds=600, granted_seconds=900)
    add_screen_time(db, CHILD, DAY + dt.timedelta(days=2), used_seconds=60)
    add_screen_time(db, OTHER, DAY, used_seconds=99)
    assert daily_usage(db, CHILD, DAY - dt.timedelta(days=1), DAY + dt.timedelta(days=2)) == [
        DayUsage(DAY - dt.timedelta(days=1), 0, 0),
        DayUsage(DAY, 2400, 900),
        DayUsage(DAY + dt.timedelta(days=1), 0, 0),
        DayUsage(DAY + dt.timedelta(days=2), 60, 0),
    ]


def test_report_arguments_are_checked(db: peewee.Database):
    with pytest.raises(ValueError, match="ends before it starts"):
        app_usage(db, CHILD, DAY, DAY - dt.timedelta(days=1))
    with pytest.raises(ValueError, match="longer than"):
        daily_usage(db, CHILD, DAY, DAY + dt.timedelta(days=100_000))
    with pytest.raises(ValueError, match="limit must be 1 to 10000"):
        recent_events(db, "process", CHILD, limit=0)
    with pytest.raises(ValueError, match="unknown monitor"):
        recent_events(db, "keyboard", CHILD)


def test_recent_events_newest_first_for_one_child(db: peewee.Database):
    store_batch(db, "process", "p", [exec_(uid, "/bin/true", i * SEC) for i in range(10)
                                     for uid in (CHILD, OTHER)], OFFSET)
    latest = recent_events(db, "process", CHILD, limit=3)
    assert [e.record.ts_ns for e in latest] == [9 * SEC, 8 * SEC, 7 * SEC]
    assert {e.record.uid for e in latest} == {CHILD}


# --- retention ---------------------------------------------------------------------

def test_prune_removes_old_raw_events_and_keeps_rollups(db: peewee.Database, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(history, "PRUNE_CHUNK", 7)  # several delete rounds
    day_ns = 86400 * SEC
    old = [exec_(CHILD, "/usr/bin/old", i * SEC) for i in range(20)]
    new = [exec_(CHILD, "/usr/bin/new", 40 * day_ns + i * SEC) for i in range(5)]
    store_batch(db, "process", "old", old, OFFSET, tz=UTC)
    store_batch(db, "process", "new", new, OFFSET, tz=UTC)
    store_batch(db, "network", "net-old", [net(CHILD, "192.0.2.1", 1 * SEC, "connect")], OFFSET, tz=UTC)
    add_screen_time(db, CHILD, DAY, used_seconds=3600)
    append_audit(db, 0, "set_policy", "child 1001", None, "{}")
    now = BOOT + dt.timedelta(days=45)

    deleted = prune(db, retention_days=30, now=now)

    assert deleted["process_event"] == 20 and deleted["network_event"] == 1
    assert [e.record.path for e in recent_events(db, "process", CHILD, limit=100)] == ["/usr/bin/new"] * 5
    assert recent_events(db, "network", CHILD) == []
    # rollups, screen time and the audit log stay
    assert {u.app: u.launches for u in app_usage(db, CHILD, DAY, DAY + dt.timedelta(days=40))} == {
        "/usr/bin/old": 20, "/usr/bin/new": 5}
    assert site_usage(db, CHILD, DAY, DAY) == [SiteUsage("192.0.2.1", 0, 0, 1)]
    assert daily_usage(db, CHILD, DAY, DAY) == [DayUsage(DAY, 3600, 0)]
    assert count(AuditLog) == 1
    # batch ids are kept as long as the events (they were stored just now)
    assert count(IngestedBatch) == 3
    assert prune(db, retention_days=30, now=now)["process_event"] == 0


def test_prune_forgets_old_batch_ids(db: peewee.Database):
    store_batch(db, "disk", "d-1", SAMPLES["disk"], OFFSET)
    later = dt.datetime.now(UTC) + dt.timedelta(days=31)
    assert prune(db, retention_days=30, now=later)["ingested_batch"] == 1
    with pytest.raises(ValueError, match="retention_days"):
        prune(db, retention_days=-1)


# --- audit log -----------------------------------------------------------------------

def test_audit_entries_are_read_newest_first(db: peewee.Database):
    first = append_audit(db, 1000, "add_child", "uid 1001", None, '{"name": "kid"}')
    second = append_audit(db, 1003, "set_daily_limit", "uid 1001", "60", "90")
    entries = audit_log(db)
    assert [e.id for e in entries] == [second, first]
    assert (entries[0].actor_uid, entries[0].action, entries[0].old_value, entries[0].new_value) == (
        1003, "set_daily_limit", "60", "90")
    assert [e.id for e in audit_log(db, actor_uid=1000)] == [first]
    assert audit_log(db, since=entries[0].time + dt.timedelta(seconds=1)) == []
    assert [e.id for e in audit_log(db, limit=1)] == [second]


def test_database_refuses_to_change_the_audit_log(db: peewee.Database):
    append_audit(db, 1000, "set_policy", "uid 1001", "{}", '{"daily_limit_minutes": 60}')
    before = audit_log(db)
    statements = ["UPDATE audit_log SET action = 'forged'",
                  "UPDATE audit_log SET new_value = NULL WHERE id = 1",
                  "DELETE FROM audit_log",
                  "DELETE FROM audit_log WHERE id = 1"]
    if dialect(db) == "postgresql":
        statements.append("TRUNCATE audit_log")
    for statement in statements:
        with pytest.raises(peewee.DatabaseError, match="audit_log is append-only"):
            with db.atomic():
                db.execute_sql(statement)
    with pytest.raises(peewee.DatabaseError, match="append-only"):
        AuditLog.update(actor_uid=0).execute()
    with pytest.raises(peewee.DatabaseError, match="append-only"):
        AuditLog.delete().execute()
    assert audit_log(db) == before


# --- storage errors ---------------------------------------------------------------

def test_garbage_file_is_a_storage_error(tmp_path: Path):
    path = tmp_path / "dots.db"
    path.write_bytes(b"this is not an SQLite database, just text. " * 200)
    with pytest.raises(StorageError, match=r"cannot open database .*dots.db: file is not a database"):
        open_database(path)


def test_corrupted_database_is_a_storage_error(tmp_path: Path):
    path = tmp_path / "dots.db"
    db = open_database(path)
    migrate(db)
    store_batch(db, "process", "p", [exec_(CHILD, "/usr/bin/" + "x" * 200, i) for i in range(3000)], OFFSET)
    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    with open(path, "r+b") as f:  # keep the 100-byte header, overwrite the pages after it
        f.seek(100)
        f.write(bytes(range(256)) * ((os.path.getsize(path) - 100) // 256))
    with pytest.raises(StorageError, match="malformed|not a database") as info:
        db = open_database(path)
        migrate(db)
        recent_events(db, "process", CHILD)
    assert "corrupt" in str(info.value)


def test_sqlite_locked_beyond_the_busy_timeout_is_a_storage_error(tmp_path: Path):
    path = tmp_path / "dots.db"
    migrate(open_database(path))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        db = open_database(path, busy_timeout=0.2)
        with pytest.raises(StorageError, match="cannot store a batch: database is locked"):
            store_batch(db, "process", "p", SAMPLES["process"], OFFSET)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store_batch(db, "process", "p", SAMPLES["process"], OFFSET) is True
    db.close()


def test_postgresql_lock_beyond_the_timeout_is_a_storage_error(postgres_db_url: str):
    migrate(open_database(postgres_db_url))
    holder = psycopg2.connect(postgres_db_url)  # libpq takes the same URL
    cursor = holder.cursor()
    cursor.execute("LOCK TABLE ingested_batch IN ACCESS EXCLUSIVE MODE")
    try:
        db = open_database(postgres_db_url, busy_timeout=0.2)
        with pytest.raises(StorageError, match="cannot store a batch: .*lock timeout"):
            store_batch(db, "process", "p", SAMPLES["process"], OFFSET)
    finally:
        holder.rollback()
        holder.close()
    assert store_batch(db, "process", "p", SAMPLES["process"], OFFSET) is True
    db.close()


def test_unreachable_server_and_bad_urls_are_storage_errors(tmp_path: Path):
    with pytest.raises(StorageError, match="cannot open database postgresql://dots:\\*\\*\\*@/dots"):
        open_database(f"postgresql://dots:secret@/dots?host={tmp_path}")
    with pytest.raises(StorageError, match="unsupported database URL scheme 'mongodb'"):
        open_database("mongodb://localhost/dots")
    with pytest.raises(StorageError, match="unable to open database file"):
        open_database(tmp_path / "missing-dir" / "dots.db")
