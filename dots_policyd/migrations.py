"""Schema versions and forward migrations (``playhouse.migrate``).

Every database, new or old, is built by running the migrations in order,
so a new database and an upgraded one cannot differ. Migration 1 declares
its tables as a frozen copy of the first schema on purpose: a migration
is history and must not change when :mod:`dots_policyd.schema` does.
Migrations only add; no table is ever dropped.

Each step runs in its own transaction together with its ``schema_version``
row, under a lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an advisory
lock), so two daemons starting against one database do not race.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import peewee
from peewee import BigIntegerField, Check, DateField, DateTimeField, IntegerField, TextField
from playhouse.migrate import SchemaMigrator

from .db import StorageError, bind, dialect, storage_errors
from .schema import SchemaVersion

log = logging.getLogger(__name__)

_LOCK_KEY = 0x646F7473  # "dots": pg_advisory_xact_lock key of migrations


def _v1_models(db: peewee.Database) -> list[type[peewee.Model]]:
    """The tables of schema version 1, frozen."""

    class V1(peewee.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class RawV1(V1):
        uid = BigIntegerField()
        ts_ns = BigIntegerField()
        time = DateTimeField()
        batch_id = TextField()

        class Meta:
            indexes = ((("uid", "time"), False),)

    class Child(V1):
        uid = BigIntegerField(unique=True)
        name = TextField()
        policy = TextField()
        created = DateTimeField()

        class Meta:
            table_name = "child"

    class ProcessRow(RawV1):
        type = TextField()
        pid = IntegerField()
        ppid = IntegerField()
        gid = BigIntegerField()
        comm = TextField()
        path = TextField()
        exit_code = IntegerField()

        class Meta:
            table_name = "process_event"

    class FileRow(RawV1):
        type = TextField()
        pid = IntegerField()
        comm = TextField()
        path = TextField()
        flags = BigIntegerField()
        result = BigIntegerField()
        bytes = BigIntegerField()

        class Meta:
            table_name = "file_event"

    class NetworkRow(RawV1):
        type = TextField()
        pid = IntegerField()
        comm = TextField()
        family = IntegerField()
        saddr = TextField()
        daddr = TextField()
        sport = IntegerField()
        dport = IntegerField()
        bytes_sent = BigIntegerField()
        bytes_received = BigIntegerField()

        class Meta:
            table_name = "network_event"

    class MemoryRow(RawV1):
        pid = IntegerField()
        comm = TextField()
        bytes_alloc = BigIntegerField()
        bytes_freed = BigIntegerField()
        pages_alloc_bytes = BigIntegerField()
        pages_freed_bytes = BigIntegerField()
        rss_bytes = BigIntegerField()

        class Meta:
            table_name = "memory_sample"

    class DiskRow(RawV1):
        pid = IntegerField()
        comm = TextField()
        dev = BigIntegerField()
        sector = BigIntegerField()
        bytes = BigIntegerField()
        nr_sector = BigIntegerField()
        rw = TextField()
        latency_ns = BigIntegerField()

        class Meta:
            table_name = "disk_event"

    class AppUsageDaily(V1):
        uid = BigIntegerField()
        day = DateField()
        app = TextField()
        active_seconds = BigIntegerField(default=0)
        launches = BigIntegerField(default=0)

        class Meta:
            table_name = "app_usage_daily"
            indexes = ((("uid", "day", "app"), True),)

    class SiteUsageDaily(V1):
        uid = BigIntegerField()
        day = DateField()
        site = TextField()
        bytes_sent = BigIntegerField(default=0)
        bytes_received = BigIntegerField(default=0)
        connections = BigIntegerField(default=0)

        class Meta:
            table_name = "site_usage_daily"
            indexes = ((("uid", "day", "site"), True),)

    class ScreenTimeDaily(V1):
        uid = BigIntegerField()
        day = DateField()
        seconds_used = BigIntegerField(default=0)

        class Meta:
            table_name = "screen_time_daily"
            indexes = ((("uid", "day"), True),)

    class PolicyVersion(V1):
        uid = BigIntegerField()
        version = IntegerField()
        policy = TextField()
        author_uid = BigIntegerField()
        time = DateTimeField()

        class Meta:
            table_name = "policy_version"
            indexes = ((("uid", "version"), True),)

    class TimeRequest(V1):
        uid = BigIntegerField()
        minutes = IntegerField()
        reason = TextField()
        state = TextField(constraints=[Check("state IN ('pending', 'approved', 'denied')")])
        answered_by = BigIntegerField(null=True)
        granted_minutes = IntegerField(null=True)
        created = DateTimeField()
        answered = DateTimeField(null=True)

        class Meta:
            table_name = "time_request"
            indexes = ((("uid", "created"), False), (("state",), False))

    class AuditLog(V1):
        time = DateTimeField(index=True)
        actor_uid = BigIntegerField()
        action = TextField()
        target = TextField()
        old_value = TextField(null=True)
        new_value = TextField(null=True)

        class Meta:
            table_name = "audit_log"

    class IngestedBatch(V1):
        batch_id = TextField(unique=True)
        monitor = TextField()
        events = IntegerField()
        time = DateTimeField(index=True)

        class Meta:
            table_name = "ingested_batch"

    return [Child, ProcessRow, FileRow, NetworkRow, MemoryRow, DiskRow, AppUsageDaily,
            SiteUsageDaily, ScreenTimeDaily, PolicyVersion, TimeRequest, AuditLog, IngestedBatch]


_AUDIT_TRIGGERS = {
    "sqlite": [
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END",
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION USING MESSAGE = 'audit_log is append-only: ' || TG_OP || ' refused'; END $$",
        "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change()",
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change()",
    ],
}


def _migration_1(db: peewee.Database, migrator: SchemaMigrator) -> None:
    """The first schema, and the audit log's immutability triggers."""
    db.create_tables(_v1_models(db), safe=False)
    for statement in _AUDIT_TRIGGERS[dialect(db)]:
        db.execute_sql(statement)


def _migration_2(db: peewee.Database, migrator: SchemaMigrator) -> None:
    """Renames keep their target path; screen time records extensions."""
    # NOT NULL with a DDL default: one ALTER TABLE, no table rebuild on SQLite.
    migrator.migrate(
        migrator.add_column("file_event", "new_path",
                            TextField(default="", constraints=[peewee.SQL("DEFAULT ''")]),
                            allow_not_null=True),
        migrator.add_column("screen_time_daily", "seconds_granted",
                            BigIntegerField(default=0, constraints=[peewee.SQL("DEFAULT 0")]),
                            allow_not_null=True),
    )


def _migration_3(db: peewee.Database, migrator: SchemaMigrator) -> None:
    """A keyed seal over the children and their policies (tamper evidence)."""

    class IntegritySealV3(peewee.Model):
        name = TextField(primary_key=True)
        mac = TextField()
        time = DateTimeField()

        class Meta:
            database = db
            table_name = "integrity_seal"

    db.create_tables([IntegritySealV3], safe=False)


def _migration_4(db: peewee.Database, migrator: SchemaMigrator) -> None:
    """The web filter's lookups by name (dots_policyd.site_history)."""

    class SiteLookupV4(peewee.Model):
        uid = BigIntegerField()
        time = DateTimeField()
        name = TextField()
        blocked = peewee.BooleanField()
        count = peewee.IntegerField()

        class Meta:
            database = db
            table_name = "site_lookup"
            indexes = ((("uid", "time"), False),)

    db.create_tables([SiteLookupV4], safe=False)


def _migration_5(db: peewee.Database, migrator: SchemaMigrator) -> None:
    """Household mode: the local interval journal everywhere; on PostgreSQL
    the household tables, row-level security and NOTIFY triggers."""
    from .household.sql import statements

    for statement in statements(dialect(db)):
        db.execute_sql(statement)


def _migration_6(db: peewee.Database, migrator: SchemaMigrator) -> None:
    """File events: identical events of a batch stored as one row with
    their count and the last one's time (dots_common.records.BATCH_EXTRAS);
    a row stored before stands for one event."""
    migrator.migrate(
        migrator.add_column("file_event", "count",
                            IntegerField(default=1, constraints=[peewee.SQL("DEFAULT 1")]),
                            allow_not_null=True),
        migrator.add_column("file_event", "last_ts_ns",
                            BigIntegerField(default=0, constraints=[peewee.SQL("DEFAULT 0")]),
                            allow_not_null=True),
    )
    db.execute_sql("UPDATE file_event SET last_ts_ns = ts_ns")


#: version -> the step that brings version - 1 to it
MIGRATIONS: dict[int, Callable[[peewee.Database, SchemaMigrator], None]] = {
    1: _migration_1,
    2: _migration_2,
    3: _migration_3,
    4: _migration_4,
    5: _migration_5,
    6: _migration_6,
}
LATEST = max(MIGRATIONS)


def schema_version(db: peewee.Database) -> int:
    """The database's schema version; 0 for an empty database."""
    bind(db)
    if not db.table_exists(SchemaVersion._meta.table_name):
        return 0
    return SchemaVersion.select(peewee.fn.MAX(SchemaVersion.version)).scalar() or 0


def _lock(db: peewee.Database) -> None:
    if dialect(db) == "postgresql":
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
    # SQLite: open_database's IMMEDIATE transactions already hold the write lock.


@storage_errors("cannot migrate the database")
def migrate(db: peewee.Database, target: int = LATEST) -> int:
    """Bring ``db`` to schema version ``target`` (default: the latest) and
    return the version it is at. A database newer than this program is
    refused with :class:`StorageError`, never touched."""
    if not 1 <= target <= LATEST:
        raise ValueError(f"schema version {target} does not exist (1..{LATEST})")
    bind(db)
    migrator = SchemaMigrator.from_database(db)
    while True:
        with db.atomic():
            _lock(db)
            db.create_tables([SchemaVersion], safe=True)
            current = schema_version(db)
            if current > LATEST:
                raise StorageError(f"the database has schema version {current}, newer than this "
                                   f"program's {LATEST}: upgrade the program")
            if current >= target:
                return current
            step = current + 1
            log.info("migrating the database schema from version %d to %d", current, step)
            MIGRATIONS[step](db, migrator)
            SchemaVersion.create(version=step)
