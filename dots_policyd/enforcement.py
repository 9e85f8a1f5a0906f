"""What makes the parents' rules bite, assembled: the collector link (the
children's uids, their history), screen time (timekeeper), per-app time,
and tamper reports. The policies are cached here and re-read whenever the
family core commits a change."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import peewee
from dbus_fast import Variant
from dbus_fast.aio import MessageBus

from dots_common.records import ProcessEvent, Record

from . import history
from .activity import Activity
from .app_time import AppLimitReached, AppTime, AppWarning
from .bus_trust import Rejections
from .clock import Timeline, boottime_ns
from .collector_client import CollectorCallError, CollectorClient
from .collector_link import CollectorLink
from .family import Family
from .policy import Policy, PolicyError
from .rules import Rules, only_always_allowed_at_end, rules_for
from .schema import Child
from .sites import SiteResolver, dns_lookup
from .screentime import ScreenTime, UsageSource
from .seal import Seal
from .service import Signals
from .sessions import Logind
from .timekeeper import TICK_SECONDS, Timekeeper
from .web import WebFilterService

log = logging.getLogger("dots.policyd.enforcement")

#: rules are pushed again this often (DNS TTLs run out, days change)
RULES_EVERY = 60.0

#: the audit log's actor for what the daemon itself noticed: the system
DAEMON_ACTOR = 0


class Enforcement:
    """Wired explicitly: the bus, the database, the family core, the
    signals to send and the daemon's one Timeline come in; nothing is
    patched into the service (GetDaemonStatus is :meth:`daemon_status`,
    handed to the service by whoever builds both)."""

    def __init__(self, bus: MessageBus, db: peewee.Database, family: Family, signals: Signals,
                 seal: Seal | None = None, integrity_interval: float = 30.0,
                 timeline: Timeline | None = None, collector: CollectorClient | None = None,
                 rejections: Rejections | None = None, usage: UsageSource | None = None) -> None:
        """``usage``: the household's accounting (household mode)."""
        self.bus = bus
        self.seal = seal
        self.integrity_interval = integrity_interval
        self.db = db
        self.family = family
        self.signals = signals
        self.timeline = timeline or Timeline()
        self.collector = collector or CollectorClient(bus)
        self.rejections = rejections or Rejections()
        self._policies: dict[int, Policy] = {}
        self.reload()
        self.app_time = AppTime(db, self.policies,
                                remote_apps=getattr(usage, "remote_app_seconds", None))
        self.activity = Activity()
        self.screen = ScreenTime(db, self.timeline, self.policies, usage,
                                 exempt=self.app_time.only_always_allowed_running)
        self.timekeeper = Timekeeper(self.screen, Logind(bus), self._emit, self.kill_user, self.tamper,
                                     self.activity)
        self.link = CollectorLink(bus, db, self.child_uids, on_records=self._on_records,
                                  on_presence=self._on_collector, client=self.collector,
                                  rejections=self.rejections)
        self.sites = SiteResolver(dns_lookup(), self.timeline.boottime)
        self.web = WebFilterService(db, self.collector, self.timeline.now)
        self.last_event_time = 0.0
        self._pushed: dict[int, Rules] = {}
        self._push_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- policies ---------------------------------------------------------------
    def policies(self) -> dict[int, Policy]:
        return self._policies

    def child_uids(self) -> list[int]:
        return sorted(self._policies)

    def reload(self) -> None:
        policies = {}
        for child in Child.select(Child.uid, Child.policy):
            try:
                policies[child.uid] = Policy.from_json(child.policy)
            except PolicyError as e:  # only possible if the database was edited by hand
                self.tamper("database", f"the stored policy of uid {child.uid} is invalid: {e}")
        self._policies = policies

    def _family_changed(self, _event: Any) -> None:
        """Family listeners run in the thread that committed the change."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._apply_change)

    def _apply_change(self) -> None:
        before = set(self._policies)
        self.reload()
        if set(self._policies) != before:
            asyncio.ensure_future(self.link.push_uids())
        asyncio.ensure_future(self.push_rules())

    # --- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.family.subscribe(self._family_changed)
        await self.link.start()
        await self.web.start()
        self._tasks = [asyncio.create_task(self.timekeeper.run(TICK_SECONDS)),
                       asyncio.create_task(self._app_time_loop()),
                       asyncio.create_task(self._rules_loop())]
        if self.seal is not None:
            self.check_integrity()  # before "ready": a fresh database gets its seal now
            self._tasks.append(asyncio.create_task(self._integrity_loop()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.web.stop()
        await self.link.stop()

    # --- per-app time ---------------------------------------------------------------
    def _on_records(self, monitor: str, records: list[Record]) -> None:
        self.last_event_time = time.time()
        self.activity.note_records(monitor, records)
        if monitor != "process":
            return
        self.app_time.feed(r for r in records if isinstance(r, ProcessEvent))
        for r in records:
            if r.type == "exec_blocked":  # type: ignore[attr-defined]
                self._emit("AppBlocked", r.uid, r.path)  # type: ignore[attr-defined]

    async def daemon_status(self) -> dict[str, Variant]:
        """For GetDaemonStatus (dotsctl doctor): is the pipeline alive, and
        is anyone forging signals?"""
        try:
            lost = (await self.collector.status()).lost
        except CollectorCallError:
            lost = -1
        return {
            "collector_connected": Variant("b", bool(self.link.instance)),
            "children": Variant("u", len(self._policies)),
            "batches_stored": Variant("t", self.link.stored_batches),
            "events_stored": Variant("t", self.link.stored_events),
            "events_lost": Variant("x", lost),
            "last_event_time": Variant("x", int(self.last_event_time)),
            "signals_rejected": Variant("t", self.rejections.total),
            "signals_rejected_by": Variant("a{st}", dict(self.rejections.counts)),
            "malformed_batches": Variant("t", self.link.malformed_batches),
            "storage_failing": Variant("b", self.timekeeper.storage_failing),
            "logind_failures": Variant("t", self.timekeeper.logind_failures),
        }

    async def _app_time_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                actions = self.app_time.flush(boottime_ns(), self.timeline.today())
                for action in actions:
                    await self._app_action(action)
            except Exception:
                log.exception("per-app time flush failed")

    async def _app_action(self, action: AppWarning | AppLimitReached) -> None:
        if isinstance(action, AppWarning):
            self._emit("AppTimeWarning", action.uid, action.app, action.minutes_left)
            return
        self._emit("LimitReached", action.uid, f"app:{action.app}")
        await self.push_rules()  # the app is blocked until tomorrow
        for path in action.paths:
            try:
                await self.collector.kill_executable(action.uid, path)
            except CollectorCallError as e:
                log.warning("cannot stop %s of uid %d: %s", path, action.uid, e)

    # --- the children's rules in the collector's enforcers ----------------------
    async def _rules_loop(self) -> None:
        while True:
            try:
                await self.push_rules(force=True)
            except Exception:
                log.exception("cannot push the rules to the collector")
            await asyncio.sleep(RULES_EVERY)

    async def push_rules(self, force: bool = False) -> None:
        """Give the collector every child's rules (only what changed, unless
        ``force``); a child that left gets its rules cleared."""
        async with self._push_lock:
            today = self.timeline.today()
            wanted: dict[int, Rules] = {}
            for uid, policy in self._policies.items():
                addresses = await self.sites.addresses(policy.blocked_domains())
                time_is_up = (only_always_allowed_at_end(policy)
                              and self.screen.left(uid, policy, self.timeline.now()).blocked)
                wanted[uid] = rules_for(policy, addresses, self.app_time.blocked_today(uid, today),
                                        self.web.doh_networks(), time_is_up=time_is_up)
            for uid in set(self._pushed) - set(wanted):
                wanted[uid] = Rules.clear()
            for uid, rules in wanted.items():
                if force or self._pushed.get(uid) != rules:
                    if await self._push(uid, rules):
                        self._pushed[uid] = rules
            for uid in [u for u, r in self._pushed.items() if r == Rules.clear() and u not in self._policies]:
                del self._pushed[uid]
        await self.web.apply(self._policies, force=force)

    async def _push(self, uid: int, rules: Rules) -> bool:
        try:
            await self.collector.set_blocked_executables(uid, rules.blocked_paths)
            await self.collector.set_allow_list(uid, rules.allow_list, rules.allowed_paths)
            await self.collector.set_blocked_addresses(uid, rules.blocked_networks)
        except CollectorCallError as e:
            log.warning("cannot push the rules of uid %d: %s", uid, e)
            return False
        return True

    # --- acting through the collector and the bus -------------------------------
    def _emit(self, member: str, *args: Any) -> None:
        self.signals.emit(member, *args)
        if member == "LimitReached" and self._loop is not None:
            # time up: a policy may switch to "only always-allowed apps" now
            self._loop.create_task(self.push_rules())

    async def kill_user(self, uid: int) -> None:
        try:
            await self.collector.kill_user_processes(uid)
        except CollectorCallError as e:
            log.error("cannot kill the processes of uid %d: %s", uid, e)

    # --- tamper -----------------------------------------------------------------------
    def check_integrity(self) -> None:
        """The seal no longer matching means the children or their policies
        were changed outside the daemon: report it once, take the database's
        state as it now is (and enforce it), and seal it again."""
        assert self.seal is not None
        if not self.seal.intact():
            self.tamper("database", "children or policies were changed outside dots-policyd")
            self.seal.write()
            self._apply_change()

    async def _integrity_loop(self) -> None:
        while True:
            await asyncio.sleep(self.integrity_interval)
            try:
                self.check_integrity()
            except Exception:
                log.exception("integrity check failed")

    def _on_collector(self, present: bool) -> None:
        if present:  # a new collector starts with empty maps
            asyncio.ensure_future(self.push_rules(force=True))
        else:
            self.tamper("collector", "the collector left the bus: monitoring and enforcement stopped")

    def tamper(self, kind: str, detail: str) -> None:
        log.warning("tamper detected (%s): %s", kind, detail)
        try:
            history.append_audit(self.db, DAEMON_ACTOR, "tamper", kind, None, detail)
        except Exception:
            log.exception("cannot record the tamper report")
        self._emit("TamperDetected", kind, detail)
