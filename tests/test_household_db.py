"""The household database without daemons: row-level security per
machine, policy versions and their audit, interval accounting (union
across machines, idempotent reconciliation of the local journal)."""

from __future__ import annotations

import datetime as dt

import psycopg2
import pytest

from dots_policyd.db import open_database
from dots_policyd.household import roles
from dots_policyd.household.budget import HouseholdUsage, union_seconds
from dots_policyd.household.journal import Journal
from dots_policyd.household.store import HouseholdStore, Refused, Stale
from dots_policyd.migrations import migrate

A, B, C = "a" * 32, "b" * 32, "c" * 32


@pytest.fixture
def household(postgres_db_url):
    roles.init(postgres_db_url)
    urls = {}
    for mid, name, parents in ((A, "living-room", True), (B, "laptop", False), (C, "spare", False)):
        role, password = roles.add_machine(postgres_db_url, mid, name, parents)
        urls[mid] = roles.machine_url(postgres_db_url, role, password)
    return postgres_db_url, urls


def store(urls, mid) -> HouseholdStore:
    s = HouseholdStore(urls[mid], mid)
    s.open()
    return s


def test_union_counts_simultaneous_use_once():
    assert union_seconds([(0, 10), (5, 15), (20, 30)], 0, 100) == 25
    assert union_seconds([(0, 10), (5, 15)], 8, 12) == 4
    assert union_seconds([], 0, 10) == 0


def test_a_machine_writes_only_its_own_rows(household):
    owner, urls = household
    a, b = store(urls, A), store(urls, B)
    version = a.push_policy("kid", '{"daily_limit_minutes": 60}', 0, 1000, "mum", "set_policy", None)
    assert version == 1
    b.upload_intervals([(1, "kid", 100.0, 200.0)])

    # B (a child's laptop) may not change the policy, nor add a member
    with pytest.raises(Refused):
        b.push_policy("kid", '{}', 1, 1001, "kid", "set_policy", None)
    with pytest.raises(Refused):
        b.push_policy("other", '{}', 0, 1001, "kid", "set_policy", None)
    # B may not write A's intervals, by insert or by update; nor A's health
    raw = psycopg2.connect(urls[B])
    for statement in (
            f"INSERT INTO hh_interval (machine_id, local_id, member, start_at, end_at) VALUES ('{A}', 9, 'kid', 0, 1)",
            f"INSERT INTO hh_audit (machine_id, actor_uid, actor_name, action, target) VALUES ('{A}', 0, 'x', 'y', 'z')",
            f"INSERT INTO hh_event (machine_id, monitor, local_id, uid, time, data) VALUES ('{A}', 'p', 1, 1, now(), '{{}}')",
            "DELETE FROM hh_audit", "DELETE FROM hh_policy", "UPDATE hh_policy SET policy = '{}'",
            "UPDATE hh_machine SET may_edit_policy = true",
            "INSERT INTO child (uid, name, policy, created) VALUES (5000, 'x', '{}', now())"):
        with pytest.raises(psycopg2.Error):
            with raw, raw.cursor() as cur:
                cur.execute(statement)
    # updates that row-level security filters out change nothing
    with raw, raw.cursor() as cur:
        cur.execute(f"UPDATE hh_interval SET end_at = 1e9 WHERE machine_id = '{A}'")
        assert cur.rowcount == 0
        cur.execute(f"UPDATE hh_machine SET health = 'x' WHERE machine_id = '{A}'")
        assert cur.rowcount == 0
    raw.close()
    assert a.policies() == {"kid": (1, '{"daily_limit_minutes": 60}')}
    [entry] = a.audit()
    assert (entry["machine"], entry["actor_name"], entry["action"]) == ("living-room", "mum", "set_policy")


def test_policy_versions_do_not_lose_updates(household):
    _, urls = household
    a = store(urls, A)
    a.push_policy("kid", '{"a": 1}', 0, 1000, "mum", "set_policy", None)
    with pytest.raises(Stale):
        a.push_policy("kid", '{"a": 2}', 0, 1000, "dad", "set_policy", None)
    assert a.policies()["kid"][0] == 1


def test_removed_machine_can_no_longer_connect(household):
    owner, urls = household
    roles.remove_machine(owner, C)
    with pytest.raises(Exception):
        store(urls, C)


def test_offline_journal_reconciles_without_double_counting(household, tmp_path):
    _, urls = household
    local = open_database(tmp_path / "local.db")
    migrate(local)
    journal = Journal(local)
    day = dt.date(2026, 3, 2)
    t0 = dt.datetime.combine(day, dt.time(10)).astimezone().timestamp()
    # the laptop journals 10:00-10:20 in 5 s spans, offline
    for i in range(240):
        journal.add("kid", t0 + 5 * i, t0 + 5 * (i + 1))
    assert journal.count_pending() == 1  # merged into one row
    b = store(urls, B)
    # uploaded twice (a crash after the commit, before the acknowledgement)
    pending = journal.pending()
    b.upload_intervals(pending)
    b.upload_intervals(pending)
    journal.acknowledge(pending)
    assert journal.count_pending() == 0
    # the living room was used 10:10-10:30 at the same time
    a = store(urls, A)
    a.upload_intervals([(1, "kid", t0 + 600, t0 + 1800)])
    usage = HouseholdUsage(local, journal, lambda uid: "kid")
    usage.remote = a.other_intervals(["kid"], t0 - 3600, t0 + 7200)  # as B's sync sees it: A's only
    usage.remote = b.other_intervals(["kid"], t0 - 3600, t0 + 7200)
    assert usage.member_used("kid", day, day) == 30 * 60  # 10:00-10:30, overlap counted once
    local.close()


def test_only_a_parents_machine_answers_requests(household):
    _, urls = household
    a, b = store(urls, A), store(urls, B)
    now = dt.datetime(2026, 3, 2, 15)
    b.upload_requests([(7, "kid", 30, "homework", now)])
    b.upload_requests([(7, "kid", 30, "homework", now)])  # sent twice: one request
    with pytest.raises(Refused):  # the child's laptop cannot grant itself time
        b.answer(B, 7, True, 0, 1001, "kid")
    assert a.answer(B, 7, True, 0, 1000, "mum") == (True, 30)  # 0 = as asked
    assert a.answer(B, 7, False, 0, 1000, "dad")[0] is False  # the first answer wins
    assert b.answers_to_me() == [(7, True, 30)]
    # the other machines count the grant; the asking machine counts it locally
    assert [(m, g) for m, _t, g in a.other_grants(["kid"], now - dt.timedelta(days=1))] == [("kid", 30)]
    assert b.other_grants(["kid"], now - dt.timedelta(days=1)) == []
    [row] = a.requests()
    assert (row["machine"], row["approved"], row["answered_by"], row["answered_on"]) == \
        ("laptop", True, "mum", "living-room")


def test_events_are_forwarded_once_with_their_machine(household, tmp_path):
    from dots_common.records import ProcessEvent
    from dots_policyd import history
    from dots_policyd.household.forward import forward_events

    _, urls = household
    local = open_database(tmp_path / "local.db")
    migrate(local)
    offset = 1_700_000_000 * 10**9
    for batch in range(3):
        history.store_batch(local, "process", f"i:{batch:020d}",
                            [ProcessEvent("exec", 100 + i, 1, 1001, 1001, "yes", "/usr/bin/yes", 0, i)
                             for i in range(batch * 10, batch * 10 + 10)], offset)
    b = store(urls, B)
    assert forward_events(b, {}, batch=20) == 20
    assert forward_events(b, {}, batch=20) == 10  # resumes from what the household holds
    assert forward_events(b, {}, batch=20) == 0
    b.forward_events("process", [(1, 1001, dt.datetime(2026, 3, 2), "{}")])  # sent again: ignored
    conn = psycopg2.connect(household[0])
    with conn, conn.cursor() as cur:
        cur.execute("SELECT machine_id, count(*), count(DISTINCT local_id) FROM hh_event GROUP BY machine_id")
        assert cur.fetchall() == [(B, 30, 30)]
    conn.close()
    with store(urls, A).tx("read another machine's events") as cur:  # private to their machine
        cur.execute("SELECT count(*) FROM hh_event")
        assert cur.fetchone()[0] == 0
    local.close()


def test_a_database_without_household_tables_is_refused(postgres_db_url):
    db = open_database(postgres_db_url)
    migrate(db, target=3)  # a single machine's database of before household mode
    db.close()
    with pytest.raises(Refused, match="dots-household init"):
        HouseholdStore(postgres_db_url, A).open()
