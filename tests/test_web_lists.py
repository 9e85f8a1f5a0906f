"""The web filter's pieces without the kernel: list formats and their
errors, domain matching with subdomains, the category store (a bad list
changes nothing), the policy's web fields, DoH endpoints, the filter's
decisions (blocked, CNAME into a blocked name, allow-list, offline, the
canary) against a local resolver, and the lookups history."""

from __future__ import annotations

import asyncio
import datetime as dt

import dns.message
import dns.rcode
import dns.rrset
import pytest

from dots_policyd.categories import CategoryError, CategoryStore
from dots_policyd.dns_filter import ChildFilter, DnsFilter, parse_upstreams
from dots_policyd.doh import builtin, parse_endpoints
from dots_policyd.domains import DomainSet, ListError, parse_list, suffixes
from dots_policyd.policy import (
    Policy,
    PolicyError,
    block_category,
    set_internet_hours,
    set_site_allow_list,
)
from dots_policyd.site_history import LookupRecorder, blocked_attempts, site_of, top_sites
from tests.dns_servers import DnsServer, FakeZone


def test_every_list_format():
    data = (b"\xef\xbb\xbf# a hosts file\n127.0.0.1 localhost\n0.0.0.0 Ads.Example tracker.test # x\n"
            b"! adblock\n[Adblock Plus 2.0]\n||bets.example^\n||bets.example^$third-party\n"
            b"||cdn.example/ads.js\n@@||good.example^\nexample.org##.banner\n"
            b"plain.example.\n\xc3\xa9cole.example\n\n")
    assert parse_list(data) == ["ads.example", "tracker.test", "bets.example", "bets.example",
                                "plain.example", "xn--cole-9oa.example"]


@pytest.mark.parametrize("data, words", [
    (b"a.example\n\x00\x01\x02", "not text"),
    (b"\xff\xfe\x00", "not text"),
    (b"caf\xe9.example\n", "not UTF-8"),
    (b"# nothing\n\n", "no domain names"),
    (b"good.example\nthis is not a domain\n", "line 2"),
    (b"0.0.0.0 bad..example\n", "line 1"),
    (b"-x-.example\n", "not a valid domain name"),
    (b"<html><body>404</body></html>\n", "line 1"),
])
def test_bad_lists_get_a_named_error(data, words):
    with pytest.raises(ListError, match=words):
        parse_list(data)


def test_domain_set_matches_subdomains_only():
    ds = DomainSet(["example.com", "bets.test"])
    assert ds.match("example.com") and ds.match("a.b.example.com") and ds.match("bets.test")
    assert not ds.match("notexample.com") and not ds.match("com") and not ds.match("test")
    assert len(ds) == 2 and ds.nbytes() == 16 + 2 * 1024 * 1024
    assert suffixes("a.b.c") == ["a.b.c", "b.c", "c"]


def test_category_store_keeps_the_old_list_on_bad_input(tmp_path):
    store = CategoryStore(tmp_path)
    assert store.put("gambling", b"casino.example\n||poker.example^\n")["domains"] == 2
    for data, url in ((b"bad line here\n", ""), (b"\x00", ""), (None, "ftp://x.example/l"),
                      (None, "no url"), (None, "")):
        with pytest.raises(CategoryError):
            store.put("gambling", data, url)
    assert store.info("gambling")["domains"] == 2
    assert store.domain_set("gambling").match("www.casino.example")
    with pytest.raises(CategoryError, match="came from a file"):
        store.update("gambling")
    with pytest.raises(CategoryError, match="category"):
        store.put("Not A Name", b"x.example\n")
    assert [i["name"] for i in store.all()] == ["gambling"]
    assert not list(tmp_path.glob(".tmp-*")), "no temporary file left behind"
    store.remove("gambling")
    assert store.all() == [] and len(store.domain_set("gambling")) == 0


def test_policy_web_fields():
    p = block_category(Policy(), "gambling")
    p = set_site_allow_list(p, True, ["Kids.Example."])
    p = set_internet_hours(p, ["weekdays"], ["16:00-19:00"])
    assert (p.blocked_categories, p.allowed_sites) == (["gambling"], ["kids.example"])
    monday = dt.datetime(2026, 11, 30)
    assert p.online_at(monday.replace(hour=17)) and not p.online_at(monday.replace(hour=20))
    assert p.online_at(dt.datetime(2026, 11, 29, 23)), "a day not listed: no restriction"
    assert not set_internet_hours(p, ["sun"], []).online_at(dt.datetime(2026, 11, 29, 12))
    for bad in (lambda: block_category(p, "Bad Name"), lambda: set_site_allow_list(p, True, ["a b"]),
                lambda: set_site_allow_list(Policy(), True, []),
                lambda: set_internet_hours(p, ["mon"], ["19:00-18:00"])):
        with pytest.raises(PolicyError):
            bad()
    assert Policy.from_json(p.to_json()) == p


def test_doh_endpoints():
    hosts, networks = builtin()
    assert "dns.google" in hosts and "8.8.8.8/32" in networks and "2606:4700:4700::1111/128" in networks
    assert parse_endpoints("doh.example # mine\n192.0.2.0/24\n") == (["doh.example"], ["192.0.2.0/24"])
    with pytest.raises(ListError, match="line 2"):
        parse_endpoints("ok.example\nnot valid!\n")


def test_upstreams():
    assert parse_upstreams("127.0.0.1:5300, [::1]:53,10.0.0.1") == \
        [("127.0.0.1", 5300), ("::1", 53), ("10.0.0.1", 53)]
    for bad in ("dns.example", "127.0.0.1:x", "127.0.0.1:70000", "[::1]:0"):
        with pytest.raises(ValueError, match="DNS upstream"):
            parse_upstreams(bad)


@pytest.fixture(scope="module")
def upstream():
    zone = FakeZone({"site.test": ["127.0.0.50"], "cdn.bad.test": ["127.0.0.51", "fd00::51"]},
                    ttl=30, cnames={"alias.site.test": "cdn.bad.test"})
    server = DnsServer("127.0.79.1", zone, port=0)
    yield server
    server.close()


def _ask(upstream, child: ChildFilter, name: str, rdtype: str = "A"):
    added: list = []
    lookups: list = []

    async def add(uid, kind, entries):
        added.append((kind, sorted(entries)))

    async def run():
        f = DnsFilter([("127.0.79.1", upstream.port)], add, lambda *a: lookups.append(a))
        f.set_filter(7, child)
        return await f.answer(7, dns.message.make_query(name, rdtype).to_wire())

    reply = dns.message.from_wire(asyncio.run(run()))
    return dns.rcode.to_text(reply.rcode()), added, lookups


def test_filter_decisions(upstream):
    blocked = ChildFilter(blocked=frozenset({"bad.test"}))
    assert _ask(upstream, blocked, "site.test") == ("NOERROR", [], [(7, "site.test", False)])
    rcode, added, lookups = _ask(upstream, blocked, "cdn.bad.test")
    assert rcode == "NXDOMAIN" and lookups == [(7, "cdn.bad.test", True)]
    assert added == [("deny", [("127.0.0.51", 300), ("fd00::51", 300)])], \
        "both families, TTL raised to the minimum"
    rcode, added, _ = _ask(upstream, blocked, "alias.site.test")
    assert rcode == "NXDOMAIN" and added == [("deny", [("127.0.0.51", 300)])], "CNAME into a blocked name"
    assert _ask(upstream, ChildFilter(), "use-application-dns.net")[0] == "NXDOMAIN"
    assert _ask(upstream, ChildFilter(offline=True), "site.test")[0] == "REFUSED"
    allow = ChildFilter(allow_only=True, allowed=frozenset({"site.test"}))
    assert _ask(upstream, allow, "site.test")[:2] == ("NOERROR", [("allow", [("127.0.0.50", 300)])])
    assert _ask(upstream, allow, "other.test")[:2] == ("NXDOMAIN", []), \
        "not allowed: no deny entries (a CDN address may also serve an allowed site)"
    assert _ask(upstream, allow, "alias.site.test")[:2] == \
        ("NOERROR", [("allow", [("127.0.0.51", 300)])]), "an allowed name's CNAME to a CDN"
    cats = ChildFilter(categories=(DomainSet(["bad.test"]),))
    assert _ask(upstream, cats, "cdn.bad.test")[0] == "NXDOMAIN"


def test_filter_drops_what_is_not_a_query(upstream):
    async def run():
        f = DnsFilter([("127.0.79.1", upstream.port)], lambda *a: None)
        reply = dns.message.make_response(dns.message.make_query("x.test", "A")).to_wire()
        return [await f.answer(1, b"garbage"), await f.answer(1, reply)]

    assert asyncio.run(run()) == [None, None]


def test_lookups_history(db):
    rec = LookupRecorder(db)
    when = dt.datetime(2025, 3, 5, 10, 0, 30)
    for name, blocked in (("www.wikipedia.org", False), ("en.wikipedia.org", False),
                          ("www.wikipedia.org", False), ("m.casino.example", True)):
        rec.record(1001, name, blocked, when)
    rec.record(1002, "other.example", False, when)
    assert rec.flush() == 4 and rec.flush() == 0
    lo, hi = dt.datetime(2025, 3, 5), dt.datetime(2025, 3, 6)
    sites = top_sites(db, 1001, lo, hi)
    assert [(s.site, s.lookups, s.blocked) for s in sites] == [("wikipedia.org", 3, 0),
                                                               ("casino.example", 1, 1)]
    attempts = blocked_attempts(db, 1001, lo, hi)
    assert [(a.name, a.count) for a in attempts] == [("m.casino.example", 1)]
    assert attempts[0].last == dt.datetime(2025, 3, 5, 10, 0)
    assert site_of("news.bbc.co.uk") == "bbc.co.uk" and site_of("i.ytimg.com") == "ytimg.com"

    from dots_policyd import history

    deleted = history.prune(db, 30, now=dt.datetime(2025, 5, 1))
    assert deleted["site_lookup"] == 4 and top_sites(db, 1001, lo, hi) == []


def test_answer_cache_counts_ttls_down():
    from dots_policyd.dns_cache import AnswerCache

    now = [100.0]
    cache = AnswerCache(size=2, clock=lambda: now[0])
    query = dns.message.make_query("site.test", "A")
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text("site.test.", 60, "IN", "A", "127.0.0.50"))
    cache.put(query, response)
    now[0] += 15
    again = dns.message.make_query("SITE.test", "A")
    hit = cache.get(again)
    assert hit.id == again.id and hit.answer[0].ttl == 45
    now[0] += 50
    assert cache.get(again) is None, "expired"
    nx = dns.message.make_response(query)
    nx.set_rcode(dns.rcode.NXDOMAIN)
    cache.put(query, nx)
    assert cache.get(query) is None, "only positive answers are kept"


def test_doh_networks_join_every_childs_rules():
    from dots_policyd.policy import block_site
    from dots_policyd.rules import rules_for

    policy = block_site(Policy(), "192.0.2.7")
    rules = rules_for(policy, {}, (), ["8.8.8.8/32", "2606:4700:4700::1111/128"])
    assert set(rules.blocked_networks) == {"192.0.2.7/32", "8.8.8.8/32", "2606:4700:4700::1111/128"}


def test_a_flood_of_names_is_counted_not_stored_one_by_one(db):
    from dots_policyd.site_history import MAX_NAMES_PER_MINUTE, OTHER

    rec = LookupRecorder(db)
    when = dt.datetime(2025, 3, 5, 10, 0)
    for i in range(MAX_NAMES_PER_MINUTE + 500):
        rec.record(1001, f"r{i}.random.example", False, when)
    rec.record(1001, "r0.random.example", False, when)  # a name already seen still counts as itself
    assert rec.flush() == MAX_NAMES_PER_MINUTE + 1
    sites = top_sites(db, 1001, dt.datetime(2025, 3, 5), dt.datetime(2025, 3, 6))
    assert sites[0].site == "random.example" and sites[0].lookups == MAX_NAMES_PER_MINUTE + 1
    assert any(s.site == site_of(OTHER) and s.lookups == 500 for s in sites)
