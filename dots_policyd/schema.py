"""The peewee models of the current schema (what the code reads and writes).

Tables are created and changed only by :mod:`dots_policyd.migrations`,
never from these classes, so an upgraded database and a new one are the
same. Times are naive UTC datetimes; ``day`` columns are local dates (the
child's day). uids are BIGINT: a uid is unsigned 32-bit.
"""

from __future__ import annotations

import datetime as dt

from peewee import (
    AutoField,
    BigIntegerField,
    Check,
    DateField,
    DateTimeField,
    IntegerField,
    Model,
    TextField,
)

from .db import database_proxy


def utcnow() -> dt.datetime:
    """Now as a naive UTC datetime (the form every time column holds)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class BaseModel(Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class Child(BaseModel):
    uid = BigIntegerField(unique=True)
    name = TextField()
    policy = TextField()  # JSON of dots_policyd.policy.Policy
    created = DateTimeField(default=utcnow)

    class Meta:
        table_name = "child"


# --- raw events: the record's fields + time (UTC) + batch_id ------------------

class RawEvent(BaseModel):
    """Columns every raw event table has; indexed on (uid, time)."""

    uid = BigIntegerField()
    ts_ns = BigIntegerField()  # CLOCK_BOOTTIME, as in the record
    time = DateTimeField()  # UTC wall time of ts_ns
    batch_id = TextField()

    class Meta:
        indexes = ((("uid", "time"), False),)


class ProcessRow(RawEvent):
    type = TextField()
    pid = IntegerField()
    ppid = IntegerField()
    gid = BigIntegerField()
    comm = TextField()
    path = TextField()
    exit_code = IntegerField()

    class Meta:
        table_name = "process_event"


class FileRow(RawEvent):
    type = TextField()
    pid = IntegerField()
    comm = TextField()
    path = TextField()
    flags = BigIntegerField()
    result = BigIntegerField()
    bytes = BigIntegerField()
    new_path = TextField(default="")  # schema version 2
    # schema version 6: identical events of a batch as one row (BATCH_EXTRAS)
    count = IntegerField(default=1)
    last_ts_ns = BigIntegerField(default=0)

    class Meta:
        table_name = "file_event"


class NetworkRow(RawEvent):
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


class MemoryRow(RawEvent):
    pid = IntegerField()
    comm = TextField()
    bytes_alloc = BigIntegerField()
    bytes_freed = BigIntegerField()
    pages_alloc_bytes = BigIntegerField()
    pages_freed_bytes = BigIntegerField()
    rss_bytes = BigIntegerField()

    class Meta:
        table_name = "memory_sample"


class DiskRow(RawEvent):
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


#: raw table of each monitor (keys are the records' MONITOR names)
RAW_MODELS: dict[str, type[RawEvent]] = {
    "process": ProcessRow,
    "filesystem": FileRow,
    "network": NetworkRow,
    "memory": MemoryRow,
    "disk": DiskRow,
}


# --- daily rollups (kept when raw events are pruned) ----------------------------

class AppUsageDaily(BaseModel):
    uid = BigIntegerField()
    day = DateField()
    app = TextField()  # executable path (comm when the path is unknown)
    active_seconds = BigIntegerField(default=0)
    launches = BigIntegerField(default=0)

    class Meta:
        table_name = "app_usage_daily"
        indexes = ((("uid", "day", "app"), True),)


class SiteUsageDaily(BaseModel):
    uid = BigIntegerField()
    day = DateField()
    site = TextField()  # remote address, or a domain once resolved
    bytes_sent = BigIntegerField(default=0)
    bytes_received = BigIntegerField(default=0)
    connections = BigIntegerField(default=0)

    class Meta:
        table_name = "site_usage_daily"
        indexes = ((("uid", "day", "site"), True),)


class ScreenTimeDaily(BaseModel):
    uid = BigIntegerField()
    day = DateField()
    seconds_used = BigIntegerField(default=0)
    seconds_granted = BigIntegerField(default=0)  # schema version 2: extensions

    class Meta:
        table_name = "screen_time_daily"
        indexes = ((("uid", "day"), True),)


# --- policy, requests, audit, bookkeeping ----------------------------------------

class PolicyVersion(BaseModel):
    uid = BigIntegerField()
    version = IntegerField()
    policy = TextField()
    author_uid = BigIntegerField()
    time = DateTimeField(default=utcnow)

    class Meta:
        table_name = "policy_version"
        indexes = ((("uid", "version"), True),)


REQUEST_STATES = ("pending", "approved", "denied")


class TimeRequest(BaseModel):
    id = AutoField()
    uid = BigIntegerField()
    minutes = IntegerField()
    reason = TextField(default="")
    state = TextField(default="pending", constraints=[Check("state IN ('pending', 'approved', 'denied')")])
    answered_by = BigIntegerField(null=True)
    granted_minutes = IntegerField(null=True)
    created = DateTimeField(default=utcnow)
    answered = DateTimeField(null=True)

    class Meta:
        table_name = "time_request"
        indexes = ((("uid", "created"), False), (("state",), False))


class AuditLog(BaseModel):
    """Append-only: triggers in the database refuse UPDATE and DELETE."""

    id = AutoField()
    time = DateTimeField(default=utcnow, index=True)
    actor_uid = BigIntegerField()
    action = TextField()
    target = TextField()
    old_value = TextField(null=True)
    new_value = TextField(null=True)

    class Meta:
        table_name = "audit_log"


class SchemaVersion(BaseModel):
    version = IntegerField(primary_key=True)
    applied = DateTimeField(default=utcnow)

    class Meta:
        table_name = "schema_version"


class IngestedBatch(BaseModel):
    """Collector batch ids already stored: a re-delivered batch is ignored."""

    batch_id = TextField(unique=True)
    monitor = TextField()
    events = IntegerField()
    time = DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "ingested_batch"


class IntegritySeal(BaseModel):
    """A keyed hash of the children and their policies, rewritten by the
    daemon in the same transaction as each change (schema version 3): a
    change made outside the daemon no longer matches it."""

    name = TextField(primary_key=True)
    mac = TextField()
    time = DateTimeField(default=utcnow)

    class Meta:
        table_name = "integrity_seal"


#: every table of the current schema
ALL_MODELS: tuple[type[BaseModel], ...] = (
    Child, *RAW_MODELS.values(), AppUsageDaily, SiteUsageDaily, ScreenTimeDaily,
    PolicyVersion, TimeRequest, AuditLog, SchemaVersion, IngestedBatch, IntegritySeal,
)
