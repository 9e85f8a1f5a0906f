"""Programs the exec enforcer knows by name: the default allow list of
allow-list mode and the dynamic loaders a child could run a program
through, with the helpers that find them on this machine."""

from __future__ import annotations

import glob
import os

from dots_common.programs import DEFAULT_ALLOWED  # re-exported: the collector's default list

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
