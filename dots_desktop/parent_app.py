"""``dots-family``: the parents' app (GTK 4, libadwaita; GNOME HIG).

A list of children beside the chosen child's pages (dots_desktop.child_panel),
the audit log, and a way to make a user a child. Everything it shows comes
from ``org.dots.Family1`` and every change is a call on it; polkit decides
(a desktop polkit agent may ask for a password). It follows the daemon's
signals, and re-reads the time used every 30 s (time passes without signals).

Runs with Debian's GTK bindings (gi), linked into the venv by
scripts/install.sh, or with /usr/bin/python3 on an installed system.
"""

from __future__ import annotations

import pwd
import sys

import gi

gi.require_version("Gtk", "4.0")
gi.require_version("Adw", "1")
from gi.repository import Adw, Gdk, Gio, GLib, GObject, Gtk  # noqa: E402

from . import model  # noqa: E402
from .child_panel import ChildPanel  # noqa: E402
from .family import Family, system_bus  # noqa: E402
from .installed import installed_apps  # noqa: E402
from .widgets import RowList, button, named, row  # noqa: E402

APP_ID = "org.dots.Family"
STATUS_EVERY = 30  # seconds
#: the allowed-hours grid: 168 small toggles (the theme's buttons are too wide)
CSS = """
.hour-cell { min-width: 14px; min-height: 22px; padding: 0; margin: 0; }
.hour-cell:checked { background: @accent_bg_color; }
"""


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


class FamilyWindow(Adw.ApplicationWindow):
    def __init__(self, app: Adw.Application, family: Family) -> None:
        super().__init__(application=app, title="Family", default_width=1120, default_height=760)
        self.family = family
        self.children: list[tuple[int, str]] = []
        self.toasts = Adw.ToastOverlay()
        self.panel = ChildPanel(family, installed_apps(), self.notify)
        self._audit_page()
        self.set_content(self.toasts)
        self.leaflet = Adw.Leaflet(can_navigate_back=True)
        self.leaflet.append(self._sidebar())
        self.leaflet.append(Gtk.Separator(orientation=Gtk.Orientation.VERTICAL))
        self.content = self._content()
        self.leaflet.append(self.content)
        self.toasts.set_child(self.leaflet)
        family.subscribe(self.on_signal)
        self.reload_children()
        GLib.timeout_add_seconds(STATUS_EVERY, self._tick)

    # --- layout ------------------------------------------------------------------------

    def _sidebar(self) -> Gtk.Widget:
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, width_request=240)
        header = Adw.HeaderBar(show_end_title_buttons=False)
        header.set_title_widget(Adw.WindowTitle(title="Family"))
        box.append(header)
        self.child_list = named(Gtk.ListBox(selection_mode=Gtk.SelectionMode.SINGLE, vexpand=True),
                                "Children")
        self.child_list.add_css_class("navigation-sidebar")
        self.child_list.connect("row-selected", self._selected)
        box.append(self.child_list)
        add = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6, margin_start=12, margin_end=12,
                      margin_bottom=12)
        self.new_child = named(Gtk.Entry(placeholder_text="User name"), "User to make a child")
        self.preset = named(Gtk.DropDown.new_from_strings(["8-12", "5-7", "13-17", "no limits"]),
                            "Starting rules")
        inner = self.preset.get_first_child()  # GTK 4.8 leaves the drop-down's own button unnamed
        if isinstance(inner, Gtk.ToggleButton):
            named(inner, "Starting rules")
        add.append(Gtk.Label(label="Add a child", xalign=0, css_classes=["heading"]))
        add.append(self.new_child)
        add.append(self.preset)
        add.append(button("Add child", "Add child", self._add_child))
        box.append(add)
        return box

    def _content(self) -> Gtk.Widget:
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, hexpand=True)
        header = Adw.HeaderBar()
        back = Gtk.Button(icon_name="go-previous-symbolic")
        named(back, "Back to the children")
        back.connect("clicked", lambda *_: self.leaflet.navigate(Adw.NavigationDirection.BACK))
        header.pack_start(back)
        self.title = Adw.ViewSwitcherTitle(stack=self.panel.stack, title="Family")
        header.set_title_widget(self.title)
        box.append(header)
        self.empty = Adw.StatusPage(title="No children yet", icon_name="system-users-symbolic",
                                    description="Add a user as a child on the left.", vexpand=True)
        box.append(self.empty)
        box.append(self.panel.stack)
        bar = Adw.ViewSwitcherBar(stack=self.panel.stack)
        self.title.bind_property("title-visible", bar, "reveal", 0)
        box.append(bar)
        GLib.idle_add(lambda: self.leaflet.bind_property("folded", back, "visible",
                                                         GObject.BindingFlags.SYNC_CREATE) and False)
        return box

    def _audit_page(self) -> None:
        page = Adw.PreferencesPage()
        group = Adw.PreferencesGroup(title="Audit log", description="Every change, by whom; it cannot be edited.")
        self.audit = RowList(group, "Nothing yet")
        page.add(group)
        self.panel.stack.add_titled_with_icon(page, "audit", "Audit log", "document-open-recent-symbolic")

    # --- data ------------------------------------------------------------------------------

    def notify(self, text: str) -> None:
        # mostly errors and requests the parent must act on: 15 s to read
        # them (libadwaita's default is 5 s; a screen reader walking a
        # big window on a loaded machine took longer than 6 s to reach one)
        self.toasts.add_toast(Adw.Toast(title=GLib.markup_escape_text(text), timeout=15))

    def reload_children(self) -> None:
        def done(result, error: str) -> None:
            if error:
                self.notify(error)
                return
            self.show_children(list(result[0]))
        self.family.call("ListChildren", "", [], done)

    def show_children(self, children: list[tuple[int, str]]) -> None:
        current = self.panel.child
        self.children = children
        while (old := self.child_list.get_row_at_index(0)) is not None:
            self.child_list.remove(old)
        for uid, name in children:
            r = Gtk.ListBoxRow()
            r.set_child(Gtk.Label(label=name, xalign=0, margin_top=8, margin_bottom=8, margin_start=8))
            named(r, name)
            r.child_name = name
            self.child_list.append(r)
        self.empty.set_visible(not children)
        self.panel.stack.set_visible(bool(children))
        names = [n for _, n in children]
        pick = names.index(current) if current in names else 0
        if children:
            self.child_list.select_row(self.child_list.get_row_at_index(pick))
        self.reload_audit()

    def _selected(self, _box: Gtk.ListBox, r: Gtk.ListBoxRow | None) -> None:
        if r is not None and getattr(r, "child_name", "") != self.panel.child:
            self.title.set_subtitle(r.child_name)
            self.panel.show_child(r.child_name)
        if r is not None and self.leaflet.get_folded():
            self.leaflet.set_visible_child(self.content)

    def _add_child(self) -> None:
        user = self.new_child.get_text().strip()
        preset = self.preset.get_selected_item().get_string()
        if not user:
            self.notify("Type the user name of the child first")
            return
        self.family.call("AddChild", "ss", [user, "" if preset == "no limits" else preset],
                         lambda r, e: self.notify(e) if e else (self.new_child.set_text(""),
                                                               self.reload_children()))

    def reload_audit(self) -> None:
        def done(result, error: str) -> None:
            if result:
                users = {uid: user_name(uid) for uid in {e[2] for e in result[0]}} | dict(self.children)
                self.audit.fill([row(*model.audit_line(e, users)) for e in result[0]])
        self.family.call("GetAuditLog", "u", [100], done)

    def on_signal(self, member: str, args: tuple) -> None:
        selected = next((uid for uid, n in self.children if n == self.panel.child), None)
        if member == "PolicyChanged":
            if args[1] == 0 or args[0] not in {uid for uid, _ in self.children}:
                self.reload_children()  # added or removed
            elif args[0] == selected:
                self.panel.reload_policy()
            self.reload_audit()
        elif member in ("RequestCreated", "RequestAnswered"):
            self.panel.reload_requests()
            self.reload_audit()
            if (args[1] if len(args) > 1 else None) == selected:
                self.panel.reload_status()
            if member == "RequestCreated":
                self.notify(f"{user_name(args[1])} asks for {args[2]} more minutes")
        elif member in ("TimeWarning", "LimitReached", "AppBlocked") and args[0] == selected:
            self.panel.reload_status()
        elif member == "TamperDetected":
            self.notify(f"Tampering detected: {args[1]}")

    def _tick(self) -> bool:
        if self.panel.child:
            self.panel.reload_status()
        return True


class FamilyApp(Adw.Application):
    def __init__(self) -> None:
        super().__init__(application_id=APP_ID, flags=Gio.ApplicationFlags.DEFAULT_FLAGS)
        GLib.set_application_name("Family")
        self.window: FamilyWindow | None = None
        quit_ = Gio.SimpleAction.new("quit", None)
        quit_.connect("activate", lambda *_: self.quit())
        self.add_action(quit_)
        self.set_accels_for_action("app.quit", ["<Control>q"])

    def do_startup(self) -> None:
        Adw.Application.do_startup(self)
        css = Gtk.CssProvider()
        css.load_from_data(CSS.encode())
        Gtk.StyleContext.add_provider_for_display(Gdk.Display.get_default(), css,
                                                  Gtk.STYLE_PROVIDER_PRIORITY_APPLICATION)

    def do_activate(self) -> None:
        if self.window is None:
            try:
                family = Family(system_bus())
            except GLib.Error as exc:
                print(f"dots-family: cannot reach the system bus: {exc.message}", file=sys.stderr)
                self.quit()
                return
            self.window = FamilyWindow(self, family)
        self.window.present()


def main(argv: list[str] | None = None) -> None:
    sys.exit(FamilyApp().run(argv if argv is not None else sys.argv))


if __name__ == "__main__":
    main()
