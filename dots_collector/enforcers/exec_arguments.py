"""What an interpreter or a loader is given to run (mixed into Judge):
the files on its command line, a ``#!`` script, and a program given as
text, on the command line or in its environment."""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

from dots_identity.elf import MIN_TLSH_BYTES
from dots_identity.files import HashCache, Identity, IdentityError

from . import proc
from .exec_wire import N_LOADER, Notice

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from .exec_judge import Rule

#: arguments of an interpreter or loader looked at (the program comes first)
MAX_ARGUMENT_FILES = 16
#: texts whose identity is remembered (their sha256 -> Identity)
MAX_REMEMBERED_TEXTS = 256


class ArgumentJudge:
    """Judgement of the programs an interpreter or a loader is given."""

    lock: "threading.RLock"
    block_rules: "dict[int, Rule]"
    cache: HashCache
    _texts: dict[bytes, Identity]  # sha256 -> identity of a program given as text

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
        if not self._argument_text(n, [a.encode("utf-8", "surrogateescape") for a in argv[1:]],
                                   "-c text"):
            try:
                values = proc.environ(n.pid)
            except OSError:
                return  # gone already
            self._argument_text(n, values, "environment text")

    def _argument_text(self, n: Notice, texts: list[bytes], kind: str) -> bool:
        """A program given to an interpreter as text (``python3 -c "$(cat
        game.py)"``, ``bash -c ...``), or in an environment variable it
        was started with (``CODE="$(cat game.py)" python3 -c
        "exec(os.environ['CODE'])"``), is judged by its content, as a
        file of the child's would be: the same script with its last
        newline gone is a similar one. Every text of MIN_TLSH_BYTES or more
        is judged, wherever it stands (a cap would let junk options or
        variables push the game past it). True: killed."""
        with self.lock:
            rule = self.block_rules.get(n.uid)
        if rule is None or not (rule.programs.fuzzy_content or rule.programs.by_sha):
            return False
        for text in texts:
            if len(text) < MIN_TLSH_BYTES:
                continue
            identity = self._text_identity(text)
            if rule.programs.match(identity):
                name = f"{n.comm} {kind} ({len(text)} bytes)"
                self.kill(n, name, why="program given as text")
                return True
        return False

    def _text_identity(self, text: bytes) -> Identity:
        """of_text, remembered by content: the same long values (PATH,
        LS_COLORS) come with every interpreter a child starts."""
        key = hashlib.sha256(text).digest()
        identity = self._texts.get(key)
        if identity is None:
            if len(self._texts) >= MAX_REMEMBERED_TEXTS:
                self._texts.clear()
            identity = self._texts[key] = HashCache.of_text(text, "text")
        return identity
