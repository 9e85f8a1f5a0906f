""""ready" means every probe is attached and every ring buffer is read: a
storm started the moment the collector says "ready" is fully accounted
(delivered + lost = generated), by the real daemon (--stdout), on the real
kernel, driven by a real user."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence

import pytest

from tests.helpers import REPO, run_as, uid_of
from tests.test_monitor_network import STORM

pytestmark = pytest.mark.bpf

COLLECTOR = str(REPO / ".venv" / "bin" / "dots-collector")


class StdoutCollector:
    """dots-collector --stdout: its JSON lines, and its "ready" log line."""

    def __init__(self, monitors: str, uid: int, extra: Sequence[str] = ()) -> None:
        env = {**os.environ, "DOTS_RULES_FILE": ""}
        self.process = subprocess.Popen(
            [COLLECTOR, "--stdout", "--no-enforcers", "--monitors", monitors, f"--uid={uid}",
             *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.ready = threading.Event()
        self.log: list[str] = []
        self.out: list[bytes] = []
        threading.Thread(target=self._stderr, daemon=True).start()
        # read as it comes: a full pipe would stall the collector's loop
        self._reader = threading.Thread(target=self._stdout, daemon=True)
        self._reader.start()

    def _stdout(self) -> None:
        assert self.process.stdout is not None
        while chunk := self.process.stdout.read1(1 << 20):
            self.out.append(chunk)

    def _stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.log.append(line)
            sys.stderr.write(line + "\n")
            if line.endswith("dots.collector: ready"):
                self.ready.set()

    def wait_ready(self, timeout: float = 120) -> None:
        if not self.ready.wait(timeout):
            self.process.kill()
            raise AssertionError(f"collector not ready within {timeout}s: {self.log[-5:]}")

    def events_so_far(self) -> list[dict]:
        """The event lines printed so far (a line still being written is left
        out)."""
        lines = b"".join(self.out).split(b"\n")[:-1]
        return [item for item in map(json.loads, lines) if item.get("type") != "lost"]

    def stop(self) -> tuple[list[dict], dict[str, int]]:
        """SIGTERM (it drains and flushes), then every event line and the
        last lost count per monitor."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=60) == 0, self.log[-5:]
        self._reader.join(timeout=30)
        events, lost = [], {}
        for line in b"".join(self.out).splitlines():
            item = json.loads(line)
            if item.get("type") == "lost":
                lost[item["monitor"]] = item["lost"]
            else:
                events.append(item)
        return events, lost


def test_a_storm_right_after_ready_is_fully_accounted(storm_user):
    uid = uid_of(storm_user)
    collector = StdoutCollector("network", uid)
    collector.wait_ready()
    n = 3_000
    storm = run_as(storm_user, ["/usr/bin/python3", "-c", STORM, str(n)], timeout=300)  # no pause
    assert storm.returncode == 0, storm.stderr
    info = json.loads(storm.stdout)
    events, lost = collector.stop()
    port = info["port"]
    mine = [e for e in events if e["pid"] == info["pid"] and (
        (e["type"] == "connect_close" and e["dport"] == port)
        or (e["type"] == "accept_close" and e["sport"] == port))]
    generated = 2 * n  # per (short) connection: its connect_close and its accept_close
    print(f"\nstorm right after ready: {generated} generated, {len(mine)} delivered, "
          f"lost {lost.get('network', 0)}")
    assert mine, "the storm right after ready produced no events"
    assert len(mine) + lost.get("network", 0) == generated
    assert all(e["uid"] == uid for e in mine)
