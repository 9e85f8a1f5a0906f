"""The workloads: C storms built here (static, so a spawned program opens
no library), run as the bench users; the mixed "ordinary" workload (a
generated C project built with make -j2, plus a copy of a source tree)."""

from __future__ import annotations

import json
import os
import pwd
import random
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .util import BENCH, SectionError, ensure_user

SOURCES = BENCH / "workloads"
BENCH_USER = "dots-bench"
IDLE_USER = "dots-bench-idle"  # monitored in the "filtered out" runs; runs nothing


def _source_tree() -> str:
    """A tree of source files every Debian has, copied by the mixed
    workload: Perl's library (~20 MB, ~1,200 files), else Python's."""
    import glob

    for pattern in ("/usr/share/perl/5.*", "/usr/lib/python3.*", "/usr/include"):
        for path in sorted(glob.glob(pattern)):
            if os.path.isdir(path) and not os.path.islink(path):
                return path
    raise SectionError("no source tree to copy (/usr/share/perl, /usr/lib/python3.*)")


SOURCE_TREE = _source_tree()


@dataclass
class User:
    name: str
    uid: int
    gid: int
    home: Path  # a work directory of ours owned by the user


class Workspace:
    """Compiled workloads and per-user work directories under one temporary
    directory (removed at the end)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dots-bench-", dir="/tmp"))
        self.root.chmod(0o755)
        self.bin = self.root / "bin"
        self.bin.mkdir()
        self.users: dict[str, User] = {}
        self.build()

    def build(self) -> None:
        for src in sorted(SOURCES.glob("*.c")):
            out = self.bin / src.stem
            done = subprocess.run(["gcc", "-O2", "-Wall", "-static", "-o", str(out), str(src)],
                                  capture_output=True, text=True)
            if done.returncode != 0:  # no static libc: dynamic is still correct
                done = subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out), str(src)],
                                      capture_output=True, text=True)
            if done.returncode != 0:
                raise SectionError(f"cannot build {src.name}: {done.stderr[-800:]}")

    def path(self, name: str) -> str:
        return str(self.bin / name)

    def user(self, name: str) -> User:
        """A real local account (created if missing) and its work directory."""
        if name not in self.users:
            uid = ensure_user(name)
            pw = pwd.getpwnam(name)
            home = self.root / name
            home.mkdir(exist_ok=True)
            os.chown(home, pw.pw_uid, pw.pw_gid)
            home.chmod(0o755)
            self.users[name] = User(name, uid, pw.pw_gid, home)
        return self.users[name]

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def user_env(user: User) -> dict[str, str]:
    return {"HOME": str(user.home), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
            "USER": user.name, "LOGNAME": user.name}


def spawn_kw(user: User) -> dict:
    """Run as ``user`` (real and effective uid and gid, no supplementary
    groups), set in the forked child before exec: unlike setpriv
    --init-groups, nothing is looked up (no NSS opens counted as the
    user's file events)."""
    return {"user": user.uid, "group": user.gid, "extra_groups": [], "env": user_env(user),
            "cwd": user.home, "stdin": subprocess.DEVNULL}


def run_as(user: User, argv: list[str], timeout: float = 900, check: bool = True,
           cwd: Path | None = None) -> subprocess.CompletedProcess:
    kw = spawn_kw(user)
    if cwd is not None:
        kw["cwd"] = cwd
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and done.returncode != 0:
        raise SectionError(f"{' '.join(argv)} as {user.name} failed ({done.returncode}): "
                           f"{done.stderr.strip()[-500:]}")
    return done


def json_result(done: subprocess.CompletedProcess) -> dict:
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise SectionError(f"no result from workload: {done.stdout[-300:]!r} {done.stderr[-300:]!r}")


# --- the storms ------------------------------------------------------------------------------
#: monitor -> (program, calibration iterations, argv after ITER (filled per user))
STORMS = {
    "process": ("exec_storm", 300),
    "filesystem": ("fs_storm", 3000),
    "network": ("net_storm", 2000),
    "memory": ("mem_storm", 2000),
    "disk": ("disk_storm", 1000),
}

STORM_DESCRIPTIONS = {
    "process": "exec storm: posix_spawn + wait of a static no-op program",
    "filesystem": "open(O_CREAT|O_TRUNC)/write 4 KiB/close, open/read 4 KiB/close, unlink 1/16",
    "network": "loopback TCP: connect, send 1 KiB, receive 1 KiB echo, close",
    "memory": "mmap 256 KiB anonymous, touch every page, munmap",
    "disk": "O_DIRECT 4 KiB pwrite + pread on ext4, fdatasync every 8th",
}


def storm_argv(ws: Workspace, monitor: str, iterations: int, user: User) -> list[str]:
    program = ws.path(STORMS[monitor][0])
    if monitor == "process":
        return [program, str(iterations), ws.path("nop")]
    if monitor == "filesystem":
        d = user.home / "fs"
        d.mkdir(exist_ok=True)
        os.chown(d, user.uid, user.gid)
        return [program, str(iterations), str(d)]
    if monitor == "disk":
        return [program, str(iterations), str(user.home / "disk.dat")]
    return [program, str(iterations)]


def run_storm(ws: Workspace, monitor: str, iterations: int, user: User) -> dict:
    """One storm run as ``user``: the workload's own timing and counts."""
    result = json_result(run_as(user, storm_argv(ws, monitor, iterations, user)))
    if result.get("errors"):
        result["warning"] = f"{result['errors']} failed operations"
    return result


def run_split_storm(ws: Workspace, monitor: str, iterations: int, users: list[User]) -> dict:
    """The storm's iterations split across ``users`` running at once; the
    wall time from the first start to the last exit (the scale runs)."""
    share = max(1, iterations // len(users))
    t0 = time.monotonic()
    procs = [subprocess.Popen(storm_argv(ws, monitor, share, u), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, **spawn_kw(u)) for u in users]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=900)
        if p.returncode != 0:
            raise SectionError(f"split storm failed: {err[-300:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    elapsed = time.monotonic() - t0
    return {"elapsed_s": elapsed, "iterations": share * len(users),
            "errors": sum(r["errors"] for r in results),
            "events": sum(r["events"] for r in results)}


def calibrate(ws: Workspace, monitor: str, user: User, seconds: float) -> dict:
    """Iterations for a storm of about ``seconds`` bare on this machine (a
    warm-up run, then a measured one)."""
    n0 = STORMS[monitor][1]
    run_storm(ws, monitor, max(10, n0 // 4), user)  # warm-up (caches, page tables)
    # the faster of two probes: on a busy machine the slower one is noise
    probe = min(run_storm(ws, monitor, n0, user)["elapsed_s"] for _ in range(2))
    iterations = max(20, int(n0 * seconds / max(probe, 1e-3)))
    return {"iterations": iterations, "probe_iterations": n0, "probe_elapsed_s": probe}


# --- the ordinary mixed workload -----------------------------------------------------------------
MIXED_DESCRIPTION = ("build a generated C project ({files} files) with make -j2, then copy "
                     + SOURCE_TREE + " (cp -r)")


def generate_project(dest: Path, files: int, seed: int = 8) -> None:
    """A small C project: ``files`` translation units of a few dozen
    functions each, a main, and a Makefile."""
    rng = random.Random(seed)
    dest.mkdir(parents=True, exist_ok=True)
    decls = []
    for i in range(files):
        funcs = []
        for j in range(16):
            a, b, c = rng.randint(1, 97), rng.randint(1, 89), rng.randint(2, 13)
            funcs.append(
                f"long f{i}_{j}(long x)\n{{\n    long acc = {a};\n"
                f"    for (int k = 0; k < {c}; k++) {{\n"
                f"        acc = (acc * {b} + x) % 1000003;\n"
                f"        if (acc & 1) acc ^= x << (k & 7); else acc += k * {a};\n"
                f"    }}\n    return acc;\n}}\n")
        decls.append(f"long f{i}_0(long x);")
        (dest / f"unit{i:03d}.c").write_text(
            "#include <stdio.h>\n#include <string.h>\n#include <stdlib.h>\n\n" + "\n".join(funcs))
    calls = "\n".join(f"    total += f{i}_0(total);" for i in range(files))
    (dest / "main.c").write_text("#include <stdio.h>\n" + "\n".join(decls)
                                 + f"\nint main(void)\n{{\n    long total = 1;\n{calls}\n"
                                 "    printf(\"%ld\\n\", total);\n    return 0;\n}\n")
    (dest / "Makefile").write_text(
        "SRCS := $(wildcard *.c)\nOBJS := $(SRCS:.c=.o)\nCFLAGS := -O2\n\n"
        "app: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n\n%.o: %.c\n\t$(CC) $(CFLAGS) -c -o $@ $<\n")


class Mixed:
    def __init__(self, ws: Workspace, user: User, files: int) -> None:
        self.ws = ws
        self.user = user
        self.files = files
        self.dir = user.home / "mixed"
        self.dir.mkdir(exist_ok=True)
        generate_project(self.dir / "src", files)
        for path in [self.dir, *self.dir.rglob("*")]:
            os.chown(path, user.uid, user.gid)
        self.script = self.dir / "run.sh"
        self.script.write_text(
            "set -e\ncd \"$1\"\ncp -r src run/proj\nmake -s -j2 -C run/proj\n"
            f"cp -r {SOURCE_TREE} run/tree\n")
        self.prepare()

    def prepare(self) -> None:
        """Outside the timing: remove the previous run's output, write it
        back to disk, so every run starts alike."""
        shutil.rmtree(self.dir / "run", ignore_errors=True)
        (self.dir / "run").mkdir()
        os.chown(self.dir / "run", self.user.uid, self.user.gid)
        subprocess.run(["sync"], check=False)

    def run(self) -> dict:
        self.prepare()
        t0 = time.monotonic()
        run_as(self.user, ["/bin/sh", str(self.script), str(self.dir)])
        elapsed = time.monotonic() - t0
        return {"elapsed_s": elapsed, "iterations": 1, "errors": 0}
