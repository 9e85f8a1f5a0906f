"""Exec enforcer loader and the userspace half of program identity (see
exec_block.bpf.c).

How a blocked program is stopped, by what the child does:

* runs it, or a hard link, symlink or renamed file: same inode, in the
  kernel's ``blocked`` map: SIGKILL at exec, it never runs its own code;
* runs a copy (new inode, same content and size): the kernel kills a
  first-seen executable with the byte size of one of the uid's blocked
  programs at exec too, then this enforcer hashes it; a real copy joins
  the ``blocked`` map, an innocent file of the same size is marked seen
  and runs from its next start (its first start was lost: rare, and fail
  closed). With ``kill_same_size=False`` copies go through the hash path
  alone: the first-seen notice is hashed here and the process is killed
  with a pidfd a fraction of a millisecond after it started;
* a program appearing at a listed path later (an upgrade, say): hash path,
  matched by path;
* a ``#!`` script: the kernel's bprm->file is the INTERPRETER, so the
  kernel map can block an interpreter (and every script it runs) but never
  one script. A listed script is judged from the "script" notice (the path
  given to execve) and killed from userspace within milliseconds.
  ``sh script.sh`` execs sh with the script as an argument: reading a
  file, not running a program, and not blocked. In allow-list mode a
  script runs when its interpreter is allowed;
* ``ld.so PROGRAM`` (or a copy of ld.so): the loader maps the program
  without an exec of it. Every exec of a known loader gets a "loader"
  notice and the program on its command line is judged (one that cannot
  be identified is killed). This is a userspace kill: a program that
  finishes within a millisecond may complete. Allow-list mode kills the
  loader at exec (it is not on the default list).

Notices lost because the ring buffer was full are made up for by a sweep
of the enforced uids' running processes.
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import signal
import struct
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from dots_common.limits import MAX_UIDS
from dots_common.records import ProcessEvent, Record

from ..monitors.base import cstr
from . import btf
from .base import Enforcer
from .identity import HashCache, Identity, IdentityError, kernel_dev
from .programs import DEFAULT_ALLOWED, LOADERS, expand, loader_program

log = logging.getLogger(__name__)

# struct exec_event (exec_block.bpf.c)
EVENT = struct.Struct("<QQQQIIIIIII16s256s")
K_BLOCKED, K_NOT_ALLOWED, K_NOTICE, K_SUSPECT = 0, 1, 2, 3
N_FIRST_SEEN, N_SCRIPT, N_LOADER = 1, 2, 4
F_BLOCKS, F_ALLOW = 1, 2
ANY_UID = 0xFFFFFFFF
MAX_EXE_ENTRIES = 65536
#: identified executables remembered by kernel (dev, ino); the kernel's
#: "seen" LRU has the same size
MAX_KNOWN = 16384
#: exec notices must not be lost: a bigger ring than other enforcers
RINGBUF_KIB_PER_CPU = 128
CLK_TCK = os.sysconf("SC_CLK_TCK")

#: (macro, struct, member spellings across kernels) read from the running
#: kernel's BTF at load time
BTF_OFFSETS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("OFF_BPRM_FILE", "linux_binprm", ("file",)),
    ("OFF_BPRM_FILENAME", "linux_binprm", ("filename",)),
    ("OFF_BPRM_INTERP", "linux_binprm", ("interp",)),
    ("OFF_FILE_INODE", "file", ("f_inode",)),
    ("OFF_INODE_INO", "inode", ("i_ino",)),
    ("OFF_INODE_SB", "inode", ("i_sb",)),
    ("OFF_INODE_SIZE", "inode", ("i_size",)),
    ("OFF_INODE_CTIME_SEC", "inode", ("i_ctime_sec", "__i_ctime.tv_sec", "i_ctime.tv_sec")),
    ("OFF_INODE_CTIME_NSEC", "inode", ("i_ctime_nsec", "__i_ctime.tv_nsec", "i_ctime.tv_nsec")),
    ("OFF_SB_DEV", "super_block", ("s_dev",)),
    ("OFF_TASK_REAL_PARENT", "task_struct", ("real_parent",)),
    ("OFF_TASK_TGID", "task_struct", ("tgid",)),
)

Key = tuple[int, int]  # kernel (dev, ino)


@dataclass(frozen=True, slots=True)
class Notice:
    """One record of the enforcer's ring buffer."""

    ts_ns: int
    ino: int
    ctime_ns: int
    blocked_ctime_ns: int
    kind: int
    notice: int
    dev: int  # kernel s_dev
    pid: int
    ppid: int
    uid: int
    gid: int
    comm: str
    path: str

    @classmethod
    def decode(cls, data: bytes) -> "Notice":
        (ts, ino, ctime, bctime, kind, notice, dev, pid, ppid, uid, gid, comm,
         path) = EVENT.unpack_from(data)
        return cls(ts, ino, ctime, bctime, kind, notice, dev, pid, ppid, uid, gid,
                   cstr(comm), cstr(path))

    @property
    def key(self) -> Key:
        return self.dev, self.ino


@dataclass
class Rule:
    """A uid's block list or allow list as the caller gave it."""

    paths: list[str]
    identities: list[Identity]
    hashes: set[str] = field(default_factory=set)
    realpaths: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.hashes = {i.sha256 for i in self.identities}
        # every given path, found or not: a program installed (or upgraded)
        # there later is still the listed one
        self.realpaths = {os.path.realpath(p) for p in self.paths}

    def covers(self, identity: Identity) -> bool:
        return identity.sha256 in self.hashes or os.path.realpath(identity.path) in self.realpaths


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


def boottime_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def started_before(pid: int, ts_ns: int) -> bool:
    """The process now at ``pid`` existed at ``ts_ns`` (CLOCK_BOOTTIME):
    with a pidfd held, this proves it is the process a notice was about."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    start_ticks = int(stat[stat.rindex(b")") + 2:].split()[19])
    return start_ticks * 1_000_000_000 // CLK_TCK <= ts_ns


class ExecEnforcer(Enforcer):
    name = "exec_block"
    record_type = ProcessEvent

    def __init__(self, cache: HashCache | None = None,
                 default_allowed: tuple[str, ...] = DEFAULT_ALLOWED,
                 kill_same_size: bool = True, **kw: Any) -> None:
        kw.setdefault("kib_per_cpu", RINGBUF_KIB_PER_CPU)
        super().__init__(**kw)
        self.cache = cache or HashCache()
        self.default_patterns = default_allowed
        self.kill_same_size = kill_same_size
        self.default_allowed: list[str] = []
        self.block_rules: dict[int, Rule] = {}
        self.allow_rules: dict[int, Rule] = {}
        # what this process put in the kernel maps, per uid
        self.kernel_blocked: dict[int, dict[Key, int]] = {}  # -> ctime_ns
        self.kernel_sizes: dict[int, set[int]] = {}
        self.kernel_allowed: dict[int, set[Key]] = {}
        # identified executables: kernel (dev, ino) -> (ctime_ns, sha256)
        self.known: OrderedDict[Key, tuple[int, str]] = OrderedDict()
        self.loader_hashes: set[str] = set()
        self.user_kills = 0
        self.sweeps = 0
        self.hash_kill_latency_ns: deque[int] = deque(maxlen=4096)
        self._lock = threading.RLock()
        self._outbox: queue.SimpleQueue[Record] = queue.SimpleQueue()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._deliver = None

    # --- loading --------------------------------------------------------------
    def cflags(self) -> list[str]:
        return [*super().cflags(), f"-DMAX_ENFORCED_UIDS={MAX_UIDS}",
                f"-DMAX_EXE_ENTRIES={MAX_EXE_ENTRIES}", f"-DMAX_SEEN={MAX_KNOWN}",
                f"-DKILL_SAME_SIZE={int(self.kill_same_size)}", *btf.cflags(BTF_OFFSETS)]

    def load(self) -> None:
        from bcc import BPF

        self.bpf = BPF(text=self.program_text().encode(), cflags=self.cflags())
        table = self.bpf[b"allowed"]
        for path, st in expand(self.default_patterns):
            table[table.Key(st.st_ino, kernel_dev(st.st_dev), ANY_UID)] = ctypes.c_uint64(1)
            self.default_allowed.append(path)
        for path, st in expand(LOADERS):
            try:
                self.loader_hashes.add(self.cache.of_path(path).sha256)
            except IdentityError:
                continue
            self._mark_loader((kernel_dev(st.st_dev), st.st_ino))
        self.bpf.attach_raw_tracepoint(tp=b"sched_process_exec", fn_name=b"dots_exec_block")
        log.info("exec enforcer attached (%d default allowed programs)", len(self.default_allowed))

    def open(self, deliver) -> None:
        """Start the enforcer's thread: it reads the ring buffer, hashes and
        kills off the event loop (a big executable takes a while to hash)."""
        self._deliver = deliver
        self.bpf[b"events"].open_ring_buffer(self._on_event)
        self._thread = threading.Thread(target=self._poll, name="dots-exec-enforcer", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        lost_seen = 0
        while not self._stop.is_set():
            self.bpf.ring_buffer_poll(100)
            lost = self.lost
            if lost > lost_seen:
                lost_seen = lost
                log.warning("exec enforcer: %d notices lost in all; sweeping running processes", lost)
                self._sweep()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        super().close()
        if self._wake_fd >= 0:
            os.close(self._wake_fd)
            self._wake_fd = -1

    # --- records out: the thread posts, the event loop delivers ---------------
    def readers(self):
        return [(self._wake_fd, self.consume)]

    def consume(self) -> None:
        try:
            os.eventfd_read(self._wake_fd)
        except BlockingIOError:
            pass
        while True:
            try:
                record = self._outbox.get_nowait()
            except queue.Empty:
                return
            self.delivered += 1
            if self._deliver is not None:
                self._deliver(record)

    def _post(self, record: Record) -> None:
        self._outbox.put(record)
        if self._wake_fd >= 0:
            os.eventfd_write(self._wake_fd, 1)

    # --- rules (called by the collector) ------------------------------------------
    def set_blocked(self, uid: int, paths: list[str]) -> tuple[list[Identity], list[tuple[str, str]]]:
        """Replace uid's block list. Paths that cannot be identified are
        returned, not fatal. Known copies join the kernel map at once."""
        found, rejected = resolve(self.cache, paths)
        with self._lock:
            if paths:
                self.block_rules[uid] = Rule(list(paths), found)
            else:
                self.block_rules.pop(uid, None)
            self._sync_blocked(uid)
        return found, rejected

    def set_allow_list(self, uid: int, enabled: bool,
                       paths: list[str]) -> tuple[list[Identity], list[tuple[str, str]]]:
        """Switch uid's allow-list mode; only the listed programs, their
        known copies and DEFAULT_ALLOWED may run while it is on."""
        found, rejected = resolve(self.cache, paths) if enabled else ([], [])
        with self._lock:
            if enabled:
                self.allow_rules[uid] = Rule(list(paths), found)
            else:
                self.allow_rules.pop(uid, None)
            self._sync_allowed(uid)
        return found, rejected

    def _sync_blocked(self, uid: int) -> None:
        """Make the kernel maps say what the uid's rule says: new entries go
        in before old ones leave, so nothing blocked is open meanwhile."""
        rule = self.block_rules.get(uid)
        want: dict[Key, int] = {}
        sizes: set[int] = set()
        if rule:
            want = {(i.kdev, i.ino): i.ctime_ns for i in rule.identities}
            sizes = {i.size for i in rule.identities}
            for key, (ctime, sha) in self.known.items():
                if sha in rule.hashes:
                    want.setdefault(key, ctime)
        have = self.kernel_blocked.get(uid, {})
        have_sizes = self.kernel_sizes.get(uid, set())
        table, size_table = self.bpf[b"blocked"], self.bpf[b"blocked_sizes"]
        for key, ctime in want.items():
            if have.get(key) != ctime:
                table[table.Key(key[1], key[0], uid)] = ctypes.c_uint64(ctime)
        for size in sizes - have_sizes:
            size_table[size_table.Key(size, uid, 0)] = ctypes.c_uint32(1)
        self.kernel_blocked[uid], self.kernel_sizes[uid] = want, sizes
        self._sync_flags(uid)
        for key in have.keys() - want.keys():
            self._delete(table, table.Key(key[1], key[0], uid))
        for size in have_sizes - sizes:
            self._delete(size_table, size_table.Key(size, uid, 0))
        if not want:
            self.kernel_blocked.pop(uid, None)
        if not sizes:
            self.kernel_sizes.pop(uid, None)

    def _sync_allowed(self, uid: int) -> None:
        rule = self.allow_rules.get(uid)
        want: set[Key] = set()
        if rule:
            want = {(i.kdev, i.ino) for i in rule.identities}
            want |= {key for key, (_, sha) in self.known.items() if sha in rule.hashes}
        have = self.kernel_allowed.get(uid, set())
        table = self.bpf[b"allowed"]
        for kdev, ino in want - have:  # allowed entries before the mode goes on
            table[table.Key(ino, kdev, uid)] = ctypes.c_uint64(1)
        self.kernel_allowed[uid] = want
        self._sync_flags(uid)
        for kdev, ino in have - want:
            self._delete(table, table.Key(ino, kdev, uid))
        if not want:
            self.kernel_allowed.pop(uid, None)

    def _sync_flags(self, uid: int) -> None:
        flags = (F_BLOCKS if uid in self.block_rules else 0) | \
                (F_ALLOW if uid in self.allow_rules else 0)
        table = self.bpf[b"enforced_uids"]
        if flags:
            table[ctypes.c_uint32(uid)] = ctypes.c_uint32(flags)
        else:
            self._delete(table, ctypes.c_uint32(uid))

    @staticmethod
    def _delete(table: Any, key: Any) -> None:
        try:
            del table[key]
        except KeyError:
            pass

    def _block(self, uid: int, key: Key, ctime: int) -> None:
        entries = self.kernel_blocked.setdefault(uid, {})
        if entries.get(key) != ctime:
            entries[key] = ctime
            table = self.bpf[b"blocked"]
            table[table.Key(key[1], key[0], uid)] = ctypes.c_uint64(ctime)

    def _allow(self, uid: int, key: Key) -> None:
        table = self.bpf[b"allowed"]
        table[table.Key(key[1], key[0], uid)] = ctypes.c_uint64(1)
        self.kernel_allowed.setdefault(uid, set()).add(key)

    def _mark_seen(self, key: Key, ctime: int) -> None:
        table = self.bpf[b"seen"]
        table[table.Key(key[1], key[0], 0)] = ctypes.c_uint64(ctime)

    def _mark_loader(self, key: Key) -> None:
        table = self.bpf[b"loaders"]
        table[table.Key(key[1], key[0], 0)] = ctypes.c_uint8(1)

    # --- the enforcer thread ------------------------------------------------------
    def _on_event(self, _ctx: Any, data: Any, size: int) -> int:
        try:
            self._handle(Notice.decode(ctypes.string_at(data, size)))
        except Exception:  # a bad record must not stop enforcement
            log.exception("exec enforcer: cannot handle an event")
        return 0

    def _handle(self, n: Notice) -> None:
        if n.kind != K_NOTICE:  # killed in the kernel
            self._post(self._record(n, self._absolute(n)))
            if n.kind == K_BLOCKED and n.blocked_ctime_ns != n.ctime_ns:
                self._recheck_blocked(n)
            elif n.kind == K_NOT_ALLOWED:
                self._learn_allowed_copy(n)
            elif n.kind == K_SUSPECT:
                self._suspect(n)
            return
        if n.notice & N_FIRST_SEEN:
            self._first_seen(n)
        if n.notice & N_SCRIPT:
            self._script(n)
        if n.notice & N_LOADER:
            self._loader(n)

    def _record(self, n: Notice, path: str) -> ProcessEvent:
        return ProcessEvent(type="exec_blocked", pid=n.pid, ppid=n.ppid, uid=n.uid, gid=n.gid,
                            comm=n.comm, path=path, exit_code=-signal.SIGKILL, ts_ns=n.ts_ns)

    @staticmethod
    def _absolute(n: Notice) -> str:
        if n.path.startswith("/"):
            return n.path
        try:
            return os.readlink(f"/proc/{n.pid}/exe")
        except OSError:
            return n.path

    def _identify_exec(self, n: Notice) -> Identity | None:
        """The file a notice is about, checked by inode: the process's exe
        while it lives, else the path it was started by (a relative one
        from the process's or its parent's directory)."""
        candidates = [f"/proc/{n.pid}/exe"]
        if n.path.startswith("/"):
            if not n.path.startswith(("/dev/fd/", "/proc/")):
                candidates.append(n.path)
        else:
            for pid in (n.pid, n.ppid):
                try:
                    candidates.append(os.path.join(os.readlink(f"/proc/{pid}/cwd"), n.path))
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

    def _learn(self, n: Notice, identity: Identity) -> list[int]:
        """Remember what the file is; block it (as a copy) for every uid
        whose list covers it; returns those uids."""
        key = n.key
        with self._lock:
            self.known[key] = (n.ctime_ns, identity.sha256)
            self.known.move_to_end(key)
            while len(self.known) > MAX_KNOWN:
                self.known.popitem(last=False)
            blocked_for = [uid for uid, rule in self.block_rules.items() if rule.covers(identity)]
            for uid in blocked_for:
                self._block(uid, key, n.ctime_ns)
            for uid, rule in self.allow_rules.items():
                if identity.sha256 in rule.hashes and key not in self.kernel_allowed.get(uid, ()):
                    self._allow(uid, key)
            if identity.sha256 in self.loader_hashes:
                self._mark_loader(key)
        return blocked_for

    def _first_seen(self, n: Notice) -> None:
        identity = self._identify_exec(n)
        if identity is None:  # gone before it could be read: ask again next exec
            self._delete(self.bpf[b"seen"], self.bpf[b"seen"].Key(n.ino, n.dev, 0))
            return
        if n.uid in self._learn(n, identity):
            self._kill(n, identity.path)
        elif identity.sha256 in self.loader_hashes and not n.notice & N_LOADER:
            self._loader(n)  # a copy of ld.so, met for the first time

    def _suspect(self, n: Notice) -> None:
        """Killed in the kernel for having a blocked program's size: a copy
        stays blocked by inode; anything else runs from its next start."""
        identity = self._identify_exec(n)
        if identity is None:
            return  # unidentified: it stays unseen, and is killed again next time
        if n.uid not in self._learn(n, identity):
            self._mark_seen(n.key, n.ctime_ns)
            log.info("uid %d: %s was killed for having the size of a blocked program; its "
                     "content differs: it runs from its next start", n.uid, identity.path)

    def _script(self, n: Notice) -> None:
        path = n.path
        if not path.startswith("/"):
            try:
                path = os.path.join(os.readlink(f"/proc/{n.pid}/cwd"), path)
            except OSError:
                return
        try:
            identity = self.cache.of_path(path)
        except IdentityError:
            return
        with self._lock:
            rule = self.block_rules.get(n.uid)
            blocked = rule is not None and rule.covers(identity)
        if blocked:
            self._kill(n, path)

    def _loader(self, n: Notice) -> None:
        """ld.so run by hand: judge the program on its command line; one
        that cannot be identified is killed (fail closed)."""
        with self._lock:
            rule = self.block_rules.get(n.uid)
        if rule is None:
            return
        try:
            with open(f"/proc/{n.pid}/cmdline", "rb") as f:
                argv = [a.decode("utf-8", "surrogateescape") for a in f.read().split(b"\0")[:-1]]
            cwd = os.readlink(f"/proc/{n.pid}/cwd")
        except OSError:
            return  # gone already
        program = loader_program(argv)
        if program is None:
            return  # --help, --version, ...: nothing runs
        path = os.path.join(cwd, program)
        try:
            blocked = rule.covers(self.cache.of_path(path))
        except IdentityError:
            blocked = True
        if blocked:
            self._kill(n, path)

    def _recheck_blocked(self, n: Notice) -> None:
        """A blocked inode changed (ctime differs). Killed anyway (fail
        closed); now see whether its content is still the blocked program."""
        identity = self._identify_exec(n)
        if identity is None:
            return
        if n.uid not in self._learn(n, identity):
            with self._lock:
                if self.kernel_blocked.get(n.uid, {}).pop(n.key, None) is not None:
                    table = self.bpf[b"blocked"]
                    self._delete(table, table.Key(n.ino, n.dev, n.uid))

    def _learn_allowed_copy(self, n: Notice) -> None:
        """An unlisted program was killed in allow-list mode: if it is a copy
        of an allowed one, its inode is allowed from now on."""
        with self._lock:
            rule = self.allow_rules.get(n.uid)
        if rule is not None and rule.hashes:
            identity = self._identify_exec(n)
            if identity is not None:
                self._learn(n, identity)

    def _kill(self, n: Notice, path: str) -> None:
        """SIGKILL the process a notice was about, through a pidfd so a
        recycled pid is never hit."""
        try:
            pidfd = os.pidfd_open(n.pid)
        except OSError:
            return
        try:
            if not started_before(n.pid, n.ts_ns):
                return
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except OSError:
            return
        finally:
            os.close(pidfd)
        self.hash_kill_latency_ns.append(boottime_ns() - n.ts_ns)
        self.user_kills += 1
        self._post(self._record(n, path))

    def _sweep(self) -> None:
        """Notices were lost: check what the uids with block lists run now."""
        from .kill import kill_pid, owned_by, processes_of

        self.sweeps += 1
        with self._lock:
            rules = dict(self.block_rules)
        for uid, rule in rules.items():
            for pid in processes_of(uid):
                try:
                    identity = self.cache.of_process(pid)
                except IdentityError:
                    continue
                if not rule.covers(identity):
                    continue
                with self._lock:
                    self._block(uid, (identity.kdev, identity.ino), identity.ctime_ns)
                if kill_pid(pid, lambda p: owned_by(p, uid)):
                    self.user_kills += 1
                    self._post(ProcessEvent(type="exec_blocked", pid=pid, ppid=0, uid=uid, gid=0,
                                            comm=os.path.basename(identity.path)[:15],
                                            path=identity.path, exit_code=-signal.SIGKILL,
                                            ts_ns=boottime_ns()))

    # --- what is in force -----------------------------------------------------------
    @property
    def kills(self) -> int:
        """Programs killed: at exec in the kernel, and from userspace."""
        return sum(self.bpf[b"kills"][ctypes.c_int(0)]) + self.user_kills

    def kernel_blocked_entries(self) -> dict[int, list[Key]]:
        """The kernel's block map as it is: uid -> [(kernel dev, ino)]."""
        out: dict[int, list[Key]] = {}
        for key in self.bpf[b"blocked"].keys():
            out.setdefault(key.uid, []).append((key.dev, key.ino))
        return {uid: sorted(v) for uid, v in out.items()}

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "blocked_executables": {u: list(r.paths) for u, r in self.block_rules.items()},
                "allow_lists": {u: list(r.paths) for u, r in self.allow_rules.items()},
                "kernel_blocked": self.kernel_blocked_entries(),
                "default_allowed": list(self.default_allowed),
                "exec_blocked": self.kills,
            }
