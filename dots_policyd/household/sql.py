"""The household tables (schema version 5) as SQL, per dialect.

PostgreSQL holds the household: machines, members, the one policy per
member (append-only versions), the audit of who changed what from which
machine, every machine's screen-time intervals, daily per-app and granted
seconds, and forwarded events. Row-level security lets a machine's role
read the household and write only rows carrying its own machine id; only
machines flagged ``may_edit_policy`` may add policy versions or members.
A trigger NOTIFYs ``dots_household`` on every new policy version, time
request and answer. Requests for more time are answered once, from a
parents' machine, whichever machine the child asked on.

SQLite (each machine's local database) gets only the local, crash-safe
journal of screen-time intervals not yet known to be in the household
database, and a small key/value table for the last known household state.
"""

from __future__ import annotations

NOTIFY_CHANNEL = "dots_household"

#: the NOLOGIN role every machine's login role is a member of
MACHINE_GROUP = "dots_machine"

LOCAL_TABLES = [
    # local id = the household row's local_id: an upload is an idempotent upsert
    "CREATE TABLE household_interval ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " member TEXT NOT NULL,"
    " start_at REAL NOT NULL,"  # Unix seconds
    " end_at REAL NOT NULL,"
    " uploaded_end REAL NOT NULL DEFAULT -1,"  # end_at as last acknowledged by the household
    " CHECK (end_at >= start_at))",
    "CREATE INDEX household_interval_member ON household_interval (member, start_at)",
    "CREATE TABLE household_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
]

_POSTGRES_TABLES = [
    "CREATE TABLE household_interval ("
    " id BIGSERIAL PRIMARY KEY, member TEXT NOT NULL, start_at DOUBLE PRECISION NOT NULL,"
    " end_at DOUBLE PRECISION NOT NULL, uploaded_end DOUBLE PRECISION NOT NULL DEFAULT -1,"
    " CHECK (end_at >= start_at))",
    "CREATE TABLE household_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE hh_machine ("
    " machine_id TEXT PRIMARY KEY CHECK (machine_id ~ '^[0-9a-f]{32}$'),"
    " name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),"
    " role_name TEXT NOT NULL UNIQUE,"
    " may_edit_policy BOOLEAN NOT NULL DEFAULT false,"
    " removed BOOLEAN NOT NULL DEFAULT false,"
    " added TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),"
    " last_contact TIMESTAMP,"
    " health TEXT NOT NULL DEFAULT '{}' CHECK (length(health) <= 4096))",
    "CREATE TABLE hh_member ("
    " name TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),"
    " created TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'))",
    "CREATE TABLE hh_member_account ("
    " machine_id TEXT NOT NULL REFERENCES hh_machine, uid BIGINT NOT NULL,"
    " user_name TEXT NOT NULL, member TEXT NOT NULL REFERENCES hh_member,"
    " PRIMARY KEY (machine_id, uid))",
    "CREATE TABLE hh_policy ("
    " member TEXT NOT NULL REFERENCES hh_member, version INTEGER NOT NULL CHECK (version > 0),"
    " policy TEXT NOT NULL CHECK (length(policy) <= 1048576),"
    " machine_id TEXT NOT NULL REFERENCES hh_machine, author_uid BIGINT NOT NULL,"
    " author_name TEXT NOT NULL, time TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),"
    " PRIMARY KEY (member, version))",
    "CREATE TABLE hh_audit ("
    " id BIGSERIAL PRIMARY KEY, time TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),"
    " machine_id TEXT NOT NULL REFERENCES hh_machine, actor_uid BIGINT NOT NULL,"
    " actor_name TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,"
    " old_value TEXT, new_value TEXT,"
    " local_id BIGINT, UNIQUE (machine_id, local_id))",  # a forwarded local audit row's id
    "CREATE TABLE hh_interval ("
    " machine_id TEXT NOT NULL REFERENCES hh_machine, local_id BIGINT NOT NULL,"
    " member TEXT NOT NULL, start_at DOUBLE PRECISION NOT NULL, end_at DOUBLE PRECISION NOT NULL,"
    " CHECK (end_at >= start_at AND end_at - start_at <= 86400),"
    " PRIMARY KEY (machine_id, local_id))",
    "CREATE INDEX hh_interval_member ON hh_interval (member, start_at)",
    # kind 'app': key = the program (granted time comes from hh_answer)
    "CREATE TABLE hh_daily ("
    " machine_id TEXT NOT NULL REFERENCES hh_machine, member TEXT NOT NULL, day DATE NOT NULL,"
    " kind TEXT NOT NULL CHECK (kind IN ('app')), key TEXT NOT NULL,"
    " seconds BIGINT NOT NULL CHECK (seconds >= 0),"
    " PRIMARY KEY (machine_id, member, day, kind, key))",
    "CREATE TABLE hh_event ("
    " machine_id TEXT NOT NULL REFERENCES hh_machine, monitor TEXT NOT NULL,"
    " local_id BIGINT NOT NULL, uid BIGINT NOT NULL, time TIMESTAMP NOT NULL, data JSONB NOT NULL,"
    " PRIMARY KEY (machine_id, monitor, local_id))",
    "CREATE INDEX hh_event_time ON hh_event (time)",
    # a child's request for more time, made on machine_id (its local id there)
    "CREATE TABLE hh_request ("
    " machine_id TEXT NOT NULL REFERENCES hh_machine, local_id BIGINT NOT NULL,"
    " member TEXT NOT NULL, minutes INTEGER NOT NULL CHECK (minutes BETWEEN 1 AND 1440),"
    " reason TEXT NOT NULL CHECK (length(reason) <= 500), created TIMESTAMP NOT NULL,"
    " PRIMARY KEY (machine_id, local_id))",
    # its one answer (the first wins), given on machine_id
    "CREATE TABLE hh_answer ("
    " request_machine TEXT NOT NULL, request_id BIGINT NOT NULL,"
    " machine_id TEXT NOT NULL REFERENCES hh_machine, approved BOOLEAN NOT NULL,"
    " granted_minutes INTEGER NOT NULL CHECK (granted_minutes BETWEEN 0 AND 1440),"
    " actor_uid BIGINT NOT NULL, actor_name TEXT NOT NULL,"
    " time TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),"
    " PRIMARY KEY (request_machine, request_id),"
    " FOREIGN KEY (request_machine, request_id) REFERENCES hh_request (machine_id, local_id))",
]

_POSTGRES_FUNCTIONS = [
    # SECURITY DEFINER: reads hh_machine whatever the caller may read;
    # session_user is the login role (current_user would be the definer)
    "CREATE FUNCTION dots_machine() RETURNS TEXT LANGUAGE sql STABLE SECURITY DEFINER "
    "SET search_path = pg_catalog, public AS "
    "$$ SELECT machine_id FROM public.hh_machine WHERE role_name = session_user AND NOT removed $$",
    "CREATE FUNCTION dots_machine_may_edit() RETURNS BOOLEAN LANGUAGE sql STABLE SECURITY DEFINER "
    "SET search_path = pg_catalog, public AS "
    "$$ SELECT coalesce((SELECT may_edit_policy FROM public.hh_machine "
    "WHERE role_name = session_user AND NOT removed), false) $$",
    "CREATE FUNCTION hh_notify() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN PERFORM pg_notify('{NOTIFY_CHANNEL}', TG_TABLE_NAME || ':' || NEW.member); "
    "RETURN NULL; END $$",
    "CREATE TRIGGER hh_policy_notify AFTER INSERT ON hh_policy "
    "FOR EACH ROW EXECUTE FUNCTION hh_notify()",
    "CREATE FUNCTION hh_notify_answer() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN PERFORM pg_notify('{NOTIFY_CHANNEL}', 'hh_answer:' || NEW.request_machine); "
    "RETURN NULL; END $$",
    "CREATE TRIGGER hh_request_notify AFTER INSERT ON hh_request "
    "FOR EACH ROW EXECUTE FUNCTION hh_notify()",
    "CREATE TRIGGER hh_answer_notify AFTER INSERT ON hh_answer "
    "FOR EACH ROW EXECUTE FUNCTION hh_notify_answer()",
    "CREATE TRIGGER hh_answer_no_change BEFORE UPDATE OR DELETE ON hh_answer "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change()",
    # the household audit is append-only, like the local one
    "CREATE TRIGGER hh_audit_no_change BEFORE UPDATE OR DELETE ON hh_audit "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change()",
    "CREATE TRIGGER hh_policy_no_change BEFORE UPDATE OR DELETE ON hh_policy "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change()",
]

_OWN = "machine_id = dots_machine()"

#: (table, policy name, command, USING, WITH CHECK)
_RLS: list[tuple[str, str, str, str | None, str | None]] = [
    ("hh_machine", "read", "SELECT", "true", None),
    ("hh_machine", "own", "UPDATE", _OWN, _OWN),
    ("hh_member", "read", "SELECT", "true", None),
    ("hh_member", "add", "INSERT", None, "dots_machine_may_edit()"),
    ("hh_member_account", "read", "SELECT", "true", None),
    ("hh_member_account", "add", "INSERT", None, _OWN),
    ("hh_member_account", "own", "UPDATE", _OWN, _OWN),
    ("hh_member_account", "drop", "DELETE", _OWN, None),
    ("hh_policy", "read", "SELECT", "true", None),
    ("hh_policy", "add", "INSERT", None, f"{_OWN} AND dots_machine_may_edit()"),
    ("hh_audit", "read", "SELECT", "true", None),
    ("hh_audit", "add", "INSERT", None, _OWN),
    ("hh_interval", "read", "SELECT", "true", None),
    ("hh_interval", "add", "INSERT", None, _OWN),
    ("hh_interval", "own", "UPDATE", _OWN, _OWN),
    ("hh_daily", "read", "SELECT", "true", None),
    ("hh_daily", "add", "INSERT", None, _OWN),
    ("hh_daily", "own", "UPDATE", _OWN, _OWN),
    ("hh_event", "read", "SELECT", _OWN, None),  # a machine needs only its own forwarding mark
    ("hh_event", "add", "INSERT", None, _OWN),
    ("hh_request", "read", "SELECT", "true", None),
    ("hh_request", "add", "INSERT", None, _OWN),
    # only a parents' machine answers (a child's own laptop cannot grant itself time)
    ("hh_answer", "read", "SELECT", "true", None),
    ("hh_answer", "add", "INSERT", None, f"{_OWN} AND dots_machine_may_edit()"),
]


def _rls_statements() -> list[str]:
    out = [f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY" for t in dict.fromkeys(r[0] for r in _RLS)]
    for table, name, command, using, check in _RLS:
        text = f"CREATE POLICY {name} ON {table} FOR {command}"
        if using is not None:
            text += f" USING ({using})"
        if check is not None:
            text += f" WITH CHECK ({check})"
        out.append(text)
    return out


def statements(dialect: str) -> list[str]:
    """What migration 4 runs on a database of ``dialect``."""
    if dialect == "sqlite":
        return list(LOCAL_TABLES)
    return [*_POSTGRES_TABLES, *_POSTGRES_FUNCTIONS, *_rls_statements()]


#: what a machine's role may do beyond what row-level security allows
#: (applied by dots_policyd.household.roles, which creates the roles)
GRANTS = [
    "GRANT USAGE ON SCHEMA public TO {group}",
    "GRANT SELECT ON hh_machine, hh_member, hh_member_account, hh_policy, hh_audit, "
    "hh_interval, hh_daily, hh_event, hh_request, hh_answer, schema_version TO {group}",
    "GRANT INSERT ON hh_member, hh_member_account, hh_policy, hh_audit, hh_interval, hh_daily, "
    "hh_event, hh_request, hh_answer TO {group}",
    "GRANT UPDATE (last_contact, health) ON hh_machine TO {group}",
    "GRANT UPDATE (user_name, member) ON hh_member_account TO {group}",
    "GRANT DELETE ON hh_member_account TO {group}",
    "GRANT UPDATE (end_at) ON hh_interval TO {group}",
    "GRANT UPDATE (seconds) ON hh_daily TO {group}",
    "GRANT USAGE ON SEQUENCE hh_audit_id_seq TO {group}",
]
