"""The report as ONE self-contained web page: inline CSS, charts drawn with
matplotlib (Agg) and embedded as ``data:image/png;base64`` URIs, the
numbers in tables (each cell also carries its raw value in a ``data-``
attribute) and the whole report as JSON in a ``<script
type="application/json" id="report-data">`` block. Nothing is fetched
from the network; every text from the daemon is HTML-escaped."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import os
import tempfile
from typing import Any

from .render import duration, minutes_text, size, timestamp
from .report import TOP, Report

GREEN, RED, GREY, BLUE, ORANGE = "#2e9d5b", "#d64541", "#555555", "#3a6ea5", "#e08a1e"


def _pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed), with a
    writable config dir even for a user without a home."""
    if not os.environ.get("MPLCONFIGDIR"):
        home_cfg = os.path.join(os.path.expanduser("~"), ".config")
        if not os.access(home_cfg if os.path.isdir(home_cfg) else os.path.expanduser("~"), os.W_OK):
            os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="dots-mpl-")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    fig.clear()
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def day_chart(report: Report) -> str:
    plt = _pyplot()
    labels = [f"{d.weekday.capitalize()}\n{d.day[5:]}" for d in report.days]
    used = [d.used_seconds / 60 for d in report.days]
    colors = [RED if d.over_limit else GREEN for d in report.days]
    fig, ax = plt.subplots(figsize=(9, 3.4))
    xs = range(len(report.days))
    ax.bar(xs, used, color=colors, width=0.6, label="screen time")
    shown_limit = shown_granted = False
    for x, d in zip(xs, report.days):
        if d.limit_seconds is None:
            continue
        ax.hlines(d.limit_seconds / 60, x - 0.4, x + 0.4, colors=GREY, linewidth=2,
                  label=None if shown_limit else "limit")
        shown_limit = True
        if d.granted_seconds:
            ax.hlines(d.allowed_seconds / 60, x - 0.4, x + 0.4, colors=BLUE, linewidth=2,
                      linestyles="dashed", label=None if shown_granted else "limit + extra time")
            shown_granted = True
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel("minutes")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    top = max([*used, *(d.allowed_seconds / 60 for d in report.days if d.allowed_seconds)], default=0)
    ax.set_ylim(0, max(10, top * 1.2))
    uri = _png(fig)
    plt.close(fig)
    return uri


def hbar_chart(names: list[str], values: list[float], unit: str, color: str,
               integer: bool = False) -> str:
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    names, values = names[:TOP][::-1], values[:TOP][::-1]
    fig, ax = plt.subplots(figsize=(9, 0.4 * len(names) + 0.8))
    short = [n if len(n) <= 40 else "…" + n[-39:] for n in names]
    ax.barh(range(len(names)), values, color=color, height=0.6)
    ax.set_yticks(range(len(names)), short, fontsize=8)
    ax.set_xlabel(unit)
    ax.set_ylim(-0.6, len(names) - 0.4)
    if integer:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.spines[["top", "right"]].set_visible(False)
    uri = _png(fig)
    plt.close(fig)
    return uri


# --- the page ------------------------------------------------------------------------

CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 0; background: #f4f5f7; color: #222; }
main { max-width: 1000px; margin: 0 auto; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px 0; }
h2 { font-size: 18px; margin: 28px 0 8px 0; border-bottom: 2px solid #ddd; padding-bottom: 4px; }
.sub { color: #666; margin-bottom: 16px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { background: #fff; border-radius: 8px; padding: 12px 16px; min-width: 140px;
        box-shadow: 0 1px 3px rgba(0,0,0,.12); }
.card .v { font-size: 22px; font-weight: bold; }
.card .k { font-size: 12px; color: #666; }
.bad { color: #d64541; } .good { color: #2e9d5b; }
section { background: #fff; border-radius: 8px; padding: 8px 16px 16px 16px; margin-top: 16px;
          box-shadow: 0 1px 3px rgba(0,0,0,.12); }
img { max-width: 100%; display: block; margin: 8px 0; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eee; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.none { color: #888; font-style: italic; }
h3.latest { font-size: 14px; margin: 16px 0 4px 0; color: #444; }
footer { color: #888; font-size: 12px; margin-top: 24px; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell(text: Any, raw: Any = None, numeric: bool = False, cls: str = "") -> str:
    classes = " ".join(c for c in ("n" if numeric else "", cls) if c)
    attr = f' class="{classes}"' if classes else ""
    data = "" if raw is None else f' data-value="{_e(raw)}"'
    return f"<td{attr}{data}>{_e(text)}</td>"


def _table(headers: list[tuple[str, bool]], rows: list[str], table_id: str, empty: str) -> str:
    if not rows:
        return f'<p class="none" id="{table_id}-empty">{_e(empty)}</p>'
    head = "".join(f'<th class="n">{_e(h)}</th>' if num else f"<th>{_e(h)}</th>"
                   for h, num in headers)
    return (f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


def _card(key: str, value: str, raw: Any, card_id: str, cls: str = "") -> str:
    return (f'<div class="card" id="{card_id}" data-value="{_e(raw)}">'
            f'<div class="v {cls}">{_e(value)}</div><div class="k">{_e(key)}</div></div>')


def render(report: Report) -> str:
    """The whole page as a string."""
    totals = report.totals()
    req = totals["requests"]
    cards = "".join([
        _card("screen time this period", duration(report.used_seconds), report.used_seconds,
              "total-used"),
        _card("average per day", duration(report.average_seconds), report.average_seconds,
              "average"),
        _card("days over the limit", str(report.days_over_limit), report.days_over_limit,
              "days-over", "bad" if report.days_over_limit else "good"),
        _card("extra time granted", duration(report.granted_seconds), report.granted_seconds,
              "granted"),
        _card("blocked attempts", str(len(report.blocked)), len(report.blocked), "blocked-count",
              "bad" if report.blocked else ""),
        _card("blocked site lookups", str(report.blocked_site_attempts),
              report.blocked_site_attempts, "blocked-sites-count",
              "bad" if report.blocked_site_attempts else ""),
        _card("requests (pending / approved / denied)",
              f"{req['pending']} / {req['approved']} / {req['denied']}",
              sum(req.values()), "request-count"),
    ])

    day_rows = []
    for d in report.days:
        state = "over" if d.over_limit else ("-" if d.limit_seconds is None else "ok")
        day_rows.append(
            f'<tr data-day="{_e(d.day)}">' + _cell(d.day) + _cell(d.weekday.capitalize())
            + _cell(duration(d.used_seconds), d.used_seconds, True)
            + _cell(duration(d.granted_seconds), d.granted_seconds, True)
            + _cell(duration(d.limit_seconds), "" if d.limit_seconds is None else d.limit_seconds, True)
            + _cell(state, None, False, "bad" if d.over_limit else "good") + "</tr>")
    app_rows = [f'<tr data-app="{_e(a["app"])}">' + _cell(a["app"])
                + _cell(duration(a["active_seconds"]), a["active_seconds"], True)
                + _cell(a["launches"], a["launches"], True) + "</tr>" for a in report.apps[:TOP]]
    site_rows = [f'<tr data-site="{_e(s["site"])}">' + _cell(s["site"])
                 + _cell(size(s["bytes_sent"]), s["bytes_sent"], True)
                 + _cell(size(s["bytes_received"]), s["bytes_received"], True)
                 + _cell(s["connections"], s["connections"], True) + "</tr>"
                 for s in report.sites[:TOP]]
    blocked_rows = [f'<tr data-app="{_e(app)}">' + _cell(app) + _cell(n, n, True) + "</tr>"
                    for app, n in report.blocked_by_app()]
    blocked_times = [f"<tr>{_cell(timestamp(b['time']))}{_cell(b['app'])}</tr>"
                     for b in report.blocked[-20:]]
    request_rows = [
        f'<tr data-request="{r["id"]}">' + _cell(r["id"], r["id"], True)
        + _cell(timestamp(r["created"])) + _cell(duration(r["minutes"] * 60), r["minutes"], True)
        + _cell(r["reason"] or "-") + _cell(r["state"])
        + _cell(duration(r["granted_minutes"] * 60) if r["state"] == "approved" else "-",
                r["granted_minutes"], True) + "</tr>"
        for r in report.requests]

    charts_days = f'<img id="chart-days" alt="screen time per day" src="{day_chart(report)}">'
    charts_apps = ('<img id="chart-apps" alt="top apps" src="'
                   + hbar_chart([a["app"] for a in report.apps],
                                [a["active_seconds"] / 60 for a in report.apps], "minutes", BLUE)
                   + '">') if report.apps else ""
    charts_sites = ('<img id="chart-sites" alt="top sites" src="'
                    + hbar_chart([s["site"] for s in report.sites],
                                 [(s["bytes_sent"] + s["bytes_received"]) / 1e6 for s in report.sites],
                                 "MB sent + received", ORANGE) + '">') if report.sites else ""
    web_rows = [f'<tr data-site-name="{_e(s["site"])}">' + _cell(s["site"])
                + _cell(s["lookups"], s["lookups"], True)
                + _cell(s["blocked"], s["blocked"], True, "bad" if s["blocked"] else "") + "</tr>"
                for s in report.web_sites[:TOP]]
    blocked_site_rows = [f'<tr data-blocked-site="{_e(b["name"])}">' + _cell(b["name"])
                         + _cell(b["attempts"], b["attempts"], True)
                         + _cell(timestamp(b["last"]), b["last"]) + "</tr>"
                         for b in report.blocked_sites[:20]]
    charts_web = ('<img id="chart-site-names" alt="top sites by name" src="'
                  + hbar_chart([s["site"] for s in report.web_sites],
                               [s["lookups"] for s in report.web_sites], "lookups", ORANGE,
                               integer=True) + '">') if report.web_sites else ""
    blocked_apps = report.blocked_by_app()
    charts_blocked = ('<img id="chart-blocked" alt="blocked attempts" src="'
                      + hbar_chart([a for a, _ in blocked_apps],
                                   [n for _, n in blocked_apps], "attempts", RED, integer=True)
                      + '">') if blocked_apps else ""
    incomplete = "" if report.blocked_complete else (
        '<p class="none">Only the newest blocked attempts are listed: the daemon returned '
        "its maximum number of events.</p>")
    lim = report.limits
    limits_text = (f"Current limits: school days {minutes_text(lim['daily_minutes'])}, "
                   f"weekend {minutes_text(lim['weekend_minutes'])}, "
                   f"week {minutes_text(lim['weekly_minutes'])}.")
    # JSON in a script element: no "<", ">" or "&" at all (no "</script>", no "<!--")
    data = (json.dumps(report.to_json(), sort_keys=True)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))
    generated = dt.datetime.fromtimestamp(report.generated).strftime("%Y-%m-%d %H:%M")

    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(report.child)}: screen time {_e(report.start)} to {_e(report.end)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<h1 id="title">Screen time of {_e(report.child)}</h1>
<div class="sub" id="range">{_e(report.start)} to {_e(report.end)} &middot; {_e(limits_text)}</div>
<div class="cards">{cards}</div>

<section id="days">
<h2>Screen time per day</h2>
{charts_days}
{_table([("Day", False), ("", False), ("Used", True), ("Extra time", True), ("Limit", True), ("", False)],
        day_rows, "days-table", "No days in this period.")}
</section>

<section id="apps">
<h2>Top apps</h2>
{charts_apps}
{_table([("App", False), ("Time", True), ("Launches", True)], app_rows, "apps-table",
        "No app use recorded.")}
</section>

<section id="sites">
<h2>Top sites</h2>
{charts_sites}
{_table([("Site", False), ("Sent", True), ("Received", True), ("Connections", True)], site_rows,
        "sites-table", "No network use recorded.")}
</section>

<section id="site-names">
<h2>Top sites by name</h2>
{charts_web}
{_table([("Site", False), ("Lookups", True), ("Blocked", True)], web_rows, "site-names-table",
        "No lookups recorded.")}
<h3>Blocked sites</h3>
{_table([("Name", False), ("Attempts", True), ("Last", False)], blocked_site_rows,
        "blocked-sites-table", "No site was blocked.")}
</section>

<section id="blocked">
<h2>Blocked attempts</h2>
{charts_blocked}
{_table([("Program", False), ("Attempts", True)], blocked_rows, "blocked-table",
        "Nothing was blocked.")}
{'<h3 class="latest">Latest attempts</h3>' if blocked_times else ""}
{_table([("When", False), ("Program", False)], blocked_times, "blocked-times", "")
 if blocked_times else ""}
{incomplete}
</section>

<section id="requests">
<h2>Requests for more time</h2>
{_table([("#", True), ("Asked", False), ("Minutes", True), ("Reason", False), ("Answer", False),
         ("Granted", True)], request_rows, "requests-table", "No requests in this period.")}
</section>

<footer>DOTS Family Mode &middot; report generated {_e(generated)} by dotsctl &middot;
limits are the current policy's.</footer>
</main>
<script type="application/json" id="report-data">{data}</script>
</body>
</html>
"""


def write(report: Report, path: str) -> None:
    text = render(report)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
