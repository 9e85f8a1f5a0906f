"""The collector's core: load the monitors, read their ring buffers on the
asyncio loop, batch the decoded records and hand batches to a sink.

No D-Bus here: the sink is either the bus publisher (service.py) or the
JSON-lines printer (stdout.py), and this module never decides anything.
"""

from __future__ import annotations

import asyncio
import logging
import select
import time
from pathlib import Path
from collections.abc import Iterable
from typing import Any, Protocol

from dots_common.limits import MAX_UIDS
from dots_common.records import Record

from .batcher import Batcher

from .config import CollectorConfig
from .enforcers.manager import Enforcement, EnforcersDisabled, Resolved
from .enforcers.rules_file import RulesFile
from .monitors import monitor_class
from .monitors.base import Monitor
from .retainer import Retainer

log = logging.getLogger("dots.collector")

LOST_CHECK_INTERVAL = 1.0
#: how often ring buffers below their wake-up threshold are read (s)
DRAIN_INTERVAL = 0.05


class CollectorError(Exception):
    """Base of the errors the collector reports to its callers."""


class InvalidArgument(CollectorError):
    pass


class Sink(Protocol):
    """Where batches go. A batch is a list of rows: tuples in the record
    type's field order (dots_common.records.field_names), never Record
    objects (building one costs more than the rest of an event's path)."""

    def publish(self, monitor: str, batch_id: int, rows: list[tuple]) -> None: ...
    def lost(self, monitor: str, total: int) -> None: ...


def validate_uids(uids: Iterable[Any]) -> list[int]:
    """Check a uid list from outside: ints, in range, not absurdly many."""
    uids = list(uids)
    if len(uids) > MAX_UIDS:
        raise InvalidArgument(f"too many uids: {len(uids)} (at most {MAX_UIDS})")
    for uid in uids:
        if not isinstance(uid, int) or isinstance(uid, bool) or not 0 <= uid < 2**32 - 1:
            raise InvalidArgument(f"invalid uid {uid!r}")
    return sorted(set(uids))


class Collector:
    def __init__(self, config: CollectorConfig, sink: Sink) -> None:
        self.config = config
        self.sink = sink
        self.monitors: dict[str, Monitor] = {}
        self.enforcement = Enforcement(RulesFile(Path(config.rules_file) if config.rules_file else None))
        self.uids: list[int] = validate_uids(config.uids)
        self.retainer = Retainer(config.retain_max_events)
        self.batcher = Batcher(self._publish, config.batch_max_events,
                               config.batch_interval_ms / 1000)
        self.started = time.monotonic()
        self._lost_seen: dict[str, int] = {}
        self._tasks: list[asyncio.Task] = []
        self.ready = False
        self.monitoring = "listed" if self.uids else "all"

    # --- lifecycle ------------------------------------------------------------
    def load(self) -> None:
        """Compile and attach the enforcers and every enabled monitor (a
        failure detaches whatever was loaded and propagates)."""
        try:
            if self.config.enforcers:
                # first: they hold no rules yet, so their ring buffers stay
                # empty, while a monitor's fills from the moment it loads
                # until run() reads it. Enforcement records join their
                # monitor's batches ("exec_blocked" in ProcessEvents,
                # "connect_blocked" in NetworkEvents).
                self.enforcement.load(lambda record: self.add_record(record.MONITOR, record))
            for name in self.config.monitors:
                cls = monitor_class(name)
                monitor = cls(kib_per_cpu=self.config.ringbuf_kib_per_cpu,
                              **cls.options(self.config))
                monitor.load()
                self.monitors[name] = monitor
                monitor.set_uids(self.uids)
                monitor.open(self._deliverer(name), self._rows_deliverer(name))
        except Exception:
            self.close()
            raise
        log.info("monitors loaded: %s; enforcers: %s; uids: %s", ", ".join(self.monitors),
                 ", ".join(self.enforcement.loaded) or "none",
                 ", ".join(map(str, self.uids)) or "all")

    def _publish(self, monitor: str, rows: list[tuple]) -> None:
        self.sink.publish(monitor, self.retainer.add(monitor, rows), rows)

    def add_record(self, monitor: str, record: Record) -> None:
        """A Record (enforcers, records made from maps) joins the batches
        as a row, like the ring buffers' records."""
        self.batcher.add(monitor, tuple(record.to_dbus()))

    def _deliverer(self, name: str):
        return lambda record: self.add_record(name, record)

    def _rows_deliverer(self, name: str):
        extend = self.batcher.extend
        return lambda rows: extend(name, rows)

    async def run(self, stop: asyncio.Event, on_ready=None) -> None:
        """Read the ring buffers until ``stop`` is set, then shut down
        cleanly: drain, flush the pending batches, detach.

        Ready (GetStatus "ready", the "ready" log line, ``on_ready``) only
        once every probe is attached AND every ring buffer is being read:
        an event that follows it is delivered or counted as lost.

        The monitors' probes wake us only when a ring buffer is filling up
        (common.h submit_event); a timer drains what arrives slowly."""
        loop = asyncio.get_running_loop()
        # the monitors' ring buffers through one edge-triggered epoll: a ring
        # buffer's fd polls readable whenever it holds a record, so a
        # level-triggered watch (asyncio's) would wake us for every few
        # records and defeat the kernel's wake-up threshold
        rings = select.epoll()
        consumers = {}
        for monitor in self.monitors.values():
            rings.register(monitor.ring_fd, select.EPOLLIN | select.EPOLLET)
            consumers[monitor.ring_fd] = monitor.consume

        def on_rings() -> None:
            for fd, _ in rings.poll(0):
                consumers[fd]()

        readers = [(rings.fileno(), on_rings), *self.enforcement.readers()]
        for fd, callback in readers:
            loop.add_reader(fd, callback)
        for monitor in self.monitors.values():
            if monitor.tick_interval:
                self._tasks.append(asyncio.create_task(self._tick(monitor)))
        self._tasks.append(asyncio.create_task(self._drain_slow()))
        self._tasks.append(asyncio.create_task(self._watch_lost()))
        for monitor in self.monitors.values():
            monitor.consume()  # what arrived while loading
        self.ready = True
        log.info("ready")
        if on_ready is not None:
            on_ready()
        try:
            await stop.wait()
        finally:
            self.ready = False
            for fd, _ in readers:
                loop.remove_reader(fd)
            rings.close()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self.drain()
            self.check_lost()
            self.close()

    def drain(self) -> None:
        """Everything the kernel holds now goes out, in batches (at shutdown:
        counters of files and sockets still open report what they hold)."""
        for name, monitor in self.monitors.items():
            monitor.consume()
            for record in monitor.periodic(final=True):
                self.add_record(name, record)
        self.enforcement.consume()
        self.batcher.flush_all()

    def close(self) -> None:
        """Detach everything: enforcers first (their rules end with us)."""
        self.enforcement.close()
        for monitor in self.monitors.values():
            monitor.close()
        self.monitors.clear()

    async def _tick(self, monitor: Monitor) -> None:
        assert monitor.tick_interval
        while True:
            await asyncio.sleep(monitor.tick_interval)
            for record in monitor.periodic():
                self.add_record(monitor.name, record)

    async def _drain_slow(self) -> None:
        """Events below a ring buffer's wake-up threshold."""
        while True:
            await asyncio.sleep(DRAIN_INTERVAL)
            for monitor in self.monitors.values():
                monitor.consume()

    async def _watch_lost(self) -> None:
        while True:
            await asyncio.sleep(LOST_CHECK_INTERVAL)
            self.check_lost()

    def check_lost(self) -> None:
        counters = {name: monitor.lost for name, monitor in self.monitors.items()}
        counters.update(self.enforcement.lost())
        for name, total in counters.items():
            if total > self._lost_seen.get(name, 0):
                log.warning("monitor %s lost %d events (ring buffer full; %d in all)",
                            name, total - self._lost_seen.get(name, 0), total)
                self._lost_seen[name] = total
                self.sink.lost(name, total)

    # --- what callers may ask -----------------------------------------------
    def set_uids(self, uids: Iterable[Any]) -> list[int]:
        checked = validate_uids(uids)
        for monitor in self.monitors.values():
            monitor.set_uids(checked)
        self.uids = checked
        self.monitoring = "listed" if checked else "all"
        log.info("monitored uids: %s", ", ".join(map(str, checked)) or "all")
        return checked

    def stop_monitoring(self) -> None:
        """Watch nobody (a household with no children) until set_uids()."""
        for monitor in self.monitors.values():
            monitor.monitor_nobody()
        self.uids = []
        self.monitoring = "nobody"
        log.info("monitoring nobody")

    def ack(self, instance: str, upto: int) -> None:
        """The policy daemon stored every batch up to ``upto``. An ack for
        another (earlier) instance of the collector is ignored."""
        if instance == self.retainer.instance:
            self.retainer.ack(upto)

    def replay(self, instance: str, after: int) -> int:
        """Send again the retained batches that follow ``after`` (all of
        them when ``instance`` is not ours). Returns how many."""
        if instance != self.retainer.instance:
            after = 0
        batches = self.retainer.after(after)
        for batch_id, monitor, records in batches:
            self.sink.publish(monitor, batch_id, records)
        if batches:
            log.info("replayed %d batches after %d", len(batches), after)
        return len(batches)

    # --- enforcement (the policy daemon decides; this carries it out) ----------
    def _enforce(self, action, *args):
        try:
            return action(*args)
        except ValueError as e:
            raise InvalidArgument(str(e)) from e
        except EnforcersDisabled as e:
            raise CollectorError(str(e)) from e
        except Exception as e:  # bcc: "Could not update table" (a full kernel map)
            log.error("enforcement request failed: %s", e)
            raise CollectorError(f"the kernel refused the rules: {e}") from e

    def set_blocked_executables(self, uid: Any, paths: Any) -> Resolved:
        return self._enforce(self.enforcement.set_blocked_executables, uid, paths)

    def set_allow_list(self, uid: Any, enabled: bool, paths: Any) -> Resolved:
        return self._enforce(self.enforcement.set_allow_list, uid, enabled, paths)

    def set_blocked_addresses(self, uid: Any, cidrs: Any) -> list[str]:
        return self._enforce(self.enforcement.set_blocked_addresses, uid, cidrs)

    def set_web_filter(self, uid: Any, dns_port: Any, offline: bool, allow_only: bool) -> None:
        return self._enforce(self.enforcement.set_web_filter, uid, dns_port, offline, allow_only)

    def add_filter_addresses(self, uid: Any, kind: Any, entries: Any) -> int:
        return self._enforce(self.enforcement.add_filter_addresses, uid, kind, entries)

    def forget_filter_addresses(self, uid: Any, kind: Any) -> int:
        return self._enforce(self.enforcement.forget_filter_addresses, uid, kind)

    def kill_user_processes(self, uid: Any) -> int:
        return self._enforce(self.enforcement.kill_user_processes, uid)

    def kill_executable(self, uid: Any, path: Any) -> int:
        return self._enforce(self.enforcement.kill_executable, uid, path)

    def enforcement_state(self) -> dict[str, Any]:
        return self.enforcement.state()

    def status(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "monitors": list(self.monitors),
            "delivered": {n: m.delivered for n, m in self.monitors.items()},
            "lost": {n: m.lost for n, m in self.monitors.items()},
            "ringbuf_bytes": {n: m.ringbuf_bytes for n, m in self.monitors.items()},
            "uids": list(self.uids),
            "monitoring": self.monitoring,
            "batches_sent": self.batcher.batches_sent,
            "uptime_s": time.monotonic() - self.started,
            "instance": self.retainer.instance,
            "last_batch": self.retainer.next_id - 1,
            "retained_events": self.retainer.retained_events,
            "acked_upto": self.retainer.acked_upto,
            "dropped_unacked": self.retainer.dropped_unacked,
            "enforcers": list(self.enforcement.loaded),
        }
