"""``dots-collector``: the root daemon that loads the eBPF monitors and
publishes their events on the system bus (or prints them with --stdout)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from pathlib import Path

from pydantic import ValidationError

from dots_common.logs import setup_logging

from .config import CollectorConfig, load_config
from .core import Collector, CollectorError
from .monitors import MONITORS
from .pinning import PinError

log = logging.getLogger("dots.collector")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="dots-collector", description=__doc__)
    p.add_argument("--stdout", action="store_true",
                   help="print events as JSON lines on stdout instead of publishing them on D-Bus")
    p.add_argument("--monitors", help=f"comma-separated monitors to load (default: all: {','.join(MONITORS)})")
    p.add_argument("--uid", type=int, action="append", dest="uids",
                   help="monitor this uid (repeatable; default: every uid)")
    p.add_argument("--ringbuf-kib", type=int, dest="ringbuf_kib_per_cpu",
                   help="ring buffer size per monitor per CPU in KiB (default 128)")
    p.add_argument("--no-enforcers", action="store_false", dest="enforcers", default=None,
                   help="do not load the in-kernel enforcers (monitoring only)")
    p.add_argument("--rules-file", help="where the enforcement rules are kept across restarts "
                   "(default /var/lib/dots-collector/rules.json; \"\" = not kept)")
    p.add_argument("--pin-dir", help="where the BPF programs and maps are pinned "
                   "(default /sys/fs/bpf/dots; environment DOTS_PIN_DIR)")
    p.add_argument("--config", type=Path, help="configuration file (default /etc/dots/collector.toml)")
    p.add_argument("--log-level", default=os.environ.get("DOTS_LOG_LEVEL", "info"),
                   choices=["debug", "info", "warning", "error"])
    return p.parse_args(argv)


def config_from(args: argparse.Namespace) -> CollectorConfig:
    overrides = {
        "monitors": args.monitors.split(",") if args.monitors else None,
        "uids": args.uids,
        "ringbuf_kib_per_cpu": args.ringbuf_kib_per_cpu,
        "enforcers": args.enforcers,
        # DOTS_RULES_FILE="" keeps no rules file: the test suite sets it so
        # that no collector it starts inherits another test's rules
        "rules_file": args.rules_file if args.rules_file is not None
        else os.environ.get("DOTS_RULES_FILE"),
        "pin_dir": args.pin_dir or os.environ.get("DOTS_PIN_DIR") or None,
    }
    return load_config(args.config, overrides)


def settle_heap() -> None:
    """Once loaded: what exists now (modules, configuration, pydantic's
    schemas: ~35,000 objects) lives as long as the daemon, so the garbage
    collector stops looking at it (gc.freeze). Its oldest generation's
    passes over that heap took 9-18 ms each, in which no ring buffer is
    read; cycles made afterwards are still collected. Done before "ready",
    not after: events that follow "ready" must not wait behind its ~10 ms,
    nor be charged them (issue 14's storms counted them as theirs). (A larger youngest
    generation was tried and dropped: fewer but longer passes over the
    rows the bus path keeps until acknowledged; with it a 60 s hold at
    100,000 events/s lost 357 events to a full ring, without it 0 in the
    rerun; issue 14's note.)"""
    gc.collect()
    gc.freeze()
    log.debug("heap settled: %d objects frozen", gc.get_freeze_count())


async def serve(config: CollectorConfig, to_stdout: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    collector: Collector | None = None

    def on_stop() -> None:
        stop.set()
        if collector is not None and not collector.ready:
            collector.abort_load()  # a compile in the loader takes seconds

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_stop)

    bus = None
    if to_stdout:
        from .stdout import JsonLinesSink

        collector = Collector(config, JsonLinesSink())
    else:
        from .service import BusSink, CollectorInterface, connect

        interface = CollectorInterface()
        collector = Collector(config, BusSink(interface))
        interface.collector = collector  # answers (ready: false) from the first call
        bus = await connect(interface)  # own the name first: fail fast if taken
    try:
        try:
            await loop.run_in_executor(None, collector.load)
        except CollectorError:
            if not stop.is_set():
                raise
            log.info("stopped while loading")
            return
        if stop.is_set():
            collector.close()
            return
        await collector.run(stop, before_ready=settle_heap)  # "ready": every ring buffer is read
    finally:
        if bus is not None:
            bus.disconnect()
    log.info("stopped")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging(args.log_level)
    if os.geteuid() != 0:
        sys.exit("dots-collector: must run as root (it loads eBPF programs)")
    try:
        config = config_from(args)
    except (ValidationError, OSError, ValueError) as e:
        sys.exit(f"dots-collector: bad configuration: {e}")
    try:
        os.setpriority(os.PRIO_PROCESS, 0, config.nice)
    except OSError as e:
        log.warning("cannot set the scheduling priority to %d: %s", config.nice, e)
    try:
        asyncio.run(serve(config, args.stdout))
    except (CollectorError, PinError, RuntimeError) as e:
        sys.exit(f"dots-collector: {e}")


if __name__ == "__main__":
    main()
