"""Small GTK helpers shared by the windows: accessible names, rows with a
suffix, the week chart, a list that can be refilled."""

from __future__ import annotations

from collections.abc import Iterable

import gi

gi.require_version("Gtk", "4.0")
gi.require_version("Adw", "1")
from gi.repository import Adw, Gtk  # noqa: E402

from .model import Bar  # noqa: E402


def named(widget: Gtk.Widget, name: str, description: str = "") -> Gtk.Widget:
    """Give a control the name a screen reader says (and tests find)."""
    props, values = [Gtk.AccessibleProperty.LABEL], [name]
    if description:
        props.append(Gtk.AccessibleProperty.DESCRIPTION)
        values.append(description)
    widget.update_property(props, values)
    return widget


def button(label: str, name: str, on_click, *, style: str = "") -> Gtk.Button:
    b = Gtk.Button(label=label, valign=Gtk.Align.CENTER)
    if style:
        b.add_css_class(style)
    b.connect("clicked", lambda *_: on_click())
    return named(b, name)


def row(title: str, subtitle: str = "", suffixes: Iterable[Gtk.Widget] = (),
        icon: str = "", name: str = "") -> Adw.ActionRow:
    """A list row; ``name`` names a row without a title (a row of buttons)."""
    r = Adw.ActionRow(title=title, subtitle=subtitle)
    if name:
        named(r, name)
    r.set_title_lines(1)
    if icon:
        r.add_prefix(Gtk.Image.new_from_icon_name(icon))
    for widget in suffixes:
        r.add_suffix(widget)
    return r


def entry_row(title: str, name: str, action: str, action_name: str, on_text) -> Adw.EntryRow:
    """A text field with a button that hands its (stripped) text on."""
    entry = named(Adw.EntryRow(title=title), name)
    entry.add_suffix(button(action, action_name, lambda: on_text(entry.get_text().strip())))
    return entry


def minutes_spin(name: str, value: int, upper: int = 1440, step: int = 15) -> Gtk.SpinButton:
    spin = Gtk.SpinButton.new_with_range(0, upper, step)
    spin.set_value(value)
    spin.set_valign(Gtk.Align.CENTER)
    return named(spin, name)


class RowList:
    """A boxed list in a preferences group, emptied and refilled on update."""

    def __init__(self, group: Adw.PreferencesGroup, empty: str) -> None:
        self.group = group
        self.empty = empty
        self.rows: list[Gtk.Widget] = []

    def fill(self, rows: list[Gtk.Widget]) -> None:
        for r in self.rows:
            self.group.remove(r)
        self.rows = rows or [row(self.empty)]
        for r in self.rows:
            self.group.add(r)


class WeekChart(Gtk.DrawingArea):
    """Seven bars, Monday to Sunday; its accessible description reads the
    values, since a picture says nothing to a screen reader."""

    def __init__(self) -> None:
        super().__init__(content_height=140, hexpand=True, accessible_role=Gtk.AccessibleRole.IMG)
        self.bars: list[Bar] = []
        self.set_draw_func(self._draw)
        named(self, "Screen time this week")

    def show_bars(self, bars: list[Bar]) -> None:
        self.bars = bars
        text = "; ".join(b.label for b in bars)
        named(self, "Screen time this week", text)
        self.queue_draw()

    def _draw(self, area: Gtk.DrawingArea, cr, width: int, height: int) -> None:
        if not self.bars:
            return
        color = area.get_style_context().get_color()  # GTK 4.8: no Widget.get_color
        top = max(1.0, max(b.hours for b in self.bars))
        slot = width / len(self.bars)
        label_h = 18
        for i, bar in enumerate(self.bars):
            h = (height - label_h - 4) * bar.hours / top
            cr.set_source_rgba(0.21, 0.52, 0.89, 1.0)
            cr.rectangle(i * slot + slot * 0.2, height - label_h - h, slot * 0.6, h)
            cr.fill()
            cr.set_source_rgba(color.red, color.green, color.blue, 0.8)
            cr.move_to(i * slot + slot * 0.3, height - 4)
            cr.show_text(bar.day)
