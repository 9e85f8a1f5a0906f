"""The exec judge's backstop on what a process maps executable: mmap
(PROT_EXEC) of a file and mprotect(PROT_EXEC) notices, and the rule of
allow-list mode for libraries. A mixin of exec_judge.Judge (it uses the
judge's rules, cache, maps and kill)."""

from __future__ import annotations

import dataclasses
import logging
import os
import stat as stat_mod
import time

from dots_identity.files import Identity, IdentityError

from . import proc
from .kill import kill_pid, processes_of
from .exec_wire import K_MAP_BLOCKED, N_EDITABLE, N_FIRST_SEEN, N_MAP, Notice

log = logging.getLogger(__name__)


def _holds(pid: int, file: tuple[int, int]) -> bool:
    """Process ``pid`` has the file (st_dev, st_ino) open."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            st = os.stat(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == file:
            return True
    return False

#: how long a just-mapped file is looked for in /proc/PID/maps (the notice
#: is sent on entry to mmap, before the mapping exists)
MAP_WAIT_S = 0.05
#: a process's mappings are scanned at most this often after mprotect
#: (PROT_EXEC) notices: a JIT makes code executable all the time. The
#: kernel sends no further notice for the process until its "pending" entry
#: is cleared, which happens right before each scan, so nothing made
#: executable is missed; the bound on this path is this plus a scan.
MIN_RESCAN_S = 0.1


def system_file(st: os.stat_result, path: str) -> bool:
    """Root's, and neither it nor its directory writable by anyone else:
    the child cannot have put it there."""
    if st.st_uid != 0 or st.st_mode & 0o022:
        return False
    try:
        dst = os.stat(os.path.dirname(path) or "/")
    except OSError:
        return False
    return dst.st_uid == 0 and not dst.st_mode & 0o022



class MappingJudge:
    """Judgement of executable mappings (mixed into Judge)."""

    _scanned: dict[int, float]  # pid -> when its mappings were last scanned
    _deferred: dict[int, tuple[int, int]]  # pid -> (uid, notice ts) of a scan put off

    def _identify_fd(self, n: Notice) -> Identity | None:
        """The file ``n.fd`` of ``n.pid`` is while it is open (None: closed,
        or another file now)."""
        link = f"/proc/{n.pid}/fd/{n.fd}"
        try:
            # named before it is read: the loader closes the fd right after
            # its mmap, and a file judged by the fd's name ("/proc/...")
            # would be no system library (a false kill of an allowed program)
            name = os.readlink(link)
            identity = self.cache.of_path(link)
        except (OSError, IdentityError):
            return None
        if (identity.kdev, identity.ino) != n.key:
            return None
        return dataclasses.replace(identity, path=name)

    def opened(self, n: Notice) -> None:
        """An interpreter opened a file with a blocked program's size, not
        judged yet (N_OPENED): a copy of a blocked program read by python,
        a shell, java ... stops it. The fd is often closed already (the
        file was read at once): then the name it was opened by is followed,
        and if that no longer leads to the file either (deleted, a flipped
        symlink), the process stops: what it read cannot be judged.
        With scripts on the uid's list, any file root did not install is
        reported too (N_EDITABLE), and an edited copy of a blocked script
        stops it (content similarity); such a file that is gone is let be."""
        identity = self._identify_fd(n) or self._identify_name(n)
        if identity is None and n.notice & N_EDITABLE:
            # any file of the child's an interpreter opened (a heredoc's
            # temporary file, gone at once): judged when it can be read,
            # never stopped for being gone (README: a copy deleted right
            # after its open is not judged)
            log.debug("uid %d: %s was gone before it could be judged", n.uid, n.path)
            return
        if identity is None:
            self.maps.unsee(n.key)
            self.kill(n, n.path, "interpreter read a file of a blocked program's size "
                                 "that is gone")
            self._kill_readers(n, None)
            return
        if self.judge_first_seen(n, identity, "interpreter opened"):
            self._kill_readers(n, (identity.dev, identity.ino))

    def _kill_readers(self, n: Notice, file: tuple[int, int] | None) -> None:
        """The opener may have handed the file on before it was stopped: a
        shell opens ``< game.py`` and forks the interpreter that reads it.
        Its children, and the uid's processes that hold the file open,
        are stopped too (through a pidfd, checked again while it is held),
        counted and reported like any other kill."""
        def still(pid: int) -> bool:
            return proc.parent(pid) == n.pid or (file is not None and _holds(pid, file))

        for pid in processes_of(n.uid):
            if pid == n.pid or not still(pid):
                continue
            comm, ppid = proc.comm(pid), proc.parent(pid)  # while it is alive
            if not kill_pid(pid, still):
                continue
            self.user_kills += 1
            log.info("uid %d: pid %d killed (it had %s from pid %d)", n.uid, pid, n.path, n.pid)
            self.post(dataclasses.replace(self.record(n, n.path), pid=pid, ppid=ppid or 0,
                                          comm=comm or n.comm))

    def _identify_name(self, n: Notice) -> Identity | None:
        """The file ``n.path`` (relative: to the process's directory) names,
        if it is still the file the notice is about."""
        try:
            path = n.path if n.path.startswith("/") else os.path.join(proc.cwd(n.pid), n.path)
            identity = self.cache.of_path(path)
        except (OSError, IdentityError):
            return None
        if (identity.kdev, identity.ino) != n.key:
            return None
        return dataclasses.replace(identity, path=path)

    def _identify_mapping(self, n: Notice) -> Identity | None:
        """The file an N_MAP notice is about: the fd while it is open, else
        the mapping once it exists."""
        identity = self._identify_fd(n)
        if identity is not None:
            return identity
        deadline = time.monotonic() + MAP_WAIT_S
        while True:
            for m in proc.executable_mappings(n.pid, executable_only=False):
                if (m.kdev, m.ino) == n.key:
                    return self._of_mapping(m)
            if time.monotonic() > deadline or not os.path.exists(f"/proc/{n.pid}"):
                return None
            time.sleep(0.002)

    def _of_mapping(self, m: proc.Mapping) -> Identity | None:
        try:
            identity = self.cache.of_path(m.map_file)
        except IdentityError:
            return None
        return self._named(identity, m.name or m.map_file)

    # --- the backstop on executable mappings ------------------------------------------
    def _mapped(self, n: Notice) -> None:
        identity = self._identify_mapping(n)
        if identity is None:
            if n.notice & N_FIRST_SEEN:
                self.maps.unsee(n.key)
            return
        if n.uid not in self.learn(n.key, n.ctime_ns, identity):
            with self.lock:
                self.maps.unblock(n.uid, n.key)
        verdict = self.judge_mapping(n.uid, identity)
        if verdict is None:
            if n.uid in self.allow_rules:
                self.maps.map_ok(n.uid, n.key, n.ctime_ns)
            return
        self.kill(n, identity.path, verdict)

    def judge_mapping(self, uid: int, identity: Identity) -> str | None:
        """Why ``uid`` may not run the code of ``identity`` (None: it may)."""
        with self.lock:
            block, allow = self.block_rules.get(uid), self.allow_rules.get(uid)
            key = (identity.kdev, identity.ino)
            if block is not None and block.covers(identity):
                return "mapped blocked program"
            if allow is None or key in self.default_keys or \
                    key in self.maps.allowed.get(uid, ()) or self.mappable(allow, identity):
                return None
        return "mapped unlisted code"

    @staticmethod
    def mappable(rule: Rule, identity: Identity) -> bool:
        """Allow-list mode: an allowed program, or a library (or the
        dynamic loader) installed by root where the child cannot write, or
        one next to an allowed program (its own libraries)."""
        if rule.allows(identity):
            return True
        # the system's dynamic loader is mapped into every dynamic program (by
        # the kernel); run by hand it is an exec, refused in this mode
        if identity.elf is None or identity.elf.kind not in ("library", "loader"):
            return False
        real = os.path.realpath(identity.path)
        try:
            st = os.stat(real)
        except OSError:
            return False
        if (st.st_dev, st.st_ino) != (identity.dev, identity.ino):
            return False  # the name is another file's now (or was swapped under it)
        if stat_mod.S_ISREG(st.st_mode) and system_file(st, real):
            return True
        return any(real.startswith(d) for d in rule.dirs)

    def mprotected(self, n: Notice) -> None:
        """mprotect(PROT_EXEC) by ``n.pid``: scan its mappings now, or once
        MIN_RESCAN_S has passed since its last scan (run_deferred)."""
        last = self._scanned.get(n.pid, 0.0)
        if time.monotonic() - last < MIN_RESCAN_S:
            self._deferred[n.pid] = (n.uid, n.ts_ns)
            return
        self._rescan(n.pid, n.uid, n.ts_ns)

    def _rescan(self, pid: int, uid: int, ts_ns: int) -> None:
        self._scanned[pid] = time.monotonic()
        if len(self._scanned) > 4096:
            cutoff = time.monotonic() - MIN_RESCAN_S
            self._scanned = {p: t for p, t in self._scanned.items() if t > cutoff}
        self.maps.clear_pending(pid)  # before the scan: later mprotects notify again
        self.check_mappings(pid, uid, ts_ns)

    @property
    def has_deferred(self) -> bool:
        """Scans are put off: run_deferred is due within MIN_RESCAN_S."""
        return bool(self._deferred)

    def run_deferred(self) -> None:
        """Scans put off by mprotected (called by the enforcer's thread at
        least every MIN_RESCAN_S)."""
        now = time.monotonic()
        for pid, (uid, ts_ns) in list(self._deferred.items()):
            if now - self._scanned.get(pid, 0.0) >= MIN_RESCAN_S:
                del self._deferred[pid]
                self._rescan(pid, uid, ts_ns)

    def check_mappings(self, pid: int, uid: int, ts_ns: int) -> bool:
        """Judge every file ``pid`` has mapped executable; kill it on the
        first one it may not run. True: killed."""
        for m in proc.executable_mappings(pid):
            identity = self._of_mapping(m)
            if identity is None:
                continue
            verdict = self.judge_mapping(uid, identity)
            if verdict is not None:
                fake = Notice(ts_ns, m.ino, identity.ctime_ns, 0, K_MAP_BLOCKED, N_MAP, m.kdev,
                              pid, 0, uid, 0, 0, os.path.basename(identity.path)[:15],
                              identity.path)
                with self.lock:
                    if uid in self.block_rules and verdict == "mapped blocked program":
                        self.maps.block(uid, (m.kdev, m.ino), identity.ctime_ns)
                self.kill(fake, identity.path, verdict)
                return True
        return False

