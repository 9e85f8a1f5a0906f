"""What an ELF file is made of, read with pyelftools: the parts of a
program that survive the disguises a child can apply to a copy.

* appending bytes, stripping symbols or sections, or editing data outside
  the code leaves the **executable segments** (PT_LOAD with PF_X) as they
  were: ``code_sha256`` is their hash;
* patching a few bytes of code changes that hash but not the GNU
  **build-id** note (unless the patch hits it) nor, by much, the **TLSH**
  of the code (``code_tlsh``; distance measured in ``match``).

An AppImage (type 2: "AI\x02" in the ELF header's padding) is a runtime
shared by every AppImage followed by the app as a squashfs image: its code
identity is the hash (and TLSH) of that image, never the runtime's code or
build-id (which would make every AppImage one app).

Also what the file is for: a ``program`` (ET_EXEC, or ET_DYN marked PIE),
a ``library`` (a shared object) or a ``loader``: an ELF without PT_INTERP
that exports the dynamic loader's interface (``_r_debug``, ``_dl_*``) or
is named like one: its job is to map another program without an exec.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import BinaryIO

import tlsh
from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

ELF_MAGIC = b"\x7fELF"
PF_X = 1
DF_1_PIE = 0x08000000
#: code smaller than this is not hashed with TLSH (too little to compare)
MIN_TLSH_BYTES = 256
#: symbols only a dynamic loader exports
LOADER_SYMBOLS = ("_r_debug", "_dl_catch_exception", "_dl_find_object", "_dl_mcount")


@dataclass(frozen=True, slots=True)
class ElfTraits:
    build_id: str | None
    code_sha256: str
    code_tlsh: str | None
    code_bytes: int
    has_interp: bool
    kind: str  # "program", "library" or "loader"

    @property
    def is_loader(self) -> bool:
        return self.kind == "loader"


def is_elf(head: bytes) -> bool:
    return head[:4] == ELF_MAGIC


APPIMAGE_MAGIC = b"AI\x02"
SQUASHFS_MAGIC = b"hsqs"
#: bytes of an AppImage's image hashed with TLSH (enough to compare)
APPIMAGE_TLSH_BYTES = 4 << 20


def read_traits(stream: BinaryIO) -> ElfTraits | None:
    """The traits of the ELF file in ``stream`` (None: not ELF, or too
    damaged to read; such a file cannot run either)."""
    stream.seek(0)
    head = stream.read(16)
    if not is_elf(head):
        return None
    try:
        elf = ELFFile(stream)
        if head[8:11] == APPIMAGE_MAGIC:
            return _appimage_traits(elf, stream)
        return _traits(elf)
    except (ELFError, OSError):
        return None
    except Exception:  # a crafted file can break the parser anywhere
        return None


def _segment_chunks(elf: ELFFile, seg, size: int = 1 << 20):
    """A segment's bytes a MiB at a time: a 50 MiB code segment (node)
    is hashed without holding it, or two copies of it, in memory."""
    offset, left = seg["p_offset"], seg["p_filesz"]
    while left > 0:
        elf.stream.seek(offset)
        chunk = elf.stream.read(min(size, left))
        if not chunk:
            return
        yield chunk
        offset += len(chunk)
        left -= len(chunk)


def _traits(elf: ELFFile) -> ElfTraits:
    code = hashlib.sha256()
    fuzzy = tlsh.Tlsh()  # fed as it goes: the same digest as tlsh.hash(all of it)
    code_bytes = 0
    has_interp = False
    build_id = None
    for seg in elf.iter_segments():
        ptype = seg["p_type"]
        if ptype == "PT_INTERP":
            has_interp = True
        elif ptype == "PT_LOAD" and seg["p_flags"] & PF_X:
            for chunk in _segment_chunks(elf, seg):
                code.update(chunk)
                fuzzy.update(chunk)
                code_bytes += len(chunk)
        elif ptype == "PT_NOTE" and build_id is None:
            for note in seg.iter_notes():
                if note["n_type"] == "NT_GNU_BUILD_ID":
                    build_id = str(note["n_desc"])
                    break
    digest = ""
    if code_bytes >= MIN_TLSH_BYTES:
        try:
            fuzzy.final()
            digest = fuzzy.hexdigest()
        except ValueError:  # too little variety in the bytes for a digest
            digest = ""
    return ElfTraits(build_id=build_id, code_sha256=code.hexdigest(),
                     code_tlsh=digest if digest and digest != "TNULL" else None,
                     code_bytes=code_bytes, has_interp=has_interp,
                     kind=_kind(elf, has_interp))


def _kind(elf: ELFFile, has_interp: bool) -> str:
    if elf["e_type"] == "ET_EXEC":
        return "program"
    dynamic = next((s for s in elf.iter_sections() if isinstance(s, DynamicSection)), None)
    flags_1, soname = 0, ""
    if dynamic is not None:
        for tag in dynamic.iter_tags():
            if tag.entry.d_tag == "DT_FLAGS_1":
                flags_1 = tag.entry.d_val
            elif tag.entry.d_tag == "DT_SONAME":
                soname = tag.soname
    if flags_1 & DF_1_PIE:
        return "program"
    if not has_interp and (soname.startswith("ld-") or _exports_loader_symbols(elf)):
        return "loader"
    return "library" if dynamic is not None else "program"


def _exports_loader_symbols(elf: ELFFile) -> bool:
    dynsym = elf.get_section_by_name(".dynsym")
    if not isinstance(dynsym, SymbolTableSection):
        return False
    return any(dynsym.get_symbol_by_name(name) for name in LOADER_SYMBOLS)


def _appimage_traits(elf: ELFFile, stream: BinaryIO) -> ElfTraits | None:
    """The app inside an AppImage: its squashfs image up to the size the
    image's superblock gives (bytes appended after it change nothing)."""
    start = elf["e_shoff"] + elf["e_shnum"] * elf["e_shentsize"]
    stream.seek(start)
    sb = stream.read(96)
    if sb[:4] != SQUASHFS_MAGIC:
        return _traits(elf)  # not a payload we know: judged as a plain program
    size = int.from_bytes(sb[40:48], "little")  # bytes_used
    digest = hashlib.sha256()
    stream.seek(start)
    left, head = size, b""
    while left > 0:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            break
        if len(head) < APPIMAGE_TLSH_BYTES:
            head += chunk[:APPIMAGE_TLSH_BYTES - len(head)]
        digest.update(chunk)
        left -= len(chunk)
    fuzzy = tlsh.hash(head) if len(head) >= MIN_TLSH_BYTES else ""
    return ElfTraits(build_id=None, code_sha256=digest.hexdigest(),
                     code_tlsh=fuzzy if fuzzy and fuzzy != "TNULL" else None,
                     code_bytes=size - left, has_interp=False, kind="program")
