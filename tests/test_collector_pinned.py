"""The collector's BPF objects are pinned (dots_collector/pinning.py): a
child who somehow kills the collector (or a crash) does not switch the
rules off; a restarted collector re-opens the pins instead of compiling,
takes over the rules and drops what no rule makes any more; a clean stop
removes everything; the long-running collector never maps LLVM or bcc.
The memory monitor's kmem programs are pinned unattached: the collector
links them only while a watched process runs.
A module of its own: its collectors must own the bus name."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from tests.fixtures.collector import CollectorDaemon
from tests.helpers import KMEM, REPO, as_user, kmem_links, run_as, uid_of, wait_for

pytestmark = [pytest.mark.bpf, pytest.mark.bus]

#: the --stdout collectors here use DOTS_PIN_DIR; the daemons one of their own
PIN_DIR = Path(os.environ["DOTS_PIN_DIR"])
DAEMON_PINS = PIN_DIR / "restarts"
COLLECTOR = str(REPO / ".venv" / "bin" / "dots-collector")


def _block(daemon: CollectorDaemon, uid: int, paths: list[str]) -> None:
    reply = daemon.root.call("org.dots.Collector1", "/org/dots/Collector1", "org.dots.Collector1",
                             "SetBlockedExecutables", "uas", [uid, paths])
    assert "ok" in reply, reply


OBJECTS = {"exec_block", "net_block", "process", "filesystem", "network", "memory", "disk"}


def _pinned(root: Path = PIN_DIR) -> set[str]:
    """The BPF objects pinned right in root."""
    return {p.name for p in root.iterdir() if p.name in OBJECTS} if root.exists() else set()


def _program_fds(pid: int) -> int:
    """BPF program fds the process holds (their fdinfo has prog_type)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                count += "prog_type:" in f.read()
        except OSError:
            continue
    return count


def _mapped(pid: int) -> str:
    with open(f"/proc/{pid}/maps") as f:
        return f.read()


@pytest.fixture
def game() -> Path:
    tmp = Path(tempfile.mkdtemp(prefix="dots-pinned-"))
    tmp.chmod(0o755)
    path = tmp / "game"
    shutil.copy2("/usr/bin/id", path)
    yield path
    shutil.rmtree(tmp, ignore_errors=True)


#: a python game beside the binary one (root's, readable by all)
SCRIPT = "".join(f"LEVEL_{n} = {n * 37 % 101}\n" for n in range(40)) + "print('played')\n"


def _script(game: Path) -> Path:
    path = game.parent / "game.py"
    path.write_text(SCRIPT)
    path.chmod(0o644)
    return path


def _gate_pins() -> set[str]:
    directory = DAEMON_PINS / "exec_block"
    return {p.name for p in directory.glob("gate_*")} if directory.exists() else set()


def test_enforcement_outlives_a_killed_collector_and_a_restart_takes_it_over(
        system_bus, child_user, other_user, game):
    wait_for(lambda: not system_bus.has_owner("org.dots.Collector1"), timeout=30,
             what="no other collector on the bus")
    rules = game.parent / "rules.json"
    uid = uid_of(child_user)
    first = CollectorDaemon(system_bus, extra=("--rules-file", str(rules),
                                                  "--pin-dir", str(DAEMON_PINS)))
    try:
        assert first.status()["pins_reused"] == []
        # the programs' skipped runs are read through the pinned links
        assert first.status()["skipped"] == {"process": 0}
        links = len(list((DAEMON_PINS / "process").glob("link_*")))
        assert _program_fds(first.process.pid) >= links > 0
        lean = _mapped(first.process.pid)
        assert "libLLVM" not in lean and "libbcc" not in lean, "LLVM stays in the loader"
        script = _script(game)
        assert _gate_pins() == set(), "no block list: the open probes are not attached"
        _block(first, uid, [str(game), str(script)])
        assert run_as(child_user, [str(game)]).returncode == -signal.SIGKILL
        assert _gate_pins(), "the open probes' links are pinned while a uid has a block list"
        first.process.kill()  # no clean stop: what a crash looks like
        first.process.wait(timeout=30)
    finally:
        if first.process.poll() is None:
            first.process.kill()
    assert {"exec_block", "net_block", "process"} <= _pinned(DAEMON_PINS)

    # no collector runs: the kernel still kills the blocked program, for
    # the child only, whatever it is called
    assert run_as(child_user, [str(game)]).returncode == -signal.SIGKILL
    renamed = game.parent / "homework"
    os.link(game, renamed)
    assert run_as(child_user, [str(renamed)]).returncode == -signal.SIGKILL
    assert run_as(other_user, [str(game)]).returncode == 0
    # an interpreter opening the blocked script is stopped at the open, in
    # the kernel: the pinned open probes
    for argv in (["/usr/bin/python3", str(script)],
                 ["/usr/bin/python3", "-c", f"exec(open({str(script)!r}).read())"]):
        done = run_as(child_user, argv)
        assert (done.returncode, done.stdout) == (-signal.SIGKILL, ""), argv
    assert run_as(other_user, ["/usr/bin/python3", str(script)]).stdout == "played\n"

    second = CollectorDaemon(system_bus, extra=("--rules-file", str(rules),
                                                  "--pin-dir", str(DAEMON_PINS)))
    try:
        status = second.status()
        assert set(status["pins_reused"]) >= {"exec_block", "net_block", "process"}
        assert run_as(child_user, [str(game)]).returncode == -signal.SIGKILL
        assert _gate_pins(), "found attached, kept: the rule came back"
        _block(second, uid, [])  # the restarted collector owns the rule
        assert run_as(child_user, [str(game)]).returncode == 0
        assert _gate_pins() == set(), "no block list left: the open probes detached"
        assert run_as(child_user, ["/usr/bin/python3", str(script)]).stdout == "played\n"
    finally:
        assert second.stop() == 0
    assert _pinned(DAEMON_PINS) == set(), "a clean stop removes the pins"
    assert run_as(child_user, [str(game)]).returncode == 0


def test_a_restart_drops_rules_nobody_restored(system_bus, child_user, game):
    """Without a rules file, a restarted collector starts with no rules:
    what the crashed one left in the kernel goes, the open probes' pinned
    links too (the policy daemon pushes its rules again when it sees the
    new collector)."""
    wait_for(lambda: not system_bus.has_owner("org.dots.Collector1"), timeout=30,
             what="no other collector on the bus")
    first = CollectorDaemon(system_bus, extra=("--pin-dir", str(DAEMON_PINS)))
    try:
        _block(first, uid_of(child_user), [str(game)])
        assert run_as(child_user, [str(game)]).returncode == -signal.SIGKILL
        first.process.kill()
        first.process.wait(timeout=30)
    finally:
        if first.process.poll() is None:
            first.process.kill()
    second = CollectorDaemon(system_bus, extra=("--pin-dir", str(DAEMON_PINS)))
    try:
        assert "exec_block" in second.status()["pins_reused"]
        assert run_as(child_user, [str(game)]).returncode == 0
        assert _gate_pins() == set(), "no rule restored: the open probes' pinned links go"
    finally:
        second.stop()


def _stdout_collector(*args: str) -> subprocess.Popen:
    return subprocess.Popen([COLLECTOR, "--stdout", "--no-enforcers", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _loader_running() -> bool:
    out = subprocess.run(["pgrep", "-f", "dots_collector.loader"], capture_output=True)
    return out.returncode == 0


def test_sigterm_while_the_loader_compiles_stops_promptly_and_leaves_nothing():
    assert _pinned() == set()
    proc = _stdout_collector("--monitors", "filesystem,network")
    try:
        wait_for(_loader_running, timeout=30, what="the loader to start compiling")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wait_for(lambda: not _loader_running(), timeout=10, what="the loader to end")
    assert _pinned() == set()


def test_a_second_collector_on_the_same_pins_is_refused():
    first = _stdout_collector("--monitors", "process")
    try:
        wait_for(lambda: "process" in _pinned(), timeout=60, what="the first collector's pins")
        second = _stdout_collector("--monitors", "process")
        assert second.wait(timeout=30) != 0
        assert f"another collector uses {PIN_DIR}" in second.stderr.read()
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
    assert _pinned() == set()


def test_the_collector_links_the_kmem_probes_only_while_a_watched_process_runs(child_user):
    uid = uid_of(child_user)
    proc = _stdout_collector("--monitors", "memory", f"--uid={uid}")
    ready = threading.Event()

    def read_log() -> None:
        for line in proc.stderr:
            if "dots.collector: ready" in line:
                ready.set()

    threading.Thread(target=read_log, daemon=True).start()
    holder = None
    try:
        assert ready.wait(120), "the collector did not get ready"
        pins = {p.name for p in (PIN_DIR / "memory").iterdir() if p.name.startswith("prog_")}
        assert pins == {f"prog_kmem__{name}" for name in KMEM}
        assert kmem_links(proc.pid) == set(), "nobody watched runs: nothing attached"
        holder = subprocess.Popen(as_user(child_user, ["sleep", "120"]))
        wait_for(lambda: kmem_links(proc.pid) == KMEM, timeout=10,
                 what="the kmem probes linked after the watched user's exec")
        holder.kill()
        holder.wait()
        # the next sample finds nobody alive, and /proc agrees (it looks at
        # most every PROC_SCAN_GAP, 10 s)
        wait_for(lambda: kmem_links(proc.pid) == set(), timeout=30,
                 what="the kmem probes unlinked once the watched process is gone")
    finally:
        if holder is not None and holder.poll() is None:
            holder.kill()
            holder.wait()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert _pinned() == set()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
