"""Kernel memory of a collector with every monitor and both enforcers at
the defaults, map by map (memlock, as ``bpftool map show`` prints it), with
the totals bench/lib/util.bpf_memory reports.

    sudo .venv/bin/python bench/kmem_now.py

Starts ``dots-collector --stdout --rules-file ''`` (pins, where the
collector pins, in a private directory removed afterwards), waits for
"ready", lists the maps it holds or pinned, stops it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib import util  # noqa: E402


def main() -> int:
    pins = Path(f"/sys/fs/bpf/dots-kmem-now-{os.getpid()}")
    env = dict(os.environ, DOTS_PIN_DIR=str(pins))
    proc = subprocess.Popen([util.COLLECTOR_BIN, "--stdout", "--rules-file", ""], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "ready" in line:
                break
        else:
            raise SystemExit(f"collector exited: {proc.wait()}")
        total = util.bpf_memory(proc.pid)
        maps = all_maps(proc.pid, pins)
        for m in sorted(maps, key=lambda m: -m["bytes_memlock"]):
            print(f"{m.get('name', '?'):<18} {m['type']:<16} {m.get('max_entries', 0):>8} "
                  f"{m['bytes_memlock']:>10}")
        map_bytes = sum(m["bytes_memlock"] for m in maps)
        ring = sum(m["bytes_memlock"] for m in maps if m["type"] == "ringbuf")
        prog = total.get("prog_bytes", 0)
        print(f"maps {len(maps)} {map_bytes} B, ringbufs {ring} B, programs "
              f"{total.get('programs', 0)} {prog} B, total {map_bytes + prog} B = "
              f"{(map_bytes + prog) / 1048576:.2f} MiB (bpf_memory: "
              f"{total.get('total_bytes', 0) / 1048576:.2f} MiB)")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(pins, ignore_errors=True)
    return 0


def all_maps(pid: int, pins: Path) -> list[dict]:
    """Every map the process holds an fd of, or that is pinned under pins."""
    held = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:bpf-map":
                held.add(int(util._fdinfo(pid, fd)["map_id"]))
        except (OSError, KeyError):
            continue
    out = subprocess.run(["bpftool", "-j", "-f", "map", "show"], capture_output=True, text=True)
    return [m for m in json.loads(out.stdout or "[]")
            if m["id"] in held or any(p.startswith(f"{pins}/") for p in m.get("pinned", []))]


if __name__ == "__main__":
    raise SystemExit(main())
