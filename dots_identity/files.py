"""Who a program is: its content (sha256) and, for ELF files, what its
code is (``elf.ElfTraits``), cached by the file's stat.

The kernel blocks by inode; a copy or a renamed copy is another inode with
the same content, so programs are also identified by a hash of their
bytes. Hashing is the costly part, so results are cached by
(dev, ino, size, mtime_ns, ctime_ns): a file rewritten in place changes
its mtime and ctime (and nobody but root can set ctime back), so a cache
hit is the same content.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat as stat_mod
import threading
from collections import OrderedDict
from dataclasses import dataclass

import tlsh

from .elf import MIN_TLSH_BYTES, ElfTraits, is_elf, read_traits

#: larger files are not hashed (no executable is this big; reading one
#: would stall the enforcer)
MAX_HASH_BYTES = 1 << 30
DEFAULT_CACHE_ENTRIES = 16384
#: programs given as text whose content TLSH is remembered (HashCache.of_text)
MAX_TEXT_ENTRIES = 256
#: a file that is not ELF (a script, a jar, a .love, a .exe) up to this size
#: also gets a TLSH of its whole content
MAX_CONTENT_TLSH_BYTES = 4 << 20

Traits = tuple[str, ElfTraits | None, str | None]  # sha256, ELF traits, content TLSH


def kernel_dev(st_dev: int) -> int:
    """stat's st_dev as the kernel's s_dev (major << 20 | minor)."""
    return (os.major(st_dev) << 20) | os.minor(st_dev)


@dataclass(frozen=True, slots=True)
class FileKey:
    dev: int  # st_dev
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> "FileKey":
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True, slots=True)
class Identity:
    """One executable file: where it was named, its inode, its content."""

    path: str  # as given (or as found)
    dev: int  # st_dev
    ino: int
    size: int
    ctime_ns: int
    sha256: str
    elf: ElfTraits | None = None
    #: not ELF: TLSH of the whole content (scripts, archives run by an interpreter)
    content_tlsh: str | None = None
    #: root's and writable by nobody else: installed, not made by a child
    system: bool = False

    @property
    def kdev(self) -> int:
        return kernel_dev(self.dev)


class IdentityError(Exception):
    """A file could not be identified (missing, unreadable, not a file)."""


class HashCache:
    """sha256 of files, by FileKey, least recently used evicted first.
    Thread-safe: the exec enforcer's thread and the bus methods share it."""

    def __init__(self, max_entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        self.max_entries = max_entries
        self._cache: OrderedDict[FileKey, Traits] = OrderedDict()
        #: sha256 -> content TLSH of programs given as text (of_text)
        self._texts: OrderedDict[str, str | None] = OrderedDict()
        self._lock = threading.Lock()
        self.hashed = 0  # files actually read (cache misses)

    def _lookup(self, key: FileKey) -> Traits | None:
        with self._lock:
            sha = self._cache.get(key)
            if sha is not None:
                self._cache.move_to_end(key)
            return sha

    def _store(self, key: FileKey, value: Traits) -> None:
        with self._lock:
            self._cache[key] = value
            self._cache.move_to_end(key)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)

    def of_fd(self, fd: int, path: str) -> Identity:
        """Identify an open file (read from its start)."""
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode):
            raise IdentityError(f"{path}: not a regular file")
        if st.st_size > MAX_HASH_BYTES:
            raise IdentityError(f"{path}: larger than {MAX_HASH_BYTES} bytes")
        key = FileKey.of(st)
        value = self._lookup(key)
        if value is None:
            digest = hashlib.sha256()
            os.lseek(fd, 0, os.SEEK_SET)
            content: list[bytes] | None = [] if st.st_size <= MAX_CONTENT_TLSH_BYTES else None
            while chunk := os.read(fd, 1 << 20):
                digest.update(chunk)
                if content is not None:
                    content.append(chunk)
            head = content[0][:4] if content else b""
            with os.fdopen(os.dup(fd), "rb") as stream:
                traits = read_traits(stream)
            fuzzy = None
            if traits is None and content is not None and not is_elf(head):
                blob = b"".join(content)
                fuzzy = tlsh.hash(blob) if len(blob) >= MIN_TLSH_BYTES else None
                fuzzy = fuzzy if fuzzy and fuzzy != "TNULL" else None
            value = (digest.hexdigest(), traits, fuzzy)
            self.hashed += 1
            # the file may have changed while it was read: cache only when
            # its stat is still the one the content belongs to
            if FileKey.of(os.fstat(fd)) == key:
                self._store(key, value)
        sha, traits, fuzzy = value
        return Identity(path, st.st_dev, st.st_ino, st.st_size, st.st_ctime_ns, sha, traits,
                        fuzzy, system=st.st_uid == 0 and not st.st_mode & 0o022)

    def of_text(self, text: bytes, name: str) -> Identity:
        """A program given as text, not as a file (``python3 -c "$(cat
        game.py)"``, an environment value): its hash and content TLSH, for
        the comparisons a script gets; no inode (0, 0) and never a system
        file. The TLSH is remembered by sha256 (MAX_TEXT_ENTRIES): the same
        long values (PATH, LS_COLORS) come with every interpreter a child
        starts."""
        sha = hashlib.sha256(text).hexdigest()
        with self._lock:
            known = sha in self._texts
            fuzzy = self._texts.get(sha)
            if known:
                self._texts.move_to_end(sha)
        if not known:
            fuzzy = None
            if MIN_TLSH_BYTES <= len(text) <= MAX_CONTENT_TLSH_BYTES:
                fuzzy = tlsh.hash(text)
                fuzzy = fuzzy if fuzzy and fuzzy != "TNULL" else None
            with self._lock:
                self._texts[sha] = fuzzy
                while len(self._texts) > MAX_TEXT_ENTRIES:
                    self._texts.popitem(last=False)
        return Identity(name, 0, 0, len(text), 0, sha, None, fuzzy, system=False)

    def of_path(self, path: str) -> Identity:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as e:
            raise IdentityError(f"{path}: {e.strerror}") from e
        try:
            return self.of_fd(fd, path)
        except OSError as e:
            raise IdentityError(f"{path}: {e.strerror}") from e
        finally:
            os.close(fd)

    def of_process(self, pid: int) -> Identity:
        """The executable a process runs now (/proc/PID/exe works for
        deleted files and memfds too); its path is the exe link's text."""
        try:
            path = os.readlink(f"/proc/{pid}/exe")
        except OSError as e:
            raise IdentityError(f"pid {pid}: {e.strerror}") from e
        identity = self.of_path(f"/proc/{pid}/exe")
        return dataclasses.replace(identity, path=path)
