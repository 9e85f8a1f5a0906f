"""The desktop's own programs: what a login and a desktop session start on
their own before the child picks an app. The collector's allow-list mode
always lets them run; the policy daemon's screen time does not take them
for an app the child chose (always-allowed apps, app_time.py)."""

from __future__ import annotations

import fnmatch
import os

#: Programs every uid in allow-list mode may always run: what a login and a
#: desktop session start on their own before the child picks an app. Paths
#: that do not exist on this machine are skipped; globs are expanded at
#: load. Allowed by inode (no content identity): a copy is not allowed.
#: Not here on purpose: general interpreters (python, perl, ...) — one of
#: them would allow any program written in it (add them per child) — and
#: the dynamic loader (ld.so PROGRAM would run anything).
DEFAULT_ALLOWED: tuple[str, ...] = (
    # shells (login shells, session and profile scripts)
    "/bin/sh", "/bin/bash", "/bin/dash", "/usr/bin/zsh", "/usr/bin/fish",
    # the basics profile and session scripts call
    "/usr/bin/env", "/usr/bin/id", "/usr/bin/true", "/usr/bin/false", "/usr/bin/test",
    "/usr/bin/[", "/usr/bin/cat", "/usr/bin/ls", "/usr/bin/dirname", "/usr/bin/basename",
    "/usr/bin/mkdir", "/usr/bin/tty", "/usr/bin/uname", "/usr/bin/locale", "/usr/bin/grep",
    "/usr/bin/sed", "/usr/bin/tr", "/usr/bin/cut", "/usr/bin/head", "/usr/bin/readlink",
    "/usr/bin/which", "/usr/bin/date", "/usr/bin/sleep", "/usr/bin/stty", "/usr/bin/tput",
    "/usr/bin/dircolors", "/usr/bin/lesspipe", "/usr/bin/xdg-user-dirs-update",
    # session plumbing: systemd user manager, D-Bus, keyring, audio, portals
    "/usr/lib/systemd/systemd", "/usr/lib/systemd/systemd-executor",
    "/usr/bin/dbus-daemon", "/usr/bin/dbus-broker", "/usr/bin/dbus-broker-launch",
    "/usr/bin/dbus-run-session", "/usr/bin/dbus-update-activation-environment",
    "/usr/bin/gnome-keyring-daemon", "/usr/bin/ssh-agent",
    "/usr/bin/pipewire", "/usr/bin/pipewire-pulse", "/usr/bin/wireplumber",
    "/usr/bin/pulseaudio",
    "/usr/libexec/xdg-desktop-portal*", "/usr/libexec/xdg-document-portal",
    "/usr/libexec/xdg-permission-store", "/usr/libexec/at-spi-bus-launcher",
    "/usr/libexec/at-spi2-registryd", "/usr/libexec/dconf-service",
    "/usr/libexec/gvfsd*", "/usr/libexec/gvfs-*",
    # display servers and desktops (GNOME, KDE Plasma, Xfce)
    "/usr/bin/Xwayland", "/usr/lib/xorg/Xorg", "/usr/bin/xrdb", "/usr/bin/xhost",
    "/usr/bin/gnome-session", "/usr/libexec/gnome-session-*", "/usr/bin/gnome-shell",
    "/usr/libexec/gsd-*", "/usr/libexec/gnome-shell-*", "/usr/libexec/evolution-*",
    "/usr/bin/startplasma-x11", "/usr/bin/startplasma-wayland", "/usr/bin/plasmashell",
    "/usr/bin/plasma_session", "/usr/bin/kwin_x11", "/usr/bin/kwin_wayland",
    "/usr/bin/ksmserver", "/usr/bin/kded5", "/usr/bin/kded6",
    "/usr/bin/startxfce4", "/usr/bin/xfce4-session", "/usr/bin/xfwm4", "/usr/bin/xfce4-panel",
    "/usr/bin/xfdesktop", "/usr/bin/xfsettingsd",
    "/usr/bin/xdg-open", "/usr/bin/xdg-mime",
)


def is_desktop_program(path: str) -> bool:
    """``path`` (or what it links to) is one of DEFAULT_ALLOWED's programs."""
    real = os.path.realpath(path)
    names = {path, real, real.removeprefix("/usr")}  # merged /usr: /bin/sh is /usr/bin/sh
    return any(fnmatch.fnmatchcase(p, pattern) for pattern in DEFAULT_ALLOWED for p in names)
