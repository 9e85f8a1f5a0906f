"""The packed layout of the FileEvents signal's ``ay`` (the contract:
dbus/org.dots.Collector1.xml): one batch's structs as bytes.

Why bytes: reading an array of 12-field structs costs dbus-fast ~5 µs per
struct in the policy daemon (and writing it ~2 µs in the collector);
these bytes are read with one ``struct.unpack_from`` and four slices per
struct. Little-endian, whatever the host. Per struct, in the order of
``batch_field_names("filesystem")``:

    header  "<BBHH IIIiI QQQ" (50 bytes): the byte lengths of type, comm,
            path and new_path; pid, uid, flags, result, count; bytes,
            ts_ns, last_ts_ns
    then    type, comm, path, new_path: UTF-8, no terminator

Decoding checks everything a hostile sender could get wrong (a length
beyond the end, bytes that are not UTF-8, a NUL in a text, trailing bytes)
and raises ValueError: the batch is refused whole.
"""

from __future__ import annotations

import struct

HEAD = struct.Struct("<BBHHIIIiIQQQ")
#: what a header's lengths can hold
MAX_SHORT, MAX_LONG = 0xFF, 0xFFFF


def pack_file_structs(structs: list[tuple]) -> bytes:
    """FileEvents structs (the record's fields, count, last_ts_ns) as the
    signal's bytes. Raises ValueError for a value the layout cannot hold
    (as marshalling would for a value beyond its D-Bus type)."""
    pack = HEAD.pack
    parts: list[bytes] = []
    add = parts.extend
    try:
        for type_, pid, uid, comm, path, flags, result, nbytes, ts, new_path, count, last in structs:
            t, c, p, n = type_.encode(), comm.encode(), path.encode(), new_path.encode()
            add((pack(len(t), len(c), len(p), len(n), pid, uid, flags, result, count,
                      nbytes, ts, last), t, c, p, n))
    except struct.error as e:
        raise ValueError(f"a file event the packed layout cannot hold: {e}") from None
    return b"".join(parts)


def unpack_file_structs(data: bytes) -> list[tuple]:
    """The signal's bytes as FileEvents structs (tuples in
    ``batch_field_names("filesystem")`` order). ValueError when they are
    not exactly a sequence of well-formed structs."""
    out: list[tuple] = []
    append = out.append
    unpack = HEAD.unpack_from
    size = HEAD.size
    end = len(data)
    pos = 0
    view = bytes(data)
    try:
        while pos < end:
            tl, cl, pl, nl, pid, uid, flags, result, count, nbytes, ts, last = unpack(view, pos)
            a = pos + size
            b = a + tl
            c = b + cl
            d = c + pl
            pos = d + nl
            if pos > end:
                raise ValueError("a struct runs past the end of the batch")
            if view.find(b"\0", a, pos) >= 0:
                raise ValueError("a NUL in a text field (D-Bus strings cannot hold one)")
            append((view[a:b].decode(), pid, uid, view[b:c].decode(), view[c:d].decode(),
                    flags, result, nbytes, ts, view[d:pos].decode(), count, last))
    except struct.error:
        raise ValueError("a struct's header runs past the end of the batch") from None
    return out  # (a UnicodeDecodeError is a ValueError)
