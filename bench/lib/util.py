"""Small helpers every section uses: progress on stderr, statistics,
settings (quick or full), users, process memory, kernel-side BPF memory."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
VENV_PYTHON = str(REPO / ".venv" / "bin" / "python")
COLLECTOR_BIN = str(REPO / ".venv" / "bin" / "dots-collector")

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.helpers import as_user, ensure_user  # noqa: E402  (stdlib-only helpers)

__all__ = ["REPO", "BENCH", "VENV_PYTHON", "COLLECTOR_BIN", "as_user", "ensure_user",
           "Settings", "Progress", "summarize", "ratio_summary", "percentile", "proc_memory",
           "bpf_memory", "SectionError"]


class SectionError(RuntimeError):
    """A section could not measure something; the reason goes in the results."""


# --- settings ---------------------------------------------------------------------
@dataclasses.dataclass
class Settings:
    quick: bool
    pairs: int
    #: the ordinary workload's pairs: its bare runs spread ±20 % here (a
    #: build and a 20 MB copy on a VM's disk), so its median takes more
    mixed_pairs: int
    storm_seconds: float
    mixed_files: int
    rates: list[int]
    rate_seconds: float
    memory_events: int
    lat_known: int
    lat_fresh: int
    lat_connect: int
    lat_lock: int
    scale_pairs: int
    scale_uids: list[int]
    scale_addresses: list[int]
    scale_apps: list[int]

    @classmethod
    def full(cls) -> "Settings":
        return cls(quick=False, pairs=5, mixed_pairs=9, storm_seconds=2.0, mixed_files=50,
                   rates=[1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000],
                   rate_seconds=4.0, memory_events=1_000_000,
                   lat_known=200, lat_fresh=40, lat_connect=500, lat_lock=40,
                   scale_pairs=3, scale_uids=[1, 5, 20], scale_addresses=[10, 1000, 100000],
                   scale_apps=[10, 1000, 100000])

    @classmethod
    def quick_(cls) -> "Settings":
        return cls(quick=True, pairs=2, mixed_pairs=2, storm_seconds=0.4, mixed_files=12,
                   rates=[2000, 10000, 50000], rate_seconds=1.5, memory_events=50_000,
                   lat_known=30, lat_fresh=6, lat_connect=100, lat_lock=8,
                   scale_pairs=1, scale_uids=[1, 5, 20], scale_addresses=[10, 1000, 100000],
                   scale_apps=[10, 1000])


# --- progress -------------------------------------------------------------------------
class Progress:
    """Progress lines on stderr: elapsed time, section, message."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.section = ""

    def __call__(self, message: str) -> None:
        elapsed = time.monotonic() - self.start
        prefix = f"[{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}]"
        where = f" {self.section}:" if self.section else ""
        print(f"{prefix}{where} {message}", file=sys.stderr, flush=True)

    def enter(self, section: str, estimate_s: float | None = None) -> None:
        self.section = section
        est = f" (about {estimate_s / 60:.1f} min)" if estimate_s else ""
        self(f"--- start{est}")


# --- statistics --------------------------------------------------------------------------
def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(values: Iterable[float]) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def ratio_summary(pairs: Iterable[tuple[float, float]]) -> dict | None:
    """Ratios x / bare of paired runs: median, min, max."""
    return summarize(x / bare for bare, x in pairs if bare and x)


# --- memory of processes -----------------------------------------------------------------
def proc_memory(pid: int) -> dict | None:
    """VmRSS and VmHWM of a process in KiB (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0])
    return out


def _fdinfo(pid: int, fd: str) -> dict[str, str]:
    info = {}
    try:
        with open(f"/proc/{pid}/fdinfo/{fd}") as f:
            for line in f:
                key, _, value = line.partition(":")
                info[key.strip()] = value.strip()
    except OSError:
        pass
    return info


def _bpftool(kind: str) -> dict[int, dict]:
    try:
        out = subprocess.run(["bpftool", "-j", kind, "show"], capture_output=True, text=True,
                             timeout=60)
        return {entry["id"]: entry for entry in json.loads(out.stdout or "[]")}
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}


def _map_entry(info: dict[str, str]) -> dict:
    """A map's fdinfo as the report keeps it."""
    return {"type": int(info.get("map_type", 0)), "max_entries": int(info.get("max_entries", 0)),
            "memlock": int(info.get("memlock", 0))}


def _collector_pins(pid: int) -> Path | None:
    """The pin directory of a dots-collector process (its programs are held
    by pinned links, not by the process): --pin-dir, else DOTS_PIN_DIR,
    else the default."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    if not any(a.endswith(b"dots-collector") for a in argv):
        return None
    if b"--pin-dir" in argv:
        return Path(os.fsdecode(argv[argv.index(b"--pin-dir") + 1]))
    for entry in environ:
        if entry.startswith(b"DOTS_PIN_DIR=") and len(entry) > 13:
            return Path(os.fsdecode(entry[13:]))
    return Path("/sys/fs/bpf/dots")


def _pinned(pin_dir: Path) -> tuple[set[int], dict[int, dict]]:
    """Ids of the programs the links pinned under pin_dir attach, and the
    pinned maps (the manifests are pinned, never held by the collector)."""
    from dots_collector import libbpf

    progs: set[int] = set()
    maps: dict[int, dict] = {}
    for pin in [*pin_dir.glob("*/link_*"), *pin_dir.glob("*/map_*"), *pin_dir.glob("*/manifest")]:
        try:
            fd = libbpf.obj_get(pin)
        except OSError:
            continue
        try:
            info = _fdinfo(os.getpid(), str(fd))
            if "prog_id" in info:
                progs.add(int(info["prog_id"]))
            elif "map_id" in info:
                maps[int(info["map_id"])] = _map_entry(info)
        finally:
            os.close(fd)
    return progs, maps


#: how many of the largest maps bpf_memory() lists
LARGEST = 8


def bpf_memory(pid: int) -> dict:
    """Kernel memory charged for the BPF maps (ring buffers included) and
    programs a process holds: the ``memlock`` of each map and program fd in
    /proc/PID/fdinfo (what ``bpftool map show`` / ``prog show`` print as
    bytes_memlock), each id counted once, with bpftool's names. For
    dots-collector, whose programs are held by links pinned in bpffs: every
    map pinned (manifests included) and the programs of the pinned links."""
    maps: dict[int, dict] = {}
    progs: dict[int, dict] = {}
    pins = _collector_pins(pid)
    if pins is not None:
        known = _bpftool("prog")
        pinned_progs, maps = _pinned(pins)
        for prog_id in pinned_progs:
            progs[prog_id] = {"memlock": int(known.get(prog_id, {}).get("bytes_memlock", 0))}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return {"error": f"process {pid} is gone"}
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target == "anon_inode:bpf-map":
            info = _fdinfo(pid, fd)
            if "map_id" in info:
                maps[int(info["map_id"])] = _map_entry(info)
        elif target == "anon_inode:bpf-prog":
            info = _fdinfo(pid, fd)
            if "prog_id" in info:
                progs[int(info["prog_id"])] = {"memlock": int(info.get("memlock", 0))}
    map_names = _bpftool("map")
    prog_names = _bpftool("prog")
    for map_id, entry in maps.items():
        known = map_names.get(map_id, {})
        entry["name"] = known.get("name", "?")
        entry["kind"] = known.get("type", str(entry["type"]))
    for prog_id, entry in progs.items():
        known = prog_names.get(prog_id, {})
        entry["name"] = known.get("name", "?")
        entry["bytes_jited"] = known.get("bytes_jited", 0)
    map_bytes = sum(m["memlock"] for m in maps.values())
    prog_bytes = sum(p["memlock"] for p in progs.values())
    ring_bytes = sum(m["memlock"] for m in maps.values() if m["kind"] == "ringbuf")
    return {"maps": len(maps), "programs": len(progs), "map_bytes": map_bytes,
            "ringbuf_bytes": ring_bytes, "prog_bytes": prog_bytes,
            "total_bytes": map_bytes + prog_bytes,
            "largest_maps": sorted(({"id": i, **m} for i, m in maps.items()),
                                   key=lambda m: -m["memlock"])[:LARGEST]}


#: figures one section hands to a later one (e.g. the sustained rate found by
#: the throughput section, used by the memory run)
CONTEXT: dict = {}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
