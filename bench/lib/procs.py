"""The processes a bench run starts and stops: the collector (JSON lines on
stdout, or on a private bus), bpftrace, a private dbus-daemon, a throwaway
PostgreSQL cluster, and the ingest runner (the policy daemon's collector
link, as user dots-policyd)."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .util import BENCH, COLLECTOR_BIN, REPO, VENV_PYTHON, SectionError, as_user

LOST_RE = re.compile(rb"Lost (\d+) events")
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux), not exported before Python 3.10
#: the bench's collectors pin here, never in an installed collector's directory
BENCH_PIN_DIR = "/sys/fs/bpf/dots-bench"


def _drain_lines(stream, sink: list[bytes], keep: int = 400) -> None:
    """Keep the last ``keep`` lines of a stream (stderr of a child)."""
    for line in stream:
        sink.append(line)
        if len(sink) > keep:
            del sink[: len(sink) - keep]


class Collector:
    """``dots-collector`` as root. With ``bus`` None it prints JSON lines,
    counted here (``events``; ``lost`` from its "lost" lines); with a bus it
    publishes batches there and is asked for its status over D-Bus."""

    def __init__(self, monitors: list[str], uids: list[int], enforcers: bool = False,
                 bus: "PrivateBus | None" = None, extra: tuple[str, ...] = ()) -> None:
        self.monitors = monitors
        self.uids = uids
        self.enforcers = enforcers
        self.bus = bus
        self.argv = [COLLECTOR_BIN, "--monitors", ",".join(monitors),
                     *[f"--uid={u}" for u in uids], *extra]
        if bus is None:
            self.argv.insert(1, "--stdout")
        if not enforcers:
            self.argv.append("--no-enforcers")
        self.events = 0
        self.lost: dict[str, int] = {}
        self.stderr: list[bytes] = []
        self._ready = threading.Event()
        self.process: subprocess.Popen | None = None
        self.startup_s = 0.0
        self.stop_s = 0.0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 180) -> "Collector":
        # no rules file: a bench collector neither inherits enforcement rules
        # from another collector nor leaves its own for the next one
        env = {**os.environ, "DOTS_RULES_FILE": "", "DOTS_PIN_DIR": BENCH_PIN_DIR}
        if self.bus is not None:
            env["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus.address
        t0 = time.monotonic()
        self.process = subprocess.Popen(
            self.argv, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if self.bus is None else subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        threading.Thread(target=self._read_stderr, daemon=True).start()
        if self.bus is None:
            self._stdout_reader = threading.Thread(target=self._read_stdout, daemon=True)
            self._stdout_reader.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise SectionError(f"dots-collector {' '.join(self.argv[1:])} did not start: "
                                   + self.log_tail())
        self.startup_s = time.monotonic() - t0
        return self

    def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)
            if len(self.stderr) > 400:
                del self.stderr[:100]
            if line.rstrip().endswith(b"dots.collector: ready"):
                self._ready.set()

    def _read_stdout(self) -> None:
        """Count the JSON lines as cheaply as possible (1 MiB pipe, big
        reads, newlines counted in C), so that the collector never waits
        on a full pipe: as close to ``> /dev/null`` as a counted run gets."""
        assert self.process is not None and self.process.stdout is not None
        fd = self.process.stdout.fileno()
        try:
            fcntl.fcntl(fd, F_SETPIPE_SZ, 1 << 20)
        except OSError:
            pass
        lines, tail = 0, b""
        while chunk := os.read(fd, 1 << 20):
            data = tail + chunk
            end = data.rfind(b"\n") + 1
            tail = data[end:]
            complete = data[:end]
            lines += complete.count(b"\n")
            if b'"lost"' in complete:
                for line in complete.splitlines():
                    if b'"type": "lost"' in line or b'"type":"lost"' in line:
                        info = json.loads(line)
                        self.lost[info["monitor"]] = max(self.lost.get(info["monitor"], 0),
                                                         info["lost"])
                        lines -= 1
            self.events = lines

    def log_tail(self, n: int = 15) -> str:
        """The reason it failed: compiler errors and the last line."""
        lines = [line.decode(errors="replace").rstrip() for line in self.stderr]
        errors = [ln for ln in lines if "error:" in ln or ln.startswith("dots-collector:")]
        tail = [ln for ln in lines[-3:] if ln not in errors]
        return " | ".join((errors + tail)[-n:])

    def stop(self, timeout: float = 120) -> dict:
        """SIGTERM (it drains, flushes, detaches), wait; the counts."""
        assert self.process is not None
        t0 = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        if self.bus is None:
            self._stdout_reader.join(timeout=30)
        self.stop_s = time.monotonic() - t0
        return {"events": self.events, "lost": sum(self.lost.values()),
                "lost_by_monitor": dict(self.lost), "startup_s": round(self.startup_s, 3),
                "stop_s": round(self.stop_s, 3), "exit_code": self.process.returncode}

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
            # killed, it left its programs pinned and attached (by design)
            from dots_collector.pinning import unpin_tree

            unpin_tree(Path(BENCH_PIN_DIR))

    # --- on a bus ---------------------------------------------------------------------
    def call(self, member: str, signature: str = "", body: list | None = None) -> list:
        assert self.bus is not None
        return self.bus.call("org.dots.Collector1", "/org/dots/Collector1",
                             "org.dots.Collector1", member, signature, body or [])

    def status(self) -> dict[str, Any]:
        try:
            return unvariant(self.call("GetStatus")[0])
        except SectionError as e:
            gone = self.process is not None and self.process.poll() is not None
            raise SectionError(f"{e}" + (f" (the collector exited with {self.process.returncode}: "
                                         f"{self.log_tail()})" if gone else "")) from e


class BpfTrace:
    """A bpftrace script (argument $1: the uid). Events are its lines that
    start with "E " (printed events) or "@" (entries of aggregation maps it
    prints, memory.bt); lost events from its "Lost N events" notices."""

    def __init__(self, script: Path, uid: int) -> None:
        self.script = script
        self.uid = uid
        self.events = 0
        self.lost = 0
        self.stderr: list[bytes] = []
        self._attached = threading.Event()
        self.process: subprocess.Popen | None = None
        self.startup_s = 0.0

    def start(self, timeout: float = 120) -> "BpfTrace":
        t0 = time.monotonic()
        env = {**os.environ, "BPFTRACE_MAP_KEYS_MAX": "65536"}
        self.process = subprocess.Popen(["bpftrace", "-B", "full", str(self.script), str(self.uid)],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=env)
        threading.Thread(target=_drain_lines, args=(self.process.stderr, self.stderr),
                         daemon=True).start()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._attached.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise SectionError(f"bpftrace {self.script.name} did not start: "
                                   + b"".join(self.stderr[-10:]).decode(errors="replace"))
        # "Attaching N probes..." is printed before the probes are attached
        time.sleep(0.5)
        self.startup_s = time.monotonic() - t0
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        events = 0
        for line in self.process.stdout:
            if line.startswith(b"E ") or line.startswith(b"@"):
                events += 1
            elif line.startswith(b"Attaching"):
                self._attached.set()
            else:
                m = LOST_RE.search(line)
                if m:
                    self.lost += int(m.group(1))
        self.events = events

    def stop(self, timeout: float = 120) -> dict:
        assert self.process is not None
        t0 = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reader.join(timeout=30)
        for line in self.stderr:
            m = LOST_RE.search(line)
            if m:
                self.lost += int(m.group(1))
        return {"events": self.events, "lost": self.lost, "startup_s": round(self.startup_s, 3),
                "stop_s": round(time.monotonic() - t0, 3), "exit_code": self.process.returncode}

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
            # killed, it left its programs pinned and attached (by design)
            from dots_collector.pinning import unpin_tree

            unpin_tree(Path(BENCH_PIN_DIR))


def combined_bpftrace(scripts: list[Path], out: Path) -> Path:
    """One program from several scripts (the mixed workload): their probes
    as they are, their END blocks merged into one."""
    body, ends = [], []
    for script in scripts:
        for line in script.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith("END {") and stripped.endswith("}"):
                ends.append(stripped[len("END {"):-1].strip())
            elif not stripped.startswith("//"):
                body.append(line)
    body.append("END { " + " ".join(ends) + " }")
    out.write_text("\n".join(body) + "\n")
    return out


# --- D-Bus ---------------------------------------------------------------------------------
def unvariant(value: Any) -> Any:
    from dbus_fast import Variant

    if isinstance(value, Variant):
        return unvariant(value.value)
    if isinstance(value, dict):
        return {k: unvariant(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unvariant(v) for v in value]
    return value


#: names the stand-ins own as root on the private bus (as tests/fixtures/bus.py)
MOCK_NAMES = ("org.freedesktop.login1",)


class PrivateBus:
    """A private dbus-daemon from the repo's dbus/system-bus.conf (as
    tests/fixtures/bus.py starts it), plus a logind stand-in's name."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="dots-bench-bus-"))
        self.workdir.chmod(0o755)
        self.socket = self.workdir / "system_bus_socket"
        self.address = f"unix:path={self.socket}"
        config = self.workdir / "bus.conf"
        config.write_text(
            "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN\"\n"
            " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
            "<busconfig>\n"
            f"  <include>{REPO / 'dbus' / 'system-bus.conf'}</include>\n"
            "  <policy user=\"root\">\n"
            + "".join(f"    <allow own=\"{n}\"/>\n    <allow send_destination=\"{n}\"/>\n"
                      for n in MOCK_NAMES)
            + "  </policy>\n"
            "</busconfig>\n")
        self.process = subprocess.Popen(
            ["dbus-daemon", f"--config-file={config}", f"--address={self.address}",
             "--nofork", "--nopidfile", "--nosyslog"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SectionError(f"dbus-daemon did not start: {self.process.stderr.read()!r}")
            time.sleep(0.02)
        self._loop = asyncio.new_event_loop()
        self._bus = None

    def env(self) -> dict[str, str]:
        return {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address}

    def call(self, dest: str, path: str, iface: str, member: str, signature: str = "",
             body: list | None = None, timeout: float = 120) -> list:
        """A method call as root; a D-Bus error raises SectionError."""
        return self._loop.run_until_complete(
            asyncio.wait_for(self._call(dest, path, iface, member, signature, body), timeout))

    async def _call(self, dest, path, iface, member, signature, body):
        from dbus_fast import Message, MessageType
        from dbus_fast.aio import MessageBus

        if self._bus is None:
            self._bus = await MessageBus(bus_address=self.address).connect()
        reply = await self._bus.call(Message(destination=dest, path=path, interface=iface,
                                             member=member, signature=signature, body=body or []))
        if reply.message_type == MessageType.ERROR:
            raise SectionError(f"{member}: {reply.error_name}: {(reply.body or [''])[0]}")
        return reply.body

    def has_owner(self, name: str) -> bool:
        return bool(self.call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                              "org.freedesktop.DBus", "NameHasOwner", "s", [name])[0])

    def stop(self) -> None:
        if self._bus is not None:
            self._bus.disconnect()
            self._bus = None
        self._loop.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


# --- PostgreSQL ------------------------------------------------------------------------------
def pg_bindir() -> Path:
    import glob

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name)
                   if Path(p).parent.parent.name.isdigit() else 0)
    if not found:
        raise SectionError("PostgreSQL server binaries not found under /usr/lib/postgresql")
    return Path(found[-1]).parent


class Postgres:
    """A throwaway cluster on a Unix socket, run as the postgres account
    (as tests/fixtures/postgres.py), with PostgreSQL's default durability
    (fsync and synchronous_commit on): a benchmark, not a test."""

    def __init__(self) -> None:
        self.bindir = pg_bindir()
        try:
            self.account = pwd.getpwnam("postgres")
        except KeyError:
            raise SectionError("no postgres account (Debian's postgresql package creates it)")
        self.root = Path(tempfile.mkdtemp(prefix="dots-bench-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.socket_dir.mkdir()
        for path in (self.root, self.socket_dir):
            os.chown(path, self.account.pw_uid, self.account.pw_gid)
            path.chmod(0o755)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "postgres.log"), "-w",
                  "-t", "60", "-o", f"-k {self.socket_dir} -c listen_addresses=''", "start")
        self.dbname = "dots_bench"
        self._run("createdb", "-h", str(self.socket_dir), "-U", "postgres", self.dbname)

    def _run(self, *argv: str) -> None:
        done = subprocess.run(["setpriv", f"--reuid={self.account.pw_uid}",
                               f"--regid={self.account.pw_gid}", "--init-groups", "--reset-env",
                               str(self.bindir / argv[0]), *argv[1:]],
                              capture_output=True, text=True, timeout=120, cwd=self.root)
        if done.returncode != 0:
            raise SectionError(f"{argv[0]} failed: {done.stderr.strip()[-500:]}")

    def url(self) -> str:
        return f"postgresql://postgres@/{self.dbname}?host={self.socket_dir}"

    def recreate(self) -> None:
        self._run("dropdb", "-h", str(self.socket_dir), "-U", "postgres", "--force", self.dbname)
        self._run("createdb", "-h", str(self.socket_dir), "-U", "postgres", self.dbname)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


# --- the ingest runner -------------------------------------------------------------------------
POLICYD_USER = "dots-policyd"


class IngestRunner:
    """bench/ingest_runner.py as user dots-policyd: the policy daemon's
    collector link storing into ``database``; it prints a status line
    (stored events, queue, memory) twice a second."""

    def __init__(self, bus: PrivateBus, database: str, children: list[int]) -> None:
        self.bus = bus
        self.database = database
        self.children = children
        self.status: dict[str, Any] = {}
        self.stderr: list[bytes] = []
        self._ready = threading.Event()
        self.process = subprocess.Popen(
            as_user(POLICYD_USER, [VENV_PYTHON, str(BENCH / "ingest_runner.py"), database,
                                   ",".join(map(str, children))],
                    env={"DBUS_SYSTEM_BUS_ADDRESS": bus.address}),
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        threading.Thread(target=_drain_lines, args=(self.process.stderr, self.stderr),
                         daemon=True).start()
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 60
        while not self._ready.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SectionError("ingest runner did not start: "
                                   + b"".join(self.stderr[-10:]).decode(errors="replace"))

    @property
    def pid(self) -> int:
        """The runner's python (setpriv execs it: same pid)."""
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            self.status = data
            if data.get("ready"):
                self._ready.set()

    @property
    def stored(self) -> int:
        return int(self.status.get("stored_events", 0))

    def wait_stored(self, target: int, stall_s: float = 8.0, max_s: float = 900.0) -> tuple[bool, float]:
        """Wait until ``target`` events are stored, or no progress for
        ``stall_s``; (reached, seconds until the last progress)."""
        t0 = time.monotonic()
        last, last_change = self.stored, t0
        while self.stored < target:
            now = time.monotonic()
            if self.stored != last:
                last, last_change = self.stored, now
            if now - last_change > stall_s or now - t0 > max_s or self.process.poll() is not None:
                return False, last_change - t0
            time.sleep(0.02)
        return True, time.monotonic() - t0

    def stop(self) -> dict:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return dict(self.status)

    def log_tail(self, n: int = 10) -> str:
        return b"".join(self.stderr[-n:]).decode(errors="replace")


def policyd_dir() -> Path:
    """A directory only dots-policyd owns, for its SQLite database."""
    pw = pwd.getpwnam(POLICYD_USER)
    workdir = Path(tempfile.mkdtemp(prefix="dots-bench-db-", dir="/tmp"))
    shutil.chown(workdir, pw.pw_uid, pw.pw_gid)
    workdir.chmod(0o700)
    return workdir
