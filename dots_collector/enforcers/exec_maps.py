"""The exec enforcer's kernel maps as this process wrote them, and the
writes that make them say what the rules say. New entries always go in
before old ones leave, so nothing blocked is open meanwhile."""

from __future__ import annotations

import ctypes
from typing import Any

from .exec_wire import ANY_UID, F_ALLOW, F_BLOCKS, F_FOLLOW, F_SCRIPTS, Key


def delete(table: Any, key: Any) -> None:
    try:
        del table[key]
    except KeyError:
        pass


class KernelMaps:
    """Writes to the BPF maps of exec_block.bpf.c (callers hold the
    enforcer's lock)."""

    def __init__(self, bpf: Any) -> None:
        self.bpf = bpf
        self.blocked: dict[int, dict[Key, int]] = {}  # uid -> key -> ctime_ns
        self.sizes: dict[int, set[int]] = {}
        self.allowed: dict[int, set[Key]] = {}
        self.flags: dict[int, int] = {}

    def _exe(self, name: bytes, key: Key, uid: int) -> tuple[Any, Any]:
        table = self.bpf[name]
        return table, table.Key(key[1], key[0], uid)

    def allow_for_all(self, key: Key) -> None:
        table, k = self._exe(b"allowed", key, ANY_UID)
        table[k] = ctypes.c_uint64(1)

    def sync_blocked(self, uid: int, want: dict[Key, int], sizes: set[int], flags: int) -> None:
        have = self.blocked.get(uid, {})
        have_sizes = self.sizes.get(uid, set())
        size_table = self.bpf[b"blocked_sizes"]
        for key, ctime in want.items():
            if have.get(key) != ctime:
                table, k = self._exe(b"blocked", key, uid)
                table[k] = ctypes.c_uint64(ctime)
        for size in sizes - have_sizes:
            size_table[size_table.Key(size, uid, 0)] = ctypes.c_uint32(1)
        self.blocked[uid], self.sizes[uid] = dict(want), set(sizes)
        self.sync_flags(uid, flags)
        for key in have.keys() - want.keys():
            delete(*self._exe(b"blocked", key, uid))
        for size in have_sizes - sizes:
            delete(size_table, size_table.Key(size, uid, 0))
        if not want:
            self.blocked.pop(uid, None)
        if not sizes:
            self.sizes.pop(uid, None)

    def sync_allowed(self, uid: int, want: set[Key], flags: int) -> None:
        have = self.allowed.get(uid, set())
        for key in want - have:  # allowed entries before the mode goes on
            table, k = self._exe(b"allowed", key, uid)
            table[k] = ctypes.c_uint64(1)
        self.allowed[uid] = set(want)
        self.sync_flags(uid, flags)
        for key in have - want:
            delete(*self._exe(b"allowed", key, uid))
        if not want:
            self.allowed.pop(uid, None)

    def sync_flags(self, uid: int, flags: int) -> None:
        assert not flags & ~(F_BLOCKS | F_ALLOW | F_FOLLOW | F_SCRIPTS)
        table = self.bpf[b"enforced_uids"]
        if flags:
            table[ctypes.c_uint32(uid)] = ctypes.c_uint32(flags)
            self.flags[uid] = flags
        else:
            delete(table, ctypes.c_uint32(uid))
            self.flags.pop(uid, None)

    def block(self, uid: int, key: Key, ctime: int) -> None:
        entries = self.blocked.setdefault(uid, {})
        if entries.get(key) != ctime:
            entries[key] = ctime
            table, k = self._exe(b"blocked", key, uid)
            table[k] = ctypes.c_uint64(ctime)

    def unblock(self, uid: int, key: Key) -> None:
        if self.blocked.get(uid, {}).pop(key, None) is not None:
            delete(*self._exe(b"blocked", key, uid))

    def allow(self, uid: int, key: Key) -> None:
        table, k = self._exe(b"allowed", key, uid)
        table[k] = ctypes.c_uint64(1)
        self.allowed.setdefault(uid, set()).add(key)

    def map_ok(self, uid: int, key: Key, ctime: int) -> None:
        """An executable mapping judged fine for the uid in allow-list mode."""
        table, k = self._exe(b"mapped_ok", key, uid)
        table[k] = ctypes.c_uint64(ctime)

    def mark_seen(self, key: Key, ctime: int) -> None:
        table = self.bpf[b"seen"]
        table[table.Key(key[1], key[0], 0)] = ctypes.c_uint64(ctime)

    def unsee(self, key: Key) -> None:
        table = self.bpf[b"seen"]
        delete(table, table.Key(key[1], key[0], 0))

    def mark_program(self, key: Key, what: int) -> None:
        """A loader or interpreter (P_*): its execs are reported."""
        table = self.bpf[b"programs"]
        table[table.Key(key[1], key[0], 0)] = ctypes.c_uint8(what)

    def clear_pending(self, pid: int) -> None:
        delete(self.bpf[b"pending"], ctypes.c_uint32(pid))

    def kernel_blocked_entries(self) -> dict[int, list[Key]]:
        """The kernel's block map as it is: uid -> [(kernel dev, ino)]."""
        out: dict[int, list[Key]] = {}
        for key in self.bpf[b"blocked"].keys():
            out.setdefault(key.uid, []).append((key.dev, key.ino))
        return {uid: sorted(v) for uid, v in out.items()}

    def prune_to_view(self, default_keys: set[Key]) -> int:
        """Delete the rule entries this process did not write (maps a
        crashed collector left pinned, after its rules were restored):
        the kernel then holds what the rules say, no more. Caches (seen,
        programs) stay; approvals of mappings (mapped_ok) go."""
        def exe_keys(name: bytes, entries: dict[int, Any]) -> set[bytes]:
            table = self.bpf[name]
            return {bytes(table.Key(k[1], k[0], uid)) for uid, keys in entries.items()
                    for k in keys}

        sizes = self.bpf[b"blocked_sizes"]
        keep = {
            b"blocked": exe_keys(b"blocked", self.blocked),
            b"allowed": exe_keys(b"allowed", {**self.allowed, ANY_UID: default_keys}),
            b"blocked_sizes": {bytes(sizes.Key(size, uid, 0)) for uid, s in self.sizes.items()
                               for size in s},
            b"enforced_uids": {bytes(ctypes.c_uint32(uid)) for uid in self.flags},
            b"mapped_ok": set(),
        }
        return sum(self.bpf[name].prune(wanted) for name, wanted in keep.items())
