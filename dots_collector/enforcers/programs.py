"""Programs the exec enforcer knows by name: the default allow list of
allow-list mode and the dynamic loaders a child could run a program
through, with the helpers that find them on this machine."""

from __future__ import annotations

import glob
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

#: the dynamic loaders (glibc, musl) a child could run a program through
LOADERS: tuple[str, ...] = (
    "/lib64/ld-linux*.so*", "/lib/ld-linux*.so*", "/lib/ld-musl-*.so*",
    "/lib/*-linux-gnu*/ld-linux*.so*", "/usr/lib/*-linux-gnu*/ld-linux*.so*",
    "/usr/lib64/ld-linux*.so*", "/usr/lib/ld-linux*.so*",
)

#: interpreters: the file on their command line is the program they run
#: (python3 game.py, java -jar game.jar, wine game.exe, love game.love,
#: sh game.sh); copies of them are recognised by content
INTERPRETERS: tuple[str, ...] = (
    "/bin/sh", "/bin/bash", "/bin/dash", "/usr/bin/zsh", "/usr/bin/fish",
    "/usr/bin/python3*", "/usr/bin/python2*", "/usr/bin/pypy*", "/usr/bin/perl", "/usr/bin/perl5*",
    "/usr/bin/ruby*", "/usr/bin/node", "/usr/bin/nodejs", "/usr/bin/lua*", "/usr/bin/luajit*",
    "/usr/bin/php*", "/usr/bin/tclsh*", "/usr/bin/wish*", "/usr/bin/gjs*", "/usr/bin/java",
    "/usr/lib/jvm/*/bin/java", "/usr/bin/wine*", "/usr/lib/wine/wine*", "/usr/bin/love",
    "/usr/bin/mono", "/usr/bin/dotnet", "/usr/bin/godot*", "/usr/bin/scummvm", "/usr/bin/dosbox*",
)

#: ld.so options that take a value (glibc 2.36 ld.so --help)
LOADER_OPTIONS_WITH_VALUE = frozenset({
    "--library-path", "--inhibit-rpath", "--audit", "--preload", "--argv0",
    "--glibc-hwcaps-prepend", "--glibc-hwcaps-mask"})


def loader_program(argv: list[str]) -> str | None:
    """The program an ``ld.so [options] PROGRAM [args]`` command line runs
    (None for ``--help``, ``--version``, ...)."""
    i = 1
    while i < len(argv) and argv[i].startswith("--"):
        i += 2 if argv[i] in LOADER_OPTIONS_WITH_VALUE else 1
    return argv[i] if i < len(argv) else None


def expand(patterns: tuple[str, ...]) -> list[tuple[str, os.stat_result]]:
    """(path, stat) of each regular file the patterns name, once per file."""
    out: list[tuple[str, os.stat_result]] = []
    seen: set[str] = set()
    for pattern in patterns:
        paths = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
        for path in paths:
            real = os.path.realpath(path)
            try:
                st = os.stat(real)
            except OSError:
                continue
            if real not in seen and os.path.isfile(real):
                seen.add(real)
                out.append((path, st))
    return out
