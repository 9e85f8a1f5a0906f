"""The counts the probes read before any hash lookup (the gates that make a
user nobody watches cost one array read): they must never say "nothing
here" while the map holds an entry, or a completion, a close or a byte
count of a watched user would be missed. After real activity of a watched
user they come back to the map's true size, so the gate closes again."""

from __future__ import annotations

import ctypes
import json

import pytest

from tests.helpers import as_user, uid_of
from tests.test_monitor_disk import block_dir, prewritten, run_draining  # noqa: F401 (fixture)
from tests.test_monitor_network import CLIENT, SERVER, load_net, run_py, start_py

pytestmark = pytest.mark.bpf


def disk_count(monitor) -> int:
    counts = monitor.bpf[b"queued"]
    added, removed, swept = (counts[ctypes.c_int(i)].value for i in range(3))
    return (added - removed - swept) % (1 << 64)


def test_disk_queued_count_follows_the_pending_map(load_monitor, child_user, block_dir):  # noqa: F811
    directory, _ = block_dir
    target = directory / "gate"
    prewritten(child_user, target, 2)
    run = load_monitor("disk", uids=[uid_of(child_user)])
    assert disk_count(run.monitor) == 0
    proc, _ = run_draining(run, as_user(child_user, [
        "dd", "if=/dev/zero", f"of={target}", "bs=4k", "count=300", "oflag=direct",
        "conv=notrunc"]))
    assert [r for r in run.records if r.pid == proc.pid], "the watched writes were reported"
    left = run.monitor.pending_count()
    assert disk_count(run.monitor) >= left, "the gate never hides an entry"
    run.monitor.sweep(max_age=0)         # what never completes here goes by age
    assert run.monitor.pending_count() == 0
    assert disk_count(run.monitor) == 0, "every entry added was counted out again"


def test_network_live_count_follows_the_socket_map(load_monitor, child_user):
    run = load_net(load_monitor, uid_of(child_user))
    live = run.monitor.bpf[b"live_socks"]
    assert live[ctypes.c_int(0)].value == 0
    server = start_py(child_user, SERVER, "127.0.0.1", "2")
    try:
        port = json.loads(server.stdout.readline())["port"]
        client = run_py(child_user, CLIENT, "127.0.0.1", str(port))
        assert json.loads(server.stdout.readline())["received"] == 50_000
        assert server.wait(timeout=10) == 0
    finally:
        server.kill()
    close = run.wait_for(lambda r: r.type == "connect_close" and r.pid == client["pid"],
                         what="the client's close")
    assert close.bytes_sent == 50_000, "bytes counted while the gate was open"
    run.wait_for(lambda r: r.type == "accept_close" and r.pid == server.pid,
                 what="the server's close")
    socks = len(list(run.monitor.bpf[b"socks"].keys()))
    assert live[ctypes.c_int(0)].value == socks
