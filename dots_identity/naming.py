"""Apps named the way parents name them, turned into the program files
that run: a path, a program on the search path, a name from the
application menu (desktop entries, by Name= in any language or by file
id), a Flatpak application id, a Snap name, an AppImage file.

A name that resolves to nothing raises UnknownApp with a sentence saying
where it was looked for: a rule is never dropped in silence. No D-Bus, no
database: the CLI (on the parent's side) and the policy daemon use it.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: where a bare program name ("supertux2") is looked up, as a login shell would
SEARCH_PATH = ("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/games:"
               "/usr/games:/var/lib/flatpak/exports/bin:/snap/bin")
DESKTOP_DIRS = ("/usr/share/applications", "/usr/local/share/applications",
                "/var/lib/flatpak/exports/share/applications",
                "/var/lib/snapd/desktop/applications")
FLATPAK_DIRS = ("/var/lib/flatpak/app",)
SNAP_DIR = "/snap"
#: launchers that start the program named in their arguments: blocking the
#: launcher itself would block every app it starts
LAUNCHERS = frozenset({"flatpak", "env", "snap", "gtk-launch", "sh", "bash"})
_FLATPAK_ID = re.compile(r"^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*){2,}$")


class UnknownApp(ValueError):
    """A name that is no program on this machine."""


@dataclass(frozen=True, slots=True)
class Roots:
    """Where apps are installed (tests point these at a fake tree)."""

    search_path: str = SEARCH_PATH
    desktop_dirs: tuple[str, ...] = DESKTOP_DIRS
    flatpak_dirs: tuple[str, ...] = FLATPAK_DIRS
    snap_dir: str = SNAP_DIR


def programs_of(name: str, roots: Roots = Roots()) -> list[str]:
    """The program files ``name`` means (absolute paths, sorted); an
    absolute path is taken as it is, even if nothing is there yet (a
    program installed there later is still the one named)."""
    if name.startswith("/"):
        return [name]
    found: list[str] = []
    if _FLATPAK_ID.match(name):
        found += flatpak_programs(name, roots)
    if not found:
        program = shutil.which(name, path=roots.search_path)
        if program and program.startswith(("/var/lib/flatpak/exports/bin/", "/snap/bin/")):
            found += _launcher_target(program, roots)  # a launcher: the real program
        elif program:
            found.append(program)
    if not found:
        found += desktop_programs(name, roots)
    if not found:
        found += snap_programs(name, roots)
    return sorted(set(found))


def resolve(name: str, roots: Roots = Roots()) -> list[str]:
    """``programs_of`` or UnknownApp."""
    found = programs_of(name, roots)
    if not found:
        raise UnknownApp(
            f"no app called {name!r}: not a program on the search path, not a name in the "
            f"application menu, not a Flatpak application or a Snap (give a path, or the name "
            f"as the menu shows it)")
    return found


def _launcher_target(path: str, roots: Roots) -> list[str]:
    app_id = os.path.basename(path)
    return flatpak_programs(app_id, roots) or snap_programs(app_id, roots)


def flatpak_programs(app_id: str, roots: Roots = Roots()) -> list[str]:
    """The command of an installed Flatpak (files/bin/COMMAND of the
    active deployment); inside the sandbox it runs as /app/bin/COMMAND,
    the same inode."""
    out = []
    for base in roots.flatpak_dirs:
        files = Path(base) / app_id / "current" / "active"
        meta = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            meta.read_string((files / "metadata").read_text(errors="replace"))
        except (OSError, configparser.Error):
            continue
        command = meta.get("Application", "command", fallback="")
        if command:
            rel = command[len("/app/"):] if command.startswith("/app/") else f"bin/{command}"
            out.append(str(files / "files" / rel))
    return out


def snap_programs(name: str, roots: Roots = Roots()) -> list[str]:
    """Commands of an installed Snap (meta/snap.yaml apps' command:)."""
    current = Path(roots.snap_dir) / name / "current"
    try:
        text = (current / "meta" / "snap.yaml").read_text(errors="replace")
    except OSError:
        return []
    out = []
    for m in re.finditer(r"^\s+command:\s*(\S+)", text, re.M):
        out.append(str(current / m[1].lstrip("/")))
    return out


def desktop_entries(roots: Roots = Roots()) -> Iterable[tuple[str, list[str], str]]:
    """(file id, names in every language, Exec=) of each application entry."""
    for d in roots.desktop_dirs:
        try:
            files = sorted(Path(d).glob("*.desktop"))
        except OSError:
            continue
        for f in files:
            entry = configparser.ConfigParser(interpolation=None, strict=False)
            entry.optionxform = str  # type: ignore[assignment]
            try:
                entry.read_string(f.read_text(errors="replace"))
            except (OSError, configparser.Error):
                continue
            if "Desktop Entry" not in entry:
                continue
            section = entry["Desktop Entry"]
            names = [v for k, v in section.items() if k == "Name" or k.startswith("Name[")]
            yield f.stem, names, section.get("Exec", "")


def desktop_programs(name: str, roots: Roots = Roots()) -> list[str]:
    """Programs of the menu entries called ``name`` (case-insensitive, any
    language) or whose file id is ``name``."""
    wanted = name.casefold()
    for file_id, names, exec_line in desktop_entries(roots):
        if wanted == file_id.casefold() or wanted in (n.casefold() for n in names):
            return exec_programs(exec_line, roots)
    return []


def exec_programs(exec_line: str, roots: Roots = Roots()) -> list[str]:
    """The program an Exec= line starts (through flatpak run / env)."""
    try:
        argv = [a for a in shlex.split(exec_line) if not a.startswith("%") and a != "@@u"
                and a != "@@"]
    except ValueError:
        return []
    while argv and "=" in argv[0] and not argv[0].startswith("/"):
        argv.pop(0)  # VAR=value
    if not argv:
        return []
    head = os.path.basename(argv[0])
    if head == "flatpak" and "run" in argv:
        rest = [a for a in argv[argv.index("run") + 1:] if not a.startswith("-")]
        return flatpak_programs(rest[0], roots) if rest else []
    if head in LAUNCHERS and len(argv) > 1:
        return exec_programs(shlex.join(argv[1:]), roots)
    program = argv[0] if argv[0].startswith("/") else shutil.which(argv[0], path=roots.search_path)
    return [program] if program else []
