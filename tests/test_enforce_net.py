"""Connect enforcer on the real kernel: a child's connect()/UDP sendmsg() to
a blocked address fails with EPERM, root and other users are unaffected,
CIDR ranges of both families, the collector's D-Bus method, and the
programs gone when the collector stops (even when it is killed)."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import statistics
import subprocess
from collections.abc import Iterator

import pytest

from dots_collector.enforcers.cgroup import cgroup2_mount
from tests.helpers import VENV_PYTHON, run_as, uid_of, wait_for
from tests.net_probe import probe as _probe

pytestmark = pytest.mark.bpf

DEST = ("org.dots.Collector1", "/org/dots/Collector1", "org.dots.Collector1")
from dots_common.names import POLICYD_USER as POLICYD  # noqa: E402
OUR_PROGRAMS = {"dots_connect4", "dots_connect6", "dots_sendmsg4", "dots_sendmsg6",
                "dots_recvmsg4", "dots_recvmsg6", "dots_bind4", "dots_bind6",
                "dots_getpeername4", "dots_getpeername6", "dots_exec_block"}

#: run as a test user: time n connects to one address, print the durations (ns)
TIMED = r"""
import json, socket, sys, time
addr, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
times = []
for _ in range(n):
    s = socket.socket(fam, socket.SOCK_STREAM)
    t0 = time.perf_counter_ns()
    try:
        s.connect((addr, port))
    except OSError:
        pass
    times.append(time.perf_counter_ns() - t0)
    s.close()
print(json.dumps(times))
"""


def probe(user: str | None, targets: list[tuple]) -> list[int]:
    """errno per (family, kind, address, port) as ``user`` (None: root, in a
    subprocess too); the family follows from the address."""
    return _probe(user, [[kind, addr, port] for _family, kind, addr, port in targets])


class Listeners:
    """TCP listeners of root on loopback addresses, one port each."""

    def __init__(self) -> None:
        self.sockets: dict[str, socket.socket] = {}

    def port(self, addr: str) -> int:
        if addr not in self.sockets:
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.bind((addr, 0))
            s.listen(128)
            self.sockets[addr] = s
        return self.sockets[addr].getsockname()[1]

    def close(self) -> None:
        for s in self.sockets.values():
            s.close()


@pytest.fixture
def listeners() -> Iterator[Listeners]:
    ls = Listeners()
    yield ls
    ls.close()


class NetRun:
    def __init__(self, enforcer) -> None:
        self.enforcer = enforcer
        self.records: list = []
        enforcer.open(self.records.append)

    def block(self, uid: int, cidrs: list[str]) -> list[str]:
        from dots_collector.enforcers import validate

        return [str(n) for n in self.enforcer.set_blocked(uid, validate.networks(cidrs))]

    def events(self) -> list:
        self.enforcer.consume()
        return self.records


@pytest.fixture(scope="module")
def net_enforcer() -> Iterator[NetRun]:
    from dots_collector.enforcers.net_block import NetEnforcer

    enforcer = NetEnforcer()
    enforcer.load()
    yield NetRun(enforcer)
    enforcer.close()


@pytest.fixture
def net(net_enforcer, child_user, other_user) -> Iterator[NetRun]:
    for user in (child_user, other_user):
        net_enforcer.block(uid_of(user), [])
    net_enforcer.events()
    net_enforcer.records.clear()
    yield net_enforcer
    for user in (child_user, other_user):
        net_enforcer.block(uid_of(user), [])


# --- first, while no other collector runs in this session -------------------------------
def _named_ours() -> set[int]:
    """Ids of the loaded programs that bear our enforcers' names."""
    progs = json.loads(subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True,
                                      text=True, check=True).stdout)
    return {p["id"] for p in progs if p.get("name") in OUR_PROGRAMS}


def _live_ids() -> set[int]:
    progs = json.loads(subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True,
                                      text=True, check=True).stdout)
    return {p["id"] for p in progs}


def _attached_to_cgroup_root() -> set[int]:
    out = subprocess.run(["bpftool", "-j", "cgroup", "show", cgroup2_mount()],
                         capture_output=True, text=True, check=True).stdout
    return {p["id"] for p in json.loads(out.strip() or "[]")}


@pytest.mark.bus
def test_programs_are_detached_when_the_collector_stops(system_bus):
    """A clean stop leaves nothing attached. (A kill -9 leaves them pinned
    and in force, on purpose: tests/test_collector_pinned.py.)"""
    from tests.fixtures.collector import CollectorDaemon

    wait_for(lambda: not system_bus.has_owner("org.dots.Collector1"), timeout=30,
             what="no other collector on the bus")
    before = _named_ours()
    daemon = CollectorDaemon(system_bus)
    try:
        ours = _named_ours() - before
        assert len(ours) == 11, "10 cgroup programs and the exec raw tracepoint"
        assert len(ours & _attached_to_cgroup_root()) == 10
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.process.wait(timeout=30) == 0
    finally:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait()
    wait_for(lambda: not ours & _live_ids(), timeout=30, what="the programs to be freed")
    assert not ours & _attached_to_cgroup_root()


# --- in the test process --------------------------------------------------------------------
def test_tcp_connect_to_a_blocked_address(net, listeners, child_user, other_user):
    uid = uid_of(child_user)
    blocked, free = "127.0.0.42", "127.0.0.43"
    bp, fp = listeners.port(blocked), listeners.port(free)
    assert net.block(uid, [blocked]) == ["127.0.0.42/32"]
    targets = [(4, "tcp", blocked, bp), (4, "tcp", free, fp)]
    assert probe(child_user, targets) == [errno.EPERM, 0]
    assert probe(other_user, targets) == [0, 0], "another user is unaffected"
    assert probe(None, targets) == [0, 0], "root is unaffected"

    event = wait_for(lambda: next((e for e in net.events() if e.uid == uid), None),
                     what="the connect_blocked record")
    assert (event.type, event.daddr, event.dport, event.family) == \
        ("connect_blocked", blocked, bp, socket.AF_INET)
    assert event.comm == "python" and event.pid > 0
    assert len([e for e in net.events() if e.uid == uid]) == 1, "one record per denial"


def test_ipv6_loopback(net, listeners, child_user, other_user):
    uid = uid_of(child_user)
    p6, p4 = listeners.port("::1"), listeners.port("127.0.0.1")
    net.block(uid, ["::1"])
    targets = [(6, "tcp", "::1", p6), (4, "tcp", "127.0.0.1", p4)]
    assert probe(child_user, targets) == [errno.EPERM, 0]
    assert probe(other_user, targets) == [0, 0]
    assert probe(None, targets) == [0, 0]
    event = wait_for(lambda: next((e for e in net.events() if e.uid == uid), None),
                     what="the connect_blocked record")
    assert (event.daddr, event.family, event.dport) == ("::1", socket.AF_INET6, p6)


def test_udp_send_and_connect(net, child_user, other_user):
    uid = uid_of(child_user)
    net.block(uid, ["127.0.0.42", "::1"])
    targets = [(4, "udp", "127.0.0.42", 9), (6, "udp", "::1", 9),
               (4, "udp-connect", "127.0.0.42", 9), (6, "udp-connect", "::1", 9),
               (4, "udp", "127.0.0.43", 9)]
    assert probe(child_user, targets) == [errno.EPERM] * 4 + [0]
    assert probe(other_user, targets) == [0] * 5
    assert probe(None, targets) == [0] * 5


def test_cidr_ranges_of_both_families(net, child_user):
    uid = uid_of(child_user)
    assert net.block(uid, ["127.0.1.77/24", "fd00:1::/32"]) == ["127.0.1.0/24", "fd00:1::/32"]
    targets = [(4, "tcp", "127.0.1.200", 9), (4, "tcp", "127.0.1.1", 9), (4, "tcp", "127.0.2.1", 9),
               (6, "tcp", "fd00:1:ffff::5", 9), (6, "tcp", "fd00:2::5", 9)]
    result = probe(child_user, targets)
    assert result[:2] == [errno.EPERM, errno.EPERM]
    assert result[2] == errno.ECONNREFUSED, "outside the range: the normal answer"
    assert result[3] == errno.EPERM
    assert result[4] in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL), \
        "outside the IPv6 range: the normal answer"
    assert probe(None, targets)[:3] == [errno.ECONNREFUSED] * 3


def test_ipv4_rule_covers_its_mapped_ipv6_form(net, listeners, child_user):
    uid = uid_of(child_user)
    port = listeners.port("127.0.0.42")
    net.block(uid, ["127.0.0.0/30", "127.0.0.42"])
    assert probe(child_user, [(6, "tcp", "::ffff:127.0.0.42", port),
                              (6, "udp", "::ffff:127.0.0.2", 9)]) == [errno.EPERM, errno.EPERM]
    events = wait_for(lambda: (lambda v: v if len(v) == 2 else None)(
        [e for e in net.events() if e.uid == uid]), what="two records")
    # a mapped UDP send reaches the kernel's IPv4 path (udp_sendmsg), and so
    # the sendmsg4 hook: it is reported as IPv4
    assert [(e.daddr, e.family) for e in events] == \
        [("127.0.0.42", socket.AF_INET6), ("127.0.0.2", socket.AF_INET)]


def test_clearing_the_list_lets_the_child_through(net, listeners, child_user):
    uid = uid_of(child_user)
    port = listeners.port("127.0.0.42")
    net.block(uid, ["127.0.0.42"])
    assert probe(child_user, [(4, "tcp", "127.0.0.42", port)]) == [errno.EPERM]
    net.block(uid, [])
    assert probe(child_user, [(4, "tcp", "127.0.0.42", port)]) == [0]


def test_connect_eperm_latency(net, listeners, child_user):
    """How long a denied connect() takes, next to a refused one (no
    listener): the cost the child sees; printed, not asserted."""
    uid = uid_of(child_user)
    net.block(uid, ["127.0.0.42"])
    n = 2000

    def timed(addr: str) -> list[int]:
        done = run_as(child_user, [VENV_PYTHON, "-c", TIMED, addr, "9", str(n)])
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    denied, refused = timed("127.0.0.42"), timed("127.0.0.43")
    q = lambda v, p: sorted(v)[int(p / 100 * (len(v) - 1))] / 1000  # noqa: E731
    print(f"\nconnect() -> EPERM (blocked, n={n}): median {statistics.median(denied) / 1000:.1f} us, "
          f"p99 {q(denied, 99):.1f} us; connect() -> ECONNREFUSED (not blocked): median "
          f"{statistics.median(refused) / 1000:.1f} us, p99 {q(refused, 99):.1f} us")


# --- through the collector daemon --------------------------------------------------------------
@pytest.mark.bus
def test_set_blocked_addresses_on_the_bus(collector_daemon, bus_client, listeners, child_user,
                                          other_user):
    policyd = bus_client(POLICYD)
    uid = uid_of(child_user)
    port = listeners.port("127.0.0.42")
    reply = policyd.call(*DEST, "SetBlockedAddresses", "uas",
                         [uid, ["127.0.0.42", "10.1.2.3/8", "::1", "127.0.0.42"]])
    assert reply == {"ok": [["10.0.0.0/8", "127.0.0.42/32", "::1/128"]]}

    listener = policyd.listen("org.dots.Collector1", "org.dots.Collector1")
    assert probe(child_user, [(4, "tcp", "127.0.0.42", port)]) == [errno.EPERM]
    assert probe(other_user, [(4, "tcp", "127.0.0.42", port)]) == [0]
    event = listener.wait_until(
        lambda l: next((e for e in l.events("NetworkEvents") if e[0] == "connect_blocked"), None),
        what="connect_blocked in a NetworkEvents batch")
    listener.finish()
    assert event[1:5] == [event[1], uid, "python", socket.AF_INET]
    assert (event[6], event[8]) == ("127.0.0.42", port)

    state = policyd.call(*DEST, "GetEnforcement")["ok"][0]
    assert state["blocked_addresses"] == {str(uid): ["10.0.0.0/8", "127.0.0.42/32", "::1/128"]}
    assert state["connect_blocked"] >= 1

    for bad in (["not-an-address"], ["1.2.3.4/33"], ["::1/129"], ["10.0.0.1"] * 4097, [""]):
        reply = policyd.call(*DEST, "SetBlockedAddresses", "uas", [uid, bad])
        assert reply.get("error") == "org.dots.Collector1.Error.InvalidArgs", reply
    for bad_uid in (0, 4294967295):
        reply = policyd.call(*DEST, "SetBlockedAddresses", "uas", [bad_uid, ["10.0.0.1"]])
        assert reply.get("error") == "org.dots.Collector1.Error.InvalidArgs", reply
    assert policyd.call(*DEST, "GetEnforcement")["ok"][0]["blocked_addresses"] == \
        state["blocked_addresses"], "bad input changed nothing"
    assert probe(child_user, [(4, "tcp", "127.0.0.42", port)]) == [errno.EPERM]

    assert policyd.call(*DEST, "SetBlockedAddresses", "uas", [uid, []]) == {"ok": [[]]}
    assert probe(child_user, [(4, "tcp", "127.0.0.42", port)]) == [0]



def test_a_list_that_would_overflow_the_kernel_table_is_refused_whole(collector_daemon, child_user):
    """Refused with a named error before anything changes: no entry leaks."""
    import ipaddress

    from dots_collector.enforcers.net_block import MAX_BLOCKED_NETS

    def call(member, signature="", *args):
        return collector_daemon.root.call("org.dots.Collector1", "/org/dots/Collector1",
                                          "org.dots.Collector1", member, signature, list(args))

    chunk = [str(ipaddress.IPv6Address(0x20010DB8 << 96 | i)) for i in range(4000)]
    fillers = [70000 + n for n in range(MAX_BLOCKED_NETS // 4000)]
    try:
        for uid in fillers:
            assert "ok" in call("SetBlockedAddresses", "uas", uid, chunk)
        child = uid_of(child_user)
        reply = call("SetBlockedAddresses", "uas", child, chunk)
        assert reply.get("error") == "org.dots.Collector1.Error.InvalidArgs", reply
        assert "holds" in reply["message"]
        state = call("GetEnforcement")["ok"][0]
        assert str(child) not in {str(k) for k in state["blocked_addresses"]}
    finally:
        for uid in fillers:
            call("SetBlockedAddresses", "uas", uid, [])


@pytest.mark.bus
def test_web_filter_methods_on_the_bus(collector_daemon, bus_client, child_user):
    """SetWebFilter / AddFilterAddresses: bad input is InvalidArgs and
    changes nothing; GetEnforcement tells what is in force."""
    policyd = bus_client(POLICYD)
    uid = uid_of(child_user)
    assert policyd.call(*DEST, "SetWebFilter", "uqbb", [uid, 40053, False, True]) == {"ok": []}
    assert policyd.call(*DEST, "AddFilterAddresses", "usa(su)",
                        [uid, "allow", [["127.0.0.42", 60], ["::1", 30]]]) == {"ok": [2]}
    state = policyd.call(*DEST, "GetEnforcement")["ok"][0]
    assert state["web_filters"] == {str(uid): [40053, False, True]} or \
        state["web_filters"] == {uid: [40053, False, True]}
    for member, signature, args in (
            ("SetWebFilter", "uqbb", [0, 40053, False, False]),
            ("AddFilterAddresses", "usa(su)", [uid, "maybe", [["127.0.0.42", 60]]]),
            ("AddFilterAddresses", "usa(su)", [uid, "deny", [["not-an-address", 60]]]),
            ("AddFilterAddresses", "usa(su)", [uid, "deny", [["127.0.0.42", 0]]]),
            ("AddFilterAddresses", "usa(su)", [uid, "deny", [["127.0.0.42", 10**7]]]),
            ("AddFilterAddresses", "usa(su)", [uid, "deny", [["10.0.0.1", 60]] * 4097]),
            ("AddFilterAddresses", "usa(su)", [0, "deny", [["10.0.0.1", 60]]])):
        reply = policyd.call(*DEST, member, signature, args)
        assert reply.get("error") == "org.dots.Collector1.Error.InvalidArgs", (member, args, reply)
    assert policyd.call(*DEST, "GetEnforcement")["ok"][0]["web_filters"] == state["web_filters"]
    reply = policyd.call(*DEST, "ForgetFilterAddresses", "us", [uid, "everything"])
    assert reply.get("error") == "org.dots.Collector1.Error.InvalidArgs", reply
    assert policyd.call(*DEST, "ForgetFilterAddresses", "us", [uid, "allow"]) == {"ok": [2]}
    assert policyd.call(*DEST, "ForgetFilterAddresses", "us", [uid, "allow"]) == {"ok": [0]}
    assert policyd.call(*DEST, "SetWebFilter", "uqbb", [uid, 0, False, False]) == {"ok": []}
    assert policyd.call(*DEST, "GetEnforcement")["ok"][0]["web_filters"] == {}
