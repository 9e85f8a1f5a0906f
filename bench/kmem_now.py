"""Kernel memory of a collector with every monitor and both enforcers, per
map and program (memlock), as bench/lib/util.bpf_memory counts it.

    sudo .venv/bin/python bench/kmem_now.py [--all]

Starts ``dots-collector --stdout --rules-file ''`` at the defaults, waits for
"ready", prints each map (name, kind, entries, memlock) and the totals, stops it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib import util  # noqa: E402

EVERY_MAP = 64


def main() -> int:
    proc = subprocess.Popen([util.COLLECTOR_BIN, "--stdout", "--rules-file", ""],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=util.REPO)
    deadline = time.monotonic() + 180
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "ready" in line:
                break
            if time.monotonic() > deadline:
                raise SystemExit("no 'ready' within 180 s")
        else:
            raise SystemExit(f"collector exited: {proc.wait()}")
        util.bpf_memory.__globals__  # noqa: B018 (keep the import used)
        mem = _all_maps(proc.pid)
        for m in sorted(mem["all"], key=lambda m: -m["memlock"]):
            print(f"{m['name']:<18} {m['kind']:<16} {m['max_entries']:>8} {m['memlock']:>10}")
        print(f"maps {mem['maps']} {mem['map_bytes']} B, ringbufs {mem['ringbuf_bytes']} B, "
              f"programs {mem['programs']} {mem['prog_bytes']} B, total {mem['total_bytes']} B "
              f"= {mem['total_bytes'] / 1048576:.2f} MiB")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
    return 0


def _all_maps(pid: int) -> dict:
    """bpf_memory with every map listed, not the largest eight."""
    out = util.bpf_memory(pid)
    old = util.bpf_memory.__defaults__
    del old
    # bpf_memory lists the 8 largest; read the rest the same way
    maps = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:bpf-map":
                continue
        except OSError:
            continue
        info = util._fdinfo(pid, fd)
        if "map_id" in info:
            maps.append((int(info["map_id"]), int(info.get("max_entries", 0)),
                         int(info.get("memlock", 0))))
    names = util._bpftool("map")
    seen = set()
    out["all"] = []
    for map_id, entries, memlock in maps:
        if map_id in seen:
            continue
        seen.add(map_id)
        known = names.get(map_id, {})
        out["all"].append({"name": known.get("name", "?"), "kind": known.get("type", "?"),
                           "max_entries": entries, "memlock": memlock})
    return out


if __name__ == "__main__":
    raise SystemExit(main())
