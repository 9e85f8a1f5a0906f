"""10,000 execs by a child user through the whole path: kernel -> collector ->
bus -> a client running as dots-policyd. Nothing may vanish unaccounted."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.helpers import popen_as, uid_of

pytestmark = [pytest.mark.bpf, pytest.mark.bus]

N = 10_000
GENERATOR = ("import os\n"
             f"for _ in range({N}):\n"
             "    os.waitpid(os.posix_spawn('/usr/bin/true', ['true'], {}), 0)\n")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_burst_of_10000_execs_is_fully_accounted(collector_daemon, bus_client, child_user):
    child = uid_of(child_user)
    policyd = bus_client("dots-policyd")
    policyd.call("org.dots.Collector1", "/org/dots/Collector1", "org.dots.Collector1",
                 "SetMonitoredUids", "au", [[child]])
    lost_before = collector_daemon.status()["lost"]["process"]
    listener = policyd.listen("org.dots.Collector1", "org.dots.Collector1")

    started = time.monotonic()
    generator = popen_as(child_user, ["/usr/bin/python3", "-c", GENERATOR])
    _, stderr = generator.communicate(timeout=300)
    elapsed = time.monotonic() - started
    assert generator.returncode == 0, stderr
    gen = generator.pid  # setpriv execs env, which execs python3: one process

    # Every event of the generator's process tree: per spawn a fork, an exec
    # and an exit (its child's); the launcher's own execs (env, then
    # python3, in one process) and its exit.
    generated = 3 * N + 2 + 1

    def complete(l) -> bool:
        return any(e[0] == "exit" and e[1] == gen for e in l.events("ProcessEvents"))

    status = None
    try:
        listener.wait_until(complete, timeout=60, what="the generator's exit event")
    except AssertionError:
        status = collector_daemon.status()
        if status["lost"]["process"] == lost_before:
            raise  # nothing was lost, so the exit event must have come
    listener.finish()
    status = status or collector_daemon.status()
    mine = [e for e in listener.events("ProcessEvents") if e[3] == child]
    # the child's other processes (one left by an earlier test) are not the
    # generator's: counted apart, and shown if the test fails
    events = [e for e in mine if gen in (e[1], e[2])]
    strays = Counter((e[0], e[5], e[6]) for e in mine if gen not in (e[1], e[2]))
    lost = status["lost"]["process"] - lost_before
    rate = generated / elapsed
    print(f"\nburst: {N} execs in {elapsed:.2f}s, {rate:,.0f} events/s generated; "
          f"delivered {len(events)}, lost {lost}; collector RSS "
          f"{rss_kib(collector_daemon.process.pid) / 1024:.1f} MiB")
    seen = Counter((e[0], e[6]) for e in events)
    detail = f"events by (type, path): {dict(seen)}; the child's other events: {dict(strays)}"
    assert seen["exec", "/usr/bin/true"] + lost >= N, detail
    assert len(events) + lost == generated, detail
