"""Struct member offsets of the RUNNING kernel, from its BTF.

bcc compiles against kernel headers that may not match the running kernel
(here: 6.12 headers, 6.18 kernel), so a struct field read by the headers'
layout can be wrong. The exec enforcer needs a few fields (bprm->file,
file->f_inode, inode->i_ino, ...): their offsets are taken at load time
from ``bpftool btf dump file /sys/kernel/btf/vmlinux format raw`` and
handed to the compiler as ``-D`` macros.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"

_TYPE = re.compile(r"^\[(\d+)\] (\w+) '([^']*)'(.*)$")
_MEMBER = re.compile(r"^\s+'([^']*)' type_id=(\d+) bits_offset=(\d+)")
_REF = re.compile(r"type_id=(\d+)")


class BTFError(RuntimeError):
    """The running kernel's BTF lacks a struct member we need."""


@dataclass
class BTFType:
    kind: str
    name: str
    ref: int | None = None  # TYPEDEF/CONST/VOLATILE/... -> type_id
    members: list[tuple[str, int, int]] = field(default_factory=list)  # (name, type, bits)


def parse_raw_dump(text: str) -> dict[int, BTFType]:
    """Types of a ``bpftool btf dump ... format raw`` listing by id (only
    what member lookup needs: structs, unions and the modifiers between)."""
    types: dict[int, BTFType] = {}
    current: BTFType | None = None
    for line in text.splitlines():
        m = _TYPE.match(line)
        if m:
            type_id, kind, name, rest = int(m[1]), m[2], m[3], m[4]
            ref = _REF.search(rest)
            current = types[type_id] = BTFType(kind, name, int(ref[1]) if ref else None)
            continue
        m = _MEMBER.match(line)
        if m and current is not None and current.kind in ("STRUCT", "UNION"):
            current.members.append((m[1], int(m[2]), int(m[3])))
    return types


class KernelBTF:
    def __init__(self, types: dict[int, BTFType]) -> None:
        self.types = types
        self.structs: dict[str, int] = {}
        for type_id, t in types.items():
            if t.kind == "STRUCT" and t.name and t.members:
                self.structs.setdefault(t.name, type_id)

    def _strip(self, type_id: int) -> int:
        """Through typedefs and qualifiers to the real type."""
        while self.types[type_id].kind in ("TYPEDEF", "CONST", "VOLATILE", "RESTRICT", "TYPE_TAG"):
            type_id = self.types[type_id].ref or 0
        return type_id

    def _find(self, type_id: int, name: str) -> tuple[int, int] | None:
        """(bit offset, member type) of ``name``, looking inside anonymous
        structs and unions as C does."""
        for member, member_type, bits in self.types[self._strip(type_id)].members:
            if member == name:
                return bits, member_type
            if member in ("", "(anon)"):
                inner = self._find(member_type, name)
                if inner is not None:
                    return bits + inner[0], inner[1]
        return None

    def offset(self, struct: str, path: str) -> int:
        """Byte offset of ``struct.path`` (path may be dotted through
        embedded structs, e.g. ``__i_ctime.tv_sec``)."""
        if struct not in self.structs:
            raise BTFError(f"struct {struct} is not in the kernel's BTF")
        type_id, total = self.structs[struct], 0
        for part in path.split("."):
            found = self._find(type_id, part)
            if found is None:
                raise BTFError(f"struct {struct} has no member {path}")
            total += found[0]
            type_id = found[1]
        if total % 8:
            raise BTFError(f"{struct}.{path} is a bitfield")
        return total // 8

    def first_offset(self, struct: str, paths: Sequence[str]) -> int:
        """The first of several spellings a member had across kernels."""
        for path in paths:
            try:
                return self.offset(struct, path)
            except BTFError:
                continue
        raise BTFError(f"struct {struct} has none of {', '.join(paths)}")


@functools.lru_cache(maxsize=1)
def running_kernel() -> KernelBTF:
    """The running kernel's BTF (parsed once per process)."""
    bpftool = shutil.which("bpftool") or "/usr/sbin/bpftool"
    out = subprocess.run([bpftool, "btf", "dump", "file", VMLINUX_BTF, "format", "raw"],
                         capture_output=True, text=True, check=True)
    return KernelBTF(parse_raw_dump(out.stdout))


def cflags(offsets: Iterable[tuple[str, str, Sequence[str]]],
           btf: KernelBTF | None = None) -> list[str]:
    """``-DMACRO=offset`` for each (macro, struct, member spellings)."""
    btf = btf or running_kernel()
    return [f"-D{macro}={btf.first_offset(struct, paths)}" for macro, struct, paths in offsets]
