"""Cost and latency of the exec enforcer's identity paths (issue 13).

    DOTS_TEST_USERS=identity .venv/bin/python bench/exec_identity_cost.py [--user U] [--rounds N]

As root, with a real (child) user that must exist (default:
``$DOTS_TEST_USERS-child``). Measures:

* **kill latency of each path**, notice timestamp (kernel, at exec or mmap)
  to SIGKILL sent from user space, over --rounds attacks each: a copy with
  bytes appended (first start), a script through python3, the script
  piped into python3 (at once, and by a writer that waits 0.2 s), a blocked
  program through a modified copy of ld.so, a modified copy of a blocked
  library preloaded (mmap backstop, first mapping), a memfd exec; and the
  in-kernel paths (a known copy at exec, the blocked library at mmap) as
  the child's exit time after the exec;
* **cost** of the backstop: an exec storm (N x /usr/bin/true), a JIT's
  mprotect(PROT_EXEC) storm on an anonymous page, and an ordinary workload (python3 importing a dozen C extension modules: many
  executable mappings) as the enforced child, with the enforcer unloaded,
  loaded with the exec tracepoint only, and loaded with the mmap/mprotect
  tracepoints too (alternating rounds).

Writes bench/results/exec-identity-<date>.json and prints a summary.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers import as_user, run_as, uid_of  # noqa: E402
from tests.test_identity_attacks import GAME, LIBGAME, PY_GAME  # noqa: E402

#: a JIT's pattern: an anonymous page made executable and writable in turn
MPROTECT_STORM = (
    "import ctypes, time; libc = ctypes.CDLL(None); libc.mmap.restype = ctypes.c_void_p; "
    "libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, "
    "ctypes.c_int, ctypes.c_long]; libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, "
    "ctypes.c_int]; a = libc.mmap(None, 4096, 3, 0x22, -1, 0); t = time.perf_counter(); "
    "[libc.mprotect(a, 4096, 5 if i % 2 else 3) for i in range(20000)]; "
    "print((time.perf_counter() - t) / 20000 * 1e6)")
ORDINARY = ("import json, sqlite3, ssl, hashlib, decimal, ctypes, zlib, bz2, lzma, "
            "socket, select, array, math, datetime, csv, struct, unicodedata, uuid")


def summary(values: list[float]) -> dict | None:
    if not values:
        return None
    s = sorted(values)
    return {"n": len(s), "median": round(statistics.median(s), 3),
            "p99": round(s[min(len(s) - 1, int(0.99 * (len(s) - 1) + 0.5))], 3),
            "max": round(s[-1], 3)}


def build(work: Path) -> None:
    (work / "game.c").write_text(GAME)
    (work / "libgame.c").write_text(LIBGAME)
    subprocess.run(["gcc", "-O1", "-o", str(work / "game"), str(work / "game.c")], check=True)
    subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", str(work / "libgame.so"),
                    str(work / "libgame.c")], check=True)
    (work / "game.py").write_text(PY_GAME)
    for f in work.iterdir():
        f.chmod(0o755)


def wall(user: str, argv: list[str], n: int) -> float:
    """Seconds for n runs of argv as user, in one shell loop."""
    script = f"i=0; while [ $i -lt {n} ]; do {' '.join(argv)} >/dev/null 2>&1; i=$((i+1)); done"
    t0 = time.perf_counter()
    subprocess.run(as_user(user, ["/bin/sh", "-c", script]), check=True)
    return time.perf_counter() - t0


def attacks(enforcer, user: str, work: Path, rounds: int) -> dict:
    uid = uid_of(user)
    enforcer.set_blocked(uid, [str(work / "game"), str(work / "libgame.so"), str(work / "game.py")])
    mine = work / "mine"
    mine.mkdir(mode=0o1777)
    mine.chmod(0o1777)
    loader = mine / "helper"
    run_as(user, ["/bin/sh", "-c", f"cat {os.path.realpath('/lib64/ld-linux-x86-64.so.2')} > "
                  f"{loader}; echo x >> {loader}; chmod 755 {loader}"], check=True)
    kernel_exit: dict[str, list[float]] = {"known copy at exec (kernel)": [],
                                           "blocked library at mmap (kernel)": []}
    for i in range(rounds):
        copy = mine / f"c{i}"
        run_as(user, ["/bin/sh", "-c", f"cat {work}/game > {copy}; echo {i} >> {copy}; "
                      f"chmod 755 {copy}; {copy} {mine}/m; "
                      f"cp {work}/libgame.so {mine}/l{i}.so; echo {i} >> {mine}/l{i}.so; "
                      f"LD_PRELOAD={mine}/l{i}.so GAME_MARKER={mine}/m /usr/bin/true"])
        run_as(user, ["/usr/bin/python3", str(work / "game.py"), str(mine / "m")])
        run_as(user, ["/bin/sh", "-c", f"cat {work}/game.py | /usr/bin/python3 - {mine}/m"])
        run_as(user, ["/bin/sh", "-c",
                      f"(sleep 0.2; cat {work}/game.py) | /usr/bin/python3 - {mine}/m"])
        run_as(user, [str(loader), str(work / "game"), str(mine / "m")])
        run_as(user, ["/usr/bin/python3", "-c",
                      "import os,sys; fd=os.memfd_create('x'); os.write(fd, open(sys.argv[1],'rb')"
                      ".read()); os.execve(fd, ['x', sys.argv[2]], {})",
                      str(work / "game"), str(mine / "m")])
        t0 = time.perf_counter()
        run_as(user, [str(copy), str(mine / "m")])  # known now: killed at exec
        kernel_exit["known copy at exec (kernel)"].append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        run_as(user, ["/usr/bin/true"], env={"LD_PRELOAD": str(work / "libgame.so")})
        kernel_exit["blocked library at mmap (kernel)"].append((time.perf_counter() - t0) * 1e3)
    enforcer.set_blocked(uid, [])
    out = {why: summary([ns / 1e6 for ns in v]) for why, v in
           enforcer.judge.kill_latency_ns.items()}
    out["marker files written (the game ran >= 1 s)"] = len(list(mine.glob("m")))
    out.update({f"{k}: setpriv+exec+exit wall ms": summary(v) for k, v in kernel_exit.items()})
    return out


def cost(enforcer, user: str, rounds: int, storm: int) -> dict:
    uid = uid_of(user)
    bpf = enforcer.bpf
    enforcer.set_blocked(uid, ["/usr/games/not-here"])  # the child is enforced
    tps = [b"syscalls:sys_enter_mmap", b"syscalls:sys_enter_mprotect"]
    results: dict[str, dict[str, list[float]]] = {"exec_storm_us_per_exec": {},
                                                   "ordinary_ms_per_run": {}}
    modes = ["exec tracepoint only", "exec + mmap/mprotect backstop"]
    for _ in range(rounds):
        for mode in modes:
            attached = mode.endswith("backstop")
            for tp in tps:
                fn = b"tracepoint__" + tp.replace(b":", b"__")
                try:
                    if attached:
                        bpf.attach_tracepoint(tp=tp, fn_name=fn)
                    else:
                        bpf.detach_tracepoint(tp)
                except Exception:
                    pass
            s = wall(user, ["/usr/bin/true"], storm) / storm * 1e6
            o = wall(user, ["/usr/bin/python3", "-c", f"'{ORDINARY}'"], 10) / 10 * 1e3
            m = float(run_as(user, ["/usr/bin/python3", "-c", MPROTECT_STORM]).stdout)
            results.setdefault("mprotect_us_per_call", {}).setdefault(mode, []).append(m)
            results["exec_storm_us_per_exec"].setdefault(mode, []).append(s)
            results["ordinary_ms_per_run"].setdefault(mode, []).append(o)
    enforcer.set_blocked(uid, [])
    return {k: {m: summary(v) for m, v in d.items()} for k, d in results.items()}


def unloaded(user: str, rounds: int, storm: int) -> dict:
    return {"exec_storm_us_per_exec": summary(
        [wall(user, ["/usr/bin/true"], storm) / storm * 1e6 for _ in range(rounds)]),
        "ordinary_ms_per_run": summary(
        [wall(user, ["/usr/bin/python3", "-c", f"'{ORDINARY}'"], 10) / 10 * 1e3
         for _ in range(rounds)])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--user", default=f"{os.environ.get('DOTS_TEST_USERS', 'dots-test')}-child")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--storm", type=int, default=500)
    ap.add_argument("--cost-rounds", type=int, default=5)
    args = ap.parse_args()
    from dots_collector.enforcers.exec_block import ExecEnforcer

    result: dict = {"date": dt.date.today().isoformat(), "user": args.user}
    result["cost_unloaded"] = unloaded(args.user, args.cost_rounds, args.storm)
    work = Path(tempfile.mkdtemp(prefix="dots-bench-identity-", dir="/tmp"))
    work.chmod(0o755)
    enforcer = ExecEnforcer()
    enforcer.load()
    enforcer.open(lambda r: None)
    try:
        build(work)
        result["kill_latency_ms"] = attacks(enforcer, args.user, work, args.rounds)
        result["cost_loaded"] = cost(enforcer, args.user, args.cost_rounds, args.storm)
    finally:
        enforcer.close()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=1))
    out = REPO / "bench" / "results" / f"exec-identity-{result['date']}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"written {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
