"""`make run` as a newcomer would use it: start its entry point (scripts/run.sh)
on a private bus socket, read the commands it prints, type them in "another
terminal" (as root and as a parent), and watch the child's blocked app die
and show up in the view. Then a second run is refused, and Ctrl-C stops
everything the first one started."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from tests.helpers import REPO, as_user, wait_for

pytestmark = [pytest.mark.bpf, pytest.mark.bus]


class Run:
    """scripts/run.sh with pipes; its stdout and stderr gathered by threads."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen([str(REPO / "scripts" / "run.sh")], env=env, cwd=REPO,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, sink in ((self.process.stdout, self.out), (self.process.stderr, self.err)):
            threading.Thread(target=lambda s=stream, k=sink: k.extend(s), daemon=True).start()

    def stdout(self) -> str:
        return "".join(self.out)

    def stderr(self) -> str:
        return "".join(self.err)

    def last_view(self) -> str:
        return self.stdout().rsplit("--- ", 1)[-1]


@pytest.fixture
def workdir():
    path = Path(tempfile.mkdtemp(prefix="dots-run-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_make_run_from_start_to_a_killed_blocked_app(workdir, child_user, parent_user):
    game = workdir / "game"
    shutil.copy2("/usr/bin/id", game)
    env = {**os.environ,
           "DOTS_RUN_BUS_SOCKET": str(workdir / "system_bus_socket"),
           "DOTS_RUN_DIR": str(workdir / "run"),
           "DOTS_RUN_STATE_DIR": str(workdir / "lib"),
           "DOTS_RUN_NO_SYSTEMD": "1",
           "DOTS_COLLECTOR_ARGS": "--monitors process",
           "DOTS_RUN_SUGGEST_USER": child_user,
           "DOTS_RUN_SUGGEST_APP": str(game)}
    env.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
    run = Run(env)
    try:
        wait_for(lambda: "Children today" in run.stdout() or run.process.poll() is not None,
                 timeout=240, what="make run's view")
        assert run.process.poll() is None, run.stderr()
        commands = re.findall(r"^  \$ (.+)$", run.stdout().split("--- ", 1)[0], re.M)
        add, limit, block, try_it, ask = commands
        assert "child add" in add and "limit daily" in limit and "app block" in block

        # another terminal: root makes the child, a parent sets a limit and blocks the app
        assert subprocess.run(["sh", "-c", add], cwd="/", capture_output=True, text=True,
                              env={"PATH": os.environ["PATH"]}).returncode == 0
        for command in (limit, block):
            out = subprocess.run(as_user(parent_user, ["sh", "-c", command]), cwd="/",
                                 capture_output=True, text=True)
            assert out.returncode == 0, (command, out.stdout, out.stderr)
        limit_today = "2 h 00 min" if dt.date.today().weekday() >= 5 else "1 h 30 min"
        wait_for(lambda: child_user in run.last_view() and limit_today in run.last_view(),
                 timeout=30, what=f"the view to show the child and its limit:\n{run.last_view()}")

        # the child tries the blocked app, as printed: killed before it ran
        killed = wait_for(lambda: (r := subprocess.run(["sh", "-c", try_it], capture_output=True,
                                                       text=True, cwd="/")).returncode != 0 and r,
                          timeout=30, what="the blocked app to be killed")
        assert killed.returncode in (-9, 137), killed
        assert killed.stdout == ""
        wait_for(lambda: f"BLOCKED {game}" in run.last_view(), timeout=30,
                 what="the view to show the blocked attempt")

        # the child asks for more time; the view lists the request
        out = subprocess.run(["sh", "-c", ask], capture_output=True, text=True, cwd="/")
        assert out.returncode == 0, out.stderr
        wait_for(lambda: "homework" in run.last_view(), timeout=30, what="the pending request")

        # a second make run is refused while this one runs
        second = subprocess.run([str(REPO / "scripts" / "run.sh")], env=env, capture_output=True,
                                text=True, timeout=60)
        assert second.returncode == 3 and "already running" in second.stderr
    finally:
        pids = [int(p) for p in re.findall(r"started .+ \(pid (\d+)\)", run.stderr())]
        run.process.send_signal(signal.SIGINT)
        code = run.process.wait(timeout=60)
    assert code == 0, run.stderr()
    assert len(pids) == 4, run.stderr()  # dbus-daemon, polkitd, collector, policy daemon
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or \
            Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z", f"pid {pid} still runs"
    assert not (workdir / "system_bus_socket").exists()
    assert not (workdir / "run" / "run.pid").exists()


# --- without a bus -------------------------------------------------------------------------

def test_view_splits_programs_and_blocked_attempts():
    from dots_cli.run_view import split_events

    events = [{"type": "exec_blocked", "path": "/tmp/game", "time": 5.0},
              {"type": "exec", "path": "/usr/bin/ls", "time": 4.0},
              {"type": "exit", "comm": "ls", "time": 3.5},
              {"type": "exec", "path": "/usr/bin/ls", "time": 3.0},
              {"type": "exec", "path": "/usr/bin/id", "time": 2.0}]
    programs, blocked = split_events(events)
    assert programs == [(4.0, "/usr/bin/ls"), (2.0, "/usr/bin/id")]
    assert blocked == [(5.0, "/tmp/game")]


def test_suggestions_name_the_bus_only_when_it_is_not_the_default(monkeypatch):
    from dots_cli.run_view import Suggestions

    default = Suggestions.for_machine("unix:path=/run/dbus/system_bus_socket", "kid", "/usr/bin/id")
    assert "DBUS_SYSTEM_BUS_ADDRESS" not in default.dotsctl
    private = Suggestions.for_machine("unix:path=/tmp/x/bus", "kid", "/usr/bin/id")
    assert private.dotsctl.startswith("env DBUS_SYSTEM_BUS_ADDRESS=unix:path=/tmp/x/bus ")
    steps = [c for _, c in private.commands()]
    assert steps[0].endswith("child add kid --preset 8-12") and steps[3] == "runuser -u kid -- /usr/bin/id"


def test_with_systemd_as_pid1_the_installed_units_are_used(tmp_path, monkeypatch, capsys):
    """A stand-in systemctl (on PATH) records what make run asks of systemd:
    the units that were not active are started, said so, and stopped again
    at Ctrl-C; an active one is left alone."""
    from dots_cli import run

    calls = tmp_path / "calls"
    fake = tmp_path / "systemctl"
    fake.write_text("#!/bin/sh\necho \"$*\" >> " + str(calls) + "\n"
                    "case \"$*\" in 'is-active --quiet dots-collector.service') exit 0;; "
                    "'is-active --quiet dots-policyd.service') exit 3;; esac\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setattr(run, "systemd_is_init", lambda: True)
    monkeypatch.setattr(run, "has_owner", lambda address, name: True)
    runner = run.Runner(run.Settings(rundir=tmp_path / "run"))
    runner.up()
    runner.down()
    assert calls.read_text().splitlines() == [
        "cat dots-collector.service", "cat dots-policyd.service",
        "is-active --quiet dots-collector.service",
        "is-active --quiet dots-policyd.service", "start dots-policyd.service",
        "stop dots-policyd.service"]
    err = capsys.readouterr().err
    assert "systemd is PID 1 and the DOTS units are installed: using them" in err
    assert runner.procs.started == []  # nothing of its own
