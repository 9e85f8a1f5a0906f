"""The policy daemon's one rule for "which app is this".

A policy names apps the way a parent does (dots_identity.naming: a path,
a program name, a menu name, a Flatpak id, ...). A program that ran is
that app when, in this order:

* its real path is one of the app's programs (a symlink to it);
* it is the same inode (a hard link);
* its identity matches one of the app's programs (dots_identity.match:
  a copy, or a modified copy: bytes appended, code patched);
* it ran inside a Flatpak sandbox as /app/REL and the app is a Flatpak
  whose deployment holds files/REL (the sandbox's view of the same file);
* the app is a bare name that names no program here, and the program's
  file name is that name (what can still be said without the file).

Used for the rules (rules.py) and per-app time and limits (app_time.py).
The daemon reads files as its own unprivileged user: a copy it cannot
read (in a child's private directory) is recognised by the collector's
enforcer when the app is blocked, but its time counts under its own path.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

from dots_identity.files import HashCache, Identity, IdentityError
from dots_identity.match import ProgramSet
from dots_identity.naming import Roots, UnknownApp, programs_of, resolve  # noqa: F401

log = logging.getLogger("dots.policyd.apps")

#: how long what a name resolves to is kept (apps get installed and removed)
RESOLVE_TTL_S = 60.0


@dataclass
class _Resolved:
    at: float
    programs: list[str]
    realpaths: set[str]
    inodes: set[tuple[int, int]]
    identities: ProgramSet


class Apps:
    def __init__(self, roots: Roots = Roots(), cache: HashCache | None = None) -> None:
        self.roots = roots
        self.cache = cache or HashCache(4096)
        self._names: dict[str, _Resolved] = {}
        self._verdicts: dict[tuple[str, str, tuple[int, int, int]], bool] = {}

    # --- names -> programs ---------------------------------------------------------
    def _resolve(self, name: str) -> _Resolved:
        r = self._names.get(name)
        if r is not None and time.monotonic() - r.at < RESOLVE_TTL_S:
            return r
        programs = programs_of(name, self.roots)
        identities: list[Identity] = []
        inodes: set[tuple[int, int]] = set()
        for p in programs:
            try:
                identity = self.cache.of_path(p)
            except IdentityError:
                continue
            identities.append(identity)
            inodes.add((identity.dev, identity.ino))
        r = _Resolved(time.monotonic(), programs, {os.path.realpath(p) for p in programs},
                      inodes, ProgramSet.of(identities))
        self._names[name] = r
        return r

    def programs(self, names: Iterable[str]) -> list[str]:
        """Absolute paths of the programs the names mean; a name that means
        nothing here is left out with a log line (the parent was told when
        the rule was made; the app may have been removed since)."""
        out: set[str] = set()
        for name in names:
            found = self._resolve(name).programs
            if not found:
                log.warning("app %r names no program on this machine", name)
            out.update(found)
        return sorted(out)

    def require(self, names: Iterable[str]) -> None:
        """UnknownApp (a ValueError with a sentence) for the first name that
        means no program here: for the Family1 methods that add an app to a
        policy, so a rule is never dropped in silence."""
        for name in names:
            if not self._resolve(name).programs:
                resolve(name, self.roots)  # raises with where it looked

    def unresolved(self, names: Iterable[str]) -> list[str]:
        """Names of a stored policy that mean no program here (any more)."""
        return [name for name in names if not self._resolve(name).programs]

    # --- program -> app ----------------------------------------------------------------
    def is_app(self, name: str, path: str) -> bool:
        """Whether the program at ``path`` is the app ``name``."""
        r = self._resolve(name)
        if path == name or os.path.realpath(path) in r.realpaths:
            return True
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is not None:
            if (st.st_dev, st.st_ino) in r.inodes:
                return True
            memo = (name, path, (st.st_ino, st.st_mtime_ns, st.st_ctime_ns))
            if memo not in self._verdicts:
                if len(self._verdicts) > 65536:
                    self._verdicts.clear()
                try:
                    self._verdicts[memo] = r.identities.match(self.cache.of_path(path)) is not None
                except IdentityError:
                    self._verdicts[memo] = False
            if self._verdicts[memo]:
                return True
        if path.startswith("/app/") and any(p.endswith("/files" + path[4:]) for p in r.programs):
            return True
        return not name.startswith("/") and not r.programs and os.path.basename(path) == name

    def app_of(self, names: Iterable[str], path: str) -> str | None:
        """The first of ``names`` that the program at ``path`` is."""
        return next((name for name in names if self.is_app(name, path)), None)

    def canonical(self, names: Iterable[str], path: str) -> str:
        """The path time is counted under: the app's own program for a
        link or copy of a named app (so two of them at once count once),
        else the path itself."""
        name = self.app_of(names, path)
        if name is None:
            return path
        programs = self._resolve(name).programs
        return programs[0] if programs else path
