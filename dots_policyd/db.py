"""Open the history database: SQLite in WAL mode by path (the default), or
any peewee database URL (``postgresql://…``) through ``playhouse.db_url``.

Models bind to :data:`database_proxy`; :func:`open_database` points it at
the database it opens (one database per process). Driver failures that
mean "the storage is unusable" (locked beyond the busy timeout, corrupt
file, server gone, disk full) become :class:`StorageError` in
:func:`storage_errors`; constraint violations and programming errors keep
their peewee types.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from typing import Literal
from urllib.parse import urlparse

import peewee
from playhouse import db_url

log = logging.getLogger(__name__)

DEFAULT_PATH = "/var/lib/dots/dots.db"
DEFAULT_BUSY_TIMEOUT = 5.0  # seconds

#: what every model is bound to; initialized by :func:`open_database`
database_proxy = peewee.DatabaseProxy()


class StorageError(RuntimeError):
    """The database cannot be used (locked, corrupt, unreachable, full)."""


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "locked" in text or "lock timeout" in text:
        text += " (another connection held a lock longer than the busy timeout)"
    return text


@contextlib.contextmanager
def storage_errors(action: str) -> Iterator[None]:
    """Turn "storage unusable" driver errors into :class:`StorageError`.

    Usable as a decorator too. A plain ``peewee.DatabaseError`` (not one of
    its subclasses) is what SQLite raises for a corrupt or non-database file.
    """
    try:
        yield
    except StorageError:
        raise
    except (peewee.OperationalError, peewee.InterfaceError) as exc:
        raise StorageError(f"{action}: {_reason(exc)}") from exc
    except peewee.DatabaseError as exc:
        if type(exc) is not peewee.DatabaseError:
            raise
        raise StorageError(f"{action}: {_reason(exc)} (is the database file corrupt?)") from exc


def bind(db: peewee.Database) -> peewee.Database:
    """Point the models at ``db`` (a no-op when they already are)."""
    if database_proxy.obj is not db:
        database_proxy.initialize(db)
    return db


def dialect(db: peewee.Database) -> Literal["sqlite", "postgresql"]:
    """Which SQL flavour ``db`` speaks (proxies are looked through)."""
    real = db.obj if isinstance(db, peewee.DatabaseProxy) else db
    if isinstance(real, peewee.SqliteDatabase):
        return "sqlite"
    if isinstance(real, peewee.PostgresqlDatabase):
        return "postgresql"
    raise StorageError(f"unsupported database type {type(real).__name__}")


def display_name(target: str | os.PathLike[str]) -> str:
    """``target`` for messages, without a password."""
    text = os.fspath(target)
    parsed = urlparse(text)
    if parsed.password:
        text = text.replace(f":{parsed.password}@", ":***@", 1)
    return text


def _sqlite(path: str, timeout: float) -> peewee.SqliteDatabase:
    # IMMEDIATE: a write transaction takes the write lock when it begins, so
    # it waits for the busy timeout instead of failing half-way in WAL mode.
    return peewee.SqliteDatabase(
        path,
        timeout=timeout,
        lock_type="IMMEDIATE",
        pragmas=[("journal_mode", "wal"), ("foreign_keys", 1), ("synchronous", "NORMAL")],
    )


def _from_url(url: str, timeout: float) -> peewee.Database:
    scheme = urlparse(url).scheme
    params = db_url.parse(url)
    if scheme == "sqlite":
        return _sqlite(params["database"], timeout)
    if scheme not in ("postgres", "postgresql"):
        raise StorageError(f"unsupported database URL scheme {scheme!r} (use a path, sqlite:/// or postgresql://)")
    extra: dict[str, object] = {}
    if "connect_timeout" not in params:
        extra["connect_timeout"] = max(2, math.ceil(timeout))
    if "options" not in params:  # the equivalent of SQLite's busy timeout
        extra["options"] = f"-c lock_timeout={int(timeout * 1000)}"
    try:
        return db_url.connect(url, **extra)
    except (ValueError, RuntimeError) as exc:
        raise StorageError(f"bad database URL {display_name(url)}: {exc}") from exc


def open_database(target: str | os.PathLike[str] = DEFAULT_PATH, *,
                  busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> peewee.Database:
    """Connect to ``target`` (a file path or a URL), check it is a usable
    database and bind the models to it. Raises :class:`StorageError`."""
    text = os.fspath(target)
    db = _from_url(text, busy_timeout) if "://" in text else _sqlite(text, busy_timeout)
    with storage_errors(f"cannot open database {display_name(text)}"):
        db.connect(reuse_if_open=True)
        try:
            if dialect(db) == "sqlite":
                mode = db.execute_sql("PRAGMA journal_mode").fetchone()[0]
                if mode != "wal":
                    log.warning("database %s is in %s journal mode, not WAL", text, mode)
                db.execute_sql("SELECT count(*) FROM sqlite_master").fetchone()
            else:
                db.execute_sql("SELECT 1").fetchone()
        except BaseException:
            db.close()
            raise
    bind(db)
    log.info("database %s open", display_name(text))
    return db
