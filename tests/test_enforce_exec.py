"""Exec enforcer on the real kernel, as a real child user: blocked programs
killed at exec (by inode), copies killed by content, allow-list mode, the
collector's D-Bus methods. Latencies and the exec-storm cost are printed
(run with -s to see them), never asserted."""

from __future__ import annotations

import os
import pwd
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dots_collector.enforcers.identity import kernel_dev
from dots_collector.enforcers.kill import processes_of
from tests.helpers import popen_as, run_as, uid_of, wait_for

from dots_common.records import ProcessEvent

pytestmark = pytest.mark.bpf

DEST = ("org.dots.Collector1", "/org/dots/Collector1", "org.dots.Collector1")
from dots_common.names import POLICYD_USER as POLICYD  # noqa: E402


class EnforcerRun:
    """The exec enforcer loaded in the test process, and its records."""

    def __init__(self, enforcer) -> None:
        self.enforcer = enforcer
        self.records: list[ProcessEvent] = []
        enforcer.open(self.records.append)

    def blocked(self, predicate=lambda r: True) -> list[ProcessEvent]:
        self.enforcer.consume()
        return [r for r in self.records if r.type == "exec_blocked" and predicate(r)]

    def wait_blocked(self, predicate, what: str) -> ProcessEvent:
        return wait_for(lambda: next(iter(self.blocked(predicate)), None), what=what)

    def in_kernel(self, uid: int, path: Path) -> bool:
        st = os.stat(path)
        return (kernel_dev(st.st_dev), st.st_ino) in self.enforcer.kernel_blocked_entries().get(uid, [])

    def clear(self, *uids: int) -> None:
        for uid in uids:
            self.enforcer.set_blocked(uid, [])
            self.enforcer.set_allow_list(uid, False, [])


@pytest.fixture(scope="module")
def exec_enforcer() -> Iterator[EnforcerRun]:
    from dots_collector.enforcers.exec_block import ExecEnforcer

    enforcer = ExecEnforcer()
    enforcer.load()
    run = EnforcerRun(enforcer)
    yield run
    enforcer.close()


@pytest.fixture
def enforce(exec_enforcer, child_user, other_user) -> Iterator[EnforcerRun]:
    """The module's enforcer with no rules before and after the test."""
    uids = (uid_of(child_user), uid_of(other_user))
    exec_enforcer.clear(*uids)
    exec_enforcer.blocked()
    exec_enforcer.records.clear()
    yield exec_enforcer
    exec_enforcer.clear(*uids)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory every test user may read and write (tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="dots-exec-", dir="/tmp"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def program(workdir: Path, source: str, name: str) -> Path:
    """A root-owned copy of a system program, executable by everyone."""
    dest = workdir / name
    shutil.copy2(source, dest)
    dest.chmod(0o755)
    return dest


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def exec_to_exit_us(run, path: str) -> list[float]:
    """exec -> exit of every process that exec'd ``path``, from the process
    monitor's kernel timestamps (the enforcer's kill is in between)."""
    records = run.drain()
    execs = {r.pid: r.ts_ns for r in records if r.type == "exec" and r.path == path}
    return [(r.ts_ns - execs[r.pid]) / 1000 for r in records
            if r.type == "exit" and r.pid in execs and r.exit_code == -9]


def shell_loop(user: str, body: str, n: int) -> subprocess.CompletedProcess:
    return run_as(user, ["/bin/sh", "-c", f"i=0; while [ $i -lt {n} ]; do {body}; i=$((i+1)); done"],
                  timeout=300)


# --- the cost first: no enforcer of this module is loaded yet ----------------------
def _prog_stats(fd: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) of a BPF program, from its fd's fdinfo."""
    with open(f"/proc/self/fdinfo/{fd}") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields.get("run_time_ns", 0)), int(fields.get("run_cnt", 0))


def test_exec_storm_cost(child_user, workdir):
    """N execs by an enforced child with the raw tracepoint attached vs
    detached (same compiled object; alternating rounds), and the program's
    own run time as the kernel counts it (BPF_ENABLE_STATS)."""
    import ctypes
    import ctypes.util

    from dots_collector.enforcers.exec_block import ExecEnforcer

    uid = uid_of(child_user)
    libbpf = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so.1", use_errno=True)
    stats_fd = libbpf.bpf_enable_stats(0)  # BPF_STATS_RUN_TIME, while the fd is open
    enforcer = ExecEnforcer()
    enforcer.load()
    try:
        enforcer.open(lambda r: None)
        enforcer.set_blocked(uid, [str(program(workdir, "/usr/bin/id", "blocked-id"))])
        n = 1000

        def storm() -> float:
            t0 = time.perf_counter()
            done = shell_loop(child_user, "/usr/bin/true", n)
            assert done.returncode == 0, done.stderr
            return time.perf_counter() - t0

        storm()  # warm the page cache and the "seen" map
        prog_fd = enforcer.bpf.funcs[b"dots_exec_block"].fd
        ns0, runs0 = _prog_stats(prog_fd)
        with_enf, without = [], []
        for _ in range(5):
            enforcer.bpf.detach_raw_tracepoint(b"sched_process_exec")
            without.append(storm())
            enforcer.bpf.attach_raw_tracepoint(tp=b"sched_process_exec", fn_name=b"dots_exec_block")
            with_enf.append(storm())
        ns1, runs1 = _prog_stats(prog_fd)
    finally:
        enforcer.close()
        if stats_fd >= 0:
            os.close(stats_fd)
    per_exec = lambda v: v * 1e6 / n  # noqa: E731
    print(f"\nexec storm, {n} execs of /usr/bin/true by an enforced uid, 5 rounds each: "
          f"with the enforcer median {per_exec(statistics.median(with_enf)):.0f} us/exec "
          f"(best {per_exec(min(with_enf)):.0f}), without {per_exec(statistics.median(without)):.0f} "
          f"(best {per_exec(min(without)):.0f}); ratio of medians "
          f"{statistics.median(with_enf) / statistics.median(without):.3f}, of bests "
          f"{min(with_enf) / min(without):.3f}")
    if runs1 > runs0:
        print(f"  the program itself: {(ns1 - ns0) / (runs1 - runs0):.0f} ns per exec "
              f"over {runs1 - runs0} runs (kernel BPF stats)")


# --- kernel path ----------------------------------------------------------------------
def test_blocked_program_is_killed_at_exec_and_prints_nothing(enforce, child_user, other_user,
                                                               workdir):
    uid = uid_of(child_user)
    blocked = program(workdir, "/usr/bin/id", "blocked-id")
    found, rejected = enforce.enforcer.set_blocked(uid, [str(blocked), str(workdir / "missing")])
    assert [i.path for i in found] == [str(blocked)]
    assert rejected and rejected[0][0] == str(workdir / "missing")

    done = run_as(child_user, [str(blocked)])
    assert done.returncode == -9
    assert done.stdout == "", "the program never ran its own code"

    event = enforce.wait_blocked(lambda r: r.uid == uid, "the exec_blocked record")
    assert event.path == str(blocked) and event.comm == "blocked-id"
    assert event.exit_code == -9 and event.pid > 0 and event.ppid > 0

    other = run_as(other_user, [str(blocked)])
    assert other.returncode == 0 and f"uid={uid_of(other_user)}" in other.stdout, \
        "another user runs the same program"


def test_hard_link_and_renamed_file_share_the_inode(enforce, child_user, workdir):
    uid = uid_of(child_user)
    blocked = program(workdir, "/usr/bin/id", "blocked-id")
    enforce.enforcer.set_blocked(uid, [str(blocked)])
    link = workdir / "sub" / "innocent-name"
    link.parent.mkdir()
    os.link(blocked, link)
    done = run_as(child_user, [str(link)])
    assert (done.returncode, done.stdout) == (-9, ""), "a hard link is the same program"

    moved = workdir / "renamed"
    os.rename(blocked, moved)
    done = run_as(child_user, [str(moved)])
    assert (done.returncode, done.stdout) == (-9, ""), "a renamed file is the same program"

    symlink = workdir / "symlink"
    symlink.symlink_to(moved)
    assert run_as(child_user, [str(symlink)]).returncode == -9


def test_copy_is_killed_at_its_first_exec(enforce, child_user, workdir):
    """A copy the child made (new inode, same size): killed at exec on its
    very first start, then found by content and blocked by inode."""
    uid = uid_of(child_user)
    blocked = program(workdir, "/usr/bin/id", "blocked-id")
    enforce.enforcer.set_blocked(uid, [str(blocked)])
    copy = workdir / "homework-helper"
    assert run_as(child_user, ["/bin/cp", str(blocked), str(copy)]).returncode == 0
    for _ in range(2):
        done = run_as(child_user, [str(copy)])
        assert (done.returncode, done.stdout) == (-9, "")
        wait_for(lambda: enforce.in_kernel(uid, copy), what="the copy's inode in the kernel map")


def test_same_size_innocent_program_runs_from_its_second_start(enforce, child_user, workdir):
    """The size pre-filter fails closed: another program of exactly the
    blocked size is killed once, cleared by its hash, then runs."""
    uid = uid_of(child_user)
    blocked, innocent = workdir / "blocked", workdir / "innocent"
    # two different programs padded to one size (padding a program does not
    # change what it is: sleep + padding is still sleep)
    sleep, true = Path("/usr/bin/sleep").read_bytes(), Path("/usr/bin/true").read_bytes()
    size = max(len(sleep), len(true)) + 16
    blocked.write_bytes(sleep.ljust(size, b"A"))
    innocent.write_bytes(true.ljust(size, b"B"))
    for p in (blocked, innocent):
        p.chmod(0o755)
    enforce.enforcer.set_blocked(uid, [str(blocked)])
    assert run_as(child_user, [str(innocent), "0"]).returncode == -9
    st = os.stat(innocent)
    seen = enforce.enforcer.bpf[b"seen"]
    key = seen.Key(st.st_ino, kernel_dev(st.st_dev), 0)
    wait_for(lambda: key in seen, what="the innocent file cleared in the kernel's seen map")
    assert run_as(child_user, [str(innocent), "0"]).returncode == 0
    assert run_as(child_user, [str(blocked), "0"]).returncode == -9


def test_kernel_path_latency(enforce, load_monitor, child_user, workdir):
    uid = uid_of(child_user)
    blocked = program(workdir, "/usr/bin/id", "blocked-id")
    enforce.enforcer.set_blocked(uid, [str(blocked)])
    monitor = load_monitor("process", uids=[uid])
    n = 200
    shell_loop(child_user, f"{blocked} 2>/dev/null", n)
    wait_for(lambda: len(exec_to_exit_us(monitor, str(blocked))) == n, timeout=30,
             what=f"{n} killed execs")
    lat = exec_to_exit_us(monitor, str(blocked))
    print(f"\nexec->exit of a blocked program, kernel path (n={n}): "
          f"median {statistics.median(lat):.1f} us, p99 {percentile(lat, 99):.1f} us")


# --- copies ------------------------------------------------------------------------------
@pytest.mark.parametrize("same_size_filter", [True, False], ids=["kernel-size-filter", "hash-path"])
def test_fresh_copies_are_killed(enforce, load_monitor, child_user, workdir, same_size_filter):
    """Each loop turn copies the blocked program to a new inode and starts
    it (it would sleep 30 s): every copy must die of SIGKILL. With the size
    filter the kernel kills it at exec; without, the hash path does."""
    from dots_collector.enforcers.exec_block import ExecEnforcer

    uid = uid_of(child_user)
    blocked = program(workdir, "/usr/bin/sleep", "blocked-sleep")
    own = None
    if same_size_filter:
        enforcer = enforce.enforcer
    else:
        own = enforcer = ExecEnforcer(kill_same_size=False)
        enforcer.load()
        enforcer.open(lambda r: None)
    try:
        enforcer.set_blocked(uid, [str(blocked)])
        monitor = load_monitor("process", uids=[uid])
        n = 40
        copies = workdir / "copies"
        copies.mkdir()
        copies.chmod(0o777)
        t0 = time.monotonic()
        done = shell_loop(child_user, f"cp {blocked} {copies}/c$i; {copies}/c$i 30; echo $?", n)
        elapsed = time.monotonic() - t0
        assert done.stdout.split() == ["137"] * n, "every fresh copy died of SIGKILL (128 + 9)"
        assert elapsed < 30, "no copy ran its 30 s"

        def latencies() -> list[float]:
            records = monitor.drain()
            execs = {r.pid: r.ts_ns for r in records
                     if r.type == "exec" and r.path.startswith(f"{copies}/c")}
            return [(r.ts_ns - execs[r.pid]) / 1000 for r in records
                    if r.type == "exit" and r.pid in execs]

        lat = wait_for(lambda: (lambda v: v if len(v) == n else None)(latencies()), timeout=30,
                       what="exec and exit of every copy")
        how = "kernel, size filter" if same_size_filter else "hash path"
        print(f"\nexec->exit of a fresh copy ({how}; n={n}, sleep 35 KB): "
              f"median {statistics.median(lat):.1f} us, p99 {percentile(lat, 99):.1f} us")
        if not same_size_filter:
            sent = [ns / 1000 for ns in list(enforcer.hash_kill_latency_ns)[-n:]]
            print(f"  exec->SIGKILL sent by the hash path: median {statistics.median(sent):.1f} us, "
                  f"p99 {percentile(sent, 99):.1f} us")
    finally:
        if own is not None:
            own.close()


def test_blocked_script_is_killed_by_path(enforce, child_user, workdir):
    """For #! scripts the kernel sees the interpreter: the script itself is
    judged from the script notice."""
    uid = uid_of(child_user)
    script = workdir / "game.sh"
    script.write_text("#!/bin/sh\nwhile :; do :; done\n")
    script.chmod(0o755)
    enforce.enforcer.set_blocked(uid, [str(script)])
    t0 = time.monotonic()
    done = run_as(child_user, [str(script)], timeout=30)
    assert done.returncode == -9
    print(f"\nblocked #! script killed after {(time.monotonic() - t0) * 1000:.1f} ms "
          "(including setpriv and sh startup)")


def test_program_run_through_the_dynamic_loader(enforce, child_user, workdir):
    """ld.so maps the program without exec'ing it: judged from the loader
    notice by its command line, for the real loader and a copy of it."""
    uid = uid_of(child_user)
    blocked = program(workdir, "/usr/bin/sleep", "blocked-sleep")
    enforce.enforcer.set_blocked(uid, [str(blocked)])
    loader_copy = program(workdir, os.path.realpath("/lib64/ld-linux-x86-64.so.2"), "my-loader")
    for loader in ("/lib64/ld-linux-x86-64.so.2", str(loader_copy)):
        t0 = time.monotonic()
        done = run_as(child_user, [loader, "--argv0", "x", str(blocked), "30"], timeout=60)
        assert done.returncode == -9, loader
        print(f"\n{loader} PROGRAM killed after {(time.monotonic() - t0) * 1000:.1f} ms")
    done = run_as(child_user, ["/lib64/ld-linux-x86-64.so.2", "/usr/bin/id", "-u"])
    assert (done.returncode, done.stdout.strip()) == (0, str(uid)), "other programs still run"


def test_program_installed_later_at_a_blocked_path(enforce, child_user, workdir):
    """A listed path that does not exist yet blocks what appears there."""
    uid = uid_of(child_user)
    later = workdir / "installed-later"
    _, rejected = enforce.enforcer.set_blocked(uid, [str(later)])
    assert [p for p, _ in rejected] == [str(later)]
    program(workdir, "/usr/bin/sleep", "installed-later")
    assert run_as(child_user, [str(later), "30"], timeout=60).returncode == -9


def test_other_user_is_unaffected(enforce, child_user, other_user, workdir):
    blocked = program(workdir, "/usr/bin/id", "blocked-id")
    enforce.enforcer.set_blocked(uid_of(child_user), [str(blocked)])
    for _ in range(3):
        done = run_as(other_user, [str(blocked)])
        assert done.returncode == 0 and "uid=" in done.stdout


# --- allow-list mode ----------------------------------------------------------------------
def test_allow_list_mode(enforce, child_user, other_user, workdir):
    uid = uid_of(child_user)
    listed = program(workdir, "/usr/bin/whoami", "listed-app")
    unlisted = program(workdir, "/usr/bin/uname", "unlisted-app")
    found, _ = enforce.enforcer.set_allow_list(uid, True, [str(listed)])
    assert len(found) == 1

    done = run_as(child_user, [str(listed)])
    assert (done.returncode, done.stdout.strip()) == (0, child_user), \
        [(r.comm, r.path) for r in enforce.blocked()]
    done = run_as(child_user, [str(unlisted)])
    assert (done.returncode, done.stdout) == (-9, "")
    done = run_as(child_user, ["/usr/bin/id", "-u"])
    assert (done.returncode, done.stdout.strip()) == (0, str(uid)), "a default system program"
    done = run_as(child_user, ["/bin/sh", "-c", "echo from-sh"])
    assert done.stdout.strip() == "from-sh", "shells are on the default list"
    assert run_as(other_user, [str(unlisted)]).returncode == 0, "only the child is in the mode"
    enforce.wait_blocked(lambda r: r.uid == uid and r.path == str(unlisted), "exec_blocked")

    # a copy of an allowed program: killed once (unknown inode), allowed after
    copy = workdir / "listed-copy"
    shutil.copy(listed, copy)
    copy.chmod(0o755)
    assert run_as(child_user, [str(copy)]).returncode == -9
    st = os.stat(copy)
    wait_for(lambda: (kernel_dev(st.st_dev), st.st_ino) in enforce.enforcer.kernel_allowed.get(uid, ()),
             what="the copy learned as allowed")
    assert run_as(child_user, [str(copy)]).returncode == 0

    enforce.enforcer.set_allow_list(uid, False, [])
    assert run_as(child_user, [str(unlisted)]).returncode == 0


def test_allow_list_mode_stops_what_ran_before_it_not_what_root_starts_after(
        enforce, child_user, workdir, monkeypatch):
    """The mode goes on: an unlisted program the child already runs is
    killed; a process root starts for the child after the rule is in force
    (setpriv, su, login between their setuid and their exec) is not, even
    while the sweep runs: its exec is the kernel's to judge. Once, the e2e
    test's listed program was killed -9 in that state."""
    uid, gid = uid_of(child_user), pwd.getpwnam(child_user).pw_gid
    listed = program(workdir, "/usr/bin/whoami", "listed-app")
    game = program(workdir, "/usr/bin/sleep", "game")  # a copy: another inode, unlisted
    running = popen_as(child_user, [str(game), "60"])
    gate_r, gate_w = os.pipe()
    started: list[subprocess.Popen] = []

    def start_for_the_child() -> None:
        # root forks, becomes the child, then waits at the gate before its exec
        started.append(subprocess.Popen(["/usr/bin/true"], user=uid, group=gid, extra_groups=[],
                                        pass_fds=(gate_r,), preexec_fn=lambda: os.read(gate_r, 1)))

    starter = threading.Thread(target=start_for_the_child)
    real_sweep = enforce.enforcer.judge.sweep
    python = os.path.realpath(sys.executable)

    def in_transit() -> list[int]:
        return [p for p in processes_of(uid) if _runs(p, Path(python))]

    def sweep_after_a_start(*args, **kwargs):
        if not starter.is_alive() and not started:  # the first sweep: the rule's
            starter.start()
            wait_for(in_transit, what="root's process to become the child")
        return real_sweep(*args, **kwargs)

    monkeypatch.setattr(enforce.enforcer.judge, "sweep", sweep_after_a_start)
    try:
        wait_for(lambda: _runs(running.pid, game), what="the game to start")
        enforce.enforcer.set_allow_list(uid, True, [str(listed)])
        assert running.wait(timeout=10) == -9, "the unlisted program running before is killed"
        assert in_transit(), "the process started after the rule lives on"
        os.write(gate_w, b"x")
        starter.join(timeout=10)
        assert started[0].wait(timeout=10) == 0, "and runs its (allowed) program"
    finally:
        os.write(gate_w, b"x")
        starter.join(timeout=10)
        for p in (running, *started):
            p.kill()
            p.wait()
        os.close(gate_r)
        os.close(gate_w)


HOPPER = """
import os, sys, time
fd = int(sys.argv[1])
while True:
    if os.fork():
        os._exit(0)  # the parent leaves: the program lives on in a new pid
    try:
        os.write(fd, b".")
    except BlockingIOError:
        pass
    time.sleep(0.001)
"""


@pytest.mark.parametrize("mode", ["block", "allow"])
def test_a_program_that_keeps_forking_itself_is_stopped_when_a_rule_arrives(
        enforce, child_user, workdir, mode):
    """The child's program forks every millisecond and leaves its parent
    behind, so the pid the sweep listed is gone before it is judged. Its
    forks die at birth once its executable is doomed, and what forked
    before is found by what it runs: every copy ends, well before the test
    gives up. (Until this round such a program lived on: README.)"""
    from dots_collector.enforcers.kill import kill_user_processes

    uid = uid_of(child_user)
    game = program(workdir, os.path.realpath(sys.executable), "game")  # unlisted, another inode
    script = workdir / "hopper.py"
    script.write_text(HOPPER)
    script.chmod(0o644)
    beat_r, beat_w = os.pipe()
    os.set_blocking(beat_w, False)
    first = popen_as(child_user, [str(game), str(script), str(beat_w)], pass_fds=(beat_w,))
    os.close(beat_w)
    try:
        first.wait(timeout=10)
        assert select.select([beat_r], [], [], 10)[0], "the hopper runs"
        if mode == "block":
            enforce.enforcer.set_blocked(uid, [str(game)])
        else:
            enforce.enforcer.set_allow_list(uid, True, [str(program(workdir, "/usr/bin/whoami", "listed"))])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # EOF: no hopper holds the pipe any more
            if select.select([beat_r], [], [], 0.5)[0] and os.read(beat_r, 65536) == b"":
                break
        else:
            pytest.fail(f"the hopper still runs 10 s after the rule: "
                        f"{[(p, _exe(p)) for p in processes_of(uid) if not _zombie(p)]}")
        assert not [p for p in processes_of(uid) if _runs(p, game)]
        try:
            enforce.wait_blocked(lambda r: r.uid == uid and r.path in (str(game), "game"),
                                 "the kill reported")
        except AssertionError as e:
            raise AssertionError(f"{e}: {[(r.pid, r.comm, r.path) for r in enforce.blocked()]}")
    finally:
        kill_user_processes(uid)
        first.stdout.close()
        first.stderr.close()
        os.close(beat_r)


@pytest.mark.parametrize("mode", ["block", "allow"])
def test_a_process_the_first_listing_missed_is_found_by_the_next(
        enforce, child_user, workdir, mode, monkeypatch):
    """A fork made after the uid's processes were listed and before the
    rule went into force ran before the rule, yet is in no listing: the
    listings that follow the rule find it by what it runs (here the first
    listing is made to miss it)."""
    from dots_collector.enforcers import exec_block
    from dots_collector.enforcers.kill import Running, kill_user_processes

    uid = uid_of(child_user)
    game = program(workdir, "/usr/bin/sleep", "game")
    # started from the child's shell (its parent is the child's, not root's)
    shell = popen_as(child_user, ["/bin/sh", "-c", f"{game} 60 & echo $!; wait $!"])
    monkeypatch.setattr(exec_block, "running",
                        lambda u: Running(u, time.clock_gettime_ns(time.CLOCK_BOOTTIME), []))
    try:
        missed = int(shell.stdout.readline())
        wait_for(lambda: _runs(missed, game), what="the game to start")
        if mode == "block":
            enforce.enforcer.set_blocked(uid, [str(game)])
        else:
            enforce.enforcer.set_allow_list(uid, True, [str(program(workdir, "/usr/bin/whoami", "listed"))])
        assert shell.wait(timeout=10) == 128 + 9, "the shell's game was killed"
        enforce.wait_blocked(lambda r: r.pid == missed and r.path == str(game), "the kill reported")
    finally:
        shell.kill()
        shell.wait()
        kill_user_processes(uid)


def test_block_wins_over_allow(enforce, child_user, workdir):
    uid = uid_of(child_user)
    app = program(workdir, "/usr/bin/whoami", "both")
    enforce.enforcer.set_allow_list(uid, True, [str(app)])
    enforce.enforcer.set_blocked(uid, [str(app)])
    assert run_as(child_user, [str(app)]).returncode == -9


# --- through the collector daemon ------------------------------------------------------------
@pytest.mark.bus
def test_exec_methods_on_the_bus(collector_daemon, bus_client, child_user, workdir):
    policyd = bus_client(POLICYD)
    uid = uid_of(child_user)
    blocked = program(workdir, "/usr/bin/id", "bus-blocked")
    missing = str(workdir / "not-there")
    reply = policyd.call(*DEST, "SetBlockedExecutables", "uas", [uid, [str(blocked), missing]])
    resolved, rejected = reply["ok"]
    st = os.stat(blocked)
    assert [r[:3] for r in resolved] == [[str(blocked), st.st_dev, st.st_ino]]
    assert len(resolved[0][3]) == 64
    assert rejected[0][0] == missing and "No such file" in rejected[0][1]

    listener = policyd.listen("org.dots.Collector1", "org.dots.Collector1")
    done = run_as(child_user, [str(blocked)])
    assert (done.returncode, done.stdout) == (-9, "")
    listener.wait_until(lambda l: any(e[0] == "exec_blocked" and e[3] == uid
                                      for e in l.events("ProcessEvents")),
                        what="the exec_blocked event in a ProcessEvents batch")
    listener.finish()

    state = policyd.call(*DEST, "GetEnforcement")["ok"][0]
    assert state["enforcers"] == ["exec", "net"]
    assert state["blocked_executables"] == {str(uid): [str(blocked), missing]}
    assert [kernel_dev(st.st_dev), st.st_ino] in state["kernel_blocked"][str(uid)]
    assert state["exec_blocked"] >= 1
    assert "/usr/bin/id" in state["default_allowed"]

    # allow-list mode over the bus
    unlisted = program(workdir, "/usr/bin/uname", "bus-unlisted")
    reply = policyd.call(*DEST, "SetAllowList", "ubas", [uid, True, []])
    assert reply == {"ok": [[], []]}
    assert run_as(child_user, [str(unlisted)]).returncode == -9
    assert policyd.call(*DEST, "GetEnforcement")["ok"][0]["allow_lists"] == {str(uid): []}
    policyd.call(*DEST, "SetAllowList", "ubas", [uid, False, []])
    assert run_as(child_user, [str(unlisted)]).returncode == 0

    assert policyd.call(*DEST, "SetBlockedExecutables", "uas", [uid, []]) == {"ok": [[], []]}
    assert run_as(child_user, [str(blocked)]).returncode == 0
    assert policyd.call(*DEST, "GetEnforcement")["ok"][0]["kernel_blocked"] == {}


@pytest.mark.bus
def test_kill_methods_on_the_bus(collector_daemon, bus_client, child_user, other_user, workdir):
    policyd = bus_client(POLICYD)
    uid = uid_of(child_user)
    app = program(workdir, "/usr/bin/sleep", "game")
    copy = program(workdir, "/usr/bin/sleep", "game-copy")  # same content, other inode
    other_prog = program(workdir, "/usr/bin/tail", "editor")
    running = [popen_as(child_user, [str(app), "60"]), popen_as(child_user, [str(copy), "60"])]
    bystanders = [popen_as(child_user, [str(other_prog), "-f", "/dev/null"]),
                  popen_as(other_user, [str(app), "60"])]
    try:
        wait_for(lambda: all(_runs(p.pid, path) for p, path in
                             zip(running + bystanders, [app, copy, other_prog, app])),
                 what="the programs to start")
        reply = policyd.call(*DEST, "KillExecutable", "us", [uid, str(app)])
        assert reply == {"ok": [2]}, "the program and its copy, for that uid only"
        assert [p.wait(timeout=10) for p in running] == [-9, -9]
        assert all(p.poll() is None for p in bystanders)

        more = [popen_as(child_user, [str(other_prog), "-f", "/dev/null"]) for _ in range(3)]
        wait_for(lambda: all(_runs(p.pid, other_prog) for p in more), what="the processes to start")
        reply = policyd.call(*DEST, "KillUserProcesses", "u", [uid])
        assert reply["ok"][0] >= 4
        assert [p.wait(timeout=10) for p in [bystanders[0], *more]] == [-9] * 4
        assert bystanders[1].poll() is None, "another user's process lives"
    finally:
        for p in running + bystanders:
            p.kill()
            p.wait()


def test_kill_user_processes_outruns_a_fork_loop(child_user, other_user):
    """kill(-1) as the uid reaches every process in one pass, even while a
    shell forks as fast as it can (capped by RLIMIT_NPROC here)."""
    from dots_collector.enforcers.kill import kill_user_processes, processes_of

    uid = uid_of(child_user)
    bystander = popen_as(other_user, ["/usr/bin/sleep", "60"])
    # bash (unlike dash) retries a fork that failed at the RLIMIT_NPROC cap
    loop = popen_as(child_user, ["prlimit", "--nproc=200:200", "/bin/bash", "-c",
                                 "while :; do /usr/bin/sleep 60 & done 2>/dev/null"])
    try:
        wait_for(lambda: len(list(processes_of(uid))) >= 50, what="the fork loop to spread")
        assert kill_user_processes(uid) >= 50
        wait_for(lambda: not [p for p in processes_of(uid) if not _zombie(p)], timeout=10,
                 what="no live process of the child")
        assert loop.wait(timeout=10) == -9
        assert bystander.poll() is None
    finally:
        for p in (loop, bystander):
            p.kill()
            p.wait()


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2:].split()[0] == b"Z"
    except OSError:
        return True


def _runs(pid: int, path: Path) -> bool:
    """setpriv (and env) have exec'd the program."""
    try:
        return os.readlink(f"/proc/{pid}/exe") == str(path)
    except OSError:
        return False


@pytest.mark.bus
def test_stranger_cannot_call_enforcement(collector_daemon, bus_client, other_user, child_user):
    stranger = bus_client(other_user)
    uid = uid_of(child_user)
    for member, sig, args in (("SetBlockedExecutables", "uas", [uid, ["/usr/bin/id"]]),
                              ("SetAllowList", "ubas", [uid, True, []]),
                              ("SetBlockedAddresses", "uas", [uid, ["127.0.0.1"]]),
                              ("KillUserProcesses", "u", [uid]),
                              ("KillExecutable", "us", [uid, "/usr/bin/id"]),
                              ("GetEnforcement", "", [])):
        reply = stranger.call(*DEST, member, sig, args)
        assert reply.get("error") == "org.freedesktop.DBus.Error.AccessDenied", (member, reply)
    state = bus_client(POLICYD).call(*DEST, "GetEnforcement")["ok"][0]
    assert str(uid) not in state["blocked_executables"] and str(uid) not in state["allow_lists"]


@pytest.mark.bus
@pytest.mark.parametrize("member,signature,args", [
    ("SetBlockedExecutables", "uas", [0, ["/usr/bin/id"]]),
    ("SetBlockedExecutables", "uas", [4294967295, ["/usr/bin/id"]]),
    ("SetBlockedExecutables", "uas", ["CHILD", ["usr/bin/id"]]),
    ("SetBlockedExecutables", "uas", ["CHILD", ["/x"] * 1025]),
    ("SetBlockedExecutables", "uas", ["CHILD", ["/" + "a" * 5000]]),
    ("SetAllowList", "ubas", ["CHILD", False, ["/usr/bin/id"]]),
    ("SetAllowList", "ubas", ["CHILD", True, ["relative"]]),
    ("KillUserProcesses", "u", [0]),
    ("KillExecutable", "us", ["CHILD", "/nonexistent/program"]),
    ("KillExecutable", "us", ["CHILD", "id"]),
])
def test_bad_enforcement_input_is_refused(collector_daemon, bus_client, child_user,
                                          member, signature, args):
    policyd = bus_client(POLICYD)
    uid = uid_of(child_user)
    args = [uid if a == "CHILD" else a for a in args]
    before = policyd.call(*DEST, "GetEnforcement")["ok"][0]
    reply = policyd.call(*DEST, member, signature, args)
    assert reply.get("error") == "org.dots.Collector1.Error.InvalidArgs", reply
    assert reply["message"]
    after = policyd.call(*DEST, "GetEnforcement")["ok"][0]
    for key in ("blocked_executables", "allow_lists", "kernel_blocked", "blocked_addresses"):
        assert after[key] == before[key]


def test_no_enforcers_switch_and_error():
    from dots_collector.__main__ import config_from, parse_args
    from dots_collector.core import Collector, CollectorError, InvalidArgument

    assert config_from(parse_args(["--no-enforcers"])).enforcers is False
    assert config_from(parse_args([])).enforcers is True
    collector = Collector(config_from(parse_args(["--no-enforcers"])), sink=None)
    with pytest.raises(CollectorError, match="not loaded") as e:
        collector.set_blocked_executables(1000, ["/usr/bin/id"])
    assert not isinstance(e.value, InvalidArgument)
    with pytest.raises(InvalidArgument):
        collector.set_blocked_addresses(0, [])



def test_interpreters_are_hashed_only_once_a_uid_has_a_rule():
    """Identifying the loaders and interpreters (hashing and parsing a
    dozen programs, ~0.2 s of the collector's CPU) waits for the first
    rule: a machine whose children have no program rules never pays it,
    and a collector restarted under a running workload does not steal
    that CPU from it. A rule starts it, and judging waits for it."""
    from dots_collector.enforcers.exec_block import ExecEnforcer

    enforcer = ExecEnforcer()
    enforcer.load()
    nobody = 4_000_123  # a uid no process has
    try:
        assert not enforcer.judge.programs_ready.is_set()
        assert enforcer.cache.hashed == 0
        assert "dots-exec-programs" not in {t.name for t in threading.enumerate()}
        enforcer.set_blocked(nobody, ["/usr/bin/id"])
        wait_for(enforcer.judge.programs_ready.is_set, timeout=60,
                 what="the loaders and interpreters to be identified")
        interpreters = enforcer.judge.interpreters.programs
        assert any(i.path.startswith("/usr/bin/python3") for i in interpreters), interpreters
        assert enforcer.judge.loaders.programs
        assert enforcer.cache.hashed > len(interpreters)
    finally:
        enforcer.set_blocked(nobody, [])
        enforcer.close()


def _switches(tid: int) -> int:
    with open(f"/proc/self/task/{tid}/status") as f:
        fields = dict(line.split(":\t", 1) for line in f if ":\t" in line)
    return int(fields["voluntary_ctxt_switches"]) + int(fields["nonvoluntary_ctxt_switches"])


def test_an_idle_enforcer_sleeps_until_a_notice_and_stops_at_once(child_user, workdir):
    """With nothing to judge, the ring reader sleeps in poll() and the
    judging thread on its event: on a family laptop an idle collector
    wakes a CPU ~2 times a second, not 42 (both threads polled every
    50 ms). A notice still wakes them at once, and close() ends them."""
    from dots_collector.enforcers.exec_block import ExecEnforcer

    enforcer = ExecEnforcer()
    enforcer.load()
    run = EnforcerRun(enforcer)
    uid = uid_of(child_user)
    threads = list(enforcer._threads)
    try:
        assert sorted(t.name for t in threads) == ["dots-exec-enforcer", "dots-exec-ring"]
        time.sleep(0.3)  # past their start
        before = [_switches(t.native_id) for t in threads]
        time.sleep(2.0)
        woke = [_switches(t.native_id) - n for t, n in zip(threads, before)]
        assert max(woke) <= 2, f"idle threads woke {woke} times in 2 s"
        blocked = program(workdir, "/usr/bin/id", "idle-blocked")
        enforcer.set_blocked(uid, [str(blocked)])
        assert run_as(child_user, [str(blocked)]).returncode == -9
        event = run.wait_blocked(lambda r: r.uid == uid, "the exec_blocked record")
        assert event.path == str(blocked)
    finally:
        enforcer.set_blocked(uid, [])
        enforcer.close()
    assert not [t for t in threads if t.is_alive()], "close() ended both threads"


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError as e:
        return e.strerror or "?"
