"""What an interpreter or a loader is given to run (mixed into Judge):
the files on its command line, a ``#!`` script, and a program given as
text, on the command line, in its environment or in a pipe."""

from __future__ import annotations

import os
import stat
import struct
from typing import TYPE_CHECKING

from dots_identity.elf import MIN_TLSH_BYTES
from dots_identity.files import HashCache, IdentityError

from . import pipes, proc
from .exec_wire import (K_NOTICE, N_FIRST_SEEN, N_INTERP, N_LOADER, N_MAP, N_MPROTECT,
                        N_OPENED, Notice)

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from .exec_judge import Rule

#: arguments of an interpreter or loader looked at (the program comes first)
MAX_ARGUMENT_FILES = 16
#: how long what is piped into an interpreter is watched from its notice
#: on before the judge is told (python reads its program ~5 ms after its
#: exec; a writer that is done ends the watch at once)
PIPE_WAIT_S = 0.1
#: ts_ns, kind, notice, pid, uid of a notice (exec_wire.EVENT)
_HEAD = struct.Struct("<Q24xII4xI4xI")


class ArgumentJudge:
    """Judgement of the programs an interpreter or a loader is given."""

    lock: "threading.RLock"
    block_rules: "dict[int, Rule]"
    cache: HashCache

    kill: "Callable[[Notice, str, str], None]"  # Judge's
    later: "Callable[[Callable[[], None]], None]"  # Judge's: run on the judging thread
    pipe_watch: pipes.PipeWatch

    def _script_rule(self, uid: int) -> "Rule | None":
        """The uid's block list if it has scripts (what text and pipes are
        compared with), else None. One dict read, safe without the
        judge's lock: the ring's reader asks too, and must not wait on a
        judgement."""
        rule = self.block_rules.get(uid)
        if rule is None or not (rule.programs.fuzzy_content or rule.programs.by_sha):
            return None
        return rule

    def watch_pipes(self, data: bytes) -> None:
        """From the ring's reader, as a notice comes: an interpreter (or a
        new file, perhaps a copy of one) started by a uid whose block list
        has scripts gets its pipes copied from now on (pipes.py), before
        it reads them and before the judge comes to its notice."""
        ts_ns, kind, notice, pid, uid = _HEAD.unpack_from(data)
        if (kind != K_NOTICE or not notice & (N_INTERP | N_LOADER | N_FIRST_SEEN)
                or notice & (N_MAP | N_MPROTECT | N_OPENED)):
            return
        if self._script_rule(uid) is None:
            return
        try:
            fds, _ = piped_program(proc.cmdline(pid)[1:])
        except OSError:
            return  # gone already
        self.pipe_watch.watch(pid, ts_ns, fds, PIPE_WAIT_S)

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
            fd = pipes.own_fd(arg)  # /dev/fd/63 is the interpreter's, not ours
            path = os.path.join(where, arg) if fd is None else f"/proc/{n.pid}/fd/{fd}"
            if arg.startswith("-") or not os.path.isfile(path):
                continue
            if self._judge_file(n, path, why):
                return
        if self._named_fifo_program(n, argv[1:], where):
            return
        self._argument_text(n, argv[1:])

    def _named_fifo_program(self, n: Notice, args: list[str], where: str) -> bool:
        """``mkfifo f; cat game.py > f & python3 f``: a program read from a
        named pipe cannot be copied before the interpreter reads it (opening
        the pipe to look would change what its writer does), so when the
        uid's block list has scripts, an interpreter whose program (its
        first argument that is not an option) is a named pipe is stopped
        unjudged: the check fails closed. True: stopped."""
        if self._script_rule(n.uid) is None:
            return False
        program = next((a for a in args if not a.startswith("-")), None)
        if program is None or pipes.own_fd(program) is not None:
            return False  # stdin, /dev/fd/N: the pipe watch's
        try:
            if not stat.S_ISFIFO(os.stat(os.path.join(where, program)).st_mode):
                return False
        except OSError:
            return False
        self.kill(n, f"{n.comm} program from a named pipe ({program})",
                  why="program piped in unjudged")
        return True

    def _argument_text(self, n: Notice, args: list[str]) -> None:
        """A program given to an interpreter as text (``python3 -c "$(cat
        game.py)"``, ``bash -c ...``), or in an environment variable it
        was started with (``CODE="$(cat game.py)" python3 -c
        "exec(os.environ['CODE'])"``), or waiting in a pipe it reads
        (``cat game.py | python3``), is judged by its content, as a
        file of the child's would be: the same script with its last
        newline gone is a similar one. Every text of MIN_TLSH_BYTES or more
        is judged, wherever it stands (a cap would let junk options or
        variables push the game past it); the environment is read only
        when the uid's block list has scripts and no argument matched."""
        rule = self._script_rule(n.uid)
        if rule is None:
            return
        if self._judge_texts(n, rule, [a.encode("utf-8", "surrogateescape") for a in args],
                             "-c text"):
            return
        try:
            values = proc.environ(n.pid)
        except OSError:
            values = []  # gone already (its pipes' copies may be there)
        if self._judge_texts(n, rule, values, "environment text"):
            return
        self._piped_text(n, args)

    def _piped_text(self, n: Notice, args: list[str]) -> None:
        """What the interpreter's pipes held, copied by PipeWatch from its
        notice on, is judged once the watch is over (0.1 s, or its
        writers gone), on this thread (``later``); if it was not watched
        (the rule came after its notice), what they hold now is, and a
        program pipe is watched on from now."""
        fds, programs = piped_program(args)

        def done(seen: dict[int, pipes.Piped]) -> None:
            self.later(lambda: self._judge_pipes(n, programs, seen, prolonged=False))

        if not self.pipe_watch.when_done(n.pid, n.ts_ns, done):
            self._judge_pipes(n, programs, {fd: pipes.Piped(pipes.peek(n.pid, fd), False)
                                            for fd in fds if pipes.is_pipe(n.pid, fd)},
                              prolonged=False)

    def _judge_pipes(self, n: Notice, programs: list[int], seen: dict[int, "pipes.Piped"],
                     prolonged: bool) -> None:
        """Kill ``n`` if a copy is a blocked script. An interpreter reads
        its program from a pipe only ~5 ms behind its writer: if it took
        all of it before any copy (nothing copied, and the writer done),
        what it runs cannot be judged, and it is stopped: the check fails
        closed. A program pipe whose writer is still there is watched on
        (prolonged) until it is done: a writer that waits for the
        interpreter to be reading (``(sleep 1; cat game.py) | python3``)."""
        rule = self._script_rule(n.uid)
        if rule is None:
            return
        if self._judge_texts(n, rule, [p.copy for p in seen.values()], "piped text",
                             why="program piped in"):
            return
        if any(fd in seen and seen[fd].ended and not seen[fd].copy for fd in programs):
            self.kill(n, f"{n.comm} piped program (read before it could be judged)",
                      why="program piped in unjudged")
            return
        writing = [fd for fd in programs if fd in seen and not seen[fd].ended]
        if prolonged or not writing:
            return

        def done(later_seen: dict[int, pipes.Piped]) -> None:
            self.later(lambda: self._judge_pipes(n, programs, later_seen, prolonged=True))

        if not self.pipe_watch.prolong(n.pid, writing, done):
            # gone (then the kill finds nothing), or too many watched: fails closed
            self.kill(n, f"{n.comm} piped program (could not be watched)",
                      why="program piped in unjudged")

    def _judge_texts(self, n: Notice, rule: "Rule", texts: list[bytes], kind: str,
                     why: str = "program given as text") -> bool:
        """Kill ``n`` if one of ``texts`` is a blocked script. True: killed."""
        for text in texts:
            if len(text) < MIN_TLSH_BYTES:
                continue
            name = f"{n.comm} {kind} ({len(text)} bytes)"
            if rule.programs.match(self.cache.of_text(text, name)):
                self.kill(n, name, why=why)
                return True
        return False


def piped_program(args: list[str]) -> tuple[list[int], list[int]]:
    """For an interpreter given ``args``: the fds whose pipes are watched
    (stdin, and the ``/dev/fd/N`` it is given), and those it reads its
    program from (stdin only if it names no other program; else what
    comes there is data, judged all the same: ``cat game.py | python3 -c
    "exec(sys.stdin.read())"``)."""
    named = [fd for a in args if (fd := pipes.own_fd(a)) is not None]
    return [0, *named], [0, *named] if names_no_program(args) else named


def names_no_program(args: list[str]) -> bool:
    """The interpreter reads its program from stdin: ``-`` before any
    other argument, or nothing but options and no ``-c``, ``-e`` or ``-m``
    (text or a module given). An option's value counts as a program."""
    for arg in args:
        if arg == "-":
            return True
        if arg.startswith("--"):
            continue
        if not arg.startswith("-") or arg[-1] in "cem":
            return False
    return True
