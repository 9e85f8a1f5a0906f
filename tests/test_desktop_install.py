"""The parents' app as a desktop installs it: its desktop entry, AppStream
metainfo and icons are valid, `make install` (staged with DESTDIR) puts them
where the application menu and GNOME Software look, with the absolute path
of the installed program, and the installed venv imports GTK 4 and
libadwaita; `make uninstall` removes them."""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import gi

from gi.repository import GLib  # noqa: E402

from tests.helpers import REPO  # noqa: E402
from tests.test_install import make, one, staged, staged_vars, unit  # noqa: E402,F401

DATA = REPO / "dots_desktop" / "data"
INSTALLED = {
    "usr/local/share/applications/org.dots.Family.desktop": DATA / "org.dots.Family.desktop",
    "usr/local/share/metainfo/org.dots.Family.metainfo.xml": DATA / "org.dots.Family.metainfo.xml",
    "usr/local/share/icons/hicolor/symbolic/apps/org.dots.Family-symbolic.svg": DATA / "org.dots.Family-symbolic.svg",
    "usr/local/share/icons/hicolor/scalable/apps/org.dots.Family.svg": DATA / "org.dots.Family-symbolic.svg",
}


def test_desktop_entry_metainfo_and_icon_are_valid():
    entry = GLib.KeyFile()
    entry.load_from_file(str(DATA / "org.dots.Family.desktop"), GLib.KeyFileFlags.NONE)
    get = lambda key: entry.get_string("Desktop Entry", key)  # noqa: E731
    assert (get("Type"), get("Name"), get("Exec"), get("Icon")) == \
        ("Application", "Family", "dots-family", "org.dots.Family")
    if shutil.which("desktop-file-validate"):
        out = subprocess.run(["desktop-file-validate", str(DATA / "org.dots.Family.desktop")],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
    root = ET.parse(DATA / "org.dots.Family.metainfo.xml").getroot()
    assert root.findtext("id") == "org.dots.Family"
    assert root.find("launchable").text == "org.dots.Family.desktop"
    if shutil.which("appstreamcli"):
        out = subprocess.run(["appstreamcli", "validate", "--no-net", str(DATA / "org.dots.Family.metainfo.xml")],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
    svg = ET.parse(DATA / "org.dots.Family-symbolic.svg").getroot()
    assert svg.get("width") == "16" and svg.get("height") == "16"


def test_make_install_puts_the_app_in_the_menu(staged):  # noqa: F811
    root, _output = staged
    for rel, source in INSTALLED.items():
        path = root / rel
        assert path.is_file(), f"{rel} not installed"
        if rel.endswith(".desktop"):
            entry = unit(path)["Desktop Entry"]
            assert one(entry, "Exec") == "/usr/local/bin/dots-family"
            assert one(entry, "TryExec") == "/usr/local/bin/dots-family"
        else:
            assert path.read_bytes() == source.read_bytes()
    link = root / "usr/local/bin/dots-family"
    assert link.is_symlink() and os.readlink(link) == "../lib/dots-family/bin/dots-family"
    site = next((root / "usr/local/lib/dots-family/lib").glob("python3*/site-packages"))
    assert os.readlink(site / "gi") == "/usr/lib/python3/dist-packages/gi"
    python = root / "usr/local/lib/dots-family/bin/python"
    out = subprocess.run([str(python), "-c", "import gi; gi.require_version('Gtk', '4.0'); "
                          "gi.require_version('Adw', '1'); from gi.repository import Adw"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert out.returncode == 0, out.stderr


def test_make_uninstall_removes_the_app(staged):  # noqa: F811  (last: it empties the stage)
    root, _output = staged
    make("uninstall", **staged_vars(root))
    left = [r for r in [*INSTALLED, "usr/local/bin/dots-family"]
            if (root / r).exists() or (root / r).is_symlink()]
    assert not left, f"left behind: {left}"
