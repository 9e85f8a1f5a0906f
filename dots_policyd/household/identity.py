"""Who this machine is in the household, read from its configuration.

The household file (default ``/etc/dots/household.conf``, JSON) holds the
database URL with this machine's own role and password, so it must be
readable by dots-policyd alone: a file others can read, or a URL to a
remote server without TLS, is refused (fail closed). The machine id comes
from ``/etc/machine-id`` unless the file names another one (tests
simulate several machines on one host this way).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlparse

DEFAULT_CONFIG = "/etc/dots/household.conf"
MACHINE_ID_FILE = "/etc/machine-id"
_MACHINE_ID = re.compile(r"[0-9a-f]{32}")
_MEMBER = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: sslmodes that encrypt and (verify-*) authenticate the server
TLS_MODES = ("require", "verify-ca", "verify-full")
DEFAULT_SYNC_SECONDS = 10.0


class HouseholdConfigError(ValueError):
    """The household file is unusable or unsafe; the daemon refuses to start."""


@dataclasses.dataclass(frozen=True)
class HouseholdConfig:
    url: str
    machine_id: str
    machine_name: str
    #: local account name -> member name (default: the same name; "" = not a member)
    members: dict[str, str]
    #: seconds between full syncs (the safety net under LISTEN/NOTIFY)
    sync_seconds: float = DEFAULT_SYNC_SECONDS

    def member_of(self, user_name: str) -> str | None:
        """The member a local account is; None for an account kept out of the household."""
        return self.members.get(user_name, user_name) or None


def read_machine_id(path: str | os.PathLike[str] = MACHINE_ID_FILE) -> str:
    text = Path(path).read_text().strip()
    if not _MACHINE_ID.fullmatch(text):
        raise HouseholdConfigError(f"{path} does not hold a machine id (32 hex digits)")
    return text


def is_local(url: str) -> bool:
    """A Unix socket or the loopback: no TLS needed."""
    parsed = urlparse(url)
    host = parsed.hostname or parse_qs(parsed.query).get("host", [""])[0]
    return host in ("", "localhost", "127.0.0.1", "::1") or host.startswith("/")


def check_tls(url: str) -> None:
    if is_local(url):
        return
    mode = parse_qs(urlparse(url).query).get("sslmode", [""])[0]
    if mode not in TLS_MODES:
        raise HouseholdConfigError(
            f"the household database is not local: its URL must say sslmode=verify-full "
            f"(or {', '.join(TLS_MODES[:-1])}), not {mode or 'nothing'}")


def check_private(path: Path) -> None:
    """Only the owner (dots-policyd) may read the credentials."""
    info = path.stat()
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise HouseholdConfigError(
            f"{path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}); "
            f"it holds a database password: chmod 600 it, owned by dots-policyd")
    if info.st_uid != os.geteuid():
        raise HouseholdConfigError(f"{path} must be owned by the user running dots-policyd")


def load_config(path: str | os.PathLike[str] = DEFAULT_CONFIG) -> HouseholdConfig:
    file = Path(path)
    try:
        check_private(file)
        data = json.loads(file.read_text())
    except OSError as exc:
        raise HouseholdConfigError(f"cannot read {file}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise HouseholdConfigError(f"{file} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        raise HouseholdConfigError(f"{file} must be a JSON object with a \"url\"")
    check_tls(data["url"])
    machine_id = data.get("machine_id") or read_machine_id(data.get("machine_id_file", MACHINE_ID_FILE))
    if not _MACHINE_ID.fullmatch(machine_id):
        raise HouseholdConfigError(f"machine_id {machine_id!r} is not 32 hex digits")
    members = data.get("members", {})
    if not isinstance(members, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and (v == "" or _MEMBER.fullmatch(v))
            for k, v in members.items()):
        raise HouseholdConfigError("\"members\" must map local account names to member names "
                                   "(letters, digits, . _ -; \"\" keeps an account out)")
    sync = float(data.get("sync_seconds", DEFAULT_SYNC_SECONDS))
    if not 0.2 <= sync <= 3600:
        raise HouseholdConfigError("sync_seconds must be 0.2 to 3600")
    name = str(data.get("machine_name") or socket.gethostname())[:64]
    return HouseholdConfig(data["url"], machine_id, name, dict(members), sync)
