"""The enforcement rules in force, kept on disk so that a restarted
collector enforces them again while it loads — before it says it is ready
and before the policy daemon has had a chance to push them."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("dots.collector.enforce")

DEFAULT_RULES_FILE = "/var/lib/dots-collector/rules.json"


class RulesFile:
    """{"blocked": {uid: [paths]}, "allow": {uid: [paths]}, "networks": {uid: [cidrs]},
    "web": {uid: [dns_port, offline "0"|"1", allow_only "0"|"1"]}};
    an allow-list entry means allow-list mode is on for that uid."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.rules: dict[str, dict[str, list[str]]] = {
            "blocked": {}, "allow": {}, "networks": {}, "web": {}}

    def load(self) -> dict[str, dict[str, list[str]]]:
        if self.path is None or not self.path.exists():
            return self.rules
        try:
            data = json.loads(self.path.read_text())
            self.rules = {k: {str(u): list(v) for u, v in data.get(k, {}).items()}
                          for k in self.rules}
        except (OSError, ValueError, AttributeError) as e:
            log.error("ignoring unreadable rules file %s: %s", self.path, e)
        return self.rules

    def set(self, kind: str, uid: int, values: list[str] | None) -> None:
        """Record a rule now in force (None or [] removes it) and save."""
        if values:
            self.rules[kind][str(uid)] = list(values)
        else:
            self.rules[kind].pop(str(uid), None)
        self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".rules-")
            with os.fdopen(fd, "w") as f:  # mkstemp: mode 0600
                json.dump(self.rules, f)
            os.replace(tmp, self.path)
        except OSError as e:
            log.error("cannot save the rules to %s: %s (they hold until a restart)", self.path, e)
