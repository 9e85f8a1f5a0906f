"""False matches of program identity against the system's own programs.

    .venv/bin/python bench/identity_false_matches.py [--root /usr] [--game PATH ...]

Reads every ELF regular file under --root (symlinks skipped; hard links
and byte-identical files counted once), takes its identity
(dots_identity: sha256, code hash, build-id, TLSH of the code), and counts:

* for each --game (a blocked game's identity; default: the two test games
  this script builds from C sources, of different sizes): how many ELF files
  under /usr match it (must be 0);
* leave-one-out over the system itself: pairs of *different* files under
  --root whose identities match, by how (same code, same build-id, TLSH
  within the threshold, the last counted raw: installed files are never
  compared fuzzily by dots_identity.match), with the pairs listed (these are the same program
  under two names, e.g. coreutils' ``dir`` and ``ls``, or near-twins);
* the TLSH distance distribution between different programs (how far
  the threshold is from the nearest unrelated pair), and the distance of
  patched copies of each game (how far it is from the attack).

Writes bench/results/identity-<date>.json and prints a summary. Not a
test: it measures; the threshold lives in dots_identity/match.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dots_identity.files import HashCache, Identity, IdentityError  # noqa: E402
from dots_identity.match import (MIN_FUZZY_CODE_BYTES, TLSH_MAX_DISTANCE,  # noqa: E402
                                 ProgramSet, tlsh_distance)

BENCH = Path(__file__).resolve().parent
GAME_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* a stand-in for a game: enough code of its own to have an identity */
#define F(n) int level##n(int x) { int s = 0; for (int i = 0; i < x; i++) \
  { s += (i * n) ^ (s >> 3); if (s %% 7 == n %% 7) s -= n; } return s; }
%s
int main(int argc, char **argv) {
  int t = argc > 1 ? atoi(argv[1]) : 3, s = 0;
  %s
  printf("%%d\n", s); return 0;
}
"""


def build_game(workdir: Path, levels: int) -> Path:
    defs = "\n".join(f"F({n})" for n in range(levels))
    calls = " ".join(f"s += level{n}(t);" for n in range(levels))
    src = workdir / f"game{levels}.c"
    src.write_text(GAME_SOURCE % (defs, calls))
    out = workdir / f"game{levels}"
    subprocess.run(["gcc", "-O1", "-o", str(out), str(src)], check=True)
    return out


def patched(path: Path, workdir: Path, nbytes: int, seed: int) -> Identity:
    """A copy with ``nbytes`` random bytes of its code overwritten."""
    cache = HashCache()
    ident = cache.of_path(str(path))
    data = bytearray(path.read_bytes())
    rng = random.Random(seed)
    # .text sits in the executable segment: patch inside the middle half of the file's code
    start, end = len(data) // 8, len(data) // 2
    for _ in range(nbytes):
        data[rng.randrange(start, end)] = rng.randrange(256)
    out = workdir / f"{path.name}.patched{nbytes}"
    out.write_bytes(bytes(data))
    del ident
    return cache.of_path(str(out))


def system_elves(root: str) -> list[Identity]:
    cache = HashCache(max_entries=1 << 20)
    seen_inodes: set[tuple[int, int]] = set()
    seen_sha: set[str] = set()
    out: list[Identity] = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in seen_inodes:
                    continue
                seen_inodes.add((st.st_dev, st.st_ino))
                with open(path, "rb") as f:
                    if f.read(4) != b"\x7fELF":
                        continue
                ident = cache.of_path(path)
            except (OSError, IdentityError):
                continue
            # .debug files (and other code-less ELF) have no code to run
            if ident.elf is None or not ident.elf.code_bytes or ident.sha256 in seen_sha:
                continue
            seen_sha.add(ident.sha256)
            out.append(ident)
    return out


def scripts_against_game(root: str) -> dict:
    """Every #! script under root against the test suite's blocked Python
    game (tests/test_identity_attacks.py): matches, and the nearest raw
    content-TLSH distances (installed scripts are compared exactly by the
    rule; the raw distances show how far a fuzzy comparison would be)."""
    from tests.test_identity_attacks import PY_GAME

    with tempfile.TemporaryDirectory() as tmp:
        game_path = Path(tmp) / "game.py"
        game_path.write_text(PY_GAME)
        cache = HashCache(max_entries=1 << 20)
        game = cache.of_path(str(game_path))
        edited = Path(tmp) / "edited.py"
        edited.write_text(PY_GAME.replace("level-3'", "level-three'") + "# my homework\n")
        edit_distance = tlsh_distance(game.content_tlsh, cache.of_path(str(edited)).content_tlsh)
    rule = ProgramSet.of([game])
    count, matches, dists = 0, [], []
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                if not stat.S_ISREG(os.lstat(path).st_mode):
                    continue
                with open(path, "rb") as f:
                    if f.read(2) != b"#!":
                        continue
                ident = cache.of_path(path)
            except (OSError, IdentityError):
                continue
            count += 1
            if rule.match(ident):
                matches.append(path)
            if ident.content_tlsh:
                dists.append(tlsh_distance(game.content_tlsh, ident.content_tlsh))
    dists.sort()
    return {"scripts": count, "false_matches": len(matches), "matched": matches[:20],
            "nearest_raw_tlsh": dists[:5], "raw_within_30": sum(d <= 30 for d in dists),
            "edited_copy_distance": edit_distance}


def leave_one_out(elves: list[Identity]) -> tuple[Counter, list[tuple[str, str, str, int]], list[int]]:
    """Every pair of different files whose identities match, and the
    smallest TLSH distance of each fuzzy-eligible file to any other."""
    pairs: list[tuple[str, str, str, int]] = []
    how = Counter()
    by_code: dict[str, list[Identity]] = {}
    by_bid: dict[str, list[Identity]] = {}
    for e in elves:
        by_code.setdefault(e.elf.code_sha256, []).append(e)
        if e.elf.build_id:
            by_bid.setdefault(e.elf.build_id, []).append(e)
    for group, name in ((by_code, "code"), (by_bid, "build-id")):
        for members in group.values():
            for a in members[1:]:
                how[name] += 1
                pairs.append((name, members[0].path, a.path, 0))
    fuzzy = [e for e in elves if e.elf.code_tlsh and e.elf.code_bytes >= MIN_FUZZY_CODE_BYTES]
    nearest: list[int] = []
    for i, a in enumerate(fuzzy):
        best = 10**6
        for j, b in enumerate(fuzzy):
            if i == j or a.elf.code_sha256 == b.elf.code_sha256:
                continue
            d = tlsh_distance(a.elf.code_tlsh, b.elf.code_tlsh)
            best = min(best, d)
            if j > i and d <= TLSH_MAX_DISTANCE:
                how["similar"] += 1
                pairs.append(("similar", a.path, b.path, d))
        nearest.append(best)
    return how, pairs, nearest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default="/usr")
    ap.add_argument("--game", action="append", default=[])
    args = ap.parse_args()
    t0 = time.monotonic()
    elves = system_elves(args.root)
    t_read = time.monotonic() - t0
    print(f"{len(elves)} distinct ELF files under {args.root} read in {t_read:.1f} s")
    result: dict = {"date": dt.date.today().isoformat(), "root": args.root,
                    "elf_files": len(elves), "read_seconds": round(t_read, 1),
                    "tlsh_max_distance": TLSH_MAX_DISTANCE,
                    "min_fuzzy_code_bytes": MIN_FUZZY_CODE_BYTES, "games": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        games = [Path(g) for g in args.game] or [build_game(work, 40), build_game(work, 400)]
        cache = HashCache()
        for game in games:
            ident = cache.of_path(str(game))
            rule = ProgramSet.of([ident])
            false = [(e.path, m.how, m.distance) for e in elves
                     if (m := rule.match(e)) is not None]
            dists = sorted(tlsh_distance(ident.elf.code_tlsh, e.elf.code_tlsh)
                           for e in elves if ident.elf.code_tlsh and e.elf.code_tlsh)
            attacks = {}
            for n in (1, 8, 64, 512):
                p = patched(game, work, n, seed=n)
                m = rule.match(p)
                attacks[f"patched_{n}_bytes"] = {
                    "matched": m.how if m else None,
                    "distance": tlsh_distance(ident.elf.code_tlsh, p.elf.code_tlsh)
                    if ident.elf.code_tlsh and p.elf and p.elf.code_tlsh else None}
            appended = work / f"{game.name}.appended"
            appended.write_bytes(game.read_bytes() + b"\0" * 4096)
            m = rule.match(cache.of_path(str(appended)))
            attacks["appended_4096_bytes"] = {"matched": m.how if m else None}
            result["games"][game.name] = {
                "code_bytes": ident.elf.code_bytes, "false_matches_under_root": len(false),
                "false_matches": false[:20], "nearest_system_tlsh": dists[:5], "attacks": attacks}
            print(f"game {game.name} ({ident.elf.code_bytes} B of code): {len(false)} false "
                  f"matches under {args.root}; nearest TLSH distances {dists[:5]}; attacks {attacks}")
    result["scripts"] = scripts_against_game(args.root)
    print("scripts:", result["scripts"])
    t1 = time.monotonic()
    how, pairs, nearest = leave_one_out(elves)
    result["system_pairs"] = dict(how)
    result["system_pair_list"] = pairs[:200]
    result["raw_tlsh_pairs_by_threshold"] = {
        t: sum(1 for p in pairs if p[0] == "similar" and p[3] <= t) for t in (5, 10, 20, 30)}
    result["raw_tlsh_pair_dirs"] = Counter(
        os.path.dirname(p[1]) for p in pairs if p[0] == "similar").most_common(10)
    print("raw TLSH pairs (before the rule that installed files are compared exactly):",
          result["raw_tlsh_pairs_by_threshold"], result["raw_tlsh_pair_dirs"])
    hist = Counter(min(d // 10 * 10, 200) for d in nearest)
    result["nearest_other_program_tlsh_histogram"] = dict(sorted(hist.items()))
    print(f"leave-one-out over {len(elves)} files ({time.monotonic() - t1:.1f} s): matching pairs "
          f"of different files {dict(how)}")
    for kind in ("code", "build-id", "similar"):
        listed = [p for p in pairs if p[0] == kind]
        print(f"  {kind}: {len(listed)} pairs, e.g.")
        for p in listed[:12]:
            print("    ", p)
    print("nearest other program, TLSH distance histogram (bucket: count):",
          dict(sorted(hist.items())))
    out = BENCH / "results" / f"identity-{result['date']}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
