"""The user-space judge of the exec enforcer: what the kernel could not
decide by inode alone, decided by what the program is (dots_identity).

Per notice (exec_wire.Notice), by what the child did:

* ran a file never seen before (a copy, a modified copy, a memfd): it is
  identified (sha256, code hash, build-id, TLSH of the code; see
  dots_identity.match) and, if it is a blocked program, killed and its
  inode added to the kernel's block map (later starts die at exec);
* ran a ``#!`` script: the script (the path given to execve) is judged;
* ran an interpreter or a loader (``python3 game.py``, ``java -jar g.jar``,
  ``ld.so ./game``, any copy of them): every file on its command line is
  judged as if it had been exec'd;
* mapped a file executable (shared object, LD_PRELOAD, dlopen, a loader's
  target, a memfd) or made a mapping executable: the mapped file is judged
  the same way; in allow-list mode it must also be an allowed program or a
  library the child cannot have written (see ``mappable``);
* a rule arrived: the uid's running processes are checked, and the forks
  of a program that must stop are followed (exec_sweep.py);
* the kernel killed a fork of such a program at birth: it is reported.

A kill here is a pidfd SIGKILL a few milliseconds after the exec or mmap
(measured in tests/test_identity_attacks.py and bench).
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from dots_common.records import ProcessEvent, Record
from dots_identity.files import HashCache, Identity, IdentityError
from dots_identity.match import ProgramSet

from . import pipes, proc
from .exec_arguments import ArgumentJudge
from .exec_backstop import MappingJudge
from .exec_sweep import Follow, SweepJudge
from .exec_maps import KernelMaps
from .exec_wire import (F_ALLOW, F_BLOCKS, F_FOLLOW, F_SCRIPTS, K_FORK_BLOCKED, K_NOT_ALLOWED, K_NOTICE,
                        K_OPEN_BLOCKED, N_OPENED,
                        K_SUSPECT, MAX_KNOWN, N_FIRST_SEEN, N_INTERP, N_LOADER, N_MAP,
                        N_MPROTECT, N_SCRIPT, P_INTERPRETER, P_LOADER, Key, Notice)

log = logging.getLogger(__name__)

#: how long a decision waits for the loaders and interpreters to be identified
PROGRAMS_WAIT_S = 60.0


@dataclass
class Rule:
    """A uid's block list or allow list as the caller gave it."""

    paths: list[str]
    identities: list[Identity]
    realpaths: set[str] = field(default_factory=set)
    programs: ProgramSet = field(default_factory=lambda: ProgramSet([]))
    dirs: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        # every given path, found or not: a program installed (or upgraded)
        # there later is still the listed one
        self.realpaths = {os.path.realpath(p) for p in self.paths}
        self.programs = ProgramSet.of(self.identities)
        self.dirs = {os.path.dirname(p) + "/" for p in self.realpaths}

    def covers(self, identity: Identity) -> str | None:
        """Why ``identity`` is one of the rule's programs (None: it is not)."""
        if os.path.realpath(identity.path) in self.realpaths:
            return "path"
        match = self.programs.match(identity)
        return match.how if match else None

    def allows(self, identity: Identity) -> bool:
        """Allow lists take exact copies only (same file or same code)."""
        match = self.programs.match(identity)
        return (match is not None and match.how in ("file", "code")) or \
            os.path.realpath(identity.path) in self.realpaths


def resolve(cache: HashCache, paths: list[str]) -> tuple[list[Identity], list[tuple[str, str]]]:
    """Identify each path: (identities, [(path, why not)])."""
    found: list[Identity] = []
    rejected: list[tuple[str, str]] = []
    for path in paths:
        try:
            found.append(cache.of_path(path))
        except IdentityError as e:
            rejected.append((path, str(e)))
    return found, rejected


class Judge(ArgumentJudge, MappingJudge, SweepJudge):
    """Rules, what is known about executables, and the decisions."""

    def __init__(self, cache: HashCache, post: Callable[[Record], None]) -> None:
        self.cache = cache
        self.post = post
        self.maps: KernelMaps | None = None
        self.lock = threading.RLock()
        self.block_rules: dict[int, Rule] = {}
        self.allow_rules: dict[int, Rule] = {}
        self.known: OrderedDict[Key, tuple[int, Identity]] = OrderedDict()
        self._loaders = ProgramSet([])
        self._interpreters = ProgramSet([])
        #: set once loaders and interpreters are identified (hashing them
        #: takes a second or two: it happens off the collector's start path)
        self.programs_ready = threading.Event()
        self.programs_ready.set()
        #: starts identifying them if nothing did yet (the enforcer's)
        self.need_programs: Callable[[], None] = lambda: None
        self.default_keys: set[Key] = set()
        self.user_kills = 0
        self.sweeps = 0
        self.kill_latency_ns: dict[str, list[int]] = {}
        self._scanned: dict[int, float] = {}
        self._deferred: dict[int, tuple[int, int]] = {}
        self.following: dict[int, Follow] = {}
        self.pipe_watch = pipes.PipeWatch()
        #: work handed to the judging thread by others (the pipe watch)
        self._later: collections.deque[Callable[[], None]] = collections.deque()
        #: wakes the judging thread (the enforcer's)
        self.wake: Callable[[], None] = lambda: None

    @property
    def loaders(self) -> ProgramSet:
        self.need_programs()
        self.programs_ready.wait(PROGRAMS_WAIT_S)
        return self._loaders

    @loaders.setter
    def loaders(self, programs: ProgramSet) -> None:
        self._loaders = programs

    @property
    def interpreters(self) -> ProgramSet:
        self.need_programs()
        self.programs_ready.wait(PROGRAMS_WAIT_S)
        return self._interpreters

    @interpreters.setter
    def interpreters(self, programs: ProgramSet) -> None:
        self._interpreters = programs

    # --- rules -------------------------------------------------------------------
    def flags(self, uid: int) -> int:
        allow = F_ALLOW | (F_FOLLOW if uid in self.following else 0)
        block = self.block_rules.get(uid)
        blocks = 0 if block is None else F_BLOCKS | (F_SCRIPTS if block.programs.fuzzy_content
                                                        else 0)
        return blocks | (allow if uid in self.allow_rules else 0)

    def set_block_rule(self, uid: int, rule: Rule | None) -> None:
        with self.lock:
            self._rules_changed(uid)
            if rule is None:
                self.block_rules.pop(uid, None)
            else:
                self.block_rules[uid] = rule
            want: dict[Key, int] = {}
            sizes: set[int] = set()
            if rule is not None:
                want = {(i.kdev, i.ino): i.ctime_ns for i in rule.identities}
                sizes = {i.size for i in rule.identities}
                for key, (ctime, identity) in self.known.items():
                    if rule.covers(identity):
                        want.setdefault(key, ctime)
            self.maps.sync_blocked(uid, want, sizes, self.flags(uid))

    def set_allow_rule(self, uid: int, rule: Rule | None) -> None:
        with self.lock:
            self._rules_changed(uid)
            if rule is None:
                self.allow_rules.pop(uid, None)
            else:
                self.allow_rules[uid] = rule
            want: set[Key] = set()
            if rule is not None:
                want = {(i.kdev, i.ino) for i in rule.identities}
                want |= {key for key, (_, i) in self.known.items() if rule.allows(i)}
            self.maps.sync_allowed(uid, want, self.flags(uid))

    # --- notices ------------------------------------------------------------------
    def later(self, work: Callable[[], None]) -> None:
        """Have ``work`` done on the judging thread (from any thread)."""
        self._later.append(work)
        self.wake()

    def run_later(self) -> None:
        while self._later:
            try:
                self._later.popleft()()
            except Exception:  # one bad judgement must not stop the others
                log.exception("exec enforcer: cannot finish a judgement")

    def handle(self, n: Notice) -> None:
        if n.kind != K_NOTICE:  # killed in the kernel
            self.post(self.record(n, self.name_of(n) if n.kind in (K_FORK_BLOCKED, K_OPEN_BLOCKED)
                                  else self.absolute(n)))
            if n.kind == K_NOT_ALLOWED:
                self._learn_allowed_copy(n)
            elif n.kind == K_SUSPECT:
                self._suspect(n)
            return
        if n.notice & N_OPENED:
            self.opened(n)
            return
        if n.notice & N_MPROTECT:
            self.mprotected(n)
            return
        if n.notice & N_MAP:
            self._mapped(n)
            return
        if n.notice & N_FIRST_SEEN:
            self._first_seen(n)
        if n.notice & N_SCRIPT:
            self._script(n)
        if n.notice & (N_LOADER | N_INTERP):
            self._argument_files(n)

    def record(self, n: Notice, path: str) -> ProcessEvent:
        return ProcessEvent(type="exec_blocked", pid=n.pid, ppid=n.ppid, uid=n.uid, gid=n.gid,
                            comm=n.comm, path=path, exit_code=-signal.SIGKILL, ts_ns=n.ts_ns)

    @staticmethod
    def absolute(n: Notice) -> str:
        if n.path.startswith("/"):
            return n.path
        try:
            return os.readlink(f"/proc/{n.pid}/exe")
        except OSError:
            return n.path

    def name_of(self, n: Notice) -> str:
        """A fork killed at birth names no file: the path its executable
        was known by."""
        with self.lock:
            for rule in (self.block_rules.get(n.uid), self.allow_rules.get(n.uid)):
                for identity in rule.identities if rule is not None else ():
                    if (identity.kdev, identity.ino, identity.ctime_ns) == (*n.key, n.ctime_ns):
                        return identity.path
            ctime, identity = self.known.get(n.key, (None, None))
            if identity is not None and ctime == n.ctime_ns:  # not a reused inode number
                return identity.path
        return self.absolute(n) or n.comm

    def kill(self, n: Notice, path: str, why: str) -> None:
        if not proc.kill_if_started_before(n.pid, n.ts_ns):
            return
        latency = proc.boottime_ns() - n.ts_ns
        self.kill_latency_ns.setdefault(why, []).append(latency)
        del self.kill_latency_ns[why][:-4096]
        self.user_kills += 1
        log.info("uid %d: pid %d killed (%s: %s) %.1f ms after it", n.uid, n.pid, why, path,
                 latency / 1e6)
        self.post(self.record(n, path))

    # --- identification ---------------------------------------------------------------
    def _identify_exec(self, n: Notice) -> Identity | None:
        """The file an exec notice is about, checked by inode: the
        process's exe while it lives, else the path it was started by."""
        candidates = [f"/proc/{n.pid}/exe"]
        if n.path.startswith("/"):
            if not n.path.startswith(("/dev/fd/", "/proc/")):
                candidates.append(n.path)
        else:
            for pid in (n.pid, n.ppid):
                try:
                    candidates.append(os.path.join(proc.cwd(pid), n.path))
                except OSError:
                    continue
        for path in candidates:
            try:
                identity = (self.cache.of_process(n.pid) if path.startswith("/proc/")
                            else self.cache.of_path(path))
            except IdentityError:
                continue
            if identity.ino == n.ino:
                return identity
        return None

    @staticmethod
    def _named(identity: Identity, link: str) -> Identity:
        import dataclasses
        try:
            name = os.readlink(link) if link.startswith("/proc/") else link
        except OSError:
            name = link
        return dataclasses.replace(identity, path=name)

    def remember(self, key: Key, ctime: int, identity: Identity) -> None:
        with self.lock:
            self.known[key] = (ctime, identity)
            self.known.move_to_end(key)
            while len(self.known) > MAX_KNOWN:
                self.known.popitem(last=False)

    def learn(self, key: Key, ctime: int, identity: Identity) -> list[int]:
        """Remember what the file is; block it (as a copy) for every uid
        whose list covers it; returns those uids."""
        with self.lock:
            self.remember(key, ctime, identity)
            blocked_for = [uid for uid, rule in self.block_rules.items() if rule.covers(identity)]
            for uid in blocked_for:
                self.maps.block(uid, key, ctime)
            for uid, rule in self.allow_rules.items():
                if rule.allows(identity) and key not in self.maps.allowed.get(uid, ()):
                    self.maps.allow(uid, key)
            if identity.elf is not None and (identity.elf.is_loader or self.loaders.match(identity)):
                self.maps.mark_program(key, P_LOADER)
            elif (m := self.interpreters.match(identity)) and m.how in ("file", "code"):
                self.maps.mark_program(key, P_INTERPRETER)
        return blocked_for

    def judge_first_seen(self, n: Notice, identity: Identity, why: str) -> bool:
        """Learn a file met for the first time; kill ``n.pid`` if it is one
        of its uid's blocked programs (True). Otherwise its inode is not
        blocked (any more): a reused inode number, or a changed file."""
        if n.uid in self.learn(n.key, n.ctime_ns, identity):
            self.kill(n, identity.path, why)
            return True
        with self.lock:
            self.maps.unblock(n.uid, n.key)
        return False

    # --- exec notices ---------------------------------------------------------------------
    def _first_seen(self, n: Notice) -> None:
        identity = self._identify_exec(n)
        if identity is None:  # gone before it could be read: ask again next exec
            self.maps.unsee(n.key)
            return
        if self.judge_first_seen(n, identity, "copy"):
            return
        if not n.notice & (N_LOADER | N_INTERP) and self._runs_others(identity):
            self._argument_files(n)  # a loader or interpreter (or a copy) met for the first time

    def _suspect(self, n: Notice) -> None:
        """Killed in the kernel for having a blocked program's size: a copy
        stays blocked by inode; anything else runs from its next start."""
        identity = self._identify_exec(n)
        if identity is None:
            return  # unidentified: it stays unseen, and is killed again next time
        if n.uid not in self.learn(n.key, n.ctime_ns, identity):
            self.maps.mark_seen(n.key, n.ctime_ns)
            log.info("uid %d: %s was killed for having the size of a blocked program; its "
                     "content differs: it runs from its next start", n.uid, identity.path)

    def _runs_others(self, identity: Identity) -> bool:
        """A loader or an interpreter: its argument files are programs."""
        if identity.elf is not None and identity.elf.is_loader:
            return True
        m = self.interpreters.match(identity) or self.loaders.match(identity)
        return m is not None and m.how in ("file", "code")

    def _learn_allowed_copy(self, n: Notice) -> None:
        """An unlisted program was killed in allow-list mode: if it is a copy
        of an allowed one, its inode is allowed from now on."""
        with self.lock:
            rule = self.allow_rules.get(n.uid)
        if rule is not None and rule.identities:
            identity = self._identify_exec(n)
            if identity is not None:
                self.learn(n.key, n.ctime_ns, identity)
