"""Exec enforcer: loads exec_block.bpf.c, keeps its maps in step with the
rules, and runs the user-space judge (exec_judge.py) on a thread of its own.

How a blocked program is stopped, by what the child does:

* runs it, or a hard link, symlink or renamed file: same inode, in the
  kernel's ``blocked`` map: SIGKILL at exec, it never runs its own code;
* runs a copy (new inode, same content and size): the kernel kills a
  first-seen executable with the byte size of one of the uid's blocked
  programs at exec too, then the judge identifies it; a real copy joins
  the ``blocked`` map, an innocent file of the same size is marked seen
  and runs from its next start (its first start was lost: rare, and fail
  closed). With ``kill_same_size=False`` copies go through the judge alone;
* runs a modified copy (bytes appended, stripped, code patched): a
  first-seen notice; the judge matches it by code hash, build-id or TLSH
  (dots_identity.match) and kills it from user space;
* runs a ``#!`` script, or a script or program through an interpreter or a
  loader (``python3 game.py``, ``ld.so ./game``, copies of either, a loader
  recognised by what it is): the script or argument file is judged;
* maps a blocked file executable (LD_PRELOAD, dlopen, a loader's target, a
  memfd): the mmap tracepoint kills a known blocked inode at the syscall,
  a file never seen is judged from /proc/PID/map_files; in allow-list
  mode executable mappings outside the allowed programs and system
  libraries stop the process;
* had it running before the rule arrived: the uid's processes are swept,
  and a fork of a program that must stop dies at birth (exec_sweep.py).

Notices lost because the ring buffer was full are made up for by a sweep
of the enforced uids' running processes.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import platform
import queue
import select
import threading
import time
from pathlib import Path
from typing import Any

from dots_common.limits import MAX_UIDS
from dots_common.records import ProcessEvent, Record

from .. import btf
from .base import Enforcer
from .exec_backstop import MIN_RESCAN_S
from .exec_judge import Judge, Rule, resolve
from .exec_maps import KernelMaps
from .exec_wire import (BTF_OFFSETS, MAX_EXE_ENTRIES, MAX_SEEN, P_INTERPRETER, P_LOADER,
                        SYSCALLS, Key, Notice)
from ..monitors.probe_gate import ProbeGate
from ..pinning import tracepoint_function
from ..ringbuf import RingReader
from .identity import HashCache, Identity, IdentityError, kernel_dev
from .kill import running
from .programs import DEFAULT_ALLOWED, INTERPRETERS, LOADERS, expand
from dots_identity.files import MAX_CONTENT_TLSH_BYTES
from dots_identity.match import ProgramSet

log = logging.getLogger(__name__)

#: the interpreter-open probes (exec_block.bpf.c), attached only while a
#: uid has a block list
OPEN_PROBES = ("syscalls:sys_exit_open", "syscalls:sys_exit_openat", "syscalls:sys_exit_openat2")
#: exec notices must not be lost: a bigger ring than other enforcers
RINGBUF_KIB_PER_CPU = 128
#: notices judged between two follow-up listings while a backlog lasts
FOLLOW_EVERY = 16
#: seconds the judging thread sleeps with nothing to do (a notice wakes it)
IDLE_WAIT_S = 5.0
#: notices copied out of the ring and not yet judged, at most (~330 bytes
#: each: ~5 MiB)
MAX_BACKLOG = 16384

Resolved = tuple[list[Identity], list[tuple[str, str]]]


def syscall_cflags() -> list[str]:
    """The open syscalls' numbers and pt_regs offsets of this machine."""
    machine = platform.machine()
    if machine not in SYSCALLS:
        raise RuntimeError(f"the exec enforcer knows the open syscalls of "
                           f"{', '.join(SYSCALLS)}, not of {machine}")
    numbers, offsets = SYSCALLS[machine]
    return [*(f"-D{k}={v}" for k, v in numbers.items()), *btf.cflags(offsets)]


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
        self._outbox: queue.SimpleQueue[Record] = queue.SimpleQueue()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        #: wakes the ring reader, which otherwise sleeps until a notice
        self._stop_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._stop = threading.Event()
        #: set when the judging thread has work: notices, or a uid to follow
        self._pending = threading.Event()
        self._threads: list[threading.Thread] = []
        self._deliver = None
        self.judge = Judge(self.cache, self._post)
        self.open_gate = ProbeGate({}, raw=False)
        #: loaders and interpreters to identify once needed (after_load)
        self._marked: dict[int, list[str]] | None = None
        self._identifying = threading.Lock()

    # --- loading --------------------------------------------------------------
    def cflags(self) -> list[str]:
        return [*super().cflags(), f"-DMAX_ENFORCED_UIDS={MAX_UIDS}",
                f"-DMAX_EXE_ENTRIES={MAX_EXE_ENTRIES}", f"-DMAX_SEEN={MAX_SEEN}",
                f"-DKILL_SAME_SIZE={int(self.kill_same_size)}",
                # only a file this small gets a content TLSH to compare
                f"-DMAX_EDITABLE_BYTES={MAX_CONTENT_TLSH_BYTES}", *btf.cflags(BTF_OFFSETS),
                *syscall_cflags()]

    def spec(self) -> dict[str, Any]:
        return {**super().spec(), "kill_same_size": self.kill_same_size}

    def attach(self) -> None:
        """The exec raw tracepoint (bcc attaches the mmap, mprotect and fork
        tracepoints, TRACEPOINT_PROBEs, itself when it compiles). The open
        probes are taken back: attached only while a uid has a block list."""
        self.bpf.attach_raw_tracepoint(tp=b"sched_process_exec", fn_name=b"dots_exec_block")
        programs = {}
        for tracepoint in OPEN_PROBES:
            fn = self.bpf.funcs[tracepoint_function(tracepoint)]
            self.bpf.detach_tracepoint(tracepoint.encode())
            programs[tracepoint] = os.dup(fn.fd)  # bcc closes its own
        self.open_gate = ProbeGate(programs, raw=False, idle="no uid has a block list")

    def gated_programs(self) -> dict[str, int]:
        return self.open_gate.programs

    def open_pinned(self, directory: Path, layouts: dict) -> None:
        super().open_pinned(directory, layouts)
        # the links are pinned too: an interpreter's open of a blocked
        # script is stopped while no collector runs
        self.open_gate = ProbeGate.pinned(directory, OPEN_PROBES, raw=False,
                                          idle="no uid has a block list", pin_links=directory)

    def _gate_open_probes(self) -> None:
        """The open probes cost every open on the machine ~0.3 µs: they are
        attached while some uid has a block list, and only then."""
        if self.judge.block_rules:
            self.open_gate.open()
        else:
            self.open_gate.close()

    def after_load(self) -> None:
        """Seed the maps: programs every uid may run, loaders, interpreters
        (by inode: a stat each). Their identities, which copies are
        matched against, are hashed on a thread of their own, and only
        once a uid has a rule (or a decision asks for them): hashing and
        parsing a dozen interpreters takes the collector ~0.2 s of CPU,
        which a machine whose children have no program rules never needs
        (the kernel's interpreter and loader marks are by inode, set here).
        A decision that needs them waits for them (Judge.programs_ready)."""
        maps = self.judge.maps = KernelMaps(self.bpf)
        self.default_allowed = []
        for path, st in expand(self.default_patterns):
            key = (kernel_dev(st.st_dev), st.st_ino)
            maps.allow_for_all(key)
            self.judge.default_keys.add(key)
            self.default_allowed.append(path)
        marked: dict[int, list[str]] = {P_LOADER: [], P_INTERPRETER: []}
        for what, patterns in ((P_LOADER, LOADERS), (P_INTERPRETER, INTERPRETERS)):
            for path, st in expand(patterns):
                maps.mark_program((kernel_dev(st.st_dev), st.st_ino), what)
                marked[what].append(path)
        self._marked = marked
        self._identifying = threading.Lock()  # a new load identifies again
        self.judge.programs_ready.clear()
        self.judge.need_programs = self.identify_programs
        log.info("exec enforcer maps seeded (%d default allowed programs, %d loaders, "
                 "%d interpreters)", len(self.default_allowed), len(marked[P_LOADER]),
                 len(marked[P_INTERPRETER]))

    def identify_programs(self) -> None:
        """Start hashing the loaders and interpreters (once; returns at
        once): a rule arrived, or a decision needs them."""
        if self._marked is None or not self._identifying.acquire(blocking=False):
            return  # not loaded yet, or started already
        threading.Thread(target=self._identify_programs, args=(self._marked,), daemon=True,
                         name="dots-exec-programs").start()

    def _identify_programs(self, marked: dict[int, list[str]]) -> None:
        try:
            sets = {}
            for what, paths in marked.items():
                found = []
                for path in paths:
                    try:
                        found.append(self.cache.of_path(path))
                    except IdentityError:
                        continue
                sets[what] = ProgramSet.of(found)
            self.judge.loaders, self.judge.interpreters = sets[P_LOADER], sets[P_INTERPRETER]
            log.info("exec enforcer: %d loaders and %d interpreters identified",
                     len(sets[P_LOADER].programs), len(sets[P_INTERPRETER].programs))
        finally:
            self.judge.programs_ready.set()

    def reconcile(self) -> int:
        """After the rules were restored into maps a crashed collector left
        pinned: remove every kernel entry the rules no longer make."""
        with self.judge.lock:
            stale = self.judge.maps.prune_to_view(self.judge.default_keys)
            self._gate_open_probes()  # found open (pinned): closed if no rule came back
            return stale

    def open(self, deliver) -> None:
        """Start the enforcer's threads: one copies the notices out of the
        ring buffer as they come, the other identifies and kills, off the
        event loop (a big executable takes a while)."""
        self._deliver = deliver
        self._reader = RingReader(self.ring_fd, self.ringbuf_bytes)
        self._backlog: collections.deque[bytes] = collections.deque()
        self._threads = [threading.Thread(target=target, name=name, daemon=True)
                         for target, name in ((self._read, "dots-exec-ring"),
                                              (self._poll, "dots-exec-enforcer"))]
        self.judge.wake = self._pending.set
        self.judge.pipe_watch.start()
        for thread in self._threads:
            thread.start()

    def _read(self) -> None:
        """Copy what the kernel committed out of the ring, at once. One
        judgement can take tens of ms (a mapping looked for in
        /proc/PID/maps, a file hashed): a child whose interpreter read
        2,000 files of its own in 34 ms filled the ring during the first
        ones, and 1,238 notices were lost (the game's among them, had it
        come last). The backlog holds at most MAX_BACKLOG notices; past it
        they wait in the ring (and are lost, counted, if it fills).
        Every notice is committed with a wake-up, so an idle reader sleeps
        in poll() until one comes or close() writes ``_stop_fd``."""
        ready = select.poll()
        ready.register(self.ring_fd, select.POLLIN)
        ready.register(self._stop_fd, select.POLLIN)
        while not self._stop.is_set():
            ready.poll()
            if len(self._backlog) >= MAX_BACKLOG:
                time.sleep(0.001)
                continue
            buf, spans = self._reader.read()
            if spans:
                notices = [buf[off:off + size] for off, size in spans]
                for data in notices:  # before the judge can come to them
                    self._watch_pipes(data)
                self._backlog.extend(notices)
                self._pending.set()

    def _watch_pipes(self, data: bytes) -> None:
        try:
            self.judge.watch_pipes(data)
        except Exception:  # a bad record must not stop the reader
            log.exception("exec enforcer: cannot watch an interpreter's pipes")

    def _poll(self) -> None:
        """Judge the notices the reader copied out; between them, the
        follow-up listings and a sweep when notices were lost. Idle (no
        process followed, no scan put off) it sleeps until the reader has
        notices: a loss fills the ring, so it comes with notices."""
        lost_seen = 0
        backlog = self._backlog
        while not self._stop.is_set():
            # a listing per turn while following
            self._pending.wait(0.01 if self.judge.following
                               else MIN_RESCAN_S if self.judge.has_deferred else IDLE_WAIT_S)
            self._pending.clear()
            judged = 0
            while backlog and not self._stop.is_set():
                self._on_event(backlog.popleft())
                judged += 1
                if judged % FOLLOW_EVERY == 0:
                    self.judge.run_follows()
            self.judge.run_later()
            self.judge.run_deferred()
            self.judge.run_follows()
            lost = self.lost
            if lost > lost_seen:
                lost_seen = lost
                log.warning("exec enforcer: %d notices lost in all; sweeping running processes", lost)
                self.judge.sweep()

    def _on_event(self, data: bytes) -> None:
        try:
            self.judge.handle(Notice.decode(data))
        except Exception:  # a bad record must not stop enforcement
            log.exception("exec enforcer: cannot handle an event")

    def close(self) -> None:
        self.open_gate.release()
        self._stop.set()
        self._pending.set()
        if self._stop_fd >= 0:      # not closed before
            os.eventfd_write(self._stop_fd, 1)
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []
        self.judge.pipe_watch.close()
        super().close()
        if self._wake_fd >= 0:
            os.close(self._wake_fd)
            self._wake_fd = -1
        if self._stop_fd >= 0:
            os.close(self._stop_fd)
            self._stop_fd = -1

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
    def set_blocked(self, uid: int, paths: list[str]) -> Resolved:
        """Replace uid's block list. Paths that cannot be identified are
        returned, not fatal. Known copies join the kernel map at once, and
        what the uid already runs is checked (and killed) at once."""
        if paths:
            self.identify_programs()
        found, rejected = resolve(self.cache, paths)
        before = self.judge.block_rules.get(uid)
        # something new is blocked: what ran before the rule is checked
        sweep = found and (before is None or {i.sha256 for i in found} - before.programs.by_sha.keys())
        ran = running(uid) if sweep else None
        if ran is not None:
            self.judge.follow(uid)
        self.judge.set_block_rule(uid, Rule(list(paths), found) if paths else None)
        self._gate_open_probes()
        if ran is not None:
            self.judge.sweep(before=ran)
            self._pending.set()     # the judging thread follows the uid from now
        return found, rejected

    def set_allow_list(self, uid: int, enabled: bool, paths: list[str]) -> Resolved:
        """Switch uid's allow-list mode; only the listed programs, their
        copies, DEFAULT_ALLOWED and system libraries may run while it is
        on (what runs already is checked at once)."""
        if enabled:
            self.identify_programs()
        found, rejected = resolve(self.cache, paths) if enabled else ([], [])
        before = self.judge.allow_rules.get(uid)
        # the mode went on, or the list shrank: what ran before is checked
        sweep = enabled and (before is None or before.programs.by_sha.keys() - {i.sha256 for i in found})
        ran = running(uid) if sweep else None
        if ran is not None:
            self.judge.follow(uid)  # the mode goes on with F_FOLLOW
        self.judge.set_allow_rule(uid, Rule(list(paths), found) if enabled else None)
        if ran is not None:
            self.judge.sweep(before=ran)
            self._pending.set()
        return found, rejected

    # --- what is in force -----------------------------------------------------------
    @property
    def kills(self) -> int:
        """Programs killed: at exec or mmap in the kernel, and from user space."""
        return sum(self.bpf[b"kills"][ctypes.c_int(0)]) + self.judge.user_kills

    @property
    def kernel_allowed(self) -> dict[int, set[Key]]:
        return self.judge.maps.allowed

    @property
    def hash_kill_latency_ns(self) -> list[int]:
        return self.judge.kill_latency_ns.get("copy", [])

    def kernel_blocked_entries(self) -> dict[int, list[Key]]:
        return self.judge.maps.kernel_blocked_entries()

    def state(self) -> dict[str, Any]:
        with self.judge.lock:
            return {
                "blocked_executables": {u: list(r.paths) for u, r in self.judge.block_rules.items()},
                "allow_lists": {u: list(r.paths) for u, r in self.judge.allow_rules.items()},
                "kernel_blocked": self.kernel_blocked_entries(),
                "default_allowed": list(self.default_allowed),
                "exec_blocked": self.kills,
            }
