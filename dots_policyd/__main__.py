"""``dots-policyd``: the unprivileged policy daemon. Stores the collector's
history, serves ``org.dots.Family1`` (authorized by polkit) on the system
bus, and prunes old raw events on start and daily. Runs as the user
dots-policyd; refuses root unless told otherwise."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

from dbus_fast import BusType
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError

from dots_common.logs import setup_logging

from . import history
from .authority import DEFAULT_TIMEOUT, Authority
from .db import DEFAULT_PATH, StorageError, display_name, open_database
from .audience import Audience
from .bus_trust import Rejections
from .caller import CallerIdentity
from .clock import Timeline
from .contract import load_contract
from .enforcement import Enforcement
from .family import Family
from .migrations import migrate
from .seal import Seal, key_path, load_key
from .service import FamilyService, Signals

log = logging.getLogger("dots.policyd")

PRUNE_EVERY = 24 * 3600.0  # seconds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="dots-policyd", description=__doc__)
    p.add_argument("--database", default=os.environ.get("DOTS_DATABASE", DEFAULT_PATH),
                   help=f"SQLite file path or database URL (postgresql://…); default {DEFAULT_PATH}")
    p.add_argument("--retention-days", type=int, default=history.DEFAULT_RETENTION_DAYS,
                   help="keep raw events this many days (rollups are kept); default %(default)s")
    p.add_argument("--polkit-timeout", type=float, default=DEFAULT_TIMEOUT,
                   help="seconds to wait for polkit before refusing a call; default %(default)s")
    p.add_argument("--integrity-interval", type=float, default=30.0,
                   help="seconds between checks that nobody edited the database by hand; "
                        "default %(default)s")
    p.add_argument("--household", default=os.environ.get("DOTS_HOUSEHOLD") or None, metavar="FILE",
                   help="household mode: the household file (database URL with this machine's "
                        "role; see the README), e.g. /etc/dots/household.conf")
    p.add_argument("--allow-root", action="store_true",
                   help="run even as root (it should run as the user dots-policyd)")
    p.add_argument("--dns-upstream", default=os.environ.get("DOTS_DNS_UPSTREAM", ""),
                   help="resolvers the children's DNS filter forwards to (host:port,...); "
                        "default: the nameservers of /etc/resolv.conf")
    p.add_argument("--log-level", default=os.environ.get("DOTS_LOG_LEVEL", "info"),
                   choices=["debug", "info", "warning", "error"])
    args = p.parse_args(argv)
    if args.dns_upstream:
        from .dns_filter import parse_upstreams

        try:
            parse_upstreams(args.dns_upstream)
        except ValueError as e:
            p.error(str(e))
    if args.retention_days < 0:
        p.error("--retention-days must be 0 or more")
    if not 0 < args.polkit_timeout <= 120:
        p.error("--polkit-timeout must be more than 0 and at most 120 seconds")
    return args


async def prune_daily(db, retention_days: int) -> None:
    """Prune now and every day, in a worker thread (its own connection) so
    that a long prune never stalls the bus."""
    while True:
        try:
            await asyncio.to_thread(history.prune, db, retention_days)
        except StorageError as exc:
            log.error("pruning failed: %s", exc)
        await asyncio.sleep(PRUNE_EVERY)


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    if args.dns_upstream:  # read by dots_policyd.web
        os.environ["DOTS_DNS_UPSTREAM"] = args.dns_upstream
    household = None
    if args.household:  # imported only then: household mode needs psycopg2
        from .household.service import (HouseholdCalls, household_agent, household_config,
                                        with_household_status)

        household = household_config(args.household)
    db = open_database(args.database)
    version = migrate(db)
    log.info("database %s at schema version %d", display_name(args.database), version)
    seal = Seal(db, load_key(key_path(args.database)))
    timeline = Timeline()  # the daemon's one clock: grants and enforcement read the same day
    family = Family(db, clock=timeline.now, seal=seal)
    agent = household_agent(household, db, family) if household else None
    pruner = asyncio.create_task(prune_daily(db, args.retention_days))
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    # wired explicitly, each part handed what it works with
    authority = Authority(bus, timeout=args.polkit_timeout)
    identity = CallerIdentity(bus)
    rejections = Rejections()
    contract = load_contract()
    signals = Signals(bus, contract, Audience(bus, identity, authority))
    enforcement = Enforcement(bus, db, family, signals, seal, args.integrity_interval,
                              timeline=timeline, rejections=rejections,
                              usage=agent.usage if agent else None)
    daemon_status = enforcement.daemon_status
    calls = None
    if agent is not None:
        daemon_status = with_household_status(daemon_status, agent)
        calls = HouseholdCalls(agent)
    service = FamilyService(bus, family, authority, identity, signals, contract,
                            daemon_status=daemon_status,
                            household=(lambda: calls) if calls is not None else None)
    started = False
    try:
        await service.start()
        await enforcement.start()
        started = True
        if agent is not None:
            await agent.start()
        log.info("ready")
        disconnected = asyncio.create_task(bus.wait_for_disconnect())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({disconnected, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if disconnected.done():
            reason = disconnected.exception() if not disconnected.cancelled() else None
            raise RuntimeError(f"lost the system bus{f': {reason}' if reason else ''}")
        disconnected.cancel()
    finally:
        pruner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pruner
        if started:
            await enforcement.stop()
        if agent is not None:
            await agent.stop()
        await service.stop()
        bus.disconnect()
        db.close()
    log.info("stopped")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging(args.log_level)
    logging.getLogger("peewee").setLevel(logging.INFO)  # its debug is every SQL statement
    if os.geteuid() == 0 and not args.allow_root:
        sys.exit("dots-policyd: refusing to run as root: run it as the user dots-policyd "
                 "(or pass --allow-root)")
    try:
        asyncio.run(serve(args))
    except (StorageError, RuntimeError, DBusError, OSError, ValueError) as exc:
        sys.exit(f"dots-policyd: {exc}")


if __name__ == "__main__":
    main()
