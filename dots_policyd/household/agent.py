"""The household agent inside dots-policyd: keeps this machine and the
household database in step.

* Policy: the household's newest version of each member's policy is
  applied to the local child account(s) mapped to that member, through
  the family core (so the enforcers reload as for any change). A parent's
  change made here is pushed as a new household version with an audit row
  naming the parent and this machine. A LISTEN connection wakes the sync
  on every new version; the periodic sync is the safety net.
* Time: the screen-time engine journals every counted span locally
  (:class:`~.journal.Journal`); each sync uploads what the household has
  not acknowledged and fetches the other machines' intervals and grants,
  which :class:`~.budget.HouseholdUsage` unions with the local ones.
* Offline: every failure to reach the database leaves the machine on its
  last known policy and remote time, with its own time still journalled;
  the next successful sync reconciles (idempotent uploads).

The database work runs in ONE worker thread; applying results runs on the
event loop (the family core and the enforcers live there).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import grp
import json
import logging
import pwd
import select
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import peewee

from dots_common.limits import MIN_CHILD_UID, NOBODY_UID
from dots_common.names import PARENTS_GROUP

from ..db import StorageError
from ..errors import AlreadyAnswered, FamilyError, InvalidArgument, NotAuthorized, NotFound
from ..family import ChildAdded, Family, PolicyChanged, RequestAnswered, RequestCreated
from ..schema import AppUsageDaily, Child, PolicyVersion, TimeRequest
from .budget import HouseholdUsage, day_bounds
from .forward import forward_audit, forward_events
from .identity import HouseholdConfig
from .journal import Journal
from .store import HouseholdStore, Offline, PolicyListener, Refused, Stale

log = logging.getLogger("dots.policyd.household")

#: the family core's actor for changes the household made (the system)
HOUSEHOLD_ACTOR = 0
#: acknowledged intervals are kept locally this long (a week's budget needs 7 days)
JOURNAL_KEEP_SECONDS = 8 * 86400


@dataclass
class Snapshot:
    """What one sync learnt about the other machines' time and answers."""

    remote: dict[str, list[tuple[float, float]]]
    granted: dict[tuple[str, dt.date], int]
    answers: list[tuple[int, bool, int]]
    apps: dict[tuple[str, dt.date], dict[str, int]]
    machines: list[dict[str, Any]]


class HouseholdAgent:
    def __init__(self, config: HouseholdConfig, db: peewee.Database, family: Family,
                 tz: dt.tzinfo | None = None) -> None:
        self.config = config
        self.db = db
        self.family = family
        self.tz = tz
        self.journal = Journal(db)
        self.usage = HouseholdUsage(db, self.journal, self.member_of_uid, tz)
        self.usage.load_json(self.journal.get_state("remote"))  # until the first sync
        self.store = HouseholdStore(config.url, config.machine_id)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dots-household")
        self.online = False
        self.last_contact = 0.0
        self.last_error = ""
        self.machines: list[dict[str, Any]] = []
        self.applied: dict[str, tuple[int, str]] = {
            m: tuple(v) for m, v in json.loads(self.journal.get_state("applied") or "{}").items()}
        self.dirty: set[str] = set(json.loads(self.journal.get_state("dirty") or "[]"))
        self._members: dict[int, str] = {}
        self._applying = False
        self._forward_marks: dict[str, int] = {}
        self._answers_sent: set[int] = set()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self._tasks: list[asyncio.Task] = []
        self._listener_thread: threading.Thread | None = None
        self.refresh_members()

    # --- who is who ---------------------------------------------------------------
    def member_of_uid(self, uid: int) -> str | None:
        return self._members.get(uid)

    def refresh_members(self) -> None:
        members = {uid: self.config.member_of(name)
                   for uid, name in Child.select(Child.uid, Child.name).tuples()}
        self._members = {uid: member for uid, member in members.items() if member is not None}

    def _candidates(self, member: str) -> list[pwd.struct_passwd]:
        """Local accounts mapped to ``member`` that could be children: never
        a system account nor a parent (a member of dots-parents), whatever
        name the household gives its members."""
        try:
            group = grp.getgrnam(PARENTS_GROUP)
            parents, parents_gid = set(group.gr_mem), group.gr_gid
        except KeyError:
            parents, parents_gid = set(), -1
        return [pw for pw in pwd.getpwall()
                if pw.pw_uid >= MIN_CHILD_UID and pw.pw_uid != NOBODY_UID
                and pw.pw_name not in parents and pw.pw_gid != parents_gid
                and self.config.member_of(pw.pw_name) == member]

    # --- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping.clear()
        self.family.subscribe(self._on_family_event)
        self._listener_thread = threading.Thread(target=self._listen, name="dots-household-listen",
                                                 daemon=True)
        self._listener_thread.start()
        self._tasks = [asyncio.create_task(self._run())]

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(self.executor, self.store.close)
        self.executor.shutdown(wait=True)

    def wake(self) -> None:
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        # not `while True`: Python 3.11's wait_for can swallow the cancel
        # of stop() when a wake-up lands at the same moment (gh-86296), and
        # stop() would then wait for this loop forever
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                # the policy first: what a NOTIFY woke us for reaches the enforcers at once
                self._apply_policies(await loop.run_in_executor(self.executor, self._policy_io))
                self._apply(await loop.run_in_executor(self.executor, self._sync_io))
                if not self.online:
                    log.info("household database reachable again: reconciled")
                self.online, self.last_contact, self.last_error = True, time.time(), ""
            except (Offline, Refused, StorageError) as exc:
                if self.online or self.last_error != str(exc):
                    log.warning("household database: %s; enforcing the last known policy", exc)
                self.online, self.last_error = False, str(exc)
            except Exception as exc:  # keep syncing whatever happens
                log.exception("household sync failed")
                self.online, self.last_error = False, f"{type(exc).__name__}: {exc}"
            try:
                await asyncio.wait_for(self._wake.wait(), self.config.sync_seconds)
            except asyncio.TimeoutError:
                pass

    # --- LISTEN -------------------------------------------------------------------------
    def _listen(self) -> None:
        """A thread: wake the sync on every NOTIFY; reconnect when it drops."""
        while not self._stopping.is_set():
            try:
                listener = PolicyListener(self.config.url)
            except Offline:
                self._stopping.wait(min(self.config.sync_seconds, 5.0))
                continue
            self.wake()  # changes made while we were not listening
            try:
                while not self._stopping.is_set():
                    ready, _, _ = select.select([listener], [], [], 1.0)
                    if ready and listener.drain():
                        self.wake()
            except (Offline, OSError, ValueError):
                pass
            finally:
                listener.close()

    # --- the family core's changes --------------------------------------------------
    def _on_family_event(self, event: Any) -> None:
        """A local change: push it (unless it is the household's own)."""
        if isinstance(event, (RequestCreated, RequestAnswered)):
            self.wake()
            return
        if self._applying or not isinstance(event, (PolicyChanged, ChildAdded)):
            return
        self.refresh_members()
        member = self.member_of_uid(event.uid)
        if member is None:
            return
        self.dirty.add(member)
        self.journal.set_state("dirty", json.dumps(sorted(self.dirty)))
        self.wake()

    # --- worker thread -------------------------------------------------------------
    def _policy_io(self) -> dict[str, tuple[int, str]]:
        """Push local changes, then read every member's newest policy."""
        self.store.open()
        policies = self.store.policies()
        for member in sorted(self.dirty):
            self._push(member, policies)
        return policies

    def _sync_io(self) -> Snapshot:
        s = self.store
        s.heartbeat(self._health())
        s.map_accounts([(uid, self._user(uid), m) for uid, m in self._members.items()])
        pending = self.journal.pending()
        if pending:
            s.upload_intervals(pending)
            self.journal.acknowledge(pending)
        self.journal.prune(time.time() - JOURNAL_KEEP_SECONDS)
        today = dt.datetime.now(self.tz).date()
        monday = today - dt.timedelta(days=today.weekday())
        s.upload_daily(self._daily_rows(monday, today))
        forward_events(self.store, self._forward_marks)
        forward_audit(self.store, self._forward_marks)
        members = sorted(set(self._members.values()))
        low, high = day_bounds(monday, today, self.tz)
        machines = s.machines()
        self._sync_requests(machines, dt.datetime.fromtimestamp(low, dt.timezone.utc).replace(tzinfo=None))
        remote = s.other_intervals(members, low, high)
        granted: dict[tuple[str, dt.date], int] = {}
        for member, when, minutes in s.other_grants(
                members, dt.datetime.fromtimestamp(low, dt.timezone.utc).replace(tzinfo=None)):
            day = when.replace(tzinfo=dt.timezone.utc).astimezone(self.tz).date()
            granted[(member, day)] = granted.get((member, day), 0) + minutes * 60
        apps: dict[tuple[str, dt.date], dict[str, int]] = {}
        for (m, d, app), seconds in s.other_daily(members, "app", today, today).items():
            apps.setdefault((m, d), {})[app] = seconds
        return Snapshot(remote, granted, s.answers_to_me(), apps, machines)

    def _push(self, member: str, policies: dict[str, tuple[int, str]]) -> bool:
        """Push the local policy of ``member`` as a new household version."""
        uids = [uid for uid, m in self._members.items() if m == member]
        row = Child.get_or_none(Child.uid == uids[0]) if uids else None
        if row is None:
            self._clean(member)
            return True
        for _attempt in range(3):
            base, current = policies.get(member, (0, None))
            if current == row.policy:
                break
            author = (PolicyVersion.select(PolicyVersion.author_uid)
                      .where(PolicyVersion.uid == row.uid).order_by(PolicyVersion.version.desc())
                      .scalar()) or 0
            try:
                version = self.store.push_policy(member, row.policy, base, author, self._user(author),
                                                 "set_policy", current)
            except Stale:  # someone else was first: ours goes on top of theirs
                policies.update(self.store.policies())
                continue
            except Refused as exc:
                log.warning("this machine may not change %s's policy (%s): "
                            "the household's policy is restored here", member, exc)
                self._clean(member)
                return False
            policies[member] = (version, row.policy)
            log.info("pushed %s's policy as household version %d", member, version)
            break
        self._clean(member)
        return True

    def _sync_requests(self, machines: list[dict[str, Any]], since: dt.datetime) -> None:
        """Send this machine's requests for more time, and (on a parents'
        machine) the answers given here, to the household."""
        rows = (TimeRequest.select().where(TimeRequest.uid.in_(list(self._members)),
                                           TimeRequest.created >= since))
        requests = list(rows)
        self.store.upload_requests([(r.id, self._members[r.uid], r.minutes, r.reason, r.created)
                                    for r in requests])
        if not any(m["machine_id"] == self.config.machine_id and m["may_edit_policy"] for m in machines):
            return
        for r in requests:
            if r.state != "pending" and r.id not in self._answers_sent:
                self.store.answer(self.config.machine_id, r.id, r.state == "approved",
                                  r.granted_minutes or 0, r.answered_by or 0, self._user(r.answered_by or 0))
                self._answers_sent.add(r.id)

    def _clean(self, member: str) -> None:
        self.dirty.discard(member)
        self.journal.set_state("dirty", json.dumps(sorted(self.dirty)))

    @staticmethod
    def _user(uid: int) -> str:
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return str(uid)

    def _health(self) -> dict[str, Any]:
        return {"children": len(self._members), "pending_intervals": self.journal.count_pending(),
                "last_error": self.last_error[:200]}

    def _daily_rows(self, first: dt.date, last: dt.date) -> list[tuple[str, dt.date, str, str, int]]:
        totals: dict[tuple[str, dt.date, str, str], int] = {}
        for uid, member in self._members.items():
            for day, app, seconds in (AppUsageDaily.select(AppUsageDaily.day, AppUsageDaily.app,
                                                           AppUsageDaily.active_seconds)
                                      .where(AppUsageDaily.uid == uid, AppUsageDaily.day.between(first, last))
                                      .tuples()):
                key = (member, day, "app", app)
                totals[key] = totals.get(key, 0) + seconds
        return [(*k, v) for k, v in totals.items() if v]

    # --- event loop: apply what the household says --------------------------------
    def _apply_policies(self, policies: dict[str, tuple[int, str]]) -> None:
        self._applying = True
        try:
            for member, (version, text) in policies.items():
                if member in self.dirty:
                    continue  # a local change not pushed yet wins until it is
                try:
                    self._apply_policy(member, text)
                except FamilyError as exc:  # e.g. a policy this program cannot read
                    log.error("cannot apply %s's household policy version %d: %s", member, version, exc)
                    continue
                self.applied[member] = (version, text)
        finally:
            self._applying = False
            self.refresh_members()
        self.journal.set_state("applied", json.dumps(self.applied))

    def _apply(self, snapshot: Snapshot) -> None:
        self.usage.remote = snapshot.remote
        self.usage.remote_granted = snapshot.granted
        self._apply_answers(snapshot.answers)
        self.usage.remote_apps = snapshot.apps
        self.journal.set_state("remote", self.usage.to_json())
        self.machines = snapshot.machines

    def _apply_answers(self, answers: list[tuple[int, bool, int]]) -> None:
        """Answers given anywhere to requests made here: the child hears
        them here (the family core's RequestAnswered signal)."""
        for request_id, approved, minutes in answers:
            row = TimeRequest.get_or_none(TimeRequest.id == request_id)
            if row is None or row.state != "pending":
                continue
            try:
                self.family.answer_request(HOUSEHOLD_ACTOR, request_id, approved, minutes if approved else 0)
                self._answers_sent.add(request_id)
            except (AlreadyAnswered, NotFound):
                continue

    def _apply_policy(self, member: str, text: str) -> None:
        for pw in self._candidates(member):
            row = Child.get_or_none(Child.uid == pw.pw_uid)
            if row is None:
                self.family.add_child(HOUSEHOLD_ACTOR, pw.pw_name, "")
                log.info("household member %s is local account %s here", member, pw.pw_name)
            elif row.policy == text:
                continue
            self.family.set_policy(HOUSEHOLD_ACTOR, str(pw.pw_uid), text)

    # --- for the bus (see .service for the D-Bus shapes) ---------------------
    async def household_audit(self, limit: int) -> list[dict[str, Any]]:
        """The household's audit, newest first: who did what on which machine."""
        return await self._io(lambda: self.store.audit(limit))

    async def household_requests(self) -> list[dict[str, Any]]:
        """Every machine's requests for more time, with their answers."""
        return await self._io(lambda: self.store.requests())

    async def answer_request(self, actor: int, machine_id: str, request_id: int, approve: bool,
                             minutes: int) -> int:
        """A parent here answers a request made on any machine (AnswerHouseholdRequest);
        returns the minutes granted."""
        if not (isinstance(machine_id, str) and len(machine_id) == 32
                and all(c in "0123456789abcdef" for c in machine_id)):
            raise InvalidArgument("machine id must be 32 hex digits")
        if not 1 <= request_id < 2**63 or not 0 <= minutes <= 1440:
            raise InvalidArgument("request id must be positive and minutes 0 to 1440")
        try:
            done, granted = await self._io(lambda: self.store.answer(
                machine_id, request_id, approve, minutes, actor, self._user(actor)))
        except Refused:
            raise NotAuthorized("only a parents' machine (added with --parents) answers "
                                "the household's requests") from None
        except LookupError as exc:
            raise NotFound(str(exc)) from None
        if not done:
            raise AlreadyAnswered(f"request {request_id} of that machine was already answered")
        self.wake()
        return granted

    async def _io(self, work: Any) -> Any:
        """``work()`` in the database thread; unreachable -> StorageError."""
        def run() -> Any:
            self.store.open()
            return work()
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, run)
        except Offline as exc:
            raise StorageError(f"the household database is unreachable: {exc}") from None
