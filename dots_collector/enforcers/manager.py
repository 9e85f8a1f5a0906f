"""The collector's enforcement: the loaded enforcers, the shared hash
cache, and the requests the policy daemon makes, checked before anything
changes. Invalid input is a ValueError; asking a collector started
without enforcers is EnforcersDisabled."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dots_common.records import Record

from . import kill, validate
from .base import Enforcer
from .identity import HashCache, Identity, IdentityError
from .rules_file import RulesFile

log = logging.getLogger("dots.collector.enforce")

Resolved = tuple[list[Identity], list[tuple[str, str]]]


class EnforcersDisabled(RuntimeError):
    pass


class Enforcement:
    def __init__(self, rules_file: RulesFile | None = None) -> None:
        self.rules_file = rules_file or RulesFile(None)
        self.cache = HashCache()
        self.exec: Any = None  # ExecEnforcer once loaded
        self.net: Any = None  # NetEnforcer once loaded

    @property
    def loaded(self) -> dict[str, Enforcer]:
        return {name: e for name, e in (("exec", self.exec), ("net", self.net)) if e is not None}

    def start(self, enforcers: list[Enforcer], deliver: Callable[[Record], None],
              reused: bool = False) -> None:
        """Take the loaded enforcers, start them and put the saved rules
        back. ``reused``: their maps were pinned by a collector that
        crashed, so what the restored rules do not make is removed."""
        for enforcer in enforcers:
            if enforcer.name == "exec_block":
                self.exec = enforcer
            elif enforcer.name == "net_block":
                self.net = enforcer
            enforcer.open(deliver)
        log.info("enforcers loaded: %s", ", ".join(self.loaded))
        self.restore()
        if reused:
            stale = sum(e.reconcile() for e in self.loaded.values())
            log.info("enforcement maps kept from the previous collector: %d entries no rule "
                     "makes removed", stale)

    def restore(self) -> None:
        """Put the saved rules back in the kernel (a rule that no longer
        validates is dropped with a log line)."""
        rules = self.rules_file.load()
        actions = [(self.set_blocked_executables, rules["blocked"]),
                   (lambda uid, paths: self.set_allow_list(uid, True, paths), rules["allow"]),
                   (self.set_blocked_addresses, rules["networks"]),
                   (lambda uid, w: self.set_web_filter(uid, int(w[0]), w[1] == "1", w[2] == "1"),
                    rules["web"])]
        restored = 0
        for action, entries in actions:
            for uid, values in list(entries.items()):
                try:
                    action(int(uid), values)
                    restored += 1
                except (ValueError, EnforcersDisabled) as e:
                    log.error("cannot restore a rule for uid %s: %s", uid, e)
        if restored:
            log.info("restored %d saved rules from %s", restored, self.rules_file.path)

    def readers(self) -> list[tuple[int, Callable[[], None]]]:
        return [reader for e in self.loaded.values() for reader in e.readers()]

    def consume(self) -> None:
        for enforcer in self.loaded.values():
            enforcer.consume()

    def lost(self) -> dict[str, int]:
        return {e.name: e.lost for e in self.loaded.values()}

    def close(self) -> None:
        for enforcer in self.loaded.values():
            enforcer.close()  # detaches its programs
        self.exec = self.net = None

    def _need(self, enforcer: Any) -> Any:
        if enforcer is None:
            raise EnforcersDisabled("the enforcers are not loaded (collector started with "
                                    "--no-enforcers, or still loading)")
        return enforcer

    # --- requests ---------------------------------------------------------------
    def set_blocked_executables(self, uid: Any, paths: Any) -> Resolved:
        uid, paths = validate.enforced_uid(uid), validate.paths(paths)
        found, rejected = self._need(self.exec).set_blocked(uid, paths)
        self.rules_file.set("blocked", uid, paths)
        log.info("uid %d: %d programs blocked (%d paths not found)", uid, len(found), len(rejected))
        return found, rejected

    def set_allow_list(self, uid: Any, enabled: bool, paths: Any) -> Resolved:
        uid, paths = validate.enforced_uid(uid), validate.paths(paths)
        if not enabled and paths:
            raise ValueError("paths given with enabled=false (leaving allow-list mode "
                             "forgets the list)")
        found, rejected = self._need(self.exec).set_allow_list(uid, bool(enabled), paths)
        self.rules_file.set("allow", uid, paths if enabled else None)
        log.info("uid %d: allow-list mode %s (%d programs)", uid, "on" if enabled else "off",
                 len(found))
        return found, rejected

    def set_blocked_addresses(self, uid: Any, cidrs: Any) -> list[str]:
        uid, networks = validate.enforced_uid(uid), validate.networks(cidrs)
        in_force = self._need(self.net).set_blocked(uid, networks)
        self.rules_file.set("networks", uid, [str(n) for n in in_force])
        log.info("uid %d: %d blocked networks", uid, len(in_force))
        return [str(n) for n in in_force]

    def set_web_filter(self, uid: Any, dns_port: Any, offline: bool, allow_only: bool) -> None:
        uid, dns_port = validate.enforced_uid(uid), validate.port(dns_port)
        self._need(self.net).set_web_filter(uid, dns_port, bool(offline), bool(allow_only))
        web = [str(dns_port), str(int(bool(offline))), str(int(bool(allow_only)))]
        self.rules_file.set("web", uid, web if dns_port or offline or allow_only else None)
        log.info("uid %d: web filter dns port %d, offline %s, allow-only %s", uid, dns_port,
                 bool(offline), bool(allow_only))

    def add_filter_addresses(self, uid: Any, kind: Any, entries: Any) -> int:
        uid = validate.enforced_uid(uid)
        kind, checked = validate.filter_entries(kind, entries)
        return self._need(self.net).add_addresses(uid, kind, checked)

    def forget_filter_addresses(self, uid: Any, kind: Any) -> int:
        uid = validate.enforced_uid(uid)
        kind = validate.filter_entries(kind, [])[0]
        return self._need(self.net).forget(uid, kind)

    def kill_user_processes(self, uid: Any) -> int:
        uid = validate.enforced_uid(uid)
        n = kill.kill_user_processes(uid)
        log.info("uid %d: killed %d processes", uid, n)
        return n

    def kill_executable(self, uid: Any, path: Any) -> int:
        uid, path = validate.enforced_uid(uid), validate.path(path)
        try:
            program = self.cache.of_path(path)
        except IdentityError as e:
            raise ValueError(str(e)) from None
        n = kill.kill_executable(uid, program, self.cache)
        log.info("uid %d: killed %d processes running %s", uid, n, path)
        return n

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "enforcers": list(self.loaded),
            "blocked_executables": {}, "allow_lists": {}, "kernel_blocked": {},
            "default_allowed": [], "exec_blocked": 0,
            "blocked_addresses": {}, "connect_blocked": 0,
            "web_filters": {}, "dns_redirected": 0,
            "lost": self.lost(),
        }
        for enforcer in self.loaded.values():
            out.update(enforcer.state())
        return out
