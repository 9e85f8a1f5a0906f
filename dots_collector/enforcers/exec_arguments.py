"""What an interpreter or a loader is given to run (mixed into Judge):
the files on its command line, a ``#!`` script, and a program given as
text, on the command line or in its environment."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from dots_identity.elf import MIN_TLSH_BYTES
from dots_identity.files import HashCache, IdentityError

from . import proc
from .exec_wire import N_LOADER, Notice

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from .exec_judge import Rule

#: arguments of an interpreter or loader looked at (the program comes first)
MAX_ARGUMENT_FILES = 16


class ArgumentJudge:
    """Judgement of the programs an interpreter or a loader is given."""

    lock: "threading.RLock"
    block_rules: "dict[int, Rule]"
    cache: HashCache

    kill: "Callable[[Notice, str, str], None]"  # Judge's

    def _script(self, n: Notice) -> None:
        path = n.path
        if not path.startswith("/"):
            try:
                path = os.path.join(proc.cwd(n.pid), path)
            except OSError:
                return
        self._judge_file(n, path, "script")

    def _judge_file(self, n: Notice, path: str, why: str) -> bool:
        with self.lock:
            rule = self.block_rules.get(n.uid)
        if rule is None:
            return False
        try:
            identity = self.cache.of_path(path)
        except IdentityError:
            return False
        if not rule.covers(identity):
            return False
        self.kill(n, path, why)
        return True

    def _argument_files(self, n: Notice) -> None:
        """An interpreter or a loader: the files on its command line are
        the programs it runs (``python3 game.py``, ``ld.so ./game``)."""
        if n.uid not in self.block_rules:
            return
        try:
            argv, where = proc.cmdline(n.pid), proc.cwd(n.pid)
        except OSError:
            return  # gone already
        why = "loader" if n.notice & N_LOADER else "interpreter"
        for arg in argv[1:1 + MAX_ARGUMENT_FILES]:
            path = os.path.join(where, arg)
            if arg.startswith("-") or not os.path.isfile(path):
                continue
            if self._judge_file(n, path, why):
                return
        self._argument_text(n, argv[1:])

    def _argument_text(self, n: Notice, args: list[str]) -> None:
        """A program given to an interpreter as text (``python3 -c "$(cat
        game.py)"``, ``bash -c ...``), or in an environment variable it
        was started with (``CODE="$(cat game.py)" python3 -c
        "exec(os.environ['CODE'])"``), is judged by its content, as a
        file of the child's would be: the same script with its last
        newline gone is a similar one. Every text of MIN_TLSH_BYTES or more
        is judged, wherever it stands (a cap would let junk options or
        variables push the game past it); the environment is read only
        when the uid's block list has scripts and no argument matched."""
        with self.lock:
            rule = self.block_rules.get(n.uid)
        if rule is None or not (rule.programs.fuzzy_content or rule.programs.by_sha):
            return
        if self._judge_texts(n, rule, [a.encode("utf-8", "surrogateescape") for a in args],
                             "-c text"):
            return
        try:
            values = proc.environ(n.pid)
        except OSError:
            return  # gone already
        self._judge_texts(n, rule, values, "environment text")

    def _judge_texts(self, n: Notice, rule: "Rule", texts: list[bytes], kind: str) -> bool:
        """Kill ``n`` if one of ``texts`` is a blocked script. True: killed."""
        for text in texts:
            if len(text) < MIN_TLSH_BYTES:
                continue
            name = f"{n.comm} {kind} ({len(text)} bytes)"
            if rule.programs.match(self.cache.of_text(text, name)):
                self.kill(n, name, why="program given as text")
                return True
        return False
