"""Section 5: enforcement latency, median and p99.

* exec -> kill, known inode: the collector (private bus, enforcers on) is
  told SetBlockedExecutables(bench uid, [bench/workloads/sleeper]); the
  bench user spawns it N times (bench/workloads/exec_latency.c): time from
  posix_spawn() to waitpid() seeing SIGKILL. The in-kernel path.
* exec -> kill, fresh copy: each iteration writes a new copy of the blocked
  program (a new inode, same content; not timed) and spawns it. The exec
  enforcer now kills a first-seen executable with the size of a blocked
  one in the kernel (then confirms by hash), so this is an in-kernel kill.
* exec -> kill, new program at a blocked path: each iteration installs a
  program at a blocked path (new inode, and a size and content no earlier
  run had) and spawns it: only user space can tell (first-seen notice,
  hash, path rule, pidfd kill).
* baseline: the same spawn -> wait of an allowed no-op program, for scale.
* blocked connect -> EPERM: SetBlockedAddresses(bench uid, [192.0.2.0/24]);
  connect() to 192.0.2.1:80 timed around the call; baseline: a connect to
  a closed loopback port (ECONNREFUSED) with the enforcer attached.
* limit reached -> lock call: the policy daemon's Timekeeper (its real
  screen-time engine, SQLite, the logind client) against python-dbusmock's
  logind template on the private bus, on a fake clock: the tick that
  crosses a 1-minute daily limit, from its start until logind has answered
  LockSession. In the daemon that tick comes every TICK_SECONDS, so from
  the instant the limit is reached add up to one tick period (reported).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .procs import Collector, PrivateBus
from .util import SectionError, percentile
from .workloads import BENCH_USER, IDLE_USER, Workspace, json_result, run_as

EPERM, ECONNREFUSED = 1, 111
BLOCKED_NET = "192.0.2.0/24"  # TEST-NET-1: never routed


def lat_summary(values_ns: list[int]) -> dict | None:
    values = [v / 1e6 for v in values_ns if v is not None and v >= 0]
    if not values:
        return None
    return {"median_ms": percentile(values, 50), "p99_ms": percentile(values, 99),
            "min_ms": min(values), "max_ms": max(values), "n": len(values)}


def exec_runs(ws: Workspace, user, n: int, program: str, fresh_src: str | None = None,
              replace_src: str | None = None) -> dict:
    argv = [ws.path("exec_latency"), str(n), program]
    if fresh_src:
        d = user.home / "fresh"
        d.mkdir(exist_ok=True)
        os.chown(d, user.uid, user.gid)
        argv += ["--fresh", fresh_src, str(d)]
    if replace_src:
        argv += ["--replace", replace_src]
    data = json_result(run_as(user, argv, timeout=n * 5 + 60))
    statuses = data["status"]
    killed = [lat for lat, st in zip(data["lat_ns"], statuses) if st == -9]
    return {"killed": len(killed), "runs": n,
            "not_killed": sum(1 for st in statuses if st != -9),
            "statuses": sorted(set(statuses)), "all": lat_summary(data["lat_ns"]),
            "killed_latency": lat_summary(killed), "raw_ns": data["lat_ns"]}


def connect_runs(ws: Workspace, user, n: int, addr: str, port: int) -> dict:
    data = json_result(run_as(user, [ws.path("connect_latency"), str(n), addr, str(port)]))
    return {"runs": n, "errnos": sorted(set(data["errno"])),
            "eperm": sum(1 for e in data["errno"] if e == EPERM),
            "latency": lat_summary(data["lat_ns"]), "raw_ns": data["lat_ns"]}


# --- limit reached -> lock ----------------------------------------------------------------
class MockLogind:
    def __init__(self, bus: PrivateBus) -> None:
        self.bus = bus
        self.process = subprocess.Popen(
            ["/usr/bin/python3", "-m", "dbusmock", "--system", "--template", "logind"],
            env=bus.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while not bus.has_owner("org.freedesktop.login1"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SectionError("python-dbusmock's logind template did not start "
                                   f"(python3-dbusmock installed?): {self.process.stderr.read()[-300:]!r}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


async def _lock_samples(address: str, uid: int, user: str, samples: int, workdir: Path) -> dict:
    from dbus_fast import Message, MessageType
    from dbus_fast.aio import MessageBus

    from dots_policyd.clock import FakeClock
    from dots_policyd.db import open_database
    from dots_policyd.migrations import migrate
    from dots_policyd.policy import Policy
    from dots_policyd.screentime import ScreenTime
    from dots_policyd.sessions import Logind
    from dots_policyd.timekeeper import TICK_SECONDS, Timekeeper

    bus = await MessageBus(bus_address=address).connect()
    reply = await bus.call(Message(destination="org.freedesktop.login1",
                                   path="/org/freedesktop/login1",
                                   interface="org.freedesktop.DBus.Mock", member="AddSession",
                                   signature="ssusb", body=["b1", "seat0", uid, user, True]))
    if reply.message_type == MessageType.ERROR:
        raise SectionError(f"logind stand-in: AddSession: {reply.body}")
    latencies: list[float] = []
    failures = 0
    start = dt.datetime(2026, 1, 14, 15, 0, tzinfo=dt.timezone.utc)
    try:
        for i in range(samples):
            db = open_database(str(workdir / f"lock{i}.db"))
            migrate(db)
            clock = FakeClock(start)
            policy = Policy(daily_limit_minutes=1, end_action="lock")
            engine = ScreenTime(db, clock, lambda: {uid: policy})
            logind = Logind(bus)
            locked: list[float] = []
            real_lock = logind.lock

            async def lock(session_id: str, real_lock=real_lock, locked=locked) -> None:
                await real_lock(session_id)
                locked.append(time.perf_counter())

            logind.lock = lock  # type: ignore[method-assign]
            tk = Timekeeper(engine, logind, lambda *a: None, _no_kill, lambda *a: None)
            for _ in range(12):  # 10 s fake ticks: the limit falls on the 7th
                t0 = time.perf_counter()
                await tk.tick()
                if locked:
                    latencies.append((locked[0] - t0) * 1e9)
                    break
                clock.advance(10)
            else:
                failures += 1
            db.close()
    finally:
        bus.disconnect()
    return {"latency": lat_summary([int(x) for x in latencies]), "failures": failures,
            "tick_seconds": TICK_SECONDS,
            "limit_to_lock_bound_ms": (lat_summary([int(x) for x in latencies]) or {}).get(
                "p99_ms", 0) + TICK_SECONDS * 1000, "raw_ns": [int(x) for x in latencies]}


async def _no_kill(uid: int) -> None:
    return None


def enforcement(ws, settings, progress, collector, user, out) -> None:
    try:
        # a blocked path the user can install other programs at: the sleeper
        # padded, each time with one more byte (another size and content, so
        # only the path can tell: neither the kernel's inode or same-size
        # rule nor a known hash)
        at_path = user.home / "blocked-app"
        shutil.copyfile(ws.path("sleeper"), at_path)
        padded = Path(ws.root / "sleeper-padded")
        padded.write_bytes(Path(ws.path("sleeper")).read_bytes() + b"\0" * 4096)
        for path in (at_path, padded):
            path.chmod(0o755)
        os.chown(at_path, user.uid, user.gid)
        resolved, rejected = collector.call("SetBlockedExecutables", "uas",
                                            [user.uid, [ws.path("sleeper"), str(at_path)]])
        if rejected:
            raise SectionError(f"SetBlockedExecutables rejected {rejected}")
        out["baseline_exec"] = exec_runs(ws, user, settings.lat_known, ws.path("nop"))
        out["exec_known"] = exec_runs(ws, user, settings.lat_known, ws.path("sleeper"))
        out["exec_fresh_copy"] = exec_runs(ws, user, settings.lat_fresh, ws.path("nop"),
                                           fresh_src=ws.path("sleeper"))
        out["exec_new_at_blocked_path"] = exec_runs(ws, user, settings.lat_fresh, str(at_path),
                                                    replace_src=str(padded))
        out["program_bytes"] = Path(ws.path("sleeper")).stat().st_size
        for key in ("baseline_exec", "exec_known", "exec_fresh_copy", "exec_new_at_blocked_path"):
            r = out[key]
            lat = r["killed_latency"] or r["all"] or {}
            progress(f"{key}: {r['killed']}/{r['runs']} killed; median "
                     f"{lat.get('median_ms', float('nan')):.3f} ms, p99 {lat.get('p99_ms', float('nan')):.3f} ms")
        collector.call("SetBlockedExecutables", "uas", [user.uid, []])
    except SectionError as e:
        progress(f"exec enforcement: not measured: {e}")
        out["exec_error"] = str(e)
    # connect enforcement
    try:
        collector.call("SetBlockedAddresses", "uas", [user.uid, [BLOCKED_NET]])
        out["connect_blocked"] = connect_runs(ws, user, settings.lat_connect, "192.0.2.1", 80)
        out["connect_baseline"] = connect_runs(ws, user, settings.lat_connect, "127.0.0.1", 9)
        collector.call("SetBlockedAddresses", "uas", [user.uid, []])
        r = out["connect_blocked"]
        progress(f"connect: {r['eperm']}/{r['runs']} EPERM; median "
                 f"{r['latency']['median_ms'] * 1000:.1f} µs, p99 {r['latency']['p99_ms'] * 1000:.1f} µs "
                 f"(refused loopback connect: median "
                 f"{out['connect_baseline']['latency']['median_ms'] * 1000:.1f} µs)")
    except SectionError as e:
        progress(f"connect enforcement: not measured: {e}")
        out["connect_error"] = str(e)
    out["enforcement_state"] = {k: v for k, v in collector.call("GetEnforcement")[0].items()
                                if k in ("exec_blocked", "connect_blocked", "lost")}
    out["enforcement_state"] = {k: getattr(v, "value", v) for k, v in out["enforcement_state"].items()}


# --- the section -----------------------------------------------------------------------------
def run(ws: Workspace, settings, progress) -> dict:
    user = ws.user(BENCH_USER)
    idle = ws.user(IDLE_USER)
    out: dict[str, Any] = {"method": __doc__.strip()}
    bus = PrivateBus()
    collector = None
    try:
        try:
            collector = Collector(["process"], [idle.uid], enforcers=True, bus=bus).start()
        except SectionError as e:
            out["exec_error"] = out["connect_error"] = f"collector with enforcers did not start: {e}"
            progress(f"exec/connect enforcement: not measured: {e}")
        if collector is not None:
            enforcement(ws, settings, progress, collector, user, out)
            collector.stop()
            collector = None
        # limit reached -> lock
        try:
            logind = MockLogind(bus)
            try:
                with tempfile.TemporaryDirectory(prefix="dots-bench-lock-") as d:
                    out["lock"] = asyncio.run(_lock_samples(bus.address, user.uid, user.name,
                                                            settings.lat_lock, Path(d)))
            finally:
                logind.stop()
            lat = out["lock"]["latency"] or {}
            progress(f"lock: median {lat.get('median_ms', float('nan')):.1f} ms, p99 "
                     f"{lat.get('p99_ms', float('nan')):.1f} ms per deciding tick "
                     f"(+ up to {out['lock']['tick_seconds']:.0f} s until that tick)")
        except SectionError as e:
            progress(f"lock: not measured: {e}")
            out["lock_error"] = str(e)
    finally:
        if collector is not None:
            collector.stop()
        bus.stop()
    return out
