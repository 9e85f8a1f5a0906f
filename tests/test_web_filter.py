"""Web filtering on the real kernel, as a real child: the child's DNS is
redirected to the filter whatever server it asks (UDP, TCP, IPv4, IPv6),
blocked domains and every name under them answer NXDOMAIN and their
addresses are refused (a changed address too), DNS over TLS and known
DoH endpoints are refused, QUIC to a blocked address is refused, internet
hours and the site allow-list hold. Local DNS servers on loopback stand in
for the internet: the system's resolver (the filter's upstream) and
another one the child asks directly. Other users are untouched.

The enforcer and the filter run in the test process (the daemons' wiring
is tested in test_web_daemon.py). "Local" (never offline, never outside
the allow-list) is narrowed to 127.0.0.1 and ::1 here, so that other
loopback addresses can stand in for sites on the internet."""

from __future__ import annotations

import asyncio
import errno
import socket
import threading
from collections.abc import Iterator

import pytest

from dots_policyd.dns_filter import ChildFilter, DnsFilter
from dots_policyd.domains import DomainSet
from tests.dns_servers import DnsServer, FakeZone
from tests.helpers import VENV_PYTHON, run_as, uid_of, wait_for
from tests.net_probe import probe

pytestmark = pytest.mark.bpf

SYSTEM_DNS, DIRECT_DNS = "127.0.77.1", "127.0.77.2"
BLOCKED, MOVED, CDN, FREE, TYPED, DOT, DOH = ("127.0.0.42", "127.0.0.44", "127.0.0.45",
                                              "127.0.0.43", "127.0.0.48", "127.0.0.46",
                                              "127.0.0.47")
RECORDS = {"blocked.test": [BLOCKED, "fd00:dead::42"], "www.blocked.test": [BLOCKED],
           "m.blocked.test": [BLOCKED], "cdn.blocked.test": [CDN], "free.test": [FREE],
           "casino.test": [BLOCKED], "sub.free.test": [FREE]}

class Web:
    """The enforcer, the filter (its own event loop thread), the two
    resolvers and root's TCP listeners on the sites' addresses."""

    def __init__(self) -> None:
        from dots_collector.enforcers.net_block import NetEnforcer

        self.zone = FakeZone(RECORDS, ttl=600, cnames={"alias.free.test": "cdn.blocked.test"})
        self.system = DnsServer(SYSTEM_DNS, self.zone)
        self.direct = DnsServer(DIRECT_DNS, self.zone)
        self.enforcer = NetEnforcer(local_nets=("127.0.0.1/32", "::1/128"))
        self.enforcer.load()
        self.records: list = []
        self.enforcer.open(self.records.append)
        self.lookups: list[tuple[int, str, bool]] = []
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.filter = DnsFilter([(SYSTEM_DNS, 53)], self._add,
                                lambda uid, name, blocked: self.lookups.append((uid, name, blocked)))
        self.listeners: dict[str, socket.socket] = {}
        self.port = 0

    async def _add(self, uid: int, kind: str, entries: list[tuple[str, int]]) -> None:
        self.enforcer.add_addresses(uid, kind, entries)

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def listen(self, addr: str, port: int = 0) -> int:
        """A listener of root on addr (port 0: the shared port)."""
        s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port or self.port))
        s.listen(64)
        self.port = self.port or s.getsockname()[1]
        self.listeners[f"{addr}:{port}"] = s
        return s.getsockname()[1]

    def child(self, uid: int, child: ChildFilter) -> int:
        port = self.run(self.filter.serve(uid))
        self.filter.set_filter(uid, child)
        self.enforcer.set_web_filter(uid, port, child.offline, child.allow_only)
        return port

    def clear(self, uid: int) -> None:
        self.enforcer.set_web_filter(uid, 0, False, False)
        self.enforcer.set_blocked(uid, [])
        self.run(self.filter.stop(uid))

    def close(self) -> None:
        self.run(self.filter.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.enforcer.close()
        self.system.close()
        self.direct.close()
        for s in self.listeners.values():
            s.close()


@pytest.fixture(scope="module")
def web_env() -> Iterator[Web]:
    web = Web()
    for addr in (BLOCKED, MOVED, CDN, FREE, TYPED, "127.0.0.1"):
        web.listen(addr)
    yield web
    web.close()


@pytest.fixture
def web(web_env, child_user, other_user) -> Iterator[Web]:
    web_env.zone.records = dict(RECORDS)
    yield web_env
    for user in (child_user, other_user):
        web_env.clear(uid_of(user))
    web_env.lookups.clear()


def blocked_filter(**kw) -> ChildFilter:
    return ChildFilter(blocked=frozenset({"blocked.test"}), **kw)


def test_the_childs_dns_goes_through_the_filter_whatever_server_it_asks(web, child_user, other_user):
    uid = uid_of(child_user)
    web.child(uid, blocked_filter())
    steps = [["dns", DIRECT_DNS, 53, "blocked.test", "A", "udp"],
             ["dns", DIRECT_DNS, 53, "m.blocked.test", "A", "udp"],
             ["dns", DIRECT_DNS, 53, "cdn.blocked.test", "A", "tcp"],
             ["dns", "::1", 53, "www.blocked.test", "A", "udp"],
             ["dns", "127.0.0.9", 53, "blocked.test", "AAAA", "tcp"],
             ["dns", DIRECT_DNS, 53, "free.test", "A", "udp"],
             ["dns", "::1", 53, "free.test", "A", "tcp"],
             ["dns", DIRECT_DNS, 53, "use-application-dns.net", "A", "udp"]]
    got = probe(child_user, steps)
    assert got[:5] == [["NXDOMAIN", []]] * 5, "a blocked domain and every name under it, " \
        "whichever server (even one that does not exist), UDP or TCP, IPv4 or IPv6"
    assert got[5:7] == [["NOERROR", [FREE]]] * 2, "the rest resolves, with the source the " \
        "child asked (dnspython drops a reply from another address)"
    assert got[7] == ["NXDOMAIN", []], "the browsers' DoH canary"
    # another user asks the same server and gets the real answers
    assert probe(other_user, steps[:3]) == [["NOERROR", [BLOCKED]], ["NOERROR", [BLOCKED]],
                                            ["NOERROR", [CDN]]]
    assert probe(child_user, [["peer", DIRECT_DNS, 53], ["peer", "::1", 53]]) == \
        [[DIRECT_DNS, 53], ["::1", 53]], "a redirected TCP connection names the server asked"
    assert (uid, "m.blocked.test", True) in web.lookups and (uid, "free.test", False) in web.lookups
    assert not any(u == uid_of(other_user) for u, _, _ in web.lookups)
    assert web.enforcer.redirected >= 7


def test_the_blocked_sites_addresses_are_refused_even_when_they_change(web, child_user, other_user):
    uid = uid_of(child_user)
    web.child(uid, blocked_filter())
    port = web.port
    assert probe(child_user, [["dns", DIRECT_DNS, 53, "blocked.test", "A", "udp"],
                              ["tcp", BLOCKED, port], ["tcp", FREE, port]]) == \
        [["NXDOMAIN", []], errno.EPERM, 0], "the address the filter looked up is refused"
    assert "127.0.0.42" in web.enforcer.dyn_entries(uid, "deny")
    assert 500 < web.enforcer.dyn_entries(uid, "deny")[BLOCKED] <= 600, "with its TTL"
    # the site moves; the child looks it up (any server, any name under it)
    web.zone.records["blocked.test"] = [MOVED]
    web.zone.records["m.blocked.test"] = [MOVED]
    assert probe(child_user, [["dns", "127.0.0.200", 53, "m.blocked.test", "A", "tcp"],
                              ["tcp", MOVED, port], ["tcp", BLOCKED, port]]) == \
        [["NXDOMAIN", []], errno.EPERM, errno.EPERM]
    # a CNAME into the blocked domain, and QUIC (UDP 443) to its address
    assert probe(child_user, [["dns", DIRECT_DNS, 53, "alias.free.test", "A", "udp"],
                              ["tcp", CDN, port], ["udp", BLOCKED, 443],
                              ["udp-connect", MOVED, 443]]) == \
        [["NXDOMAIN", []], errno.EPERM, errno.EPERM, errno.EPERM]
    assert probe(child_user, [["tfo", BLOCKED, port], ["tfo", "::ffff:" + MOVED, port]]) == \
        [errno.EPERM, errno.EPERM], "TCP fast open connects inside sendto()"
    steps = [["tcp", BLOCKED, port], ["tcp", MOVED, port], ["tcp", CDN, port], ["udp", BLOCKED, 443],
             ["tfo", BLOCKED, port]]
    assert probe(other_user, steps) == [0] * 5, "the parent (another user) can"
    assert probe(None, steps) == [0] * 5, "root can"
    event = wait_for(lambda: next((e for e in (web.enforcer.consume() or web.records)
                                   if e.uid == uid and e.daddr == MOVED), None),
                     what="a connect_blocked record")
    assert event.type == "connect_blocked"


def test_encrypted_dns_is_closed(web, child_user, other_user):
    from dots_collector.enforcers import validate
    from dots_policyd.doh import parse_endpoints

    uid = uid_of(child_user)
    hosts, networks = parse_endpoints(f"doh.test\n{DOH}\n# comment\n")
    web.child(uid, ChildFilter(blocked=frozenset(hosts)))
    web.enforcer.set_blocked(uid, validate.networks(networks))
    dot = web.listen(DOT, 853)
    doh = web.listen(DOH, 443)
    steps = [["tcp", DOT, dot], ["udp", DOT, 853], ["tcp", DOH, doh], ["udp", DOH, 443],
             ["tcp", "::1", 853], ["dns", DIRECT_DNS, 53, "doh.test", "A", "udp"],
             ["dns", DIRECT_DNS, 53, "use-application-dns.net", "A", "tcp"]]
    assert probe(child_user, steps) == [errno.EPERM] * 5 + [["NXDOMAIN", []]] * 2
    other = probe(other_user, steps[:4])
    assert other == [0, 0, 0, 0], "another user may use DoT and DoH"


def test_internet_hours(web, child_user, other_user):
    """Offline: every non-local connection and every DNS answer refused,
    local services and apps without network keep working. The non-local
    target is TEST-NET-1 over UDP connect(): nothing is sent either way."""
    uid = uid_of(child_user)
    web.child(uid, blocked_filter(offline=True))
    port = web.port
    steps = [["udp-connect", "192.0.2.1", 443], ["tcp", FREE, port],
             ["dns", DIRECT_DNS, 53, "free.test", "A", "udp"], ["tcp", "127.0.0.1", port],
             ["tcp", "::1", 9]]
    got = probe(child_user, steps)
    assert got[:3] == [errno.EPERM, errno.EPERM, ["REFUSED", []]]
    assert got[3] == 0 and got[4] == errno.ECONNREFUSED, "this machine is still reachable"
    other = probe(other_user, steps[:3])
    assert other[1:] == [0, ["NOERROR", [FREE]]] and other[0] in (0, errno.ENETUNREACH)
    done = run_as(child_user, [VENV_PYTHON, "-c", "print(sum(range(10)))"])
    assert done.stdout.strip() == "45", "apps without network keep working"
    # back online
    web.child(uid, blocked_filter(offline=False))
    assert probe(child_user, steps[1:3]) == [0, ["NOERROR", [FREE]]]


def test_site_allow_list(web, child_user, other_user):
    uid = uid_of(child_user)
    web.child(uid, ChildFilter(allow_only=True, allowed=frozenset({"free.test"})))
    port = web.port
    got = probe(child_user, [["tcp", FREE, port],
                             ["dns", DIRECT_DNS, 53, "sub.free.test", "A", "udp"],
                             ["tcp", FREE, port], ["tcp", TYPED, port],
                             ["dns", DIRECT_DNS, 53, "casino.test", "A", "tcp"], ["tcp", BLOCKED, port],
                             ["tcp", "127.0.0.1", port]])
    assert got == [errno.EPERM, ["NOERROR", [FREE]], 0, errno.EPERM, ["NXDOMAIN", []],
                   errno.EPERM, 0], "only addresses answered for an allowed name"
    assert 290 < web.enforcer.dyn_entries(uid, "allow")[FREE] <= 600
    assert probe(other_user, [["tcp", TYPED, port], ["tcp", BLOCKED, port]]) == [0, 0]
    web.child(uid, ChildFilter())  # allow-list mode off: the allow entries go
    web.enforcer.set_web_filter(uid, web.filter.ports[uid], False, False)
    assert web.enforcer.dyn_entries(uid, "allow") == {}
    assert probe(child_user, [["tcp", TYPED, port]]) == [0]


def test_category_list_blocks_its_domains(web, child_user):
    uid = uid_of(child_user)
    web.child(uid, ChildFilter(categories=(DomainSet(["casino.test", "poker.example"]),)))
    port = web.port
    assert probe(child_user, [["dns", DIRECT_DNS, 53, "casino.test", "A", "udp"],
                              ["tcp", BLOCKED, port],
                              ["dns", DIRECT_DNS, 53, "free.test", "A", "udp"]]) == \
        [["NXDOMAIN", []], errno.EPERM, ["NOERROR", [FREE]]]


def test_the_child_cannot_squat_the_filters_port(web, child_user, other_user):
    uid = uid_of(child_user)
    dns_port = web.child(uid, blocked_filter())
    web.run(web.filter.stop(uid))  # the daemon restarts: its port is free for a moment
    code = ("import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            "try:\n s.bind(('127.0.0.1',int(sys.argv[1])));print(0)\n"
            "except OSError as e:\n print(e.errno)\n")
    assert run_as(child_user, [VENV_PYTHON, "-c", code, str(dns_port)]).stdout.strip() == \
        str(errno.EPERM)
    assert run_as(other_user, [VENV_PYTHON, "-c", code, str(dns_port)]).stdout.strip() == "0"
    # with the filter gone, the child's DNS fails closed
    assert probe(child_user, [["dns", DIRECT_DNS, 53, "free.test", "A", "udp"]])[0][0] != "NOERROR"


def test_a_child_cannot_ask_another_childs_filter(web, child_user, other_user):
    """Each child's filter answers by its port: a child with strict rules
    must not query a sibling's (found with ss) instead of being redirected."""
    strict, lenient = uid_of(child_user), uid_of(other_user)
    web.child(strict, blocked_filter())
    sibling_port = web.child(lenient, ChildFilter())
    got = probe(child_user, [["dns", "127.0.0.1", sibling_port, "blocked.test", "A", "udp"],
                             ["dns", "::1", sibling_port, "blocked.test", "A", "tcp"],
                             ["dns", DIRECT_DNS, 53, "blocked.test", "A", "udp"]])
    assert got[0][0].startswith("error") and got[1][0].startswith("error")
    assert got[2] == ["NXDOMAIN", []]
    assert probe(other_user, [["dns", "127.0.0.1", sibling_port, "blocked.test", "A", "udp"]]) \
        == [["NOERROR", [BLOCKED]]], "its own filter answers it"
