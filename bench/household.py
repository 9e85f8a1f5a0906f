"""Household-mode benchmark (issue 17), standalone (as root):

    .venv/bin/python bench/household.py [--machines 20] [--events 25000] [--pushes 30]

1. Policy propagation latency across machines: machine A (a parent's)
   adds a policy version; machine B's household agent (LISTEN/NOTIFY, its
   periodic re-read set to 30 s so that it cannot be what delivers) has
   applied it to its local child account — the moment its enforcers reload.
   Also the bare NOTIFY latency (commit on A -> notification on B).
2. Ingest: N simulated machines (one process each, own database role,
   own local SQLite filled through the real store_batch) forward their
   events into ONE household database at once, as the agent does.
   Reports events/s, events lost (expected vs stored), and the database
   size per event and per child-day (at CHILD_DAY_EVENTS, stated below).

A throwaway PostgreSQL cluster WITH fsync is started under /tmp. Results:
bench/results/household-<date>.json and a summary on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dots_common.records import ProcessEvent  # noqa: E402
from dots_policyd.household import roles  # noqa: E402
from dots_policyd.household.store import HouseholdStore, PolicyListener  # noqa: E402
from tests.fixtures.postgres import PostgresCluster  # noqa: E402

#: an assumed child-day of stored events (process + network + file events of
#: a few hours of desktop use); the size per child-day scales with it
CHILD_DAY_EVENTS = 20_000
BATCH = 1000


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# --- ingest: one simulated machine per process ------------------------------------------

def machine_worker(url: str, machine_id: str, events: int, workdir: str, barrier, results) -> None:
    from dots_policyd import history
    from dots_policyd.db import open_database
    from dots_policyd.household.forward import forward_events
    from dots_policyd.migrations import migrate

    db = open_database(Path(workdir) / f"{machine_id}.db")
    migrate(db)
    offset = time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    uid = 1000 + int(machine_id[:4], 16) % 1000
    for start in range(0, events, BATCH):
        records = [ProcessEvent("exec", 1000 + i, 1, uid, uid, "firefox-esr",
                                "/usr/lib/firefox-esr/firefox-esr", 0,
                                time.clock_gettime_ns(time.CLOCK_BOOTTIME))
                   for i in range(start, min(events, start + BATCH))]
        history.store_batch(db, "process", f"{machine_id}:{start:020d}", records, offset)
    store = HouseholdStore(url, machine_id)
    store.open()
    marks: dict[str, int] = {}
    barrier.wait()
    began = time.monotonic()
    sent = 0
    while True:
        n = forward_events(store, marks)
        if not n:
            break
        sent += n
    results.put((machine_id, sent, began, time.monotonic()))
    store.close()
    db.close()


def ingest(owner: str, urls: dict[str, str], events: int, workdir: str) -> dict:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(urls) + 1)
    results = ctx.Queue()
    procs = [ctx.Process(target=machine_worker, args=(url, mid, events, workdir, barrier, results))
             for mid, url in urls.items()]
    for p in procs:
        p.start()
    barrier.wait()  # every machine has its local events: go
    done = [results.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
    first, last = min(d[2] for d in done), max(d[3] for d in done)
    expected = events * len(urls)
    import psycopg2
    conn = psycopg2.connect(owner)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM hh_event")
        stored = cur.fetchone()[0]
        cur.execute("SELECT pg_total_relation_size('hh_event')")
        size = cur.fetchone()[0]
    conn.close()
    per_event = size / max(stored, 1)
    return {"machines": len(urls), "events_per_machine": events, "expected": expected,
            "stored": stored, "lost": expected - stored, "seconds": last - first,
            "events_per_second": stored / (last - first),
            "bytes_per_event": per_event, "child_day_events": CHILD_DAY_EVENTS,
            "bytes_per_child_day": per_event * CHILD_DAY_EVENTS}


# --- propagation ---------------------------------------------------------------------------

def propagation(owner: str, urls: dict[str, str], machine_a: str, machine_b: str, pushes: int,
                workdir: str) -> dict:
    from dots_policyd.db import open_database
    from dots_policyd.family import Family
    from dots_policyd.household.agent import HouseholdAgent
    from dots_policyd.household.identity import load_config
    from dots_policyd.migrations import migrate
    from dots_policyd.schema import Child
    from tests.helpers import ensure_user

    account = "dots-bench-hh"
    ensure_user(account)
    a = HouseholdStore(urls[machine_a], machine_a)
    a.open()
    a.push_policy("kid", json.dumps({"blocked_apps": []}), 0, 0, "bench", "set_policy", None)

    # bare NOTIFY latency
    listener = PolicyListener(urls[machine_b])
    notify = []
    import select
    for i in range(pushes):
        sent = time.monotonic()
        a.push_policy("kid", json.dumps({"blocked_apps": [f"/usr/bin/n{i}"]}), 1 + i, 0, "bench",
                      "set_policy", None)
        while not (select.select([listener], [], [], 5)[0] and listener.drain()):
            pass
        notify.append(time.monotonic() - sent)
    listener.close()
    version = 1 + pushes

    db = open_database(Path(workdir) / "machine-b.db")
    migrate(db)
    family = Family(db)
    config = Path(workdir) / "household-b.conf"
    roles.write_config(config, urls[machine_b], "machine-b", machine_id=machine_b,
                       members={account: "kid"}, sync_seconds=30)
    agent = HouseholdAgent(load_config(config), db, family)
    applied = []

    async def run() -> None:
        nonlocal version
        await agent.start()
        loop = asyncio.get_running_loop()

        def local_policy() -> str | None:
            row = Child.get_or_none(Child.name == account)
            return None if row is None else row.policy

        deadline = time.monotonic() + 30
        while local_policy() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(1)  # the agent's own first syncs are over
        for i in range(pushes):
            text = json.dumps({"blocked_apps": [f"/usr/bin/p{i}"]})
            sent = time.monotonic()
            await loop.run_in_executor(None, a.push_policy, "kid", text, version, 0, "bench",
                                       "set_policy", None)
            version += 1
            while f"/usr/bin/p{i}" not in (local_policy() or ""):
                await asyncio.sleep(0.001)
            applied.append(time.monotonic() - sent)
        await agent.stop()

    asyncio.run(run())
    db.close()
    ms = lambda xs: {"median_ms": statistics.median(xs) * 1000, "p95_ms": percentile(xs, 95) * 1000,  # noqa: E731
                     "max_ms": max(xs) * 1000, "n": len(xs)}
    return {"notify": ms(notify), "applied_on_other_machine": ms(applied)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--machines", type=int, default=20)
    p.add_argument("--events", type=int, default=25_000, help="events per machine")
    p.add_argument("--pushes", type=int, default=30)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (the cluster runs as the postgres account)")
    root = Path(tempfile.mkdtemp(prefix="dots-bench-pg-", dir="/tmp"))
    cluster = PostgresCluster(root, fsync=True)
    cluster.start()
    workdir = tempfile.mkdtemp(prefix="dots-bench-hh-")
    try:
        owner = cluster.create_database("household")
        roles.init(owner)
        urls = {}
        for i in range(args.machines):
            mid = uuid.uuid4().hex
            role, password = roles.add_machine(owner, mid, f"pc-{i:02d}", may_edit_policy=(i == 0))
            urls[mid] = roles.machine_url(owner, role, password)
        ids = list(urls)
        print("propagation …", file=sys.stderr)
        prop = propagation(owner, urls, ids[0], ids[1], args.pushes, workdir)
        print("ingest …", file=sys.stderr)
        ing = ingest(owner, urls, args.events, workdir)
        result = {"date": dt.date.today().isoformat(), "cpus": os.cpu_count(),
                  "load_at_end": os.getloadavg(), "propagation": prop, "ingest": ing}
        args.out.mkdir(parents=True, exist_ok=True)
        out = args.out / f"household-{result['date']}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        a = prop["applied_on_other_machine"]
        n = prop["notify"]
        print(f"policy propagation (applied on the other machine): median {a['median_ms']:.1f} ms, "
              f"p95 {a['p95_ms']:.1f} ms, max {a['max_ms']:.1f} ms over {a['n']} changes; "
              f"bare NOTIFY median {n['median_ms']:.1f} ms")
        print(f"ingest: {ing['machines']} machines x {ing['events_per_machine']} events: "
              f"{ing['events_per_second']:,.0f} events/s, {ing['lost']} lost of {ing['expected']}; "
              f"{ing['bytes_per_event']:.0f} bytes per event in the database, "
              f"{ing['bytes_per_child_day'] / 2**20:.1f} MiB per child-day at {CHILD_DAY_EVENTS} events")
        print(f"wrote {out}")
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
