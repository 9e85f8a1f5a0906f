"""The exec judge's sweep of what a uid already runs: when a rule arrives
(what ran before it, and what it forks), and after lost notices
(everything the enforced uids run). A mixin of exec_judge.Judge (it uses
the judge's rules, cache, maps and kill).

A program can fork itself and let the parent leave, over and over: the
pid the sweep listed is gone before it is judged, the new one was not
listed, and none of them ever execs, so the kernel never judges it
either. So once a rule is in force:

* a fork of a blocked program dies at birth, always; in allow-list mode
  a fork of a program that is not allowed dies at birth while the mode is
  coming on (F_FOLLOW, exec_block.bpf.c): a program that forks itself
  away ends at its next fork;
* the uid's processes are listed again and again for FOLLOW_MIN_S (on
  the enforcer's thread, a listing per turn of its loop) and until a
  listing finds nothing that must stop: what forked between the first
  listing and the rule, and a program that forks itself away more slowly
  than the kernel's window lasts, are found by what they run.

A process root is still starting for the uid (setpriv, su or login
between their setuid and their exec) is never touched by the listings:
its parent is root's, and not PID 1 (which adopts orphans). Its exec is
the kernel's to judge.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field

from dots_identity.files import Identity, IdentityError

from . import proc
from .exec_wire import K_BLOCKED, Key, Notice
from .kill import Running, owned_by, processes_of

log = logging.getLogger(__name__)

#: how long, at least, the uid's processes are listed again after a rule
#: arrived, and the kernel's F_FOLLOW window stays open
FOLLOW_MIN_S = 0.25
#: ... and at most, while processes that must stop are still found
FOLLOW_MAX_S = 5.0


@dataclass
class Follow:
    """A uid whose processes are listed again after a rule arrived."""

    since: float = field(default_factory=time.monotonic)
    signalled: set[int] = field(default_factory=set)
    judged: dict[Key, tuple[str | None, Identity]] = field(default_factory=dict)
    #: the rule's caller lists once, the enforcer's thread the other times
    listing: threading.Lock = field(default_factory=threading.Lock)


class SweepJudge:
    """Sweeps of running processes (mixed into Judge)."""

    def sweep(self, uids: list[int] | None = None, before: Running | None = None) -> int:
        """Check what the uids with rules run now (after lost notices), or
        what ``before`` found its uid running before a rule went into force
        (when a rule arrives; ``follow`` was called before the rule, and the
        listings go on in ``run_follows``); returns how many processes were
        killed."""
        self.sweeps += 1
        if before is not None:
            return self._sweep_rule(before)
        with self.lock:
            uids = [u for u in (uids or [*self.block_rules, *self.allow_rules])
                    if u in self.block_rules or u in self.allow_rules]
        killed = 0
        now = proc.boottime_ns()
        for uid in dict.fromkeys(uids):
            for pid in processes_of(uid):
                if pid != os.getpid():
                    killed += self._sweep_one(pid, uid, now)
        return killed

    def verdict(self, uid: int, identity: Identity) -> str | None:
        """Why a process of ``uid`` running ``identity`` must stop (None:
        it may run on). A blocked copy goes into the kernel at once, and so
        does an allowed one, so that their forks are judged right."""
        with self.lock:
            block, allow = self.block_rules.get(uid), self.allow_rules.get(uid)
            key = (identity.kdev, identity.ino)
            if block is not None and block.covers(identity):
                self.maps.block(uid, key, identity.ctime_ns)
                return "running blocked program"
            if allow is not None and key not in self.default_keys and \
                    key not in self.maps.allowed.get(uid, ()):
                if not allow.allows(identity):
                    return "running unlisted program"
                self.maps.allow(uid, key)
        return None

    def _sweep_one(self, pid: int, uid: int, now: int) -> int:
        try:
            identity = self.cache.of_process(pid)
        except IdentityError:
            return 0  # kernel threads, exited
        why = self.verdict(uid, identity)
        if why is not None:
            self._kill_running(pid, uid, now, identity, why)
            return 1
        return int(self.check_mappings(pid, uid, now))

    def _kill_running(self, pid: int, uid: int, now: int, identity: Identity, why: str) -> None:
        with self.lock:  # its forks' kills (K_FORK_BLOCKED) are reported by this name
            self.remember((identity.kdev, identity.ino), identity.ctime_ns, identity)
        fake = Notice(now, identity.ino, identity.ctime_ns, 0, K_BLOCKED, 0, identity.kdev,
                      pid, 0, uid, 0, 0, os.path.basename(identity.path)[:15], identity.path)
        self.kill(fake, identity.path, why)

    # --- when a rule arrives ------------------------------------------------------
    def follow(self, uid: int) -> None:
        """Before a rule goes into force: its flags will carry F_FOLLOW."""
        with self.lock:
            self.following[uid] = Follow()

    def _sweep_rule(self, ran: Running) -> int:
        uid, me = ran.uid, os.getpid()
        with self.lock:
            follow = self.following.get(uid)
            if uid not in self.block_rules and uid not in self.allow_rules:
                self._stop_following(uid)
                return 0
        signalled = {pid for pid in ran.pids if pid != me and self._sweep_one(pid, uid, ran.ts_ns)}
        if follow is None:
            return len(signalled)
        follow.signalled |= signalled
        self._list_again(uid, follow)
        return len(signalled)

    def run_follows(self) -> None:
        """One listing for each uid being followed (the enforcer's thread,
        each turn of its loop); the end of the follow once it is done."""
        with self.lock:
            following = list(self.following.items())
        for uid, follow in following:
            left = self._list_again(uid, follow)
            took = time.monotonic() - follow.since
            if (not left and took >= FOLLOW_MIN_S) or took >= FOLLOW_MAX_S:
                if left:
                    log.warning("uid %d: %d processes still run a program that must stop "
                                "%.0f s after its rule", uid, left, took)
                with self.lock:
                    if self.following.get(uid) is follow:
                        self._stop_following(uid)

    def _rules_changed(self, uid: int) -> None:
        """The uid's verdicts so far were the old rules' (callers hold the
        lock)."""
        follow = self.following.get(uid)
        if follow is not None:
            follow.judged.clear()

    def _stop_following(self, uid: int) -> None:
        if self.following.pop(uid, None) is not None:
            self.maps.sync_flags(uid, self.flags(uid))

    def _list_again(self, uid: int, follow: Follow) -> int:
        """Kill what the uid runs and may not run (except processes root is
        still starting for it); returns how many such processes are alive."""
        with follow.listing:
            return self._list(uid, follow)

    def _list(self, uid: int, follow: Follow) -> int:
        me, now, left = os.getpid(), proc.boottime_ns(), 0
        for pid in processes_of(uid):
            key = proc.exe_key(pid)
            if key is None or pid == me:
                continue  # a zombie, or gone
            if pid in follow.signalled:
                left += 1  # not dead yet
                continue
            ppid = proc.parent(pid)
            if ppid is not None and ppid != 1 and owned_by(ppid, 0):
                continue  # in root's hands
            identity = None
            if key not in follow.judged:
                try:
                    identity = self.cache.of_process(pid)
                except IdentityError:
                    continue  # gone meanwhile: its fork is listed next time
                if (identity.kdev, identity.ino) != key:
                    continue  # it exec'd meanwhile: listed again next time
            with self.lock:  # the rules cannot change between verdict and kill
                if self.following.get(uid) is not follow:
                    return 0  # a newer rule's follow (or none) took over
                if key not in follow.judged:
                    if identity is None:
                        continue  # the verdict was dropped by a rule change
                    follow.judged[key] = (self.verdict(uid, identity), identity)
                why, identity = follow.judged[key]
                if why is not None:
                    left += 1
                    follow.signalled.add(pid)
                    self._kill_running(pid, uid, now, identity, why)
        return left
