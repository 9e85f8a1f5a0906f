"""Event history: exactly-once batch ingest with daily rollups, retention
pruning, the audit log, and the queries behind reports.

Every function takes the database explicitly and binds the models to it
(see :func:`dots_policyd.db.bind`). Report days are local dates (the
child's day); ``time`` columns are naive UTC.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import operator
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import peewee
from peewee import EXCLUDED, fn

from dots_common.records import RECORD_TYPES, Record, batch_field_names, field_names

from .bulk import TimeText, insert_rows
from .db import bind, dialect, storage_errors
from .schema import (
    RAW_MODELS,
    AppUsageDaily,
    AuditLog,
    IngestedBatch,
    RawEvent,
    ScreenTimeDaily,
    SiteUsageDaily,
    utcnow,
)

log = logging.getLogger(__name__)

EPOCH = dt.datetime(1970, 1, 1)
MAX_BATCH_ID = 128
MAX_QUERY_ROWS = 10_000
MAX_REPORT_DAYS = 3660
DEFAULT_RETENTION_DAYS = 30
PRUNE_CHUNK = 10_000


# --- results ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class AppUsage:
    app: str
    active_seconds: int
    launches: int


@dataclasses.dataclass(frozen=True, slots=True)
class SiteUsage:
    site: str
    bytes_sent: int
    bytes_received: int
    connections: int


@dataclasses.dataclass(frozen=True, slots=True)
class DayUsage:
    day: dt.date
    seconds_used: int
    seconds_granted: int


@dataclasses.dataclass(frozen=True, slots=True)
class StoredEvent:
    time: dt.datetime  # naive UTC
    record: Record
    #: identical events stored as one row (file events: BATCH_EXTRAS): how
    #: many, and the last one's CLOCK_BOOTTIME (the record's ts_ns is the first's)
    count: int = 1
    last_ts_ns: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    time: dt.datetime  # naive UTC
    actor_uid: int
    action: str
    target: str
    old_value: str | None
    new_value: str | None


# --- helpers ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Layout:
    """How one monitor's records map onto its raw table."""

    model: type[RawEvent]
    record_type: type[Record]
    #: a row's fields: the batch struct's (the record's, then its
    #: BATCH_EXTRAS: count and last_ts_ns for file events)
    names: tuple[str, ...]
    values: Callable[[Record], tuple[Any, ...]]
    fields: tuple[peewee.Field, ...]
    #: the raw table and its columns in row order (row fields, time, batch_id)
    table: str
    columns: tuple[str, ...]
    #: where uid and ts_ns sit in a row
    uid_at: int
    ts_at: int
    #: how many of a row's fields are the record's
    record_width: int
    #: where a row's event count sits (None: one event per row)
    count_at: int | None


@functools.cache
def _layout(monitor: str) -> _Layout:
    if monitor not in RAW_MODELS:
        raise ValueError(f"unknown monitor {monitor!r} (expected one of {', '.join(RAW_MODELS)})")
    model, record_type = RAW_MODELS[monitor], RECORD_TYPES[monitor]
    record_names = field_names(record_type)
    names = batch_field_names(monitor)
    fields = tuple(getattr(model, n) for n in names) + (model.time, model.batch_id)
    return _Layout(model, record_type, names, _row_of_record(record_names, names), fields,
                   model._meta.table_name, tuple(f.column_name for f in fields),
                   names.index("uid"), names.index("ts_ns"), len(record_names),
                   names.index("count") if "count" in names else None)


def _row_of_record(record_names: tuple[str, ...], names: tuple[str, ...]
                   ) -> Callable[[Record], tuple[Any, ...]]:
    """A Record as a row: a single event (count 1, last_ts_ns its ts_ns)."""
    values = operator.attrgetter(*record_names)
    extras = names[len(record_names):]
    if not extras:
        return values
    if extras != ("count", "last_ts_ns"):
        raise TypeError(f"no row for the batch fields {extras}")
    return lambda r: (*values(r), 1, r.ts_ns)


def _chunk_rows(db: peewee.Database, columns: int) -> int:
    """Rows per INSERT: SQLite binds at most 999 parameters per statement
    (older builds); PostgreSQL allows 65535."""
    limit = 999 if dialect(db) == "sqlite" else 65535
    return max(1, min(1000, limit // columns))


def _chunks(rows: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [rows[i:i + size] for i in range(0, len(rows), size)]


def _utc(time: dt.datetime) -> dt.datetime:
    """Naive UTC from a naive-UTC or aware datetime."""
    return time if time.tzinfo is None else time.astimezone(dt.timezone.utc).replace(tzinfo=None)


def wall_time(ts_ns: int, wall_offset_ns: int) -> dt.datetime:
    """Naive UTC datetime of a boot-clock timestamp."""
    return EPOCH + dt.timedelta(microseconds=(ts_ns + wall_offset_ns) // 1000)


def local_day(ts_ns: int, wall_offset_ns: int, tz: dt.tzinfo | None = None) -> dt.date:
    """The (local, or ``tz``) date on which a boot-clock timestamp falls."""
    return dt.datetime.fromtimestamp((ts_ns + wall_offset_ns) / 1e9, tz).date()


def _add_counters(db: peewee.Database, model: type[peewee.Model], keys: Sequence[str],
                  counters: Sequence[str], totals: Mapping[tuple[Any, ...], Sequence[int]]) -> None:
    """Upsert: add ``totals`` (key tuple -> counter values) to the rollup rows."""
    if not totals:
        return
    fields = [getattr(model, name) for name in (*keys, *counters)]
    update = {getattr(model, c): getattr(model, c) + getattr(EXCLUDED, c) for c in counters}
    target = [getattr(model, k) for k in keys]
    rows = [(*key, *values) for key, values in totals.items()]
    for chunk in _chunks(rows, _chunk_rows(db, len(fields))):
        (model.insert_many(chunk, fields=fields)
         .on_conflict(conflict_target=target, update=update).as_rowcount().execute())


def _rollups(db: peewee.Database, monitor: str, rows: Sequence[Sequence[Any]], offset: int,
             tz: dt.tzinfo | None) -> None:
    """Process exec -> app launches; network -> bytes and connections per
    site. Rows are in the record's field order (ProcessEvent: type, pid,
    ppid, uid, gid, comm, path, exit_code, ts_ns; NetworkEvent: type, pid,
    uid, comm, family, saddr, daddr, sport, dport, bytes_sent,
    bytes_received, ts_ns)."""
    if monitor == "process":
        launches: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0])
        for r in rows:
            if r[0] == "exec":
                launches[(r[3], local_day(r[8], offset, tz), r[6] or r[5])][0] += 1
        _add_counters(db, AppUsageDaily, ("uid", "day", "app"), ("launches",), launches)
    elif monitor == "network":
        sites: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
        for r in rows:
            if r[6]:
                # byte counts on network events are deltas since the socket's last event
                totals = sites[(r[2], local_day(r[11], offset, tz), r[6])]
                totals[0] += r[9]
                totals[1] += r[10]
                totals[2] += r[0] == "connect" or r[0] == "connect_close"
        _add_counters(db, SiteUsageDaily, ("uid", "day", "site"),
                      ("bytes_sent", "bytes_received", "connections"), sites)


# --- ingest and retention ----------------------------------------------------------

def store_batch(db: peewee.Database, monitor: str, batch_id: str, records: Sequence[Record],
                wall_offset_ns: int, *, tz: dt.tzinfo | None = None) -> bool:
    """Store one collector batch and its rollups in ONE transaction.

    Returns False (and stores nothing) when ``batch_id`` was stored before:
    a batch re-delivered after a crash is counted once. ``wall_offset_ns``
    turns the records' CLOCK_BOOTTIME ``ts_ns`` into Unix time; rollup days
    are local dates (or in ``tz``).
    """
    layout = _layout(monitor)
    if not all(type(r) is layout.record_type for r in records):
        raise TypeError(f"a {monitor} batch may hold only {layout.record_type.__name__} records")
    values = layout.values
    return store_rows(db, monitor, batch_id, [values(r) for r in records], wall_offset_ns, tz=tz)


@storage_errors("cannot store a batch")
def store_rows(db: peewee.Database, monitor: str, batch_id: str,
               rows: Sequence[Sequence[Any]], wall_offset_ns: int, *,
               tz: dt.tzinfo | None = None) -> bool:
    """store_batch for rows: each event as its values in the record's
    field order (the D-Bus struct as received), no Record object built.
    The values must have the record's types (a batch signal's signature
    guarantees it)."""
    layout = _layout(monitor)
    if not isinstance(batch_id, str) or not 0 < len(batch_id) <= MAX_BATCH_ID:
        raise ValueError(f"batch id must be 1 to {MAX_BATCH_ID} characters")
    width, ts_at, count_at = len(layout.names), layout.ts_at, layout.count_at
    if any(len(r) != width for r in rows):
        raise TypeError(f"a {monitor} batch may hold only {layout.record_type.__name__} records")
    events = len(rows)
    if count_at is not None and rows:
        counts = [r[count_at] for r in rows]
        if min(counts) < 1:
            raise ValueError(f"batch {batch_id}: a group of events with a count below 1")
        events = sum(counts)
    text = TimeText()
    full = [(*r, text((r[ts_at] + wall_offset_ns) // 1000), batch_id) for r in rows]
    bind(db)
    try:
        with db.atomic():
            fresh = (IngestedBatch.insert(batch_id=batch_id, monitor=monitor, events=events,
                                          time=utcnow())
                     .on_conflict_ignore().as_rowcount().execute())
            if not fresh:
                log.info("batch %s already stored: ignored", batch_id)
                return False
            insert_rows(db, layout.table, layout.columns, full)
            _rollups(db, monitor, rows, wall_offset_ns, tz)
    except (OverflowError, peewee.DataError, peewee.IntegrityError, TypeError) as exc:
        # e.g. a value beyond 64 bits: refuse this batch, not the daemon
        raise ValueError(f"batch {batch_id} holds a value the database cannot store: {exc}") from None
    return True


@storage_errors("cannot prune history")
def prune(db: peewee.Database, retention_days: int = DEFAULT_RETENTION_DAYS,
          now: dt.datetime | None = None) -> dict[str, int]:
    """Delete raw events (and batch ids) older than ``retention_days``;
    rollups, policies, requests and the audit log are kept. Deletes in
    chunks, each its own transaction, so ingest is never blocked for long.
    Returns the number of rows deleted per table."""
    if isinstance(retention_days, bool) or not isinstance(retention_days, int) or retention_days < 0:
        raise ValueError("retention_days must be a non-negative number of days")
    bind(db)
    cutoff = _utc(now or utcnow()) - dt.timedelta(days=retention_days)
    deleted: dict[str, int] = {}
    for model in (*RAW_MODELS.values(), IngestedBatch):
        old = model.select(model.id).where(model.time < cutoff).limit(PRUNE_CHUNK)
        total = 0
        while True:
            with db.atomic():
                count = model.delete().where(model.id.in_(old)).execute()
            total += count
            if count < PRUNE_CHUNK:
                break
        deleted[model._meta.table_name] = total
    from .site_history import prune as prune_lookups  # the web filter's raw lookups

    deleted["site_lookup"] = prune_lookups(db, cutoff)
    log.info("pruned events before %s: %s", cutoff.isoformat(), deleted)
    return deleted


# --- time accounting rollups (written by the accounting code) ----------------------

@storage_errors("cannot record app time")
def add_app_time(db: peewee.Database, uid: int, day: dt.date, app: str, seconds: int) -> None:
    """Add active seconds of ``app`` to the child's day."""
    bind(db)
    with db.atomic():
        _add_counters(db, AppUsageDaily, ("uid", "day", "app"), ("active_seconds",),
                      {(uid, day, app): (seconds,)})


@storage_errors("cannot record screen time")
def add_screen_time(db: peewee.Database, uid: int, day: dt.date, used_seconds: int = 0,
                    granted_seconds: int = 0) -> None:
    """Add used screen time and granted extensions to the child's day."""
    bind(db)
    with db.atomic():
        _add_counters(db, ScreenTimeDaily, ("uid", "day"), ("seconds_used", "seconds_granted"),
                      {(uid, day): (used_seconds, granted_seconds)})


# --- reports -----------------------------------------------------------------------

def _check_range(start: dt.date, end: dt.date) -> None:
    if end < start:
        raise ValueError("the report period ends before it starts")
    if (end - start).days >= MAX_REPORT_DAYS:
        raise ValueError(f"the report period is longer than {MAX_REPORT_DAYS} days")


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_QUERY_ROWS:
        raise ValueError(f"limit must be 1 to {MAX_QUERY_ROWS}")


@storage_errors("cannot read app usage")
def app_usage(db: peewee.Database, uid: int, start: dt.date, end: dt.date) -> list[AppUsage]:
    """Per app over ``start``..``end`` (inclusive), most used first."""
    _check_range(start, end)
    bind(db)
    m = AppUsageDaily
    active, launches = fn.SUM(m.active_seconds), fn.SUM(m.launches)
    query = (m.select(m.app, active, launches)
             .where((m.uid == uid) & m.day.between(start, end))
             .group_by(m.app).order_by(active.desc(), launches.desc(), m.app).tuples())
    return [AppUsage(app, int(a), int(n)) for app, a, n in query]


@storage_errors("cannot read site usage")
def site_usage(db: peewee.Database, uid: int, start: dt.date, end: dt.date) -> list[SiteUsage]:
    """Per site over ``start``..``end`` (inclusive), most traffic first."""
    _check_range(start, end)
    bind(db)
    m = SiteUsageDaily
    sent, received, conns = fn.SUM(m.bytes_sent), fn.SUM(m.bytes_received), fn.SUM(m.connections)
    query = (m.select(m.site, sent, received, conns)
             .where((m.uid == uid) & m.day.between(start, end))
             .group_by(m.site).order_by((sent + received).desc(), conns.desc(), m.site).tuples())
    return [SiteUsage(site, int(s), int(r), int(c)) for site, s, r, c in query]


@storage_errors("cannot read daily usage")
def daily_usage(db: peewee.Database, uid: int, start: dt.date, end: dt.date) -> list[DayUsage]:
    """Screen time of every day in ``start``..``end`` (inclusive; 0 when none)."""
    _check_range(start, end)
    bind(db)
    m = ScreenTimeDaily
    stored = {day: (used, granted) for day, used, granted in
              m.select(m.day, m.seconds_used, m.seconds_granted)
              .where((m.uid == uid) & m.day.between(start, end)).tuples()}
    days = (start + dt.timedelta(days=i) for i in range((end - start).days + 1))
    return [DayUsage(day, *stored.get(day, (0, 0))) for day in days]


@storage_errors("cannot read events")
def recent_events(db: peewee.Database, monitor: str, uid: int, limit: int = 100) -> list[StoredEvent]:
    """The child's latest ``limit`` raw events of one monitor, newest first."""
    layout = _layout(monitor)
    _check_limit(limit)
    bind(db)
    m = layout.model
    width = layout.record_width
    query = (m.select(*(getattr(m, n) for n in layout.names), m.time).where(m.uid == uid)
             .order_by(m.time.desc(), m.id.desc()).limit(limit).tuples())
    if layout.count_at is None:
        return [StoredEvent(row[-1], layout.record_type(*row[:width])) for row in query]
    return [StoredEvent(row[-1], layout.record_type(*row[:width]), row[width], row[width + 1])
            for row in query]


# --- audit log ---------------------------------------------------------------------

@storage_errors("cannot write the audit log")
def append_audit(db: peewee.Database, actor_uid: int, action: str, target: str,
                 old_value: str | None = None, new_value: str | None = None) -> int:
    """Record a parent's action; returns the entry's id. Entries cannot be
    changed or deleted afterwards (the database refuses)."""
    bind(db)
    return AuditLog.insert(time=utcnow(), actor_uid=actor_uid, action=action, target=target,
                           old_value=old_value, new_value=new_value).execute()


@storage_errors("cannot read the audit log")
def audit_log(db: peewee.Database, *, since: dt.datetime | None = None, until: dt.datetime | None = None,
              actor_uid: int | None = None, limit: int = 100) -> list[AuditEntry]:
    """Audit entries, newest first, optionally in [since, until) and by actor."""
    _check_limit(limit)
    bind(db)
    m = AuditLog
    query = m.select(m.id, m.time, m.actor_uid, m.action, m.target, m.old_value, m.new_value)
    if since is not None:
        query = query.where(m.time >= _utc(since))
    if until is not None:
        query = query.where(m.time < _utc(until))
    if actor_uid is not None:
        query = query.where(m.actor_uid == actor_uid)
    return [AuditEntry(*row) for row in query.order_by(m.id.desc()).limit(limit).tuples()]
