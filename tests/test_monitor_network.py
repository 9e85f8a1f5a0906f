"""Network monitor on the real kernel: loopback TCP over IPv4 and IPv6 by a
real test user."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from dots_common.records import NetworkEvent
from tests.helpers import as_user, run_as, uid_of, wait_for

pytestmark = pytest.mark.bpf

PY = "/usr/bin/python3"
SENT, REPLY = 50_000, 1_234

SERVER = r"""
import json, socket, sys
host, family = sys.argv[1], int(sys.argv[2])
srv = socket.socket(family)
srv.bind((host, 0))
srv.listen()
print(json.dumps({"port": srv.getsockname()[1]}), flush=True)
conn, _ = srv.accept()
got = 0
while got < 50000:
    data = conn.recv(65536)
    if not data:
        break
    got += len(data)
conn.sendall(b"r" * 1234)
conn.recv(1)                          # wait for the client to close first
conn.close()
srv.close()
print(json.dumps({"received": got}), flush=True)
"""

CLIENT = r"""
import json, os, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
c = socket.create_connection((host, port))
c.sendall(b"s" * 50000)
got = 0
while got < 1234:
    got += len(c.recv(65536))
sport = c.getsockname()[1]
c.close()
print(json.dumps({"pid": os.getpid(), "sport": sport, "received": got}))
"""


def load_net(load_monitor, uid: int):
    """The monitor for one uid, with what the kernel queued before the uid
    filter was set (load() attaches with an open filter) thrown away."""
    run = load_monitor("network", uids=[uid])
    run.drain()
    run.records.clear()
    return run


def start_py(user: str, code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(as_user(user, [PY, "-c", code, *args]), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run_py(user: str, code: str, *args: str) -> dict:
    done = run_as(user, [PY, "-c", code, *args])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("host,family", [("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)],
                         ids=["ipv4", "ipv6"])
def test_a_short_connection_is_one_event_per_side_with_its_bytes(load_monitor, child_user, host,
                                                                 family):
    """Shorter than a second: the client's connect and close are one
    connect_close, the server's accept and close one accept_close."""
    uid = uid_of(child_user)
    run = load_net(load_monitor, uid)
    server = start_py(child_user, SERVER, host, str(int(family)))
    try:
        port = json.loads(server.stdout.readline())["port"]
        client = run_py(child_user, CLIENT, host, str(port))
        assert json.loads(server.stdout.readline())["received"] == SENT
        assert server.wait(timeout=10) == 0
    finally:
        server.kill()
    cport = client["sport"]

    def conn(r: NetworkEvent) -> bool:
        return {r.sport, r.dport} == {port, cport}

    server_close = run.wait_for(lambda r: r.type == "accept_close" and conn(r)
                                and r.sport == port, what="the server's accept_close")
    client_close = run.wait_for(lambda r: r.type == "connect_close" and conn(r)
                                and r.sport == cport, what="the client's connect_close")
    mine = [r for r in run.records if conn(r)]
    assert sorted(r.type for r in mine) == ["accept_close", "connect_close"]

    assert all(r.family == family and r.saddr == host and r.daddr == host for r in mine)
    assert all(r.uid == uid and r.comm == "python3" for r in mine)
    # the client's side
    assert (client_close.pid, client_close.sport, client_close.dport) == (client["pid"], cport, port)
    assert client_close.bytes_sent == SENT and client_close.bytes_received == REPLY
    # the server's side: the server's pid, even though the handshake and the
    # final ACK were processed in softirq context
    assert (server_close.pid, server_close.sport, server_close.dport) == (server.pid, port, cport)
    assert server_close.bytes_received == SENT and server_close.bytes_sent == REPLY
    assert not [v for v in run.monitor.bpf[b"socks"].values()
                if v.o.pid in (client["pid"], server.pid)], "closed sockets leave the table"


def test_refused_connect_is_reported(load_monitor, child_user):
    uid = uid_of(child_user)
    run = load_net(load_monitor, uid)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]     # bound, never listening: connect is refused
    try:
        out = run_py(child_user, r"""
import json, os, socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])))
except ConnectionRefusedError:
    pass
print(json.dumps({"pid": os.getpid()}))
""", str(port))
        failed = run.wait_for(lambda r: r.type == "connect_failed" and r.dport == port,
                              what="the refused connect")
    finally:
        probe.close()
    assert failed.pid == out["pid"] and failed.uid == uid
    assert failed.daddr == "127.0.0.1" and failed.bytes_sent == 0
    assert not [r for r in run.records if r.dport == port and r.type != "connect_failed"]


HELD = r"""
import json, os, socket, sys, time
host, port, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
c = socket.create_connection((host, port))
c.sendall(b"s" * 50000)
got = 0
while got < 1234:
    got += len(c.recv(65536))
print(json.dumps({"pid": os.getpid(), "sport": c.getsockname()[1]}), flush=True)
time.sleep(hold)
c.close()
"""


@pytest.mark.parametrize("looked", [True, False], ids=["announced-while-open", "with-its-close"])
def test_a_longer_connection_is_a_connect_and_a_close(load_monitor, child_user, looked):
    """Open longer than short_connection_s (0.3 s here): its connect and
    accept are reported while it is open (a look at the live sockets), or,
    when no look came before its close, with the close, before it. Either
    way each side is an opening, then a close with all the bytes."""
    uid = uid_of(child_user)
    run = load_monitor("network", uids=[uid], short_connection_s=0.3)
    run.drain()
    run.records.clear()
    run.monitor.tick_interval = 0.1
    server = start_py(child_user, SERVER, "127.0.0.1", str(int(socket.AF_INET)))
    try:
        port = json.loads(server.stdout.readline())["port"]
        client = start_py(child_user, HELD, "127.0.0.1", str(port), "1.5" if looked else "0.6")
        cport = json.loads(client.stdout.readline())["sport"]
        if looked:
            connect = run.wait_for(lambda r: r.type == "connect" and r.sport == cport,
                                   what="the announced connect")
            assert client.poll() is None, "announced while the connection was open"
            run.wait_for(lambda r: r.type == "accept" and r.dport == cport,
                         what="the announced accept")
            assert client.poll() is None
        assert client.wait(timeout=10) == 0
        assert server.wait(timeout=10) == 0
    finally:
        server.kill()
    if not looked:
        assert not [r for r in run.records if cport in (r.sport, r.dport)], "nothing looked yet"
    run.wait_for(lambda r: r.type == "close" and r.sport == cport, what="the client's close")
    run.wait_for(lambda r: r.type == "close" and r.dport == cport, what="the server's close")
    client_side = [r for r in run.records if r.sport == cport]
    server_side = [r for r in run.records if r.dport == cport]
    assert [r.type for r in client_side] == ["connect", "close"]
    assert [r.type for r in server_side] == ["accept", "close"]
    connect, close = client_side
    assert connect.ts_ns < close.ts_ns and close.ts_ns - connect.ts_ns >= 300_000_000
    assert (connect.pid, connect.dport, connect.daddr) == (client.pid, port, "127.0.0.1")
    assert (close.bytes_sent, close.bytes_received) == (SENT, REPLY)
    assert (server_side[1].bytes_received, server_side[1].bytes_sent) == (SENT, REPLY)
    assert server_side[0].pid == server_side[1].pid == server.pid


def test_long_lived_connection_reports_bytes_periodically(load_monitor, child_user):
    uid = uid_of(child_user)
    run = load_net(load_monitor, uid)
    run.monitor.tick_interval = run.monitor.bytes_interval = 0.3
    proc = start_py(child_user, r"""
import json, os, socket, time
srv = socket.socket(socket.AF_INET6)
srv.bind(("::1", 0))
srv.listen()
c = socket.create_connection(("::1", srv.getsockname()[1]))
s, _ = srv.accept()
for n in (1000, 2000, 3000):
    c.sendall(b"x" * n)
    got = 0
    while got < n:
        got += len(s.recv(65536))
    time.sleep(1.0)
port = c.getsockname()[1]
c.close(); s.close(); srv.close()
print(json.dumps({"pid": os.getpid(), "sport": port}))
""")
    while proc.poll() is None:
        run.drain()
        time.sleep(0.01)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    cport = json.loads(out)["sport"]
    run.wait_for(lambda r: r.type == "close" and r.sport == cport, what="the client's close")
    client = [r for r in run.records if r.sport == cport and r.type in ("bytes", "close")]
    assert sum(r.bytes_sent for r in client) == 6000
    assert [r.type for r in client].count("bytes") >= 2, [(r.type, r.bytes_sent) for r in client]
    assert all(r.daddr == "::1" and r.pid == proc.pid for r in client)
    connects = [r for r in run.records if r.sport == cport and r.type == "connect"]
    assert len(connects) == 1 and connects[0].ts_ns < client[0].ts_ns
    server = [r for r in run.records if r.dport == cport and r.type in ("bytes", "close")]
    assert sum(r.bytes_received for r in server) == 6000


def test_uid_filter_uses_the_owner_of_the_socket(load_monitor, child_user, other_user):
    """The other user's server accepts the child's connection: the child's
    connect is reported, the other user's accept is not, although both ends
    are handled on the same CPU in the same softirq."""
    uid = uid_of(child_user)
    run = load_net(load_monitor, uid)
    server = start_py(other_user, SERVER, "127.0.0.1", str(int(socket.AF_INET)))
    try:
        port = json.loads(server.stdout.readline())["port"]
        client = run_py(child_user, CLIENT, "127.0.0.1", str(port))
        assert server.wait(timeout=10) == 0
    finally:
        server.kill()
    run.wait_for(lambda r: r.type == "connect_close" and r.sport == client["sport"],
                 what="the child's connect_close")
    other = uid_of(other_user)
    assert not [r for r in run.records if r.uid == other]
    assert not [r for r in run.records if r.sport == port], "nothing from the other user's side"
    assert [r.type for r in run.records if r.dport == port] == ["connect_close"]




STORM = r"""
import json, os, socket, sys, time

n = int(sys.argv[1])
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(128)
port = srv.getsockname()[1]
t0 = time.perf_counter()
for _ in range(n):
    c = socket.create_connection(("127.0.0.1", port))
    s, _ = srv.accept()
    c.close()
    s.close()
dt = time.perf_counter() - t0
srv.close()
print(json.dumps({"pid": os.getpid(), "port": port, "seconds": dt}))
"""


def test_connect_storm_delivered_plus_lost_equals_generated(load_monitor, storm_user):
    uid = uid_of(storm_user)
    run = load_net(load_monitor, uid)
    lost_before = run.monitor.lost
    n = 5_000
    generated = 2 * n                 # a connect_close and an accept_close per connection
    t0 = time.monotonic()
    proc = start_py(storm_user, STORM, str(n))
    while proc.poll() is None:
        run.drain()
        time.sleep(0.01)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    info = json.loads(out)
    port = info["port"]

    def delivered() -> int:
        return sum(1 for r in run.records if r.pid == info["pid"] and (
            (r.type == "connect_close" and r.dport == port)
            or (r.type == "accept_close" and r.sport == port)))

    deadline = time.monotonic() + 10
    while delivered() + run.monitor.lost - lost_before < generated and time.monotonic() < deadline:
        run.drain()
        time.sleep(0.02)
    elapsed = time.monotonic() - t0
    got, lost = delivered(), run.monitor.lost - lost_before
    print(f"\nnetwork connect storm: {n} connections in {info['seconds']:.3f}s "
          f"({generated / info['seconds']:,.0f} events/s generated), delivered {got}, "
          f"lost {lost}, {got / elapsed:,.0f} events/s delivered over {elapsed:.2f}s")
    assert got + lost == generated
    assert got > 0
    assert not [v for v in run.monitor.bpf[b"socks"].values() if v.o.pid == info["pid"]], \
        "every closed socket left the kernel's table"
    assert run.monitor.untracked_sockets == 0


CONNECTS = r"""
import json, os, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ok = 0
for _ in range(n):
    try:
        with socket.create_connection((host, port), timeout=10):
            ok += 1
    except OSError:
        pass  # the network's trouble, not the monitor's: counted apart
print(json.dumps({"pid": os.getpid(), "ok": ok}))
"""
FILE_LOOP = "while True:\n    with open('/etc/hostname') as f: f.read()"


def host_on_the_network() -> tuple[str, int] | None:
    """deb.debian.org:443 (IPv4), if it answers."""
    try:
        addr = socket.getaddrinfo("deb.debian.org", 443, socket.AF_INET, socket.SOCK_STREAM)[0][4]
        with socket.create_connection(addr, timeout=5):
            return addr[0], addr[1]
    except OSError:
        return None


def test_connections_to_a_real_host_are_all_seen_beside_a_file_loop(load_monitor, child_user):
    """A connection to a host on the network is established, and closed, in
    the softirq of the network card's interrupt, which may interrupt another
    BPF program on its CPU: the file monitor's, under the child's file
    loops. As a perf tracepoint, inet_sock_set_state was then skipped by the
    kernel (78 of ~400 runs for 200 connections) and those connect and close
    events went missing, uncounted. As a raw tracepoint it is not skipped."""
    target = host_on_the_network()
    if target is None:
        pytest.skip("no host on the network answers (deb.debian.org:443)")
    host, port = target
    uid = uid_of(child_user)
    files = load_monitor("filesystem", uids=[uid])
    run = load_net(load_monitor, uid)
    lost_before = run.monitor.lost
    loops = [start_py(child_user, FILE_LOOP) for _ in range(2)]
    n = 100
    try:
        wait_for(lambda: files.drain() and len(files.records) > 1000, what="the file loops' events")
        info = run_py(child_user, CONNECTS, host, str(port), str(n))
    finally:
        for p in loops:
            p.kill()
            p.wait()

    def seen(kind: str) -> int:
        """Connections opened ("connect": a connect or a connect_close) or
        closed ("close": a close or a connect_close)."""
        kinds = {kind, "connect_close"}
        return sum(1 for r in run.records if r.pid == info["pid"] and r.type in kinds
                   and r.dport == port and r.daddr == host)

    ok = info["ok"]
    assert ok >= n // 2, f"only {ok} of {n} connections to {host}:{port} were made"
    def open_still() -> int:
        """Its sockets the kernel still follows: a close comes with the
        host's FIN, which a host may send late (FIN_WAIT2 lasts up to 60 s)."""
        return sum(1 for v in run.monitor.bpf[b"socks"].values() if v.o.pid == info["pid"])

    deadline = time.monotonic() + 10
    while (seen("connect") < ok or seen("close") + open_still() < ok) \
            and run.monitor.lost == lost_before and time.monotonic() < deadline:
        run.drain()
        time.sleep(0.02)
    lost, skipped = run.monitor.lost - lost_before, run.monitor.skipped
    print(f"\n{ok} connections to {host}:{port} beside two file loops: {seen('connect')} "
          f"connects, {seen('close')} closes, {open_still()} closing still, lost {lost}, "
          f"skipped by the kernel {skipped}")
    # a raw tracepoint is still skipped when it interrupts itself on its CPU
    # (a state change in softirq while the same program runs for a connect):
    # rare (1 in a CI run of 100 connections), and counted. Every event is
    # seen or counted; the perf tracepoint skipped 39 of 100 runs.
    assert lost == 0 and skipped <= n // 50, (lost, skipped)
    assert seen("connect") + skipped >= ok and seen("close") + open_still() + skipped >= ok
    assert seen("connect") <= ok and seen("close") <= ok
