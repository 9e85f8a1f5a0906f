"""Apps named the way parents name them (dots_identity.naming), on a fake
installation tree: menu entries, a Flatpak-like and a Snap-like layout, an
AppImage-like file; a name that means nothing is a named error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dots_identity.naming import Roots, UnknownApp, programs_of, resolve
from dots_policyd.apps import Apps


@pytest.fixture
def tree(tmp_path: Path) -> Roots:
    apps = tmp_path / "applications"
    apps.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy("/usr/bin/sleep", bin_dir / "supertux2")
    (apps / "supertux2.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=SuperTux\nName[de]=SuperTux-Spiel\n"
        f"Exec=env LANG=C {bin_dir}/supertux2 %U\n")
    # a Flatpak-like deployment and its menu entry
    deploy = tmp_path / "flatpak" / "org.example.Racer" / "current" / "active"
    (deploy / "files" / "bin").mkdir(parents=True)
    shutil.copy("/usr/bin/true", deploy / "files" / "bin" / "racer")
    (deploy / "metadata").write_text("[Application]\nname=org.example.Racer\ncommand=racer\n")
    (apps / "org.example.Racer.desktop").write_text(
        "[Desktop Entry]\nName=Tux Racer\nExec=/usr/bin/flatpak run --branch=stable "
        "--command=racer org.example.Racer @@u %U @@\n")
    # a Snap-like one
    snap = tmp_path / "snap" / "chess" / "current"
    (snap / "meta").mkdir(parents=True)
    (snap / "meta" / "snap.yaml").write_text("name: chess\napps:\n  chess:\n    command: bin/chess\n")
    return Roots(search_path=str(bin_dir), desktop_dirs=(str(apps),),
                 flatpak_dirs=(str(tmp_path / "flatpak"),), snap_dir=str(tmp_path / "snap"))


def test_menu_names_in_any_language_and_file_ids(tree):
    want = [str(Path(tree.search_path) / "supertux2")]
    assert programs_of("SuperTux", tree) == want
    assert programs_of("supertux-spiel", tree) == want
    assert programs_of("supertux2", tree) == want


def test_flatpak_by_id_and_by_menu_name(tree):
    racer = str(Path(tree.flatpak_dirs[0]) / "org.example.Racer/current/active/files/bin/racer")
    assert programs_of("org.example.Racer", tree) == [racer]
    assert programs_of("Tux Racer", tree) == [racer]


def test_snap_and_appimage_and_paths(tree, tmp_path):
    assert programs_of("chess", tree) == [str(Path(tree.snap_dir) / "chess/current/bin/chess")]
    image = tmp_path / "Game-x86_64.AppImage"
    shutil.copy("/usr/bin/sleep", image)
    assert programs_of(str(image), tree) == [str(image)]


def test_a_name_that_means_nothing_is_a_named_error(tree):
    with pytest.raises(UnknownApp, match="no app called 'minecraft'"):
        resolve("minecraft", tree)


def test_a_copy_of_a_menu_app_is_that_app(tree, tmp_path):
    copy = tmp_path / "totally-homework"
    shutil.copy(Path(tree.search_path) / "supertux2", copy)
    apps = Apps(tree)
    assert apps.is_app("SuperTux", str(copy))
    assert not apps.is_app("Tux Racer", str(copy))


def test_a_flatpak_app_seen_from_inside_its_sandbox(tree):
    """In the sandbox the program runs as /app/bin/racer: it is the app."""
    apps = Apps(tree)
    assert apps.is_app("org.example.Racer", "/app/bin/racer")
    assert apps.is_app("Tux Racer", "/app/bin/racer")
    assert not apps.is_app("SuperTux", "/app/bin/racer")


def test_the_daemon_refuses_a_name_that_means_nothing(tree):
    from dots_identity.naming import UnknownApp

    apps = Apps(tree)
    apps.require(["SuperTux", "org.example.Racer", "/opt/installed-later"])
    with pytest.raises(UnknownApp, match="no app called 'minecraft'"):
        apps.require(["SuperTux", "minecraft"])
    assert apps.unresolved(["SuperTux", "minecraft"]) == ["minecraft"]
