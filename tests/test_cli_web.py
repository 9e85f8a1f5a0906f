"""dotsctl's web-filtering commands against the real policy daemon, as a
real parent: category lists from a file (named one-line errors for bad
ones, nothing changed), the site allow-list, internet hours, DoH entries,
and the child's blocked sites still listed by ``site list CHILD``."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile

import pytest

from tests.test_cli import ctl, kid, ok, ok_json, one_line_error  # noqa: F401 (kid: a fixture)

pytestmark = pytest.mark.bus


@pytest.fixture
def lists_dir(parent_user):
    folder = tempfile.mkdtemp(prefix="dots-lists-")
    pw = pwd.getpwnam(parent_user)
    shutil.chown(folder, pw.pw_uid, pw.pw_gid)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _file(folder: str, name: str, data: bytes, owner: str) -> str:
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(data)
    pw = pwd.getpwnam(owner)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


def test_site_lists(kid, parent_user, lists_dir):  # noqa: F811
    good = _file(lists_dir, "gambling.txt", b"0.0.0.0 casino.example\n||poker.example^\n", parent_user)
    out = ok(parent_user, "site", "list", "add", kid, "gambling", good)
    assert out.startswith("gambling: 2 domains, blocked for")
    shown = ok_json(parent_user, "site", "list", "show")
    assert [(r["category"], r["domains"], r["source"]) for r in shown] == [("gambling", 2, "file")]
    assert ok_json(parent_user, "policy", "show", kid)["blocked_categories"] == ["gambling"]

    bad = _file(lists_dir, "bad.txt", b"casino.example\nthis is not a list line\n", parent_user)
    binary = _file(lists_dir, "bin.dat", bytes(range(256)), parent_user)
    for source, words, code in ((bad, "line 2", 1), (binary, "not text", 1),
                                ("ftp://lists.example/x", "only http:// and https://", 2)):
        line = one_line_error(ctl(parent_user, "site", "list", "add", kid, "gambling", source), code)
        assert line.startswith("dotsctl: ") and words in line, line
    assert ok_json(parent_user, "site", "list", "show")[0]["domains"] == 2, "nothing changed"

    ok(parent_user, "site", "block", kid, "games.example")
    assert "games.example" in ok(parent_user, "site", "list", kid)
    assert ok_json(parent_user, "site", "list", kid) == ["games.example"]

    ok(parent_user, "site", "list", "remove", kid, "gambling")
    assert ok_json(parent_user, "site", "list", "show") == []


def test_allow_list_hours_and_doh(kid, parent_user):  # noqa: F811
    ok(parent_user, "site", "allow-list", kid, "on", "--add", "kids.example", "--add", "School.Example")
    policy = ok_json(parent_user, "policy", "show", kid)
    assert policy["site_allow_list"] and policy["allowed_sites"] == ["kids.example", "school.example"]
    ok(parent_user, "site", "allow-list", kid, "off", "--remove", "school.example")
    assert ok_json(parent_user, "policy", "show", kid)["allowed_sites"] == ["kids.example"]

    ok(parent_user, "internet", kid, "mon-fri", "16:00-19:00")
    ok(parent_user, "internet", kid, "sun", "none")
    hours = ok_json(parent_user, "internet", kid)
    assert hours["mon"] == ["16:00-19:00"] and hours["sun"] == [] and "sat" not in hours
    assert "no network" in ok(parent_user, "internet", kid)
    ok(parent_user, "internet", kid, "all", "any")
    assert ok_json(parent_user, "internet", kid) == {}
    line = one_line_error(ctl(parent_user, "internet", kid, "mon", "19:00-18:00"), 1)
    assert "19:00-18:00" in line

    ok(parent_user, "site", "doh", "doh.family.example", "192.0.2.53")
    doh = ok_json(parent_user, "site", "doh")
    assert doh["added"] == ["doh.family.example", "192.0.2.53"] and "dns.google" in doh["builtin"]
    assert "not valid!" in one_line_error(ctl(parent_user, "site", "doh", "not valid!"), 1)
    ok(parent_user, "site", "doh", "--clear")
    assert ok_json(parent_user, "site", "doh")["added"] == []
