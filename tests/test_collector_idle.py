"""An idle collector stops its timer (dozes), and the kernel wakes it at the
next event: the real daemon (--stdout) on the real kernel, a real user."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helpers import run_as, uid_of, wait_for
from tests.test_collector_ready import StdoutCollector

pytestmark = pytest.mark.bpf


def loop_wakeups(pid: int) -> int:
    """Voluntary context switches of the collector's main (event loop) thread."""
    for line in Path(f"/proc/{pid}/task/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches")


def test_an_idle_collector_dozes_and_the_next_event_wakes_it(tmp_path, child_user):
    uid = uid_of(child_user)
    config = tmp_path / "collector.toml"
    config.write_text("idle_wait_ms = 60000\n")  # only an event can end the doze
    collector = StdoutCollector("process", uid, ["--config", str(config), "--log-level", "debug"])
    try:
        collector.wait_ready()
        wait_for(lambda: any("dozing for up to" in line for line in collector.log), timeout=30)
        dozes = sum("dozing for up to" in line for line in collector.log)

        # dozing, the loop is not woken: ticking, it would be 10 times a second
        before = loop_wakeups(collector.process.pid)
        time.sleep(1.0)  # the window the wake-ups are counted in
        assert loop_wakeups(collector.process.pid) - before <= 2

        # an exec by the watched user is read at once, not after the minute
        done = run_as(child_user, ["/bin/sh", "-c", "exec /bin/true dozing-woken"])
        assert done.returncode == 0, done.stderr
        wait_for(lambda: any(e.get("type") == "exec" and e.get("path") == "/bin/true" and e.get("uid") == uid
                             for e in collector.events_so_far()), timeout=20)
        # and once quiet again, it dozes again
        wait_for(lambda: sum("dozing for up to" in line for line in collector.log) > dozes,
                 timeout=30)
    finally:
        collector.stop()


def test_the_heap_is_settled_before_ready_not_after(child_user):
    """The startup heap's one-off collection and freeze (~10 ms, no ring
    read meanwhile) happens before "ready": what a child starts the moment
    the collector is ready is read without waiting behind it."""
    collector = StdoutCollector("process", uid_of(child_user), ["--log-level", "debug"])
    try:
        collector.wait_ready()
        settled = [i for i, line in enumerate(collector.log) if "heap settled:" in line]
        ready = [i for i, line in enumerate(collector.log) if line.endswith("dots.collector: ready")]
        assert settled and ready and settled[0] < ready[0], collector.log[-10:]
        assert int(collector.log[settled[0]].split("heap settled:")[1].split()[0]) > 1000
    finally:
        collector.stop()
