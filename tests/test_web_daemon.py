"""The web filter end to end: the collector (root) and dots-policyd (its own
user, forwarding to a local "system" resolver) on a private bus, a parent
making real Family1 calls, a real child. No component is called directly.
Local DNS servers stand in for the internet (tests/dns_servers.py)."""

from __future__ import annotations

import datetime as dt
import errno
import http.server
import pwd
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dots_common.names import POLICYD_USER
from tests.dns_servers import DnsServer, FakeZone
from tests.fixtures.policyd import PolicyDaemon
from tests.helpers import uid_of, wait_for
from tests.net_probe import probe
from tests.test_enforcement_e2e import child  # noqa: F401 (a fixture)
from tests.test_web_filter import BLOCKED, DIRECT_DNS, FREE, RECORDS, SYSTEM_DNS

pytestmark = [pytest.mark.bpf, pytest.mark.bus]


@pytest.fixture(scope="module")
def resolvers() -> Iterator[FakeZone]:
    zone = FakeZone(RECORDS, ttl=600)
    servers = [DnsServer(SYSTEM_DNS, zone), DnsServer(DIRECT_DNS, zone)]
    yield zone
    for s in servers:
        s.close()


@pytest.fixture(scope="module")
def policyd_daemon(system_bus, polkit_daemon, resolvers) -> Iterator[PolicyDaemon]:
    """The daemon's filter forwards to the local "system" resolver."""
    workdir = Path(tempfile.mkdtemp(prefix="dots-policyd-web-"))
    pw = pwd.getpwnam(POLICYD_USER)
    shutil.chown(workdir, pw.pw_uid, pw.pw_gid)
    workdir.chmod(0o700)
    daemon = PolicyDaemon(system_bus, workdir, extra=("--dns-upstream", f"{SYSTEM_DNS}:53"))
    yield daemon
    if daemon.process is not None:
        assert daemon.stop() == 0, daemon.log()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def site():
    """root's TCP listener on the blocked and the free site's addresses."""
    import socket

    socks = []
    port = 0
    for addr in (BLOCKED, FREE):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(64)
        port = s.getsockname()[1]
        socks.append(s)
    yield port
    for s in socks:
        s.close()


@pytest.fixture
def web_child(child, collector_daemon, child_user):
    """The child (added by a parent), once its DNS is redirected."""
    wait_for(lambda: str(uid_of(child_user)) in {str(u) for u in _web(collector_daemon)},
             timeout=30, what="the child's DNS to be redirected")
    return child


def _web(collector) -> dict:
    reply = collector.root.call("org.dots.Collector1", "/org/dots/Collector1",
                                "org.dots.Collector1", "GetEnforcement", "", [])
    return reply["ok"][0]["web_filters"]


def test_blocked_domain_through_the_daemons(web_child, child_user, other_user, site, collector_daemon):
    parent = web_child
    parent.ok("BlockSite", "ss", child_user, "blocked.test")
    steps = [["dns", DIRECT_DNS, 53, "m.blocked.test", "A", "udp"], ["tcp", BLOCKED, site],
             ["dns", DIRECT_DNS, 53, "free.test", "A", "tcp"], ["tcp", FREE, site]]
    wait_for(lambda: probe(child_user, steps) == [["NXDOMAIN", []], errno.EPERM,
                                                  ["NOERROR", [FREE]], 0],
             timeout=30, what="the child's DNS filtered and the site refused")
    assert probe(other_user, steps) == [["NOERROR", [BLOCKED]], 0, ["NOERROR", [FREE]], 0]

    # the report shows the site by name and the blocked attempt
    today = dt.date.today().isoformat()
    report = wait_for(lambda: (r := parent.ok("GetSiteReport", "sssu", child_user, today, today,
                                              10)) and r[1] and r, timeout=30,
                      what="the lookups in the report")
    sites, blocked = report
    assert any(s[0] == "blocked.test" and s[2] >= 1 for s in sites), sites
    assert any(s[0] == "free.test" and s[2] == 0 for s in sites), sites
    assert blocked[0][0] == "m.blocked.test" and blocked[0][1] >= 1
    assert abs(time.time() - blocked[0][2]) < 600, "the minute of the attempt, as Unix time"

    # unblocked: the addresses the filter had refused are free at once (not after their TTL)
    parent.ok("UnblockSite", "ss", child_user, "blocked.test")
    wait_for(lambda: probe(child_user, steps[:2]) == [["NOERROR", [BLOCKED]], 0], timeout=30,
             what="the unblocked site reachable again")


def test_category_list_from_a_file_and_a_url(web_child, child_user, site, family_client, other_user):
    parent = web_child
    version, count = parent.ok("AddSiteList", "ssays", child_user, "gambling",
                               list(b"# casinos\n0.0.0.0 casino.test\n||poker.example^\n"), "")
    assert count == 2
    wait_for(lambda: probe(child_user, [["dns", DIRECT_DNS, 53, "www.casino.test", "A", "udp"]])
             == [["NXDOMAIN", []]], timeout=30, what="the category blocked")
    lists = parent.ok("ListSiteLists", "")[0]
    assert [(name, n, source) for name, n, _, source in lists] == [("gambling", 2, "file")]

    # bad input: a named error, and nothing changes
    for data, url in ((b"\x00\x01binary", ""), (b"good.test\nnot a domain line\n", ""),
                      (b"", "ftp://lists.example/x"), (b"", "not a url"), (b"", "")):
        reply = parent.call("AddSiteList", "ssays", child_user, "gambling", list(data), url)
        assert reply.get("error") == "org.dots.Family1.Error.InvalidSiteList", reply
    assert parent.ok("ListSiteLists", "")[0][0][1] == 2
    reply = parent.call("AddSiteList", "ssays", child_user, "Bad Name", list(b"x.test\n"), "")
    assert reply.get("error") == "org.dots.Family1.Error.InvalidArgs", reply
    assert family_client(other_user).call("AddSiteList", "ssays", child_user, "x", list(b"x.test\n"),
                                          "").get("error") == "org.dots.Family1.Error.NotAuthorized"

    # from a URL served on loopback; updated from it again
    served = {"body": b"||bets.test^\n"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(served["body"])

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/list.txt"
        assert parent.ok("AddSiteList", "ssays", child_user, "betting", [], url)[1] == 1
        served["body"] = b"||bets.test^\n||odds.test^\n"
        assert parent.ok("UpdateSiteList", "say", "betting", []) == [2]
        wait_for(lambda: probe(child_user, [["dns", DIRECT_DNS, 53, "odds.test", "A", "udp"]])
                 == [["NXDOMAIN", []]], timeout=30, what="the updated list in force")
    finally:
        httpd.shutdown()
    parent.ok("RemoveSiteList", "ss", child_user, "betting")
    parent.ok("RemoveSiteList", "ss", child_user, "gambling")
    assert parent.ok("ListSiteLists", "")[0] == []


def test_internet_hours_and_site_allow_list(web_child, child_user, site):
    parent = web_child
    now = dt.datetime.now()
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[now.weekday()]
    parent.ok("SetInternetHours", "sasas", child_user, [day], [])  # no network today
    wait_for(lambda: probe(child_user, [["udp-connect", "192.0.2.1", 443],
                                        ["dns", DIRECT_DNS, 53, "free.test", "A", "udp"]])
             == [errno.EPERM, ["REFUSED", []]], timeout=30, what="offline")
    parent.ok("ClearInternetHours", "sas", child_user, [day])
    wait_for(lambda: probe(child_user, [["dns", DIRECT_DNS, 53, "free.test", "A", "udp"]])
             == [["NOERROR", [FREE]]], timeout=30, what="online again")

    reply = parent.call("SetSiteAllowList", "sbasas", child_user, True, ["bad domain!"], [])
    assert reply.get("error") in ("org.dots.Family1.Error.InvalidPolicy",
                                  "org.dots.Family1.Error.InvalidArgs"), reply
    parent.ok("SetSiteAllowList", "sbasas", child_user, True, ["free.test"], [])
    wait_for(lambda: probe(child_user, [["dns", DIRECT_DNS, 53, "casino.test", "A", "udp"]])
             == [["NXDOMAIN", []]], timeout=30, what="allow-list mode")
    assert probe(child_user, [["dns", DIRECT_DNS, 53, "free.test", "A", "udp"],
                              ["tcp", FREE, site]]) == [["NOERROR", [FREE]], 0]
    parent.ok("SetSiteAllowList", "sbasas", child_user, False, [], [])
