"""Schema versions and forward migrations, on SQLite files and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import peewee
import pytest

from dots_policyd import migrations
from dots_policyd.db import StorageError, open_database
from dots_policyd.history import audit_log, daily_usage, recent_events, store_batch
from dots_policyd.migrations import LATEST, migrate, schema_version
from dots_policyd.schema import ALL_MODELS, SchemaVersion

from dots_common.records import FileEvent

CHILD = 1001
DAY = dt.date(2024, 3, 1)


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "dots.db")
    return request.getfixturevalue("postgres_db_url")


@pytest.fixture
def db(target: str) -> Iterator[peewee.Database]:
    database = open_database(target)
    yield database
    database.close()


def columns(db: peewee.Database, table: str) -> set[str]:
    return {c.name for c in db.get_columns(table)}


def run(db: peewee.Database, sql: str, *params: object) -> None:
    db.execute_sql(sql.replace("?", db.param), params)


def test_new_database_gets_the_latest_schema_matching_the_models(db: peewee.Database):
    assert schema_version(db) == 0
    from dots_policyd.site_history import SiteLookupRow

    assert migrate(db) == LATEST == 6
    for model in (*ALL_MODELS, SiteLookupRow):
        table = model._meta.table_name
        assert columns(db, table) == {f.column_name for f in model._meta.sorted_fields}, table
        wanted = {tuple(f.column_name for f in index._expressions) for index in model._meta.fields_to_index()}
        have = {tuple(i.columns) for i in db.get_indexes(table)}
        assert wanted <= have, table
    assert [v.version for v in SchemaVersion.select().order_by(SchemaVersion.version)] == list(range(1, LATEST + 1))


def test_migrate_is_idempotent(db: peewee.Database):
    migrate(db)
    assert migrate(db) == LATEST
    assert SchemaVersion.select().count() == LATEST


def test_upgrade_from_a_version_1_database(target: str):
    # a database as the first release created it, with data in it
    old = open_database(target)
    assert migrate(old, target=1) == 1
    assert "new_path" not in columns(old, "file_event")
    assert "seconds_granted" not in columns(old, "screen_time_daily")
    tables_v1 = set(old.get_tables())
    run(old, "INSERT INTO child (uid, name, policy, created) VALUES (?, ?, ?, ?)",
        CHILD, "kid", '{"daily_limit_minutes": 60}', dt.datetime(2024, 3, 1, 8))
    run(old, "INSERT INTO file_event (uid, ts_ns, time, batch_id, type, pid, comm, path, flags, result, bytes) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        CHILD, 5, dt.datetime(2024, 3, 1, 9), "v1-batch", "open", 42, "cat", "/etc/hostname", 0, 3, 0)
    run(old, "INSERT INTO screen_time_daily (uid, day, seconds_used) VALUES (?, ?, ?)", CHILD, DAY, 1800)
    run(old, "INSERT INTO audit_log (time, actor_uid, action, target) VALUES (?, ?, ?, ?)",
        dt.datetime(2024, 3, 1, 8), 0, "add_child", "uid 1001")
    old.close()

    # the current program opens it
    db = open_database(target)
    assert schema_version(db) == 1
    assert migrate(db) == LATEST
    assert set(db.get_tables()) >= tables_v1, "no table may be dropped"
    assert {"new_path"} <= columns(db, "file_event")
    assert {"seconds_granted"} <= columns(db, "screen_time_daily")
    # old data survived, new columns have their defaults
    assert db.execute_sql("SELECT name, policy FROM child").fetchall() == [("kid", '{"daily_limit_minutes": 60}')]
    [old_event] = recent_events(db, "filesystem", CHILD)
    assert old_event.record == FileEvent("open", 42, CHILD, "cat", "/etc/hostname", 0, 3, 0, 5, new_path="")
    assert old_event.time == dt.datetime(2024, 3, 1, 9)
    assert (old_event.count, old_event.last_ts_ns) == (1, 5), "a row from before stands for one event"
    assert daily_usage(db, CHILD, DAY, DAY)[0].seconds_granted == 0
    assert daily_usage(db, CHILD, DAY, DAY)[0].seconds_used == 1800
    assert [e.action for e in audit_log(db)] == ["add_child"]
    # the new column is usable, and the audit triggers of version 1 still hold
    renamed = FileEvent("rename", 43, CHILD, "mv", "/tmp/a", 0, 0, 0, 6, new_path="/tmp/b")
    ten_o_clock = int(dt.datetime(2024, 3, 1, 10, tzinfo=dt.timezone.utc).timestamp()) * 10**9
    assert store_batch(db, "filesystem", "v2-batch", [renamed], ten_o_clock)
    assert [e.record for e in recent_events(db, "filesystem", CHILD)] == [renamed, old_event.record]
    with pytest.raises(peewee.DatabaseError, match="append-only"):
        db.execute_sql("DELETE FROM audit_log")
    db.close()


def test_failed_step_leaves_the_previous_version(db: peewee.Database, monkeypatch: pytest.MonkeyPatch):
    migrate(db, target=1)

    def broken(database: peewee.Database, migrator: object) -> None:
        database.execute_sql("ALTER TABLE child ADD COLUMN half_done INTEGER")
        raise peewee.ProgrammingError("step 2 failed half-way")

    monkeypatch.setitem(migrations.MIGRATIONS, 2, broken)
    with pytest.raises(peewee.ProgrammingError, match="half-way"):
        migrate(db)
    assert schema_version(db) == 1
    assert "half_done" not in columns(db, "child"), "the step's DDL was rolled back"
    monkeypatch.undo()
    assert migrate(db) == LATEST


def test_database_newer_than_the_program_is_refused(db: peewee.Database):
    migrate(db)
    SchemaVersion.create(version=LATEST + 1)
    tables = set(db.get_tables())
    with pytest.raises(StorageError, match=f"schema version {LATEST + 1}, newer than this program's {LATEST}"):
        migrate(db)
    assert set(db.get_tables()) == tables


def test_unknown_target_version(db: peewee.Database):
    with pytest.raises(ValueError, match=f"schema version {LATEST + 1} does not exist"):
        migrate(db, target=LATEST + 1)
    with pytest.raises(ValueError, match="schema version 0 does not exist"):
        migrate(db, target=0)


def test_concurrent_starts_migrate_once(db: peewee.Database):
    barrier = threading.Barrier(3)
    versions: list[int] = []

    def start() -> None:
        barrier.wait()
        try:
            versions.append(migrate(db))
        finally:
            db.close()

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert versions == [LATEST] * 3
    assert [v.version for v in SchemaVersion.select().order_by(SchemaVersion.version)] == list(range(1, LATEST + 1))
