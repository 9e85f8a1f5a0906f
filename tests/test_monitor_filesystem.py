"""Filesystem monitor on the real kernel, driven by a real test user."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time

import pytest

from dots_common.records import FileEvent
from tests.helpers import as_user, run_as, uid_of

pytestmark = pytest.mark.bpf

MIB = 1 << 20
PY = "/usr/bin/python3"


@pytest.fixture
def child_dir(child_user):
    """A fresh directory under /tmp owned by the child."""
    d = tempfile.mkdtemp(prefix="dots-fs-", dir="/tmp")
    pw = pwd.getpwnam(child_user)
    os.chown(d, pw.pw_uid, pw.pw_gid)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def load_fs(load_monitor, uid: int, **kwargs):
    """The monitor for one uid, with what the kernel queued before the uid
    filter was set (load() attaches with an open filter) thrown away."""
    run = load_monitor("filesystem", uids=[uid], **kwargs)
    run.drain()
    run.records.clear()
    return run


def run_py(user: str, code: str, *args: str, **kw) -> dict:
    """Run a python snippet as ``user``; it prints one JSON object."""
    done = run_as(user, [PY, "-c", code, *args], **kw)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_py_draining(run, user: str, code: str, *args: str) -> dict:
    """Like run_py, but drains the monitor (ring buffer and periodic
    flushes) while the program runs, as the collector does."""
    proc = subprocess.Popen(as_user(user, [PY, "-c", code, *args]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None:
        run.drain()
        time.sleep(0.01)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


LIFECYCLE = r"""
import json, os, sys
d = sys.argv[1]
a, b = os.path.join(d, "data.bin"), os.path.join(d, "renamed.bin")
fd = os.open(a, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
chunk = b"x" * 1024
for _ in range(1024):                 # 1 MiB in 1 KiB writes
    os.write(fd, chunk)
os.close(fd)
fd = os.open(a, os.O_RDONLY)
total = 0
while True:
    n = len(os.read(fd, 1000))
    if not n:
        break
    total += n
os.close(fd)
os.rename(a, b)
with open("/proc/self/status") as f:  # excluded: never reported
    f.read()
os.unlink(b)
print(json.dumps({"pid": os.getpid(), "read": total, "a": a, "b": b}))
"""


def test_create_write_read_rename_unlink(load_monitor, child_user, child_dir):
    """Each file opened and closed within a second is one event: its open
    and the bytes it wrote (open_write) or read (open_read)."""
    uid = uid_of(child_user)
    run = load_fs(load_monitor, uid)
    out = run_py(child_user, LIFECYCLE, child_dir)
    pid, a, b = out["pid"], out["a"], out["b"]
    assert out["read"] == MIB

    unlink = run.wait_for(lambda r: r.type == "unlink" and r.pid == pid, what="the unlink")
    assert unlink.path == b and unlink.result == 0 and unlink.uid == uid
    mine = [r for r in run.records if r.pid == pid]
    assert all(isinstance(r, FileEvent) and r.uid == uid for r in mine)

    writes = [r for r in mine if r.type == "open_write" and r.path == a]
    assert [w.bytes for w in writes] == [MIB], "1024 writes give ONE aggregated event"
    reads = [r for r in mine if r.type == "open_read" and r.path == a]
    assert [r.bytes for r in reads] == [MIB]
    opens = writes + reads
    assert all(o.comm == "python3" and o.result >= 0 for o in opens)
    assert writes[0].flags & (os.O_CREAT | os.O_WRONLY) == os.O_CREAT | os.O_WRONLY
    assert reads[0].flags & os.O_ACCMODE == os.O_RDONLY

    renames = [r for r in mine if r.type == "rename"]
    assert [(r.path, r.new_path, r.result) for r in renames] == [(a, b, 0)]
    assert [r for r in mine if r.type == "unlink"] == [unlink]
    assert not [r for r in mine if r.path.startswith("/proc")], "/proc is excluded"
    order = [r.type for r in mine if a in (r.path, r.new_path) or r.path == b]
    assert order == ["open_write", "open_read", "rename", "unlink"]


def test_failed_operations_carry_errno(load_monitor, child_user, child_dir):
    uid = uid_of(child_user)
    run = load_fs(load_monitor, uid)
    missing = os.path.join(child_dir, "missing")
    out = run_py(child_user, r"""
import json, os, sys
for call in (lambda: os.open(sys.argv[1], os.O_RDONLY), lambda: os.unlink(sys.argv[1]),
             lambda: os.rename(sys.argv[1], sys.argv[1] + ".new")):
    try:
        call()
    except FileNotFoundError:
        pass
print(json.dumps({"pid": os.getpid()}))
""", missing)
    run.wait_for(lambda r: r.type == "rename" and r.pid == out["pid"], what="the failed rename")
    mine = [(r.type, r.result) for r in run.records if r.pid == out["pid"] and r.path == missing]
    assert mine == [("open", -2), ("unlink", -2), ("rename", -2)]  # ENOENT


def test_fd_left_open_is_flushed_at_exit_and_relative_paths_stay(load_monitor, child_user,
                                                                  child_dir):
    uid = uid_of(child_user)
    run = load_fs(load_monitor, uid)
    out = run_py(child_user, r"""
import json, os
fd = os.open("rel.txt", os.O_WRONLY | os.O_CREAT, 0o600)
os.write(fd, b"a" * 3000)
os.write(fd, b"b" * 1000)
print(json.dumps({"pid": os.getpid(), "fd": fd}), flush=True)
os._exit(0)                           # no close(): the exit flushes the counters
""", cwd=child_dir)
    write = run.wait_for(lambda r: r.type == "write" and r.pid == out["pid"],
                         what="the write flushed at exit")
    assert write.path == "rel.txt", "relative paths are reported as given"
    assert write.bytes == 4000 and write.result == out["fd"]
    opens = [r for r in run.records if r.type == "open" and r.pid == out["pid"]
             and r.path == "rel.txt"]
    assert len(opens) == 1
    assert not [k for k in run.monitor.bpf[b"fds"].keys() if k.tgid == out["pid"]]


def test_fd_beyond_the_exit_scan_is_swept_from_user_space(load_monitor, child_user, child_dir):
    """The kernel scans fds below EXIT_FD_SCAN (32) at exit; a higher one
    is found by periodic() once its process is gone."""
    uid = uid_of(child_user)
    run = load_fs(load_monitor, uid)
    path = os.path.join(child_dir, "high")
    out = run_py(child_user, r"""
import json, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
os.dup2(fd, 300)
os.close(fd)
os.write(300, b"x" * 777)
print(json.dumps({"pid": os.getpid()}), flush=True)
os._exit(0)
""", path)
    write = run.wait_for(lambda r: r.type == "write" and r.pid == out["pid"],
                         what="the write on fd 300")
    assert (write.path, write.result, write.bytes) == (path, 300, 777)
    assert not [k for k in run.monitor.bpf[b"fds"].keys() if k.tgid == out["pid"]]


def test_long_lived_file_is_reported_periodically(load_monitor, child_user, child_dir):
    uid = uid_of(child_user)
    run = load_fs(load_monitor, uid)
    run.monitor.tick_interval = run.monitor.bytes_interval = 0.3
    path = os.path.join(child_dir, "log.txt")
    out = run_py_draining(run, child_user, r"""
import json, os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
for n in (100, 200, 300):
    os.write(fd, b"x" * n)
    time.sleep(1.0)
os.close(fd)
print(json.dumps({"pid": os.getpid()}))
""", path)
    run.wait_for(lambda r: r.type == "open" and r.pid == out["pid"], what="the open")
    time.sleep(0.2)
    mine = [r for r in run.drain() if r.path == path]
    writes = [r.bytes for r in mine if r.type == "write"]
    assert sum(writes) == 600, writes
    assert len(writes) >= 2, f"a file open for 3 s with a 0.3 s interval is reported while open: {writes}"
    # open longer than a second: its open is announced first, then its bytes
    assert [r.type for r in mine][0] == "open" and [r.type for r in mine].count("open") == 1
    assert mine[0].ts_ns < mine[1].ts_ns


@pytest.mark.parametrize("looked", [True, False], ids=["announced-while-open", "with-its-close"])
def test_a_file_open_longer_is_an_open_then_its_bytes(load_monitor, child_user, child_dir, looked):
    """Open longer than short_file_s (0.3 s here): its open is reported
    while it is open (a look at the open files), or, when no look came
    before its close, with the close, before its bytes."""
    uid = uid_of(child_user)
    run = load_fs(load_monitor, uid, short_file_s=0.3)
    run.monitor.tick_interval = 0.1
    path = os.path.join(child_dir, "slow.txt")
    proc = subprocess.Popen(as_user(child_user, [PY, "-c", r"""
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
os.write(fd, b"x" * 777)
print(os.getpid(), flush=True)
time.sleep(float(sys.argv[2]))
os.close(fd)
""", path, "1.2" if looked else "0.6"]), stdout=subprocess.PIPE, text=True)
    try:
        pid = int(proc.stdout.readline())
        if looked:
            run.wait_for(lambda r: r.type == "open" and r.path == path, what="the announced open")
            assert proc.poll() is None, "announced while the file was open"
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
    if not looked:
        assert not [r for r in run.records if r.path == path], "nothing looked yet"
    run.wait_for(lambda r: r.type == "write" and r.path == path, what="the close's write")
    mine = [r for r in run.records if r.path == path]
    assert [(r.type, r.bytes, r.pid) for r in mine] == [("open", 0, pid), ("write", 777, pid)]
    opened, written = mine
    assert written.ts_ns - opened.ts_ns >= 300_000_000
    assert opened.flags & os.O_CREAT and opened.result == written.result >= 0


def test_shell_redirect_is_counted_in_the_forked_command(load_monitor, child_user, child_dir):
    """sh opens the target, dup2()s it to 1, forks: the command that writes
    inherited the fd, and its bytes are still counted (under its own pid)."""
    uid = uid_of(child_user)
    run = load_fs(load_monitor, uid)
    out = os.path.join(child_dir, "out")
    done = run_as(child_user, ["/bin/sh", "-c", f"/usr/bin/head -c 5000 /dev/zero > {out}; "
                                                f"/usr/bin/cat {out} > /dev/null"])
    assert done.returncode == 0, done.stderr
    read = run.wait_for(lambda r: r.type == "open_read" and r.path == out, what="cat's read")
    assert read.comm == "cat" and read.bytes == 5000
    write = run.wait_for(lambda r: r.type == "write" and r.path == out, what="head's write")
    assert write.comm == "head" and write.bytes == 5000 and write.result == 1
    # sh opened it and wrote nothing itself: its open alone, once it closed
    opener = [r for r in run.records if r.type == "open" and r.path == out and r.comm == "sh"]
    assert len(opener) == 1 and opener[0].pid != write.pid and opener[0].bytes == 0
    assert not [r for r in run.records if r.path.startswith("/dev")]


def test_final_flush_reports_open_files_once(load_monitor, child_user, child_dir):
    """periodic(final=True) (collector shutdown) reports a file that is still
    open; its close later reports only what came after."""
    uid = uid_of(child_user)
    run = load_fs(load_monitor, uid)
    path = os.path.join(child_dir, "open.txt")
    proc = subprocess.Popen(as_user(child_user, [PY, "-c", r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
os.write(fd, b"x" * 123)
print("ready", flush=True)
sys.stdin.readline()
os.write(fd, b"y" * 45)
os.close(fd)
""", path]), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        run.monitor.consume()
        first = [r for r in run.monitor.periodic(final=True) if r.path == path]
        assert [(r.type, r.bytes, r.pid) for r in first] == [("open", 0, proc.pid),
                                                             ("write", 123, proc.pid)]
        proc.communicate("go\n", timeout=10)
    finally:
        proc.kill()
    second = run.wait_for(lambda r: r.type == "write" and r.path == path, what="the close flush")
    assert second.bytes == 45, "the close reports only the bytes after the last report"
    assert [r.bytes for r in run.records if r.type == "write" and r.path == path] == [45]


def test_excluded_prefixes_are_configurable(load_monitor, child_user, child_dir):
    uid = uid_of(child_user)
    hidden = os.path.join(child_dir, "hidden")
    run = load_fs(load_monitor, uid, excluded_prefixes=["/proc", hidden])
    out = run_py(child_user, r"""
import json, os, sys
d = sys.argv[1]
os.mkdir(os.path.join(d, "hidden"))
for name in ("hidden/a", "hiddenx", "seen"):   # "hiddenx" is not under "hidden/"
    with open(os.path.join(d, name), "w") as f:
        f.write("data")
os.unlink(os.path.join(d, "hidden", "a"))
print(json.dumps({"pid": os.getpid()}))
""", child_dir)
    run.wait_for(lambda r: r.type == "open_write" and r.path == os.path.join(child_dir, "seen"),
                 what="the write to the visible file")
    paths = {r.path for r in run.records if r.pid == out["pid"]}
    assert os.path.join(child_dir, "hiddenx") in paths
    assert not [p for p in paths if p.startswith(hidden + "/")]
    assert run.monitor.excluded_prefixes == ("/proc", hidden)


def test_uid_filter_drops_other_users_in_the_kernel(load_monitor, child_user, other_user,
                                                   child_dir):
    uid, other = uid_of(child_user), uid_of(other_user)
    run = load_fs(load_monitor, uid)
    other_dir = tempfile.mkdtemp(prefix="dots-fs-other-", dir="/tmp")
    os.chown(other_dir, other, pwd.getpwnam(other_user).pw_gid)
    try:
        code = r"""
import json, os, sys
p = os.path.join(sys.argv[1], "file")
with open(p, "w") as f:
    f.write("x" * 5000)
os.unlink(p)
print(json.dumps({"pid": os.getpid()}))
"""
        run_py(other_user, code, other_dir)
        mark = run_py(child_user, code, child_dir)
        run.wait_for(lambda r: r.type == "unlink" and r.pid == mark["pid"],
                     what="the child's marker")
    finally:
        shutil.rmtree(other_dir, ignore_errors=True)
    assert not [r for r in run.records if r.uid == other]
    assert not [r for r in run.records if r.path.startswith(other_dir)]




STORM = r"""
import json, os, sys, time

path, n = sys.argv[1], int(sys.argv[2])
os.mknod(path, 0o600)              # creates it without an open()
t0 = time.perf_counter()
for _ in range(n):
    os.close(os.open(path, os.O_RDONLY))
dt = time.perf_counter() - t0
print(json.dumps({"pid": os.getpid(), "seconds": dt}))
"""


def test_open_close_storm_delivered_plus_lost_equals_generated(load_monitor, storm_user):
    uid = uid_of(storm_user)
    run = load_fs(load_monitor, uid)
    lost_before = run.monitor.lost
    storm_dir = tempfile.mkdtemp(prefix="dots-fs-storm-", dir="/tmp")
    os.chown(storm_dir, uid, pwd.getpwnam(storm_user).pw_gid)
    path = os.path.join(storm_dir, "storm")
    n = 50_000
    t0 = time.monotonic()
    try:
        out = run_py_draining(run, storm_user, STORM, path, str(n))
    finally:
        shutil.rmtree(storm_dir, ignore_errors=True)

    def delivered() -> int:
        return sum(1 for r in run.records
                   if r.type == "open" and r.pid == out["pid"] and r.path == path)

    deadline = time.monotonic() + 10
    while delivered() + run.monitor.lost - lost_before < n and time.monotonic() < deadline:
        run.drain()
        time.sleep(0.02)
    elapsed = time.monotonic() - t0
    got, lost = delivered(), run.monitor.lost - lost_before
    print(f"\nfilesystem open/close storm: {n} opens in {out['seconds']:.3f}s "
          f"({n / out['seconds']:,.0f} opens/s generated), delivered {got}, lost {lost}, "
          f"{got / elapsed:,.0f} events/s delivered over {elapsed:.2f}s")
    assert got + lost == n
    assert got > 0
    # every fd was closed: nothing left in the kernel's fd table for it
    assert not [k for k in run.monitor.bpf[b"fds"].keys() if k.tgid == out["pid"]]
    assert run.monitor.untracked_fds == 0
