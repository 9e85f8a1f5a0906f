"""Tamper evidence for the database: an HMAC over the children and their
policies, kept in the database and rewritten in the same transaction as
every change the daemon makes. The key lives in a file only the daemon's
user can read, so someone editing the database by hand (sqlite3, psql)
cannot make the seal match again."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from pathlib import Path

import peewee

from .db import bind
from .schema import Child, IntegritySeal, utcnow

log = logging.getLogger("dots.policyd.seal")

NAME = "children"
DEFAULT_STATE_DIR = "/var/lib/dots"


def key_path(database: str) -> Path:
    """Beside an SQLite file; else in the daemon's state directory."""
    if "://" not in database:
        return Path(database).resolve().parent / "seal.key"
    return Path(os.environ.get("STATE_DIRECTORY", DEFAULT_STATE_DIR)) / "seal.key"


def load_key(path: Path) -> bytes:
    """Read the key, creating it (mode 0600) the first time."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        log.info("created the database seal key %s", path)
        return key


class Seal:
    def __init__(self, db: peewee.Database, key: bytes) -> None:
        self.db = db
        self.key = key

    def _mac(self) -> str:
        rows = [[c.uid, c.name, c.policy] for c in Child.select().order_by(Child.uid)]
        text = json.dumps(rows, separators=(",", ":"), sort_keys=True).encode()
        return hmac.new(self.key, text, hashlib.sha256).hexdigest()

    def write(self) -> None:
        """Call inside the transaction that changed the children."""
        bind(self.db)
        (IntegritySeal.insert(name=NAME, mac=self._mac(), time=utcnow())
         .on_conflict(conflict_target=[IntegritySeal.name],
                      update={IntegritySeal.mac: self._mac(), IntegritySeal.time: utcnow()})
         .execute())

    def intact(self) -> bool:
        bind(self.db)
        with self.db.atomic():  # one snapshot: the seal and what it covers
            row = IntegritySeal.get_or_none(IntegritySeal.name == NAME)
            if row is None:  # a database from before the seal: seal it now
                self.write()
                return True
            return hmac.compare_digest(row.mac, self._mac())
