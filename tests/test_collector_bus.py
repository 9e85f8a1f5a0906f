"""The collector daemon on a private system bus started from the repo's own
dbus/ files: who may call it, who may hear it, what it says."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET

import pytest

from tests.helpers import REPO, as_user, run_as, uid_of, wait_for

pytestmark = [pytest.mark.bpf, pytest.mark.bus]

DEST = ("org.dots.Collector1", "/org/dots/Collector1", "org.dots.Collector1")
from dots_common.names import POLICYD_USER as POLICYD  # noqa: E402


def set_uids(client, uids, signature="au"):
    return client.call(*DEST, "SetMonitoredUids", signature, [uids])


def test_policyd_user_receives_batches_and_reads_status(collector_daemon, bus_client, child_user):
    policyd = bus_client(POLICYD)
    child = uid_of(child_user)
    assert set_uids(policyd, [child]) == {"ok": [[child]]}

    listener = policyd.listen("org.dots.Collector1", "org.dots.Collector1")
    n = 50
    run_as(child_user, ["/bin/sh", "-c", f"for i in $(seq {n}); do /usr/bin/true; done"])
    listener.wait_until(lambda l: len([e for e in l.events("ProcessEvents")
                                       if e[0] == "exit" and e[5] == "sh"]) == 1,
                        what="the burst up to the shell's exit")
    signals = listener.finish()

    batches = [s for s in signals if s["member"] == "ProcessEvents"]
    events = [e for b in batches for e in b["body"][1]]
    execs = [e for e in events if e[0] == "exec" and e[6] == "/usr/bin/true"]
    assert len(execs) == n
    assert all(e[3] == child for e in events), "only the monitored uid"
    assert len(batches) < len(events) / 5, "events travel in batches, not one signal each"

    status = policyd.call(*DEST, "GetStatus")["ok"][0]
    assert status["monitors"] == ["process"]
    assert status["uids"] == [child]
    assert status["lost"] == {"process": 0}
    assert status["ringbuf_bytes"]["process"] >= 128 * 1024


def test_stranger_can_neither_call_nor_listen(collector_daemon, bus_client, child_user, other_user):
    stranger = bus_client(other_user)
    for member, sig, args in (("GetStatus", "", []), ("SetMonitoredUids", "au", [[0]])):
        reply = stranger.call(*DEST, member, sig, args)
        assert reply.get("error") == "org.freedesktop.DBus.Error.AccessDenied", reply

    policyd = bus_client(POLICYD)
    set_uids(policyd, [uid_of(child_user)])
    eavesdropper = stranger.listen("org.dots.Collector1", "org.dots.Collector1")
    witness = policyd.listen("org.dots.Collector1", "org.dots.Collector1")
    run_as(child_user, ["/usr/bin/true"])
    witness.wait_until(lambda l: any(e[0] == "exit" and e[5] == "true"
                                     for e in l.events("ProcessEvents")), what="the batch")
    witness.finish()
    assert eavesdropper.finish() == [], "another user must receive nothing"


def test_stranger_cannot_own_the_name(system_bus, other_user):
    out = subprocess.run(as_user(other_user, [
        "dbus-send", "--system", "--print-reply", "--dest=org.freedesktop.DBus",
        "/org/freedesktop/DBus", "org.freedesktop.DBus.RequestName",
        "string:org.dots.Collector1", "uint32:0"]), capture_output=True, text=True)
    assert "AccessDenied" in out.stderr


@pytest.mark.parametrize("signature,args,error", [
    ("as", [["1000"]], "org.freedesktop.DBus.Error.UnknownMethod"),
    ("u", [1000], "org.freedesktop.DBus.Error.UnknownMethod"),
    ("au", [list(range(5000))], "org.dots.Collector1.Error.InvalidArgs"),
    ("au", [[4294967295]], "org.dots.Collector1.Error.InvalidArgs"),
])
def test_bad_input_is_refused_and_changes_nothing(collector_daemon, bus_client, child_user,
                                                   signature, args, error):
    policyd = bus_client(POLICYD)
    set_uids(policyd, [uid_of(child_user)])
    reply = policyd.call(*DEST, "SetMonitoredUids", signature, args)
    assert reply.get("error") == error, reply
    assert reply["message"]
    assert collector_daemon.status()["uids"] == [uid_of(child_user)]


def test_live_interface_matches_the_contract(collector_daemon, bus_client):
    xml = bus_client("root").call(*DEST[:2], "org.freedesktop.DBus.Introspectable",
                                  "Introspect")["ok"][0]

    def members(root):
        iface = root.find("interface[@name='org.dots.Collector1']")
        return {(el.tag, el.get("name"), tuple((a.get("type"), a.get("direction") or "out")
                                                for a in el.findall("arg")))
                for el in iface if el.tag in ("method", "signal")}

    contract = members(ET.parse(REPO / "dbus" / "org.dots.Collector1.xml").getroot())
    assert members(ET.fromstring(xml)) == contract


def test_stdout_mode_prints_flat_json_lines(child_user):
    uid = uid_of(child_user)
    proc = subprocess.Popen([str(REPO / ".venv/bin/dots-collector"), "--stdout",
                             "--monitors", "process", "--uid", str(uid)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: b"dots.collector: ready" in _stderr_so_far(proc), timeout=60,
                 what="collector ready")
        done = run_as(child_user, ["/usr/bin/true"])
        try:
            line = wait_for(lambda: _exec_line(proc), what="the exec line")
        except AssertionError as e:
            raise AssertionError(f"{e} (true exited {done.returncode}; lines: "
                                 f"{_stdout_lines.get(proc.pid)}; collector log: "
                                 f"{_stderr_so_far(proc).decode(errors='replace')})") from None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert line["type"] == "exec" and line["uid"] == uid and line["comm"] == "true"
    assert set(line) >= {"type", "pid", "ppid", "uid", "gid", "comm", "path", "ts_ns", "exit_code"}
    assert proc.returncode == 0, "SIGTERM is a clean shutdown"


_stderr_buf: dict[int, bytes] = {}


def _stderr_so_far(proc) -> bytes:
    import os
    import fcntl

    fd = proc.stderr.fileno()
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    try:
        chunk = os.read(fd, 65536)
    except BlockingIOError:
        chunk = b""
    _stderr_buf[proc.pid] = _stderr_buf.get(proc.pid, b"") + chunk
    return _stderr_buf[proc.pid]


_stdout_lines: dict[int, list[str]] = {}


def _exec_line(proc):
    """The exec line of /usr/bin/true if one came (never blocks: a missing
    line must fail by the deadline, not hang the suite)."""
    import fcntl
    import os

    fd = proc.stdout.fileno()
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    lines = _stdout_lines.setdefault(proc.pid, [""])
    try:
        while chunk := os.read(fd, 65536):
            lines[-1:] = (lines[-1] + chunk.decode()).split("\n")
    except BlockingIOError:
        pass
    for line in lines[:-1]:
        data = json.loads(line) if line.strip() else None
        if data and data.get("type") == "exec" and data["path"] == "/usr/bin/true":
            return data
    return None


def test_unacked_batches_are_replayed_with_their_ids_until_acked(collector_daemon, bus_client,
                                                                  child_user):
    policyd = bus_client(POLICYD)
    set_uids(policyd, [uid_of(child_user)])
    status = collector_daemon.status()
    instance = status["instance"]
    policyd.call(*DEST, "AckBatches", "st", [instance, status["last_batch"]])
    assert collector_daemon.status()["retained_events"] == 0

    first = policyd.listen("org.dots.Collector1", "org.dots.Collector1")
    run_as(child_user, ["/usr/bin/true"])
    first.wait_until(lambda l: any(e[0] == "exit" and e[5] == "true"
                                   for e in l.events("ProcessEvents")), what="the batch")
    sent = [(s["body"][0], s["body"][1]) for s in first.finish() if s["member"] == "ProcessEvents"]
    assert collector_daemon.status()["retained_events"] == sum(len(b) for _, b in sent)

    # a restarted policy daemon asks for what followed the last batch it stored
    again = policyd.listen("org.dots.Collector1", "org.dots.Collector1")
    assert policyd.call(*DEST, "ReplayBatches", "st", [instance, sent[0][0] - 1]) == {"ok": [len(sent)]}
    again.wait_until(lambda l: len(l.signals) >= len(sent), what="the replay")
    replayed = [(s["body"][0], s["body"][1]) for s in again.finish()]
    assert replayed == sent, "same ids, same events"

    policyd.call(*DEST, "AckBatches", "st", [instance, sent[-1][0]])
    assert collector_daemon.status()["retained_events"] == 0
    assert policyd.call(*DEST, "ReplayBatches", "st", [instance, 0]) == {"ok": [0]}
