"""The applications installed on this machine, as a parent picks them: by
name and icon, each mapped to the program the policy blocks or limits (the
absolute path of its executable, so the kernel matches its inode)."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable

#: launchers whose path says nothing about the app they start
WRAPPERS = frozenset({"env", "sh", "bash", "flatpak", "snap", "python3", "python", "gjs", "java"})


@dataclasses.dataclass(frozen=True)
class InstalledApp:
    name: str
    program: str  # absolute path
    icon: str  # icon name or file, "" when none
    app_id: str


def program_of(executable: str, which: Callable[[str], str | None] = shutil.which) -> str | None:
    """The absolute path a desktop entry's executable runs, or None for
    wrappers (flatpak, env, interpreters) and missing programs."""
    if not executable or os.path.basename(executable) in WRAPPERS:
        return None
    path = executable if os.path.isabs(executable) else which(executable)
    return os.path.realpath(path) if path else None


def installed_apps() -> list[InstalledApp]:
    """Visible desktop applications with a real program, by name."""
    from gi.repository import Gio

    apps: dict[str, InstalledApp] = {}
    for info in Gio.AppInfo.get_all():
        if not info.should_show():
            continue
        program = program_of(info.get_executable() or "")
        if program is None or program in apps:
            continue
        icon = info.get_icon()
        icon_name = icon.to_string() if icon is not None else ""
        apps[program] = InstalledApp(info.get_display_name() or info.get_name(), program,
                                     icon_name or "", info.get_id() or "")
    return sorted(apps.values(), key=lambda a: a.name.lower())


def titles(apps: list[InstalledApp]) -> dict[str, str]:
    """program -> application name, to show rules by name."""
    return {a.program: a.name for a in apps}
