"""The household database as one machine sees it: a psycopg2 connection
with the machine's own role (row-level security decides what it may
write). No asyncio here: the agent calls these methods in one worker
thread. Driver errors that mean "unreachable" become :class:`Offline`;
a refusal by row-level security or a grant becomes :class:`Refused`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extras

from .journal import Row
from .sql import NOTIFY_CHANNEL

log = logging.getLogger("dots.policyd.household")

CONNECT_TIMEOUT = 3  # seconds


class Offline(RuntimeError):
    """The household database cannot be reached (or answered oddly)."""


class Refused(RuntimeError):
    """The database refused the write: this machine may not do that."""


class Stale(RuntimeError):
    """Another machine added a policy version first."""


@contextlib.contextmanager
def _errors(action: str) -> Iterator[None]:
    try:
        yield
    except (psycopg2.errors.InsufficientPrivilege, psycopg2.errors.CheckViolation) as exc:
        raise Refused(f"{action}: {exc.diag.message_primary or exc}") from exc
    except psycopg2.errors.UniqueViolation as exc:
        raise Stale(f"{action}: {exc.diag.message_primary or exc}") from exc
    except (psycopg2.IntegrityError, psycopg2.DataError) as exc:  # a row the database will not take
        raise Refused(f"{action}: {exc.diag.message_primary or exc}") from exc
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        raise Offline(f"{action}: {' '.join(str(exc).split())}") from exc


def connect(url: str, autocommit: bool = False) -> Any:
    with _errors("cannot reach the household database"):
        conn = psycopg2.connect(url, connect_timeout=CONNECT_TIMEOUT, application_name="dots-policyd",
                                keepalives=1, keepalives_idle=10, keepalives_interval=5,
                                keepalives_count=3)
    conn.autocommit = autocommit
    return conn


class HouseholdStore:
    def __init__(self, url: str, machine_id: str) -> None:
        self.url = url
        self.machine_id = machine_id
        self.conn: Any = None

    # --- connection ---------------------------------------------------------------
    def open(self) -> None:
        """Connect and check this role is this machine (fail closed)."""
        if self.conn is not None and not self.conn.closed:
            return
        self.conn = connect(self.url)
        try:
            with self.tx("check the household database") as cur:
                # (by its tables, not a version number: migrations may be renumbered)
                cur.execute("SELECT to_regclass('public.hh_answer') IS NOT NULL "
                            "AND to_regprocedure('public.dots_machine()') IS NOT NULL")
                if not cur.fetchone()[0]:
                    raise Refused("the database has no household tables: "
                                  "run dots-household init on it first")
                cur.execute("SELECT dots_machine()")
                mine = cur.fetchone()[0]
            if mine != self.machine_id:
                raise Refused(f"this database role is machine {mine or 'none (removed?)'}, "
                              f"not {self.machine_id}: check the household file")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
        self.conn = None

    @contextlib.contextmanager
    def tx(self, action: str) -> Iterator[Any]:
        """One transaction; a dropped connection is closed (reopened later)."""
        if self.conn is None or self.conn.closed:
            raise Offline(f"{action}: not connected")
        try:
            with _errors(action):
                with self.conn:  # commit, or roll back on error
                    with self.conn.cursor() as cur:
                        yield cur
        except Offline:
            self.close()
            raise

    def _insert_many(self, action: str, statement: str, rows: Sequence[tuple]) -> None:
        """One multi-row INSERT (``VALUES %s``) of rows prefixed with this
        machine's id, in one transaction; nothing to do for no rows."""
        if not rows:
            return
        with self.tx(action) as cur:
            psycopg2.extras.execute_values(cur, statement, [(self.machine_id, *row) for row in rows],
                                           page_size=1000)

    # --- machines ------------------------------------------------------------------
    def heartbeat(self, health: dict[str, Any]) -> None:
        with self.tx("report this machine's health") as cur:
            cur.execute("UPDATE hh_machine SET last_contact = now() AT TIME ZONE 'utc', health = %s "
                        "WHERE machine_id = %s", (json.dumps(health, sort_keys=True)[:4096], self.machine_id))

    def machines(self) -> list[dict[str, Any]]:
        with self.tx("list the machines") as cur:
            cur.execute("SELECT machine_id, name, may_edit_policy, removed, last_contact, health "
                        "FROM hh_machine ORDER BY name")
            return [{"machine_id": m, "name": n, "may_edit_policy": e, "removed": r,
                     "last_contact": lc, "health": h} for m, n, e, r, lc, h in cur.fetchall()]

    def map_accounts(self, accounts: Sequence[tuple[int, str, str]]) -> None:
        """This machine's local children: (uid, account name, member)."""
        with self.tx("map local accounts to members") as cur:
            cur.execute("SELECT name FROM hh_member")
            known = {n for (n,) in cur.fetchall()}
            cur.execute("DELETE FROM hh_member_account WHERE machine_id = %s", (self.machine_id,))
            for uid, user, member in accounts:
                if member in known:
                    cur.execute("INSERT INTO hh_member_account (machine_id, uid, user_name, member) "
                                "VALUES (%s, %s, %s, %s)", (self.machine_id, uid, user, member))

    # --- policy --------------------------------------------------------------------
    def policies(self) -> dict[str, tuple[int, str]]:
        """Every member's newest policy: member -> (version, JSON)."""
        with self.tx("read the household policy") as cur:
            cur.execute("SELECT DISTINCT ON (member) member, version, policy FROM hh_policy "
                        "ORDER BY member, version DESC")
            return {m: (v, p) for m, v, p in cur.fetchall()}

    def push_policy(self, member: str, policy: str, base_version: int, author_uid: int,
                    author_name: str, action: str, old: str | None) -> int:
        """Add version ``base_version + 1`` (Stale if someone else did) and
        its audit row, in one transaction."""
        version = base_version + 1
        with self.tx(f"change {member}'s policy") as cur:
            cur.execute("INSERT INTO hh_member (name) VALUES (%s) ON CONFLICT DO NOTHING", (member,))
            cur.execute("INSERT INTO hh_policy (member, version, policy, machine_id, author_uid, "
                        "author_name) VALUES (%s, %s, %s, %s, %s, %s)",
                        (member, version, policy, self.machine_id, author_uid, author_name))
            cur.execute("INSERT INTO hh_audit (machine_id, actor_uid, actor_name, action, target, "
                        "old_value, new_value) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        (self.machine_id, author_uid, author_name, action, f"member:{member}", old, policy))
        return version

    def last_forwarded_audit(self) -> int:
        with self.tx("read the audit forwarding mark") as cur:
            cur.execute("SELECT coalesce(max(local_id), 0) FROM hh_audit WHERE machine_id = %s",
                        (self.machine_id,))
            return int(cur.fetchone()[0])

    def forward_audit(self, rows: Sequence[tuple[int, dt.datetime, int, str, str, str, str | None, str | None]]) -> None:
        """This machine's own audit rows: (local id, time, actor uid, actor name,
        action, target, old, new); a row sent twice is stored once."""
        self._insert_many("forward the audit log",
                          "INSERT INTO hh_audit (machine_id, local_id, time, actor_uid, actor_name, action, "
                          "target, old_value, new_value) VALUES %s ON CONFLICT DO NOTHING", rows)

    def audit(self, limit: int = 100) -> list[dict[str, Any]]:
        with self.tx("read the household audit") as cur:
            cur.execute("SELECT a.id, a.time, a.machine_id, m.name, a.actor_uid, a.actor_name, a.action, "
                        "a.target, a.old_value, a.new_value FROM hh_audit a JOIN hh_machine m "
                        "USING (machine_id) ORDER BY a.time DESC, a.id DESC LIMIT %s", (limit,))
            keys = ("id", "time", "machine_id", "machine", "actor_uid", "actor_name", "action",
                    "target", "old_value", "new_value")
            return [dict(zip(keys, row)) for row in cur.fetchall()]

    # --- time ----------------------------------------------------------------------
    def upload_intervals(self, rows: Sequence[Row]) -> None:
        """Idempotent: a row sent again never counts twice nor shrinks."""
        self._insert_many("upload screen-time intervals",
                          "INSERT INTO hh_interval (machine_id, local_id, member, start_at, end_at) VALUES %s "
                          "ON CONFLICT (machine_id, local_id) DO UPDATE "
                          "SET end_at = GREATEST(hh_interval.end_at, EXCLUDED.end_at)", rows)

    def other_intervals(self, members: Sequence[str], low: float, high: float) -> dict[str, list[tuple[float, float]]]:
        """Every other machine's intervals of ``members`` overlapping [low, high)."""
        out: dict[str, list[tuple[float, float]]] = {m: [] for m in members}
        if not members:
            return out
        with self.tx("read the household's screen time") as cur:
            cur.execute("SELECT member, start_at, end_at FROM hh_interval WHERE member = ANY(%s) "
                        "AND machine_id <> %s AND end_at > %s AND start_at < %s",
                        (list(members), self.machine_id, low, high))
            for member, a, b in cur.fetchall():
                out[member].append((a, b))
        return out

    def upload_daily(self, rows: Sequence[tuple[str, dt.date, str, str, int]]) -> None:
        """(member, day, kind, key, seconds) of this machine: totals, so an
        upsert (never lowering) is idempotent."""
        self._insert_many("upload daily totals",
                          "INSERT INTO hh_daily (machine_id, member, day, kind, key, seconds) VALUES %s "
                          "ON CONFLICT (machine_id, member, day, kind, key) DO UPDATE "
                          "SET seconds = GREATEST(hh_daily.seconds, EXCLUDED.seconds)", rows)

    # --- requests for more time ----------------------------------------------------
    def upload_requests(self, rows: Sequence[tuple[int, str, int, str, dt.datetime]]) -> None:
        """This machine's requests: (local id, member, minutes, reason, created)."""
        self._insert_many("upload time requests",
                          "INSERT INTO hh_request (machine_id, local_id, member, minutes, reason, created) "
                          "VALUES %s ON CONFLICT DO NOTHING", rows)

    def answer(self, request_machine: str, request_id: int, approved: bool, minutes: int,
               actor_uid: int, actor_name: str) -> tuple[bool, int]:
        """Record the answer (Refused unless this is a parents' machine);
        ``minutes`` 0 = as asked. Returns (False, _) when the request was
        answered already (the first answer wins) and the minutes granted;
        LookupError when there is no such request."""
        with self.tx("answer a time request") as cur:
            cur.execute("SELECT minutes FROM hh_request WHERE machine_id = %s AND local_id = %s",
                        (request_machine, request_id))
            row = cur.fetchone()
            if row is None:
                raise LookupError(f"no time request {request_id} from machine {request_machine}")
            granted_minutes = (minutes or int(row[0])) if approved else 0
            cur.execute("INSERT INTO hh_answer (request_machine, request_id, machine_id, approved, "
                        "granted_minutes, actor_uid, actor_name) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                        "ON CONFLICT DO NOTHING",
                        (request_machine, request_id, self.machine_id, approved, granted_minutes,
                         actor_uid, actor_name))
            done = cur.rowcount == 1
            if done:
                cur.execute("INSERT INTO hh_audit (machine_id, actor_uid, actor_name, action, target, "
                            "new_value) VALUES (%s, %s, %s, 'answer_request', %s, %s)",
                            (self.machine_id, actor_uid, actor_name, f"request:{request_machine}:{request_id}",
                             json.dumps({"approved": approved, "granted_minutes": granted_minutes})))
            return done, granted_minutes

    def answers_to_me(self) -> list[tuple[int, bool, int]]:
        """Answers to this machine's requests: (local id, approved, granted minutes)."""
        with self.tx("read answers to this machine's requests") as cur:
            cur.execute("SELECT request_id, approved, granted_minutes FROM hh_answer "
                        "WHERE request_machine = %s", (self.machine_id,))
            return [(int(i), bool(a), int(g)) for i, a, g in cur.fetchall()]

    def other_grants(self, members: Sequence[str], since: dt.datetime) -> list[tuple[str, dt.datetime, int]]:
        """Minutes granted since ``since`` (naive UTC) to requests made on OTHER
        machines: (member, answer time, minutes)."""
        if not members:
            return []
        with self.tx("read the household's granted time") as cur:
            cur.execute("SELECT r.member, a.time, a.granted_minutes FROM hh_answer a JOIN hh_request r "
                        "ON r.machine_id = a.request_machine AND r.local_id = a.request_id "
                        "WHERE a.approved AND r.member = ANY(%s) AND a.request_machine <> %s "
                        "AND a.time >= %s", (list(members), self.machine_id, since))
            return [(m, t, int(g)) for m, t, g in cur.fetchall()]

    def requests(self, limit: int = 200) -> list[dict[str, Any]]:
        """The household's newest requests with their answers."""
        with self.tx("list the household's time requests") as cur:
            cur.execute("SELECT r.machine_id, m.name, r.local_id, r.member, r.minutes, r.reason, r.created, "
                        "a.approved, a.granted_minutes, a.actor_name, am.name FROM hh_request r "
                        "JOIN hh_machine m ON m.machine_id = r.machine_id "
                        "LEFT JOIN hh_answer a ON a.request_machine = r.machine_id AND a.request_id = r.local_id "
                        "LEFT JOIN hh_machine am ON am.machine_id = a.machine_id "
                        "ORDER BY r.created DESC LIMIT %s", (limit,))
            keys = ("machine_id", "machine", "id", "member", "minutes", "reason", "created", "approved",
                    "granted_minutes", "answered_by", "answered_on")
            return [dict(zip(keys, row)) for row in cur.fetchall()]

    def other_daily(self, members: Sequence[str], kind: str, first: dt.date,
                    last: dt.date) -> dict[tuple[str, dt.date, str], int]:
        if not members:
            return {}
        with self.tx("read the household's daily totals") as cur:
            cur.execute("SELECT member, day, key, sum(seconds) FROM hh_daily WHERE member = ANY(%s) "
                        "AND machine_id <> %s AND kind = %s AND day BETWEEN %s AND %s "
                        "GROUP BY member, day, key", (list(members), self.machine_id, kind, first, last))
            return {(m, d, k): int(s) for m, d, k, s in cur.fetchall()}

    # --- events --------------------------------------------------------------------
    def last_forwarded(self, monitor: str) -> int:
        with self.tx("read the forwarding mark") as cur:
            cur.execute("SELECT coalesce(max(local_id), 0) FROM hh_event WHERE machine_id = %s "
                        "AND monitor = %s", (self.machine_id, monitor))
            return int(cur.fetchone()[0])

    def forward_events(self, monitor: str, rows: Sequence[tuple[int, int, dt.datetime, str]]) -> None:
        """(local id, uid, time, JSON of the fields); a row sent twice is stored once."""
        self._insert_many("forward events",
                          "INSERT INTO hh_event (machine_id, monitor, local_id, uid, time, data) VALUES %s "
                          "ON CONFLICT DO NOTHING", [(monitor, *row) for row in rows])


class PolicyListener:
    """A second, autocommit connection that LISTENs for policy changes."""

    def __init__(self, url: str) -> None:
        self.conn = connect(url, autocommit=True)
        with _errors("listen for policy changes"):
            with self.conn.cursor() as cur:
                cur.execute(f"LISTEN {NOTIFY_CHANNEL}")

    def fileno(self) -> int:
        return self.conn.fileno()

    def drain(self) -> list[str]:
        """The notifications' payloads received so far ("table:member")."""
        with _errors("receive policy changes"):
            self.conn.poll()
        out = [n.payload for n in self.conn.notifies]
        self.conn.notifies.clear()
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
