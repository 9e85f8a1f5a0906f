"""The report page: one self-contained HTML file (charts embedded as data:
URIs, nothing fetched), with the numbers of the child's week; rendered in
Debian's real headless Chromium, whose screenshot must show the page
(many colours, the chart's bars), not a blank or broken one."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dots_cli.report import DayRow, Report
from dots_cli.report_html import GREEN, RED, render
from tests.helpers import REPO, run_as, uid_of

DOTSCTL = str(REPO / ".venv" / "bin" / "dotsctl")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

WEEK = ["2025-03-03", "2025-03-04", "2025-03-05", "2025-03-06", "2025-03-07", "2025-03-08",
        "2025-03-09"]


class Page(HTMLParser):
    """What the tests look at: every tag's attributes, the report JSON, text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.data: dict | None = None
        self.text: list[str] = []
        self._in_data = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        self._in_data = tag == "script" and attrs.get("id") == "report-data"

    def handle_endtag(self, tag):
        self._in_data = False

    def handle_data(self, data):
        if self._in_data:
            self.data = json.loads(data)
        else:
            self.text.append(data)

    def by_id(self, ident: str) -> dict:
        return next(a for _, a in self.tags if a.get("id") == ident)

    def values(self, row_attr: str, key: str) -> list[str]:
        """data-value of the cells of the table rows with ``row_attr=key``."""
        return _row_values(self.raw, row_attr, key)


def _row_values(text: str, row_attr: str, key: str) -> list[str]:
    match = re.search(rf'<tr {row_attr}="{re.escape(key)}">(.*?)</tr>', text)
    assert match, f"no row {row_attr}={key}"
    return re.findall(r'data-value="([^"]*)"', match[1])


def parse(text: str) -> Page:
    page = Page(text)
    page.raw = text
    return page


def assert_self_contained(text: str, page: Page) -> None:
    images = [a for t, a in page.tags if t == "img"]
    assert images and all(a["src"].startswith("data:image/png;base64,") for a in images)
    assert not [t for t, a in page.tags if t in ("link", "iframe", "object", "embed")
                or (t == "script" and a.get("src"))]
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:|//)", text)
    assert "url(" not in text and "@import" not in text


def sample() -> Report:
    used = [3000, 5400, 0, 6600, 1200, 9000, 600]
    granted = [0, 1800, 0, 0, 0, 0, 0]
    limits = [5400] * 5 + [9000] * 2
    days = [DayRow(d, w, u, g, lim) for d, w, u, g, lim in
            zip(WEEK, ("mon", "tue", "wed", "thu", "fri", "sat", "sun"), used, granted, limits)]
    return Report(
        child="alice", uid=1234, start=WEEK[0], end=WEEK[-1], generated=1741600000.0, days=days,
        apps=[{"app": "/usr/bin/firefox", "active_seconds": 4200, "launches": 3},
              {"app": "/usr/games/supertux", "active_seconds": 3000, "launches": 3}],
        sites=[{"site": "wikipedia.org", "bytes_sent": 20000, "bytes_received": 3000000, "connections": 12}],
        blocked=[{"time": 1741089600.0, "app": "/usr/games/sl", "pid": 1},
                 {"time": 1741089601.0, "app": "/usr/games/sl", "pid": 2},
                 {"time": 1741348800.0, "app": "/usr/bin/steam", "pid": 3}],
        requests=[{"id": 7, "uid": 1234, "name": "alice", "minutes": 30,
                   "reason": "homework <script>alert(1)</script>", "state": "approved",
                   "granted_minutes": 30, "answered_by": 1000, "created": 1741089600,
                   "answered": 1741089900}],
        limits={"daily_minutes": 90, "weekend_minutes": 150, "weekly_minutes": None},
        web_sites=[{"site": "wikipedia.org", "lookups": 40, "blocked": 0},
                   {"site": "casino.example", "lookups": 5, "blocked": 5}],
        blocked_sites=[{"name": "www.casino.example<b>", "attempts": 5, "last": 1741348800}])


def test_page_numbers_and_escaping():
    text = render(sample())
    page = parse(text)
    assert_self_contained(text, page)
    assert page.by_id("total-used")["data-value"] == "25800"
    assert page.by_id("days-over")["data-value"] == "1"
    assert page.by_id("blocked-count")["data-value"] == "3"
    assert page.by_id("granted")["data-value"] == "1800"
    assert page.values("data-day", "2025-03-06") == ["6600", "0", "5400"]
    assert page.values("data-day", "2025-03-04") == ["5400", "1800", "5400"]
    assert page.values("data-app", "/usr/bin/firefox") == ["4200", "3"]
    assert page.values("data-site", "wikipedia.org") == ["20000", "3000000", "12"]
    assert page.values("data-app", "/usr/games/sl") == ["2"]
    assert page.values("data-site-name", "wikipedia.org") == ["40", "0"]
    assert page.values("data-site-name", "casino.example") == ["5", "5"]
    assert page.by_id("blocked-sites-count")["data-value"] == "5"
    assert page.values("data-blocked-site", "www.casino.example&lt;b&gt;")[0] == "5"
    assert "<b>" not in text.split("<body>")[1].split('<script type="application/json"')[0]
    body = " ".join(page.text)
    assert "Screen time of alice" in body and "7 h 10 min" in body  # 25800 s
    assert "1 h 50 min" in body and "school days 1 h 30 min" in body and "week no limit" in body
    # a child's reason is text, never markup
    assert "<script>alert(1)" not in text
    assert "homework &lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert page.data["totals"]["used_seconds"] == 25800
    assert page.data["requests"][0]["reason"] == "homework <script>alert(1)</script>"
    for ident in ("chart-days", "chart-apps", "chart-sites", "chart-blocked"):
        assert page.by_id(ident)["src"].startswith("data:image/png;base64,")


def test_empty_week_page():
    r = sample()
    r.apps, r.sites, r.blocked, r.requests = [], [], [], []
    r.web_sites, r.blocked_sites = [], []
    for d in r.days:
        d.used_seconds, d.granted_seconds = 0, 0
    text = render(r)
    page = parse(text)
    assert_self_contained(text, page)
    assert [a["id"] for t, a in page.tags if t == "img"] == ["chart-days"]
    body = " ".join(page.text)
    for words in ("No app use recorded.", "No network use recorded.", "Nothing was blocked.",
                  "No requests in this period.", "No lookups recorded.", "No site was blocked."):
        assert words in body


# --- in a real browser -------------------------------------------------------------------

def screenshot(html_file: Path, png: Path) -> None:
    assert os.path.exists(CHROMIUM), "chromium is not installed (scripts/install.sh installs it)"
    profile = tempfile.mkdtemp(prefix="dots-chromium-")
    try:
        out = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={profile}", f"--screenshot={png}", "--window-size=1200,1600",
             f"file://{html_file}"],
            capture_output=True, text=True, timeout=180)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert out.returncode == 0 and png.exists(), out.stderr[-3000:]


def assert_page_drawn(png: Path) -> None:
    from PIL import Image

    image = Image.open(png).convert("RGB")
    assert image.size == (1200, 1600)
    colors = image.getcolors(maxcolors=1 << 24)
    assert len(colors) > 200, f"only {len(colors)} colours: a blank or broken page"
    most = max(count for count, _ in colors)
    assert most < 0.8 * image.size[0] * image.size[1], "one colour covers the page"

    def near(rgb: tuple[int, int, int], hexcolor: str) -> bool:
        want = tuple(int(hexcolor[i:i + 2], 16) for i in (1, 3, 5))
        return sum(abs(a - b) for a, b in zip(rgb, want)) < 30

    green = sum(count for count, rgb in colors if near(rgb, GREEN))
    red = sum(count for count, rgb in colors if near(rgb, RED))
    assert green > 2000, "the day chart's green bars are not on the screen"
    assert red > 500, "the over-limit bar is not on the screen"


def test_page_in_headless_chromium(tmp_path):
    html_file = tmp_path / "report.html"
    html_file.write_text(render(sample()))
    png = tmp_path / "shot.png"
    screenshot(html_file, png)
    assert_page_drawn(png)


@pytest.mark.bus
def test_dotsctl_report_html_end_to_end(policyd_daemon, parent_user, child_user, tmp_path):
    """The parent writes the page with dotsctl from the daemon's numbers."""
    from tests.test_cli import ok, ok_json, seed_week

    if child_user not in [c["name"] for c in ok_json(parent_user, "child", "list")]:
        ok(parent_user, "child", "add", child_user, "--preset", "8-12")
    ok(parent_user, "limit", "daily", child_user, "90", "--weekend", "150")
    seed_week(policyd_daemon, uid_of(child_user))
    policyd_daemon.sql("DELETE FROM site_lookup WHERE uid = ?", [uid_of(child_user)])
    for name, blocked, count in (("www.wikipedia.org", 0, 30), ("en.wikipedia.org", 0, 10),
                                 ("m.casino.example", 1, 4)):
        policyd_daemon.sql("INSERT INTO site_lookup (uid, time, name, blocked, count) "
                           "VALUES (?, ?, ?, ?, ?)",
                           [uid_of(child_user), "2025-03-05 10:00:00", name, blocked, count])
    outdir = Path(tempfile.mkdtemp(prefix="dots-report-"))
    pw = pwd.getpwnam(parent_user)
    shutil.chown(outdir, pw.pw_uid, pw.pw_gid)
    html_file = outdir / "week.html"
    try:
        out = run_as(parent_user, [DOTSCTL, "report", child_user, "--from", WEEK[0], "--to", WEEK[-1],
                                   "--html", str(html_file)], env={"COLUMNS": "200"}, timeout=180)
        assert out.returncode == 0, out.stderr
        assert f"Web page written to {html_file}" in out.stdout
        text = html_file.read_text()
        page = parse(text)
        assert_self_contained(text, page)
        assert page.by_id("total-used")["data-value"] == "25800"
        assert page.by_id("blocked-count")["data-value"] == "3"
        assert page.by_id("days-over")["data-value"] == "1"
        assert page.values("data-day", "2025-03-04") == ["5400", "1800", "5400"]
        assert page.values("data-day", "2025-03-08") == ["9000", "0", "9000"]
        assert page.values("data-app", "/usr/games/supertux") == ["3000", "3"]
        assert page.values("data-site", "wikipedia.org") == ["20000", "3000000", "12"]
        assert page.values("data-app", "/usr/bin/steam") == ["1"]
        assert page.values("data-site-name", "wikipedia.org") == ["40", "0"]
        assert page.values("data-site-name", "casino.example") == ["4", "4"]
        assert page.values("data-blocked-site", "m.casino.example")[0] == "4"
        assert "homework &lt;b&gt;project&lt;/b&gt;" in text
        assert page.data["child"] == child_user and page.data["uid"] == uid_of(child_user)
        png = tmp_path / "shot.png"
        screenshot(html_file, png)
        assert_page_drawn(png)
        # a file it cannot write: one line, exit 1
        bad = run_as(parent_user, [DOTSCTL, "report", child_user, "--html", "/root/x.html"])
        assert bad.returncode == 1 and bad.stderr.startswith("dotsctl: cannot write /root/x.html")
    finally:
        shutil.rmtree(outdir, ignore_errors=True)
