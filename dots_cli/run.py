"""``make run``: bring up the whole product on this machine, in the foreground.

As root: the system bus (the running one, or a private one from
``dbus/system-bus.conf`` at the system socket so that plain ``dotsctl``
finds it), polkitd when none runs, the collector, the policy daemon as the
user ``dots-policyd`` on its default database, and the agent in every
child's desktop session; then the live view (:mod:`dots_cli.run_view`) and
the commands to try next. With systemd as PID 1 and the units installed it
starts those units instead. Ctrl-C stops what it started, newest first, and
nothing else; a second ``make run`` while one runs says so (a lock file).

Every path is overridable by environment for the tests (``DOTS_RUN_*``).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from dots_common import names

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DEFAULT_SOCKET = "/run/dbus/system_bus_socket"
POLKITD_PATHS = ("/usr/libexec/polkitd", "/usr/lib/polkit-1/polkitd")
#: repo file -> where the system reads it (installed when missing or different)
POLKIT_FILES = {
    REPO / "polkit" / "org.dots.family.policy": Path("/usr/share/polkit-1/actions/org.dots.family.policy"),
    REPO / "polkit" / "49-org.dots.family.rules": Path("/usr/share/polkit-1/rules.d/49-org.dots.family.rules"),
}
UNITS = ("dots-collector.service", "dots-policyd.service")


def say(text: str) -> None:
    print(f"run: {text}", file=sys.stderr, flush=True)


class RunError(Exception):
    """Why ``make run`` cannot go on, in words."""


@dataclass
class Settings:
    """Where things live; the defaults are the real machine's."""

    socket: str = DEFAULT_SOCKET
    rundir: Path = Path("/run/dots")
    statedir: Path = Path("/var/lib/dots")
    use_systemd: bool = True
    collector_args: list[str] = field(default_factory=list)
    suggest_user: str = ""
    suggest_app: str = ""

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(socket=env.get("DOTS_RUN_BUS_SOCKET", DEFAULT_SOCKET),
                   rundir=Path(env.get("DOTS_RUN_DIR", "/run/dots")),
                   statedir=Path(env.get("DOTS_RUN_STATE_DIR", "/var/lib/dots")),
                   use_systemd=env.get("DOTS_RUN_NO_SYSTEMD", "") == "",
                   collector_args=env.get("DOTS_COLLECTOR_ARGS", "").split(),
                   suggest_user=env.get("DOTS_RUN_SUGGEST_USER", ""),
                   suggest_app=env.get("DOTS_RUN_SUGGEST_APP", ""))

    @property
    def address(self) -> str:
        return f"unix:path={self.socket}"

    @property
    def database(self) -> Path:
        return self.statedir / "dots.db"


class Lock:
    """``<rundir>/run.pid``, held with flock while we run: a second run
    learns who holds it; a stale file (holder gone) is simply taken."""

    def __init__(self, rundir: Path) -> None:
        self.path = rundir / "run.pid"
        self.file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise RunError(f"make run is already running (pid {holder}, lock {self.path}); "
                           "stop it with Ctrl-C in its terminal, or use that one") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self.file = handle

    def release(self) -> None:
        if self.file is not None:
            self.path.unlink(missing_ok=True)
            self.file.close()
            self.file = None


class Processes:
    """What we started, each in its own process group (Ctrl-C reaches only
    us), stopped newest first with SIGTERM then SIGKILL."""

    def __init__(self) -> None:
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
        out = open(log, "ab") if log else subprocess.DEVNULL
        process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=out if log else None, start_new_session=True, cwd="/")
        if log:
            out.close()
        self.started.append((name, process))
        say(f"started {name} (pid {process.pid})")
        return process

    def alive(self, name: str) -> bool:
        return any(n == name and p.poll() is None for n, p in self.started)

    def stop_all(self) -> None:
        for name, process in reversed(self.started):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            say(f"stopped {name} (pid {process.pid})")
        self.started.clear()


def wait_until(condition, timeout: float, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise RunError(f"{what}: the process exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RunError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def bus_call(address: str, dest: str, path: str, iface: str, member: str, *args: str) -> str | None:
    """A dbus-send call on ``address`` as this process; its reply, or None."""
    out = subprocess.run(["dbus-send", "--system", "--print-reply=literal", f"--dest={dest}", path,
                          f"{iface}.{member}", *args], capture_output=True, text=True,
                         env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": address}, timeout=30)
    return out.stdout if out.returncode == 0 else None


def has_owner(address: str, name: str) -> bool:
    reply = bus_call(address, names.DBUS_BUS_NAME, names.DBUS_PATH, names.DBUS_INTERFACE,
                     "NameHasOwner", f"string:{name}")
    return reply is not None and "true" in reply


def systemd_is_init() -> bool:
    try:
        return Path("/proc/1/comm").read_text().strip() == "systemd"
    except OSError:
        return False


def units_installed() -> bool:
    return all(subprocess.run(["systemctl", "cat", unit], capture_output=True).returncode == 0
               for unit in UNITS)


class Runner:
    """Brings the parts up in order, remembers what it started."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.procs = Processes()
        self.env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": settings.address}
        self.own_socket = False
        self.started_units: list[str] = []
        self.agents: dict[int, subprocess.Popen] = {}

    # --- the parts ---------------------------------------------------------------------

    def system_bus(self) -> None:
        alive = os.path.exists(self.s.socket) and bus_call(
            self.s.address, names.DBUS_BUS_NAME, names.DBUS_PATH, names.DBUS_INTERFACE, "GetId")
        if alive:
            say(f"using the running system bus at {self.s.socket}; installing DOTS's bus policies")
            for conf in sorted((REPO / "dbus").glob("org.dots.*.conf")):
                install_file(conf, Path("/etc/dbus-1/system.d") / conf.name)
            bus_call(self.s.address, names.DBUS_BUS_NAME, names.DBUS_PATH, names.DBUS_INTERFACE,
                     "ReloadConfig")
            return
        say(f"no system bus runs; starting a private one from dbus/system-bus.conf at {self.s.socket}")
        Path(self.s.socket).parent.mkdir(parents=True, exist_ok=True)
        Path(self.s.socket).unlink(missing_ok=True)
        process = self.procs.start("dbus-daemon", [
            "dbus-daemon", f"--config-file={REPO / 'dbus' / 'system-bus.conf'}",
            f"--address={self.s.address}", "--nofork", "--nopidfile", "--nosyslog"], self.env)
        self.own_socket = True
        wait_until(lambda: os.path.exists(self.s.socket), 10, "the private bus's socket", process)
        os.chmod(self.s.socket, 0o666)

    def polkit(self) -> None:
        for source, target in POLKIT_FILES.items():
            install_file(source, target)
        if has_owner(self.s.address, names.POLKIT_BUS_NAME):
            say("polkitd is running; using it")
            return
        binary = next((p for p in POLKITD_PATHS if os.access(p, os.X_OK)), None)
        if binary is None:
            raise RunError("polkitd is not installed (Debian package polkitd); run scripts/install.sh")
        process = self.procs.start("polkitd", [binary, "--no-debug"], self.env)
        wait_until(lambda: has_owner(self.s.address, names.POLKIT_BUS_NAME), 30,
                   "polkitd to own org.freedesktop.PolicyKit1", process)

    def collector(self) -> None:
        if has_owner(self.s.address, names.COLLECTOR_BUS_NAME):
            say("a collector already runs on this bus; using it")
            return
        say("starting the collector (compiling the eBPF monitors takes a few seconds)")
        log = self.s.rundir / "collector.log"
        process = self.procs.start("dots-collector", [str(VENV_BIN / "dots-collector"),
                                                      *self.s.collector_args], self.env, log)
        wait_until(self._collector_ready, 180, f"the collector to be ready (log: {log})", process)

    def _collector_ready(self) -> bool:
        reply = bus_call(self.s.address, names.COLLECTOR_BUS_NAME, names.COLLECTOR_PATH,
                         names.COLLECTOR_INTERFACE, "GetStatus")
        return reply is not None and re.search(r"\bready\s+variant\s+boolean true", reply) is not None

    def policy_daemon(self) -> None:
        if has_owner(self.s.address, names.FAMILY_BUS_NAME):
            say("a policy daemon already runs on this bus; using it")
            return
        pw = pwd.getpwnam(names.POLICYD_USER)
        self.s.statedir.mkdir(parents=True, exist_ok=True)
        os.chown(self.s.statedir, pw.pw_uid, pw.pw_gid)
        self.s.statedir.chmod(0o700)
        log = self.s.rundir / "policyd.log"
        log.touch()
        os.chown(log, pw.pw_uid, pw.pw_gid)
        say(f"starting the policy daemon as {names.POLICYD_USER} on {self.s.database}")
        process = self.procs.start("dots-policyd", [
            "setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups",
            str(VENV_BIN / "dots-policyd"), "--database", str(self.s.database)], self.env, log)
        wait_until(lambda: has_owner(self.s.address, names.FAMILY_BUS_NAME), 60,
                   f"the policy daemon to own org.dots.Family1 (log: {log})", process)

    def systemd_units(self) -> bool:
        """Start the installed units (with systemd as PID 1); False when not applicable."""
        if not (self.s.use_systemd and systemd_is_init() and units_installed()):
            return False
        say("systemd is PID 1 and the DOTS units are installed: using them")
        for unit in UNITS:
            if subprocess.run(["systemctl", "is-active", "--quiet", unit]).returncode != 0:
                subprocess.run(["systemctl", "start", unit], check=True)
                self.started_units.append(unit)
                say(f"started {unit}")
            else:
                say(f"{unit} is already active")
        wait_until(lambda: has_owner(self.s.address, names.FAMILY_BUS_NAME), 120,
                   "dots-policyd.service to own org.dots.Family1")
        return True

    def agents_for(self, uids: list[int]) -> None:
        """dots-agent in each child's desktop session (its session bus exists)."""
        for uid in uids:
            agent = self.agents.get(uid)
            if agent is not None and agent.poll() is None:
                continue
            bus = Path(f"/run/user/{uid}/bus")
            if not bus.exists() or agent_running(uid):
                continue
            pw = pwd.getpwuid(uid)
            env = {"PATH": "/usr/bin:/bin", "HOME": pw.pw_dir, "XDG_RUNTIME_DIR": f"/run/user/{uid}",
                   "DBUS_SESSION_BUS_ADDRESS": f"unix:path={bus}",
                   "DBUS_SYSTEM_BUS_ADDRESS": self.s.address, **display_of(uid)}
            self.agents[uid] = self.procs.start(
                f"dots-agent for {pw.pw_name}",
                ["setpriv", f"--reuid={uid}", f"--regid={pw.pw_gid}", "--init-groups", "--reset-env",
                 "env", *(f"{k}={v}" for k, v in env.items()), str(VENV_BIN / "dots-agent")], env)

    def up(self) -> None:
        self.s.rundir.mkdir(parents=True, exist_ok=True)
        if self.systemd_units():
            return
        self.system_bus()
        self.polkit()
        self.collector()
        self.policy_daemon()

    def down(self) -> None:
        self.procs.stop_all()
        for unit in reversed(self.started_units):
            subprocess.run(["systemctl", "stop", unit])
            say(f"stopped {unit}")
        if self.own_socket:
            Path(self.s.socket).unlink(missing_ok=True)


def install_file(source: Path, target: Path) -> None:
    """Copy a repo file where the system reads it, when missing or different."""
    if target.exists() and target.read_bytes() == source.read_bytes():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    target.chmod(0o644)
    say(f"installed {target}")


def display_of(uid: int) -> dict[str, str]:
    """DISPLAY / WAYLAND_DISPLAY / XAUTHORITY of the user's desktop session
    (from one of its processes), so that the agent's child window opens there."""
    keys = (b"DISPLAY", b"WAYLAND_DISPLAY", b"XAUTHORITY")
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or entry.stat().st_uid != uid:
                continue
            found = dict(v.split(b"=", 1) for v in (entry / "environ").read_bytes().split(b"\0")
                         if b"=" in v and v.split(b"=", 1)[0] in keys)
        except OSError:
            continue
        if b"DISPLAY" in found or b"WAYLAND_DISPLAY" in found:
            return {k.decode(): v.decode(errors="replace") for k, v in found.items()}
    return {}


def agent_running(uid: int) -> bool:
    """A dots-agent of that user already runs (the session's autostart)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid and b"dots-agent" in (entry / "cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def _interrupt(*_: object) -> None:
    """SIGTERM stops like Ctrl-C: everything started is stopped."""
    raise KeyboardInterrupt


def main() -> None:
    from .run_view import Suggestions, watch

    if os.geteuid() != 0:
        say("must run as root (it starts the collector and the system's daemons): sudo make run")
        sys.exit(1)
    settings = Settings.from_env()
    lock = Lock(settings.rundir)
    try:
        lock.acquire()
    except RunError as exc:
        say(str(exc))
        sys.exit(3)
    runner = Runner(settings)
    signal.signal(signal.SIGTERM, _interrupt)
    code = 0
    try:
        runner.up()
        suggestions = Suggestions.for_machine(settings.address, settings.suggest_user,
                                              settings.suggest_app)
        asyncio.run(watch(settings.address, suggestions, runner.agents_for))
    except KeyboardInterrupt:
        pass
    except RunError as exc:
        say(str(exc))
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        runner.down()
        lock.release()
        say("stopped")
    sys.exit(code)


if __name__ == "__main__":
    main()
