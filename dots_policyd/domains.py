"""Domain names as the web filter matches them: a domain blocks itself and
every name under it ("example.com" blocks "m.cdn.example.com").

Category lists hold up to millions of domains, so a list is kept as a
sorted array of 64-bit hashes (8 bytes a domain, no per-name objects) and
a lookup walks the name's suffixes with a binary search each: a handful of
microseconds whatever the list's size. The hash is Python's own string
hash (SipHash, salted per process): the arrays are built at load time and
never stored, and a collision needs the same 64 bits (about 1 in 10^13
per lookup at 1M domains) -- it would block a name, never unblock one.

Also here: the parsing of lists in the common formats, with named errors.
"""

from __future__ import annotations

import bisect
import re
from array import array
from collections.abc import Iterable, Iterator

import numpy as np

MAX_DOMAIN = 253
FILTER_BITS = 24
BIT_MASK = (1 << FILTER_BITS) - 1
#: a list larger than this is refused (a million domains are ~25 MB)
MAX_LIST_BYTES = 128 * 1024 * 1024

#: hostnames as lists spell them: letters, digits, hyphens, underscores (seen in real lists)
_HOST_RE = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*"
                      r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_ADBLOCK_RE = re.compile(r"^\|\|([^/^$|*]+)\^(?:\$.*)?$")
_HOSTS_IGNORED = frozenset({"localhost", "localhost.localdomain", "local", "broadcasthost",
                            "ip6-localhost", "ip6-loopback", "ip6-localnet", "ip6-mcastprefix",
                            "ip6-allnodes", "ip6-allrouters", "ip6-allhosts", "0.0.0.0"})


class ListError(ValueError):
    """A list (or a name in it) that cannot be used; str() says where."""


def normalize(name: str) -> str | None:
    """Lower-case ASCII form of a hostname (IDNA for non-ASCII), without the
    trailing dot; None when it is not a hostname."""
    name = name.strip().lower().rstrip(".")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if not _HOST_RE.match(name) or name.rsplit(".", 1)[-1].isdigit():
        return None
    return name


def suffixes(name: str) -> list[str]:
    """"a.b.c" -> ["a.b.c", "b.c", "c"]."""
    out = [name]
    i = name.find(".")
    while i >= 0:
        out.append(name[i + 1:])
        i = name.find(".", i + 1)
    return out


class DomainSet:
    """An immutable set of domains matched with their subdomains."""

    __slots__ = ("_hashes", "_bits")

    def __init__(self, names: Iterable[str] = ()) -> None:
        # numpy builds and sorts without a Python object per name; lookups
        # then bisect a plain array (cheaper per call than numpy on a scalar),
        # after a one-bit filter (2 MiB: 2^24 bits indexed by the hash's low
        # bits) that turns most misses away without the search
        hashes = np.unique(np.fromiter(map(hash, names), dtype=np.int64))
        self._hashes = array("q")
        self._hashes.frombytes(hashes.tobytes())
        low = (hashes & BIT_MASK).astype(np.int64)
        bits = np.zeros(1 << (FILTER_BITS - 3), dtype=np.uint8)
        np.bitwise_or.at(bits, low >> 3, (1 << (low & 7)).astype(np.uint8))
        self._bits = bits.tobytes()

    def __len__(self) -> int:
        return len(self._hashes)

    def _has(self, name: str) -> bool:
        h = hash(name)
        low = h & BIT_MASK
        if not self._bits[low >> 3] >> (low & 7) & 1:
            return False
        a = self._hashes
        i = bisect.bisect_left(a, h)
        return i < len(a) and a[i] == h

    def match(self, name: str) -> bool:
        """True when ``name`` (normalized) or a parent domain is in the set
        (the suffixes walked in place: this is the per-query hot path)."""
        bits, a, size = self._bits, self._hashes, len(self._hashes)
        start = 0
        while True:
            h = hash(name[start:] if start else name)
            low = h & BIT_MASK
            if bits[low >> 3] >> (low & 7) & 1:
                i = bisect.bisect_left(a, h)
                if i < size and a[i] == h:
                    return True
            dot = name.find(".", start)
            if dot < 0:
                return False
            start = dot + 1

    def nbytes(self) -> int:
        return self._hashes.itemsize * len(self._hashes) + len(self._bits)


def parse_list(data: bytes) -> list[str]:
    """All of :func:`iter_list` at once."""
    return list(iter_list(data))


def iter_list(data: bytes) -> Iterator[str]:
    """Domains of a list in any of the common formats, one entry a line:
    a hosts file ("0.0.0.0 ads.example"), bare domains, or adblock-style
    "||domain^" rules. Comments ("#", "!"), blank lines, adblock rules that
    are not about a whole domain (cosmetic "##", exceptions "@@", paths) and
    hosts lines of localhost are skipped. Raises ListError when the data is
    not text, too large, empty of domains, or has a line that is none of
    these (naming the line) -- possibly after yielding the domains before
    it: a caller keeps nothing until the end."""
    if len(data) > MAX_LIST_BYTES:
        raise ListError(f"the list is {len(data)} bytes; at most {MAX_LIST_BYTES} are accepted")
    if b"\0" in data[:65536] or b"\0" in data:
        raise ListError("the list is not text (it holds NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ListError(f"the list is not UTF-8 text (byte {e.start})") from None
    found = 0
    for number, line in enumerate(_lines(text), 1):
        line = line.strip()
        if not line or line[0] in "#!" or line.startswith("[Adblock"):
            continue
        if line.startswith("||"):
            m = _ADBLOCK_RE.match(line)
            if m is None:
                continue  # a rule about paths or patterns, not a whole domain
            names = [m[1]]
        elif line.startswith("@@") or "##" in line or "#@#" in line or "#?#" in line:
            continue
        else:
            fields = line.split("#", 1)[0].split()
            if len(fields) > 1 and _is_ip(fields[0]):
                names = [f for f in fields[1:] if f not in _HOSTS_IGNORED]
            elif len(fields) == 1:
                names = [] if fields[0] in _HOSTS_IGNORED or _is_ip(fields[0]) else fields
            else:
                raise ListError(f"line {number}: {_short(line)} is not a domain, a hosts entry "
                                "or a ||domain^ rule")
        for raw in names:
            name = normalize(raw)
            if name is None:
                raise ListError(f"line {number}: {_short(raw)} is not a valid domain name")
            found += 1
            yield name
    if not found:
        raise ListError("the list holds no domain names")


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text`` one at a time (no list of a million strings)."""
    start, size = 0, len(text)
    while start < size:
        end = text.find("\n", start)
        if end < 0:
            end = size
        yield text[start:end]
        start = end + 1


def _is_ip(text: str) -> bool:
    return bool(text) and (text.replace(".", "").isdigit() or ":" in text)


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
