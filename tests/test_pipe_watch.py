"""PipeWatch (dots_collector/enforcers/pipes.py): what is piped into a
process is copied as it comes, and the process still reads all of it.
Real pipes and a real reading process; no BPF needed."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time

import pytest

from dots_collector.enforcers import pipes
from dots_collector.enforcers.exec_arguments import piped_program

#: reads its stdin to the end, then prints how many bytes and their sum
READER = "import sys; d = sys.stdin.buffer.read(); print(len(d), sum(d))"


@pytest.fixture
def watch():
    w = pipes.PipeWatch()
    w.start()
    yield w
    w.close()


def reader_on_pipe(program: str = READER) -> tuple[subprocess.Popen, int]:
    r, w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-c", program], stdin=r, stdout=subprocess.PIPE)
    os.close(r)
    return proc, w


def told() -> tuple[queue.SimpleQueue, object]:
    q: queue.SimpleQueue = queue.SimpleQueue()
    return q, q.put


def test_what_comes_into_the_pipe_is_copied_and_still_read(watch):
    proc, w = reader_on_pipe()
    q, tell = told()
    try:
        watch.watch(proc.pid, 1, [0], 30.0)
        assert watch.when_done(proc.pid, 1, tell)
        data = bytes(range(256)) * 40  # written after the watch began, in two writes
        os.write(w, data[:4000])
        os.write(w, data[4000:])
    finally:
        os.close(w)  # every writer gone: the watch ends long before its 30 s
    seen = q.get(timeout=20)
    assert set(seen) == {0} and seen[0].ended
    # a part of what was written (all of it unless the reader was quicker)
    assert seen[0].copy and seen[0].copy in data
    out, _ = proc.communicate(timeout=30)
    assert out.split() == [str(len(data)).encode(), str(sum(data)).encode()], \
        "the process read every byte: the copy took none"
    assert not watch.when_done(proc.pid, 1, tell), "told once"


def test_a_pipe_with_a_writer_left_is_not_ended(watch):
    proc, w = reader_on_pipe()
    q, tell = told()
    try:
        os.write(w, b"x" * 300)
        watch.watch(proc.pid, 2, [0], 0.2)
        assert watch.when_done(proc.pid, 2, tell)
        seen = q.get(timeout=20)
        assert seen[0] == pipes.Piped(b"x" * 300, ended=False)
    finally:
        os.close(w)
        proc.communicate(timeout=30)


def test_a_prolonged_watch_sees_a_late_writer_and_ends_with_the_process(watch):
    """A writer that comes after the first watch: prolonged, the pipe is
    copied at its write and the judge told when it closes; a watch whose
    process exits first tells nobody."""
    proc, w = reader_on_pipe("import sys, time; time.sleep(0.5); sys.stdin.buffer.read()")
    q, tell = told()
    try:
        assert watch.prolong(proc.pid, [0], tell)
        os.write(w, b"late program " * 30)
    finally:
        os.close(w)
    seen = q.get(timeout=20)
    assert seen[0] == pipes.Piped(b"late program " * 30, ended=True)
    proc.communicate(timeout=30)
    proc, w = reader_on_pipe("pass")
    q, tell = told()
    try:
        assert watch.prolong(proc.pid, [0], tell)
        proc.communicate(timeout=30)
        with pytest.raises(queue.Empty):
            q.get(timeout=1.0)
    finally:
        os.close(w)
    assert not watch.prolong(proc.pid, [0], tell), "a process gone is not watched"


def test_what_is_not_a_pipe_is_not_watched(watch, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"y" * 500)
    with open(path, "rb") as f:
        proc = subprocess.Popen([sys.executable, "-c", READER], stdin=f,
                                stdout=subprocess.PIPE)
    try:
        watch.watch(proc.pid, 3, [0, 7], 0.1)
        assert not watch.when_done(proc.pid, 3, lambda seen: None)
    finally:
        proc.communicate(timeout=30)


@pytest.mark.parametrize("args, fds, programs", [
    ([], [0], [0]),                                 # python3 < pipe
    (["-"], [0], [0]),                              # python3 -
    (["-u", "-", "m"], [0], [0]),                   # python3 -u - m
    (["-c", "import sys"], [0], []),                # data piped into -c text
    (["game.py"], [0], []),                         # data piped into a script
    (["/dev/fd/63", "m"], [0, 63], [63]),           # python3 <(cat game.py) m
    (["/dev/stdin"], [0, 0], [0]),                  # python3 /dev/stdin
    (["-m", "http.server"], [0], []),
    (["--norc"], [0], [0]),                         # bash --norc < pipe
])
def test_which_pipes_hold_a_program(args, fds, programs):
    assert piped_program(args) == (fds, programs)


def test_a_turn_that_fails_does_not_stop_the_watch(watch, monkeypatch, caplog):
    """A watch's thread that died would leave every program piped in
    unjudged: a failing turn is logged and the next one goes on."""
    real, calls = watch._copied, []

    def fails_once(*args):
        calls.append(args)
        if len(calls) == 1:
            raise OSError("injected")
        return real(*args)

    monkeypatch.setattr(watch, "_copied", fails_once)
    proc, w = reader_on_pipe("import sys, time; time.sleep(0.5); sys.stdin.buffer.read()")
    q, tell = told()
    try:
        watch.watch(proc.pid, 4, [0], 30.0)
        assert watch.when_done(proc.pid, 4, tell)
        os.write(w, b"first write " * 30)  # its turn fails
        deadline = time.monotonic() + 10
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
        os.write(w, b"second write " * 30)
    finally:
        os.close(w)
    seen = q.get(timeout=20)
    assert seen[0].ended and seen[0].copy.startswith(b"first write ")
    assert "a turn failed" in caplog.text
    proc.communicate(timeout=30)
