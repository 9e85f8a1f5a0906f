"""A throwaway desktop session for GUI tests: Xvfb (xvfb-run -a), a session
bus (dbus-run-session), the AT-SPI bus, and the app under test started by
tests/desktop_driver.py as a real user; the test sends it requests by
accessible name. Screenshots are written by the app and copied to
docs/screenshots/."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.helpers import REPO, VENV_PYTHON, as_user, wait_for

#: where screenshots are kept for the README: set DOTS_SCREENSHOTS=docs/screenshots
#: to refresh them (a plain test run leaves the tree untouched)
SCREENSHOTS = Path(os.environ["DOTS_SCREENSHOTS"]).resolve() if os.environ.get("DOTS_SCREENSHOTS") else None


class DesktopSession:
    def __init__(self, user: str, app_id: str, app_argv: list[str], env: dict[str, str] | None = None) -> None:
        pw = pwd.getpwnam(user)
        self.tmp = Path(tempfile.mkdtemp(prefix="dots-desktop-"))
        runtime, shots = self.tmp / "runtime", self.tmp / "shots"
        for d in (runtime, shots):
            d.mkdir()
            os.chown(d, pw.pw_uid, pw.pw_gid)
            d.chmod(0o700)
        self.shots = shots
        self.tmp.chmod(0o755)
        session_env = {"HOME": pw.pw_dir, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
                       "XDG_RUNTIME_DIR": str(runtime), "PYTHONPATH": str(REPO), "NO_AT_BRIDGE": "0", **(env or {})}
        xvfb_log = runtime / "xvfb.log"  # written by Xvfb, as the user
        argv = ["xvfb-run", "-a", "-e", str(xvfb_log), "-s", "-screen 0 1280x900x24", "dbus-run-session",
                "--", VENV_PYTHON, str(REPO / "tests" / "desktop_driver.py"), app_id, "--", *app_argv]
        # xvfb-run -a picks a free display by its lock file, then starts Xvfb:
        # two sessions starting at once may pick the same one, or a display
        # left behind by an earlier run, and the app finds no display: a
        # session that did not start gets one second try on a fresh display.
        x11 = Path("/tmp/.X11-unix")  # as on a real system: root's, world-writable, sticky
        x11.mkdir(exist_ok=True)
        os.chown(x11, 0, 0)
        x11.chmod(0o1777)
        for attempt in (1, 2):
            self.process = subprocess.Popen(as_user(user, argv, env=session_env), cwd=REPO, text=True,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            first = self.process.stdout.readline()
            if json.loads(first or "{}").get("ready") is True:
                return
            self.process.wait(timeout=30)
            log = xvfb_log.read_text(errors="replace") if xvfb_log.exists() else ""
            if attempt == 2:
                raise RuntimeError(f"the desktop session did not start: {first!r}; Xvfb: {log[-2000:]}")

    def send(self, **request) -> object:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = json.loads(self.process.stdout.readline() or '{"error": "the driver exited"}')
        if "error" in reply:
            raise AssertionError(f"{request}: {reply['error']}")
        return reply["ok"]

    def find(self, name: str, role: str | None = None, timeout: float = 20) -> dict:
        return self.send(op="find", name=name, role=role, timeout=timeout)

    def click(self, name: str, role: str | None = None) -> dict:
        return self.send(op="click", name=name, role=role)

    def value(self, name: str, set: float | None = None) -> float:
        return self.send(op="value", name=name, **({} if set is None else {"set": set}))

    def text(self, name: str) -> str:
        return self.send(op="text", name=name)

    def type(self, name: str, text: str) -> None:
        self.send(op="type", name=name, text=text)

    def texts(self, name: str, role: str | None = None) -> list[str]:
        return self.send(op="texts", name=name, role=role)

    def unnamed(self) -> list[list[str]]:
        return self.send(op="unnamed")

    def key(self, key: str) -> None:
        self.send(op="key", key=key)

    def focused(self) -> list[list[str]]:
        return self.send(op="focused")

    def tab_to(self, role: str, name: str, most: int = 40) -> None:
        """Press Tab until the control has the focus, as a keyboard user would."""
        for _ in range(most):
            if [role, name] in self.focused():
                return
            before = self.focused()
            self.key("Tab")
            wait_for(lambda: self.focused() != before, timeout=5, interval=0.05, what="Tab to move the focus")
        raise AssertionError(f"{most} presses of Tab never reached {role} {name!r}")

    def names(self) -> list[list[str]]:
        return self.send(op="names")

    def screenshot(self, name: str) -> Path:
        """The app's window as <name>.png (copied to $DOTS_SCREENSHOTS when set)."""
        shot = self.shots / f"{name}.png"
        self.send(op="screenshot", path=str(shot))
        if SCREENSHOTS is None:
            return shot
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOTS / f"{name}.png")
        return SCREENSHOTS / f"{name}.png"

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)
