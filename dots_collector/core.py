"""The collector's core: load the monitors, read their ring buffers on the
asyncio loop, batch the decoded records and hand batches to a sink.

No D-Bus here: the sink is either the bus publisher (service.py) or the
JSON-lines printer (stdout.py), and this module never decides anything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import select
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from dots_common.limits import MAX_UIDS
from dots_common.records import Record

from .batcher import Batcher

from .config import CollectorConfig
from .enforcers.manager import Enforcement, EnforcersDisabled, Resolved
from .enforcers.rules_file import RulesFile
from .monitors.base import Monitor
from .losses import LossWatch
from .objects import bpf_objects
from .pinning import PinDir, fingerprint, read_manifest
from .retainer import Retainer
from .ticker import Ticker

log = logging.getLogger("dots.collector")

#: seconds the loader may take to compile and pin everything
LOADER_TIMEOUT = 300
#: consume() calls per monitor at shutdown at most (drain())
DRAIN_CALLS = 64


class CollectorError(Exception):
    """Base of the errors the collector reports to its callers."""


class InvalidArgument(CollectorError):
    pass


class Sink(Protocol):
    """Where batches go. A batch is a list of rows: tuples in the record
    type's field order (dots_common.records.field_names), never Record
    objects (building one costs more than the rest of an event's path)."""

    #: whether the receiver acknowledges batches and may ask for a replay
    #: (the bus): only then are batches kept until acknowledged
    replayable: bool

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
        self.retainer = Retainer(config.retain_max_events,
                                 keep=getattr(sink, "replayable", True))
        self.batcher = Batcher(self._publish, config.batch_max_events,
                               config.batch_interval_ms / 1000)
        self.started = time.monotonic()
        self.losses = LossWatch(sink)
        self._tasks: list[asyncio.Task] = []
        self.ready = False
        self.monitoring = "listed" if self.uids else "all"
        self.pins: PinDir | None = None
        self._objects: list[str] = []
        self.pins_reused: set[str] = set()
        self.load_ms = 0
        self._loader: subprocess.Popen | None = None
        self._aborted = False
        #: set when something joins a batch or a ring buffer wakes us, while
        #: run() runs: it ends the timer's doze (ticker.py)
        self._woken: asyncio.Event | None = None

    # --- lifecycle ------------------------------------------------------------
    def load(self) -> None:
        """Open every BPF object the configuration asks for from its pins,
        having the loader (a child process with bcc) compile, attach and
        pin those not pinned yet; a failure unpins everything and
        propagates."""
        started = time.monotonic()
        objects = bpf_objects(self.config, cache=self.enforcement.cache)
        self._objects = [obj.name for obj in objects]
        self.pins = PinDir(self.config.pin_dir)
        try:
            manifests, fresh = {}, {}
            for obj in objects:
                print_ = fingerprint(obj.spec())
                manifest = self.pins.reusable(obj.name, print_)
                if manifest is None:
                    fresh[obj.name] = print_
                else:
                    manifests[obj.name] = manifest
            reused = set(manifests)
            if fresh:
                self._run_loader(fresh)
                for name in fresh:
                    manifests[name] = read_manifest(self.pins.path(name))
                    if manifests[name] is None:
                        raise CollectorError(f"the loader left no manifest for {name}")
            enforcers = []
            for obj in objects:
                try:
                    obj.open_pinned(self.pins.path(obj.name), manifests[obj.name]["maps"])
                except (OSError, ValueError) as e:
                    raise CollectorError(f"cannot open the pinned {obj.name}: {e}") from e
                if isinstance(obj, Monitor):
                    self.monitors[obj.name] = obj
                    obj.set_uids(self.uids)
                    obj.open(self._deliverer(obj.name), self._rows_deliverer(obj.name))
                else:
                    enforcers.append(obj)
            if enforcers:
                # Enforcement records join their monitor's batches
                # ("exec_blocked" in ProcessEvents, "connect_blocked" in
                # NetworkEvents)
                self.enforcement.start(enforcers, lambda r: self.add_record(r.MONITOR, r),
                                       reused=bool(reused & {e.name for e in enforcers}))
        except BaseException:
            self.close()
            raise
        self.pins_reused, self.load_ms = reused, int((time.monotonic() - started) * 1000)
        log.info("monitors loaded: %s; enforcers: %s; uids: %s; %s in %.0f ms",
                 ", ".join(self.monitors), ", ".join(self.enforcement.loaded) or "none",
                 ", ".join(map(str, self.uids)) or "all",
                 f"re-opened pinned {', '.join(sorted(reused))}, loaded {', '.join(fresh)}"
                 if reused else "loaded and pinned", (time.monotonic() - started) * 1000)

    def _run_loader(self, wanted: dict[str, str]) -> None:
        """The loader (loader.py) compiles, attaches and pins ``wanted``;
        abort_load() stops it."""
        request = json.dumps({"config": self.config.model_dump(), "pin_dir": str(self.pins.root),
                              "objects": wanted,
                              "log_level": logging.getLevelName(logging.getLogger().level).lower()})
        self._loader = subprocess.Popen([sys.executable, "-m", "dots_collector.loader"],
                                        stdin=subprocess.PIPE, close_fds=True)
        try:
            self._loader.communicate(request.encode(), timeout=LOADER_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._loader.kill()
            self._loader.wait()
            raise CollectorError(f"the loader did not finish in {LOADER_TIMEOUT} s") from None
        finally:
            code, self._loader = self._loader.returncode, None
        if self._aborted:
            raise CollectorError("stopped while loading")
        if code != 0:
            raise CollectorError(f"the loader failed (exit status {code}); see its log above")

    def abort_load(self) -> None:
        """Stop a load in progress (SIGTERM while compiling)."""
        self._aborted = True
        loader = self._loader
        if loader is not None and loader.poll() is None:
            loader.terminate()

    def _publish(self, monitor: str, rows: list[tuple]) -> None:
        self.sink.publish(monitor, self.retainer.add(monitor, rows), rows)

    def add_record(self, monitor: str, record: Record) -> None:
        """A Record (enforcers, records made from maps) joins the batches
        as a row, like the ring buffers' records (and a dozing timer wakes
        to send it)."""
        self.batcher.add(monitor, tuple(record.to_dbus()))
        if self._woken is not None:
            self._woken.set()

    def _deliverer(self, name: str):
        return lambda record: self.add_record(name, record)

    def _rows_deliverer(self, name: str):
        extend = self.batcher.extend
        return lambda rows: extend(name, rows)

    async def run(self, stop: asyncio.Event,
                  before_ready: Callable[[], None] | None = None) -> None:
        """Read the ring buffers until ``stop`` is set, then shut down
        cleanly: drain, flush the pending batches, detach.

        Ready (GetStatus "ready", the "ready" log line) only once every
        probe is attached AND every ring buffer is being read: an event that
        follows it is delivered or counted as lost. ``before_ready`` runs
        just before that (the heap's one-off settling: its ~10 ms belong to
        starting, not to the first events after "ready").

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
        woken = self._woken = asyncio.Event()

        # a consume() that stopped at its budget with records left (copied
        # out of the ring or still in it) is called again as soon as the
        # loop has run its other work (the bus writes), each monitor in turn
        pump_due = False

        def pump() -> None:
            nonlocal pump_due
            pump_due = False
            ticker.consume_all()  # calls more() again while some are left

        def more() -> None:
            nonlocal pump_due
            if not pump_due:
                pump_due = True
                loop.call_soon(pump)

        def on_rings() -> None:
            for fd, _ in rings.poll(0):
                if consumers[fd]():
                    more()
            woken.set()

        readers = [(rings.fileno(), on_rings), *self.enforcement.readers()]
        for fd, callback in readers:
            loop.add_reader(fd, callback)
        ticker = Ticker(self.monitors, self.batcher, self.add_record, self.check_lost,
                        self.config.idle_wait_ms / 1000, on_more=more)
        self._tasks.append(asyncio.create_task(ticker.run(woken)))
        ticker.consume_all()  # what arrived while loading
        if before_ready is not None:
            before_ready()
        self.ready = True
        log.info("ready")
        try:
            await stop.wait()
        finally:
            self.ready = False
            self._woken = None
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
            # the backlog and the ring, but not a flood that goes on: at
            # most DRAIN_CALLS budgets (~1.5 s of decoding; the backlog's
            # bound, 8 MiB, is ~75,000 records)
            for _ in range(DRAIN_CALLS):
                if not monitor.consume():
                    break
            for record in monitor.periodic(final=True):
                self.add_record(name, record)
        self.enforcement.consume()
        self.batcher.flush_all()

    def close(self) -> None:
        """Detach everything: enforcers first (their rules end with us),
        then remove the pins (the programs go with them). A collector that
        crashes never gets here: what it pinned stays in force."""
        self.enforcement.close()
        for monitor in self.monitors.values():
            monitor.close()
        self.monitors.clear()
        if self.pins is not None:
            try:
                self.pins.remove(self._objects)
            except OSError as e:
                log.error("cannot remove the pins in %s: %s", self.pins.root, e)
            self.pins.close()
            self.pins = None

    def check_lost(self) -> None:
        self.losses.check(self.monitors, self.enforcement.lost())

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
            "skipped": self.losses.check_skipped(self.monitors),
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
            "pins_reused": sorted(self.pins_reused),
            "load_ms": self.load_ms,
        }
