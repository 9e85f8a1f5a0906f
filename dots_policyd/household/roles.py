"""Setting up the household database, as its owner: the schema, the
machines' group role and its grants, one login role per machine, and
taking a machine out again. ``dots-household`` (scripts/dots-household)
is the command line over these functions.

A machine's role is ``dots_m_<first 16 hex digits of its machine id>``,
a member of :data:`~dots_policyd.household.sql.MACHINE_GROUP`; it may
read the household and write only rows carrying its machine id (row-level
security, see :mod:`dots_policyd.household.sql`). Only machines added
with ``may_edit_policy`` can change a policy: give it to the machines
parents use, not to a child's own laptop.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from typing import Any
from urllib.parse import quote, urlparse, urlunparse

import psycopg2
from psycopg2 import sql as pgsql

from ..db import open_database
from ..migrations import migrate
from .sql import GRANTS, MACHINE_GROUP

_MACHINE_ID = re.compile(r"[0-9a-f]{32}")


def role_name(machine_id: str) -> str:
    if not _MACHINE_ID.fullmatch(machine_id):
        raise ValueError(f"machine id {machine_id!r} is not 32 hex digits")
    return f"dots_m_{machine_id[:16]}"


def _owner(url: str) -> Any:
    conn = psycopg2.connect(url, connect_timeout=5)
    conn.autocommit = False
    return conn


def init(owner_url: str) -> int:
    """Create or upgrade the schema and (re)apply the machines' grants."""
    db = open_database(owner_url)
    try:
        version = migrate(db)
    finally:
        db.close()
    conn = _owner(owner_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (MACHINE_GROUP,))
            if cur.fetchone() is None:
                cur.execute(pgsql.SQL("CREATE ROLE {} NOLOGIN").format(pgsql.Identifier(MACHINE_GROUP)))
            for grant in GRANTS:
                cur.execute(grant.format(group=MACHINE_GROUP))
    finally:
        conn.close()
    return version


def add_machine(owner_url: str, machine_id: str, name: str, may_edit_policy: bool = False,
                password: str | None = None) -> tuple[str, str]:
    """A login role for the machine and its row; returns (role, password)."""
    role = role_name(machine_id)
    password = password or secrets.token_urlsafe(24)
    conn = _owner(owner_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            cur.execute(pgsql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                pgsql.Identifier(role), pgsql.Literal(password)))
            cur.execute(pgsql.SQL("GRANT {} TO {}").format(pgsql.Identifier(MACHINE_GROUP),
                                                           pgsql.Identifier(role)))
            cur.execute("INSERT INTO hh_machine (machine_id, name, role_name, may_edit_policy) "
                        "VALUES (%s, %s, %s, %s) ON CONFLICT (machine_id) DO UPDATE SET "
                        "name = EXCLUDED.name, may_edit_policy = EXCLUDED.may_edit_policy, removed = false",
                        (machine_id, name, role, may_edit_policy))
    finally:
        conn.close()
    return role, password


def remove_machine(owner_url: str, machine_id: str) -> None:
    """The machine can no longer log in nor write; its history stays."""
    role = role_name(machine_id)
    conn = _owner(owner_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("UPDATE hh_machine SET removed = true WHERE machine_id = %s", (machine_id,))
            cur.execute(pgsql.SQL("ALTER ROLE {} NOLOGIN").format(pgsql.Identifier(role)))
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                        (role,))
    finally:
        conn.close()


def prune_events(owner_url: str, retention_days: int) -> int:
    """Delete forwarded events older than ``retention_days`` (the machines
    cannot: their roles may not delete); intervals, policies, requests and
    the audit are kept. Returns how many were deleted."""
    if retention_days < 1:
        raise ValueError("keep at least one day of events")
    conn = _owner(owner_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("DELETE FROM hh_event WHERE time < (now() AT TIME ZONE 'utc') - %s * interval '1 day'",
                        (retention_days,))
            return cur.rowcount
    finally:
        conn.close()


def machine_url(owner_url: str, role: str, password: str, host: str | None = None,
                sslmode: str | None = None) -> str:
    """The URL a machine connects with: the owner's server and database,
    the machine's role; ``host`` replaces the server's address."""
    parsed = urlparse(owner_url)
    netloc = f"{quote(role)}:{quote(password, safe='')}@{host or parsed.hostname or ''}"
    if parsed.port and not host:
        netloc += f":{parsed.port}"
    query = parsed.query
    if sslmode:
        query = "&".join(p for p in (query, f"sslmode={sslmode}") if p)
    return urlunparse((parsed.scheme, netloc, parsed.path, "", query, ""))


def write_config(path: str | os.PathLike[str], url: str, machine_name: str, *,
                 machine_id: str | None = None, members: dict[str, str] | None = None,
                 sync_seconds: float | None = None, owner: tuple[int, int] | None = None) -> None:
    """The machine's household file, mode 600 (owned by ``owner`` uid/gid)."""
    data: dict[str, Any] = {"url": url, "machine_name": machine_name, "members": members or {}}
    if machine_id:
        data["machine_id"] = machine_id
    if sync_seconds:
        data["sync_seconds"] = sync_seconds
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        if owner is not None:
            os.fchown(f.fileno(), *owner)
        json.dump(data, f, indent=2)
        f.write("\n")
