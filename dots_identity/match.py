"""Whether a file is one of a rule's programs, by what it is.

In order of strength (the first that holds is the answer):

* ``file``: same content (sha256): a copy;
* ``code``: same executable segments: a copy with bytes appended, symbols
  stripped or data edited;
* ``build-id``: same GNU build-id: the same build, patched elsewhere;
* ``similar-content``: for files that are not ELF (a script, a jar, a
  .love): TLSH distance of the whole content at most
  ``CONTENT_TLSH_MAX_DISTANCE``, the file not installed by root: a copy of
  a blocked script with lines added or changed;
* ``similar``: TLSH distance of the code at most ``TLSH_MAX_DISTANCE``,
  both programs having at least ``MIN_FUZZY_CODE_BYTES`` of code, and the
  file not installed by root (``Identity.system`` false): a copy the child
  made with a few bytes of code patched (and its build-id note too).

Measured by bench/identity_false_matches.py against every ELF file under
/usr: no file there matches a blocked game (0 false matches for the test
games); a copy with 1 to 64 bytes of code patched is within 1 to 16. Among
the system's own programs, families that share a statically linked core
(valgrind's tools, some /usr/sbin tools) are within 30 of each other: that
is why the fuzzy comparison applies only to files a child could have made,
never to installed programs, which are judged exactly (file, code,
build-id). Small programs are compared exactly only: too little code for a
fuzzy comparison to mean anything.

Not a match, on purpose: a program written from scratch or rebuilt from
source (new code, new build-id); allow-list mode is the answer to those.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import tlsh

from .files import Identity

#: largest TLSH distance between the code of two files taken as one program
TLSH_MAX_DISTANCE = 30
#: fuzzy comparison only for programs with at least this much code
MIN_FUZZY_CODE_BYTES = 16 * 1024
#: largest TLSH distance between two scripts (or other non-ELF programs)
#: taken as one program (bench/identity_false_matches.py: scripts under /usr)
CONTENT_TLSH_MAX_DISTANCE = 30


@dataclass(frozen=True, slots=True)
class Match:
    how: str  # "file", "code", "build-id", "similar"
    program: Identity  # the rule's program it matched
    distance: int = 0


def tlsh_distance(a: str, b: str) -> int:
    return tlsh.diff(a, b)


@dataclass
class ProgramSet:
    """A rule's programs, indexed for the comparisons above."""

    programs: list[Identity]
    by_sha: dict[str, Identity] = field(default_factory=dict)
    by_code: dict[str, Identity] = field(default_factory=dict)
    by_build_id: dict[str, Identity] = field(default_factory=dict)
    fuzzy: list[tuple[str, Identity]] = field(default_factory=list)
    fuzzy_content: list[tuple[str, Identity]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for p in self.programs:
            self.by_sha.setdefault(p.sha256, p)
            if p.content_tlsh:
                self.fuzzy_content.append((p.content_tlsh, p))
            if p.elf is None:
                continue
            if p.elf.code_bytes:
                self.by_code.setdefault(p.elf.code_sha256, p)
            if p.elf.build_id:
                self.by_build_id.setdefault(p.elf.build_id, p)
            if p.elf.code_tlsh and p.elf.code_bytes >= MIN_FUZZY_CODE_BYTES:
                self.fuzzy.append((p.elf.code_tlsh, p))

    @classmethod
    def of(cls, programs: Iterable[Identity]) -> "ProgramSet":
        return cls(list(programs))

    def __bool__(self) -> bool:
        return bool(self.programs)

    def match(self, identity: Identity) -> Match | None:
        if identity.sha256 in self.by_sha:
            return Match("file", self.by_sha[identity.sha256])
        elf = identity.elf
        if elf is None:
            if identity.content_tlsh and not identity.system:
                return self._nearest(identity.content_tlsh, self.fuzzy_content,
                                     CONTENT_TLSH_MAX_DISTANCE, "similar-content")
            return None
        if elf.code_bytes and elf.code_sha256 in self.by_code:
            return Match("code", self.by_code[elf.code_sha256])
        if elf.build_id and elf.build_id in self.by_build_id:
            return Match("build-id", self.by_build_id[elf.build_id])
        if elf.code_tlsh and elf.code_bytes >= MIN_FUZZY_CODE_BYTES and not identity.system:
            return self._nearest(elf.code_tlsh, self.fuzzy, TLSH_MAX_DISTANCE, "similar")
        return None

    @staticmethod
    def _nearest(digest: str, candidates: list[tuple[str, Identity]], limit: int,
                 how: str) -> Match | None:
        best = min(((tlsh_distance(digest, h), p) for h, p in candidates),
                   default=None, key=lambda t: t[0])
        if best is not None and best[0] <= limit:
            return Match(how, best[1], best[0])
        return None
