"""One child in the parent app: pages Today, Limits, Hours, Apps, Sites,
Requests (an Adw.ViewStack). Every change is one org.dots.Family1 call; the
daemon's PolicyChanged signal (not our own bookkeeping) refreshes what is
shown, so two parents editing at once both see the truth."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from gi.repository import Adw, Gtk

from . import model
from .family import Family
from .installed import InstalledApp, titles
from .widgets import RowList, WeekChart, button, entry_row, minutes_spin, named, row

Notify = Callable[[str], None]


class ChildPanel:
    def __init__(self, family: Family, apps: list[InstalledApp], notify: Notify) -> None:
        self.family = family
        self.apps = apps
        self.titles = titles(apps)
        self.notify = notify
        self.child = ""
        self.policy: dict[str, Any] = {}
        self.grid: dict[str, list[bool]] = {}
        self.stack = Adw.ViewStack(vexpand=True)
        self._today()
        self._limits()
        self._hours()
        self._apps()
        self._sites()
        self._requests()

    # --- calls ---------------------------------------------------------------------------

    def change(self, member: str, signature: str, *args: Any, then: Callable[[], None] | None = None) -> None:
        """A change: errors become a toast; PolicyChanged refreshes the view."""
        def done(_result, error: str) -> None:
            if error:
                self.notify(error)
            elif then:
                then()
        self.family.call(member, signature, list(args), done)

    def show_child(self, name: str) -> None:
        self.child = name
        self.reload()

    def reload(self) -> None:
        if self.child:
            self.reload_status()
            self.reload_policy()
            self.reload_requests()

    def reload_status(self) -> None:
        child = self.child
        self.family.call("GetStatus", "s", [child],
                         lambda r, e: self._show_status(r[0]) if r and child == self.child else None)
        start, end = model.week_range(dt.date.today())
        self.family.call("GetUsageReport", "sss", [child, start, end],
                         lambda r, e: self.chart.show_bars(model.week_bars(r[2], dt.date.today()))
                         if r and child == self.child else None)

    def reload_policy(self) -> None:
        child = self.child

        def done(result, error: str) -> None:
            if error:
                self.notify(error)
            elif child == self.child:
                self._show_policy(model.parse_policy(result[0]))
        self.family.call("GetPolicy", "s", [child], done)

    def reload_requests(self) -> None:
        child = self.child
        self.family.call("ListRequests", "s", [""],
                         lambda r, e: self._show_requests(r[0]) if r and child == self.child else None)

    # --- Today -----------------------------------------------------------------------------

    def _page(self, name: str, title: str, icon: str) -> Adw.PreferencesPage:
        page = Adw.PreferencesPage()
        self.stack.add_titled_with_icon(page, name, title, icon)
        return page

    def _today(self) -> None:
        page = self._page("today", "Today", "x-office-calendar-symbolic")
        group = Adw.PreferencesGroup(title="Today")
        self.used, self.left = Gtk.Label(), Gtk.Label()
        group.add(row("Time used", suffixes=[self.used]))
        group.add(row("Time left", suffixes=[self.left]))
        self.level = named(Gtk.LevelBar(hexpand=True, valign=Gtk.Align.CENTER), "Share of today's time used")
        self.state = row("", suffixes=[self.level], name="Today's state")
        group.add(self.state)
        page.add(group)
        week = Adw.PreferencesGroup(title="This week")
        self.chart = WeekChart()
        week.add(self.chart)
        page.add(week)

    def _show_status(self, status: dict[str, Any]) -> None:
        today = model.Today.from_status(status)
        self.used.set_label(today.used)
        self.left.set_label(today.left)
        self.level.set_value(today.fraction)
        self.state.set_title(today.state)

    # --- Limits ------------------------------------------------------------------------------

    def _limits(self) -> None:
        page = self._page("limits", "Limits", "preferences-system-time-symbolic")
        group = Adw.PreferencesGroup(title="Screen time", description="Off means no limit.")
        self.limit_rows = {}
        for key, title, upper in (("weekday", "School days (Monday to Friday)", 1440),
                                  ("weekend", "Weekend days", 1440), ("weekly", "Whole week", 10080)):
            switch = named(Gtk.Switch(valign=Gtk.Align.CENTER), f"Limit {title}")
            spin = minutes_spin(f"Minutes {title}", 60, upper)
            switch.bind_property("active", spin, "sensitive", 0)
            group.add(row(title, "minutes", [spin, switch]))
            self.limit_rows[key] = (switch, spin)
        group.add(row("", suffixes=[button("Save limits", "Save limits", self._save_limits,
                                           style="suggested-action")], name="Save the limits"))
        page.add(group)

    def _save_limits(self) -> None:
        value = {k: (int(spin.get_value()) if switch.get_active() else None)
                 for k, (switch, spin) in self.limit_rows.items()}
        old = model.Limits.from_policy(self.policy)
        if (value["weekday"], value["weekend"]) != (old.weekday, old.weekend):
            self.change("SetDailyLimit", "sii", self.child, model.Limits.wire(value["weekday"]),
                        model.Limits.wire(value["weekend"]))
        if value["weekly"] != old.weekly:
            self.change("SetWeeklyLimit", "si", self.child, model.Limits.wire(value["weekly"]))

    # --- Hours ---------------------------------------------------------------------------------

    def _hours(self) -> None:
        page = self._page("hours", "Hours", "alarm-symbolic")
        group = Adw.PreferencesGroup(title="Allowed hours",
                                     description="A lit hour may be used. A fully lit day has no restriction.")
        grid = Gtk.Grid(column_spacing=2, row_spacing=2, halign=Gtk.Align.CENTER)
        self.cells: dict[str, list[Gtk.ToggleButton]] = {}
        for h in range(0, model.HOURS, 3):
            grid.attach(Gtk.Label(label=f"{h:02d}", xalign=0), 1 + h, 0, 3, 1)
        for d, day in enumerate(model.WEEKDAYS):
            grid.attach(Gtk.Label(label=model.DAY_NAMES[d][:3], xalign=0), 0, d + 1, 1, 1)
            self.cells[day] = []
            for h in range(model.HOURS):
                cell = named(Gtk.ToggleButton(css_classes=["hour-cell"]),
                             f"{model.DAY_NAMES[d]} {h:02d}:00 to {h + 1:02d}:00")
                grid.attach(cell, h + 1, d + 1, 1, 1)
                self.cells[day].append(cell)
        group.add(grid)
        page.add(group)
        save = Adw.PreferencesGroup()  # below the grid (a group lists its rows first)
        save.add(row("", suffixes=[button("Save hours", "Save allowed hours", self._save_hours,
                                          style="suggested-action")], name="Save the allowed hours"))
        page.add(save)

    def _save_hours(self) -> None:
        after = {day: [c.get_active() for c in cells] for day, cells in self.cells.items()}
        for day in model.changed_days(self.grid, after):
            windows = model.windows_of(after[day])
            if windows is None:
                self.change("ClearAllowedHours", "sas", self.child, [day])
            else:
                self.change("SetAllowedHours", "sasas", self.child, [day], windows)

    # --- Apps ------------------------------------------------------------------------------------

    def _apps(self) -> None:
        page = self._page("apps", "Apps", "view-app-grid-symbolic")
        rules = Adw.PreferencesGroup(title="Rules for apps")
        self.only_allowed = named(Gtk.Switch(valign=Gtk.Align.CENTER), "Only allowed apps may run")
        self.only_allowed.connect("state-set", self._allow_list)
        rules.add(row("Only allowed apps may run", "Besides the system's own programs",
                      [self.only_allowed]))
        self.app_rules = RowList(rules, "No app is blocked, allowed or limited")
        page.add(rules)
        add = Adw.PreferencesGroup(title="Installed applications",
                                   description="Block an app, allow it, or give it a daily time limit.")
        for app in self.apps:
            spin = minutes_spin(f"Daily minutes for {app.name}", 60)
            add.add(row(app.name, app.program, [
                spin,
                button("Limit", f"Set daily limit for {app.name}",
                       lambda a=app, s=spin: self.change("SetAppLimit", "ssi", self.child, a.program,
                                                         int(s.get_value()))),
                button("Allow", f"Allow {app.name}",
                       lambda a=app: self.change("SetAllowList", "sbas", self.child,
                                                 bool(self.policy.get("allow_list_only")), [a.program])),
                button("Block", f"Block {app.name}",
                       lambda a=app: self.change("BlockApp", "ss", self.child, a.program),
                       style="destructive-action")], icon=app.icon or "application-x-executable"))
        add.add(entry_row("Other program (path or name)", "Other program to block", "Block",
                          "Block other program", lambda app: self.change("BlockApp", "ss", self.child, app)))
        page.add(add)

    def _allow_list(self, _switch: Gtk.Switch, on: bool) -> bool:
        """The switch asks the daemon; the policy it reports sets the switch."""
        if on != bool(self.policy.get("allow_list_only")):
            self.change("SetAllowList", "sbas", self.child, on, [])
        return True  # the switch shows the daemon's state (set in _show_policy), not the click

    def _show_apps(self) -> None:
        rows = []
        for r in model.app_rows(self.policy, self.titles):
            buttons = []
            if r.blocked:
                buttons.append(button("Unblock", f"Unblock {r.title}",
                                      lambda a=r.app: self.change("UnblockApp", "ss", self.child, a)))
            if r.limit is not None:
                buttons.append(button("Remove limit", f"Remove limit of {r.title}",
                                      lambda a=r.app: self.change("SetAppLimit", "ssi", self.child, a, -1)))
            if r.allowed:
                buttons.append(button("Disallow", f"Disallow {r.title}",
                                      lambda a=r.app: self.change("DisallowApp", "ss", self.child, a)))
            rows.append(row(r.title, f"{r.subtitle} · {r.app}", buttons))
        self.app_rules.fill(rows)

    # --- Sites -----------------------------------------------------------------------------------

    def _sites(self) -> None:
        page = self._page("sites", "Sites", "web-browser-symbolic")
        group = Adw.PreferencesGroup(title="Blocked sites",
                                     description="Domains, addresses or address ranges (CIDR).")
        group.add(entry_row("Site to block", "Site to block", "Block", "Block site",
                            lambda site: self.change("BlockSite", "ss", self.child, site)))
        page.add(group)
        listed = Adw.PreferencesGroup()
        self.site_rows = RowList(listed, "No site is blocked")
        page.add(listed)

    def _show_sites(self) -> None:
        self.site_rows.fill([row(site, suffixes=[button(
            "Unblock", f"Unblock {site}", lambda s=site: self.change("UnblockSite", "ss", self.child, s))])
            for site in self.policy.get("blocked_sites") or []])

    # --- Requests --------------------------------------------------------------------------------

    def _requests(self) -> None:
        page = self._page("requests", "Requests", "mail-unread-symbolic")
        group = Adw.PreferencesGroup(title="Requests for more time")
        self.request_rows = RowList(group, "No requests")
        page.add(group)

    def _show_requests(self, rows: list[Any]) -> None:
        out = []
        for r in (model.request_row(x) for x in rows):
            if r.child != self.child:
                continue
            buttons = [] if not r.pending else [
                button("Approve", f"Approve request {r.id}",
                       lambda i=r.id: self.change("AnswerRequest", "ubu", i, True, 0), style="suggested-action"),
                button("Deny", f"Deny request {r.id}",
                       lambda i=r.id: self.change("AnswerRequest", "ubu", i, False, 0))]
            out.append(row(r.title, r.subtitle, buttons))
        self.request_rows.fill(out[:30])
        pending = sum(1 for x in rows if x[5] == "pending" and x[2] == self.child)
        self.stack.get_page(self.stack.get_child_by_name("requests")).set_badge_number(pending)

    # --- policy ----------------------------------------------------------------------------------

    def _show_policy(self, policy: dict[str, Any]) -> None:
        self.policy = policy
        limits = model.Limits.from_policy(policy)
        for key, value in (("weekday", limits.weekday), ("weekend", limits.weekend),
                           ("weekly", limits.weekly)):
            switch, spin = self.limit_rows[key]
            switch.set_active(value is not None)
            if value is not None:
                spin.set_value(value)
        self.grid = model.hours_grid(policy)
        for day, cells in self.cells.items():
            for cell, allowed in zip(cells, self.grid[day]):
                cell.set_active(allowed)
        self.only_allowed.set_state(bool(policy.get("allow_list_only")))
        self.only_allowed.set_active(bool(policy.get("allow_list_only")))
        self._show_apps()
        self._show_sites()
