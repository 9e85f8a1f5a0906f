"""Category lists (gambling, ads, ...): shared by the household, blocked
per child through the policy's ``blocked_categories``.

Each list is kept as a file of normalized domains, one a line, with a
small JSON beside it (where it came from, when, how many domains), in the
daemon's state directory; a list is checked whole before anything is
written (a bad list changes nothing) and replaced atomically. The
DomainSets are built on first use and rebuilt when a file changes.
Lists from a URL are fetched by the daemon (http/https only, size and
time bounded) so that ``update`` can fetch them again.

The parents' additions to the DoH endpoint list live here too
(``doh-extra.txt``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee

from .domains import MAX_LIST_BYTES, DomainSet, ListError, iter_list
from .policy import PolicyError, normalize_category

log = logging.getLogger("dots.policyd.categories")

FETCH_TIMEOUT = 60.0
DOH_EXTRA = "doh-extra.txt"


class CategoryError(ValueError):
    """Unknown category, bad URL or a list that cannot be used."""


def check_url(url: str) -> str:
    if not isinstance(url, str) or len(url) > 2048:
        raise CategoryError("the URL must be at most 2048 characters")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CategoryError(f"malformed URL {url[:80]!r}: only http:// and https:// URLs with a host")
    return url


def fetch(url: str, timeout: float = FETCH_TIMEOUT) -> bytes:
    """The list at ``url`` (at most MAX_LIST_BYTES)."""
    check_url(url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (scheme checked)
            data = response.read(MAX_LIST_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise CategoryError(f"cannot fetch {url[:80]!r}: {e}") from None
    if len(data) > MAX_LIST_BYTES:
        raise CategoryError(f"the list at {url[:80]!r} is larger than {MAX_LIST_BYTES} bytes")
    return data


class CategoryStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._sets: dict[str, tuple[float, DomainSet]] = {}

    def _name(self, category: str) -> str:
        try:
            return normalize_category(category)
        except PolicyError as e:
            raise CategoryError(str(e)) from None

    def _paths(self, name: str) -> tuple[Path, Path]:
        return self.directory / f"{name}.list", self.directory / f"{name}.json"

    def put(self, category: str, data: bytes | None = None, url: str = "") -> dict[str, Any]:
        """Load a list (``data``, else fetched from ``url``) under
        ``category``, replacing what it held. Returns its info."""
        name = self._name(category)
        if data is None or not data:
            if not url:
                raise CategoryError("give the list's content or its URL")
            data = fetch(url)
        elif url:
            check_url(url)
        listing, meta = self._paths(name)
        count = self._write_lines(listing, iter_list(data), name)
        info = {"name": name, "domains": count, "source": url or "file",
                "updated": int(dt.datetime.now(dt.timezone.utc).timestamp())}
        self._write(meta, json.dumps(info))
        self._sets.pop(name, None)
        log.info("category %s: %d domains from %s", name, count, info["source"])
        return info

    def update(self, category: str, data: bytes | None = None) -> dict[str, Any]:
        """Load the list again: from ``data``, or from the URL it came from."""
        info = self.info(category)
        url = info["source"] if info["source"] != "file" else ""
        if not data and not url:
            raise CategoryError(f"list {info['name']!r} came from a file: give the new file")
        return self.put(category, data, url)

    def remove(self, category: str) -> None:
        name = self._name(category)
        for path in self._paths(name):
            path.unlink(missing_ok=True)
        self._sets.pop(name, None)

    def info(self, category: str) -> dict[str, Any]:
        name = self._name(category)
        try:
            return json.loads(self._paths(name)[1].read_text())
        except (OSError, ValueError):
            raise CategoryError(f"no category list {name!r}") from None

    def all(self) -> list[dict[str, Any]]:
        if not self.directory.is_dir():
            return []
        out = []
        for meta in sorted(self.directory.glob("*.json")):
            try:
                out.append(json.loads(meta.read_text()))
            except (OSError, ValueError):
                continue
        return out

    def domain_set(self, category: str) -> DomainSet:
        """The category's DomainSet (empty when there is no such list: a
        policy may name a list loaded later)."""
        name = self._name(category)
        listing = self._paths(name)[0]
        try:
            mtime = listing.stat().st_mtime
        except OSError:
            return DomainSet()
        cached = self._sets.get(name)
        if cached is None or cached[0] != mtime:
            with open(listing) as f:
                cached = (mtime, DomainSet(line.rstrip("\n") for line in f if line.strip()))
            self._sets[name] = cached
        return cached[1]

    # --- the parents' DoH endpoints ------------------------------------------------------
    def doh_extra(self) -> str:
        try:
            return (self.directory / DOH_EXTRA).read_text()
        except OSError:
            return ""

    def set_doh_extra(self, text: str) -> None:
        self._write(self.directory / DOH_EXTRA, text)

    def _write_lines(self, path: Path, names: Iterator[str], category: str) -> int:
        """Every name, one a line, to ``path`` -- or, on a ListError, nothing."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        count = 0
        try:
            with os.fdopen(fd, "w") as f:
                for name in names:
                    f.write(name + "\n")
                    count += 1
            os.replace(tmp, path)
        except ListError as e:
            Path(tmp).unlink(missing_ok=True)
            raise CategoryError(f"list {category!r}: {e}") from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return count

    def _write(self, path: Path, text: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def categories_directory(db: Any) -> Path:
    """$DOTS_CATEGORIES_DIR; else beside an SQLite database's file; else in
    the daemon's state directory."""
    if os.environ.get("DOTS_CATEGORIES_DIR"):
        return Path(os.environ["DOTS_CATEGORIES_DIR"])
    name = getattr(db, "database", "")
    if isinstance(db, peewee.SqliteDatabase) and name and name != ":memory:":
        return Path(name).resolve().parent / "categories"
    return Path(os.environ.get("STATE_DIRECTORY", "/var/lib/dots")) / "categories"
