"""What the exec enforcer's BPF object and its Python half say to each
other (exec_block.bpf.c): event layout, kinds, notice bits, map flags and
the kernel struct members read through BTF."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..monitors.base import cstr

# struct exec_event (exec_block.bpf.c)
EVENT = struct.Struct("<QQQQIIIIIIII16s256s")
#: killed at exec: on the block list / allow-list mode, not listed / first
#: seen with a blocked program's size
K_BLOCKED, K_NOT_ALLOWED, K_NOTICE, K_SUSPECT = 0, 1, 2, 3
#: killed at mmap(PROT_EXEC) of a blocked file
K_MAP_BLOCKED = 4
#: killed at birth: a fork of a blocked program, or of one not allowed
#: while allow-list mode is coming on (F_FOLLOW)
K_FORK_BLOCKED = 5
#: killed at open: an interpreter opened a blocked file
K_OPEN_BLOCKED = 6
#: notice bits (K_NOTICE, or alongside a kill)
N_FIRST_SEEN, N_SCRIPT, N_LOADER, N_INTERP, N_MAP, N_MPROTECT, N_OPENED = 1, 2, 4, 8, 16, 32, 64
#: with N_OPENED: reported for not being root's, not for its size
N_EDITABLE = 128
#: enforced_uids flags
F_BLOCKS, F_ALLOW, F_FOLLOW = 1, 2, 4
#: the uid's block list has scripts: an interpreter's opens of files root
#: did not install are judged (edited copies of a blocked script)
F_SCRIPTS = 8
#: values of the "programs" map: what a file is for
P_LOADER, P_INTERPRETER = 1, 2
ANY_UID = 0xFFFFFFFF
MAX_EXE_ENTRIES = 8192
#: identified executables remembered by user space (dev, ino): more than
#: the kernel's "seen" LRU holds, so that what the kernel still takes as
#: judged is still known here when the rules change
MAX_KNOWN = 16384
#: the kernel's "seen" and "mapped_ok" LRUs (~88 bytes of kernel memory
#: each, preallocated): a miss costs a first-seen notice, answered from
#: the hash cache (dots_identity HashCache, 16,384 files), not a new hash
MAX_SEEN = 2048

#: (macro, struct, member spellings across kernels) read from the running
#: kernel's BTF at load time
BTF_OFFSETS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("OFF_BPRM_FILE", "linux_binprm", ("file",)),
    ("OFF_BPRM_FILENAME", "linux_binprm", ("filename",)),
    ("OFF_BPRM_INTERP", "linux_binprm", ("interp",)),
    ("OFF_FILE_INODE", "file", ("f_inode",)),
    ("OFF_FILE_MODE", "file", ("f_mode",)),
    ("OFF_INODE_INO", "inode", ("i_ino",)),
    ("OFF_INODE_SB", "inode", ("i_sb",)),
    ("OFF_INODE_SIZE", "inode", ("i_size",)),
    ("OFF_INODE_MODE", "inode", ("i_mode",)),
    ("OFF_INODE_UID", "inode", ("i_uid.val", "i_uid")),
    ("OFF_INODE_CTIME_SEC", "inode", ("i_ctime_sec", "__i_ctime.tv_sec", "i_ctime.tv_sec")),
    ("OFF_INODE_CTIME_NSEC", "inode", ("i_ctime_nsec", "__i_ctime.tv_nsec", "i_ctime.tv_nsec")),
    ("OFF_SB_DEV", "super_block", ("s_dev",)),
    ("OFF_TASK_REAL_PARENT", "task_struct", ("real_parent",)),
    ("OFF_TASK_TGID", "task_struct", ("tgid",)),
    ("OFF_TASK_FILES", "task_struct", ("files",)),
    ("OFF_TASK_MM", "task_struct", ("mm",)),
    ("OFF_TASK_STACK", "task_struct", ("stack",)),
    ("OFF_MM_EXE_FILE", "mm_struct", ("exe_file",)),
    ("OFF_FILES_FDT", "files_struct", ("fdt",)),
    ("OFF_FDT_MAX_FDS", "fdtable", ("max_fds",)),
    ("OFF_FDT_FD", "fdtable", ("fd",)),
)

#: the open syscalls' numbers and where the saved user registers hold the
#: syscall number and its first two arguments, by machine
SYSCALLS: dict[str, tuple[dict[str, int], tuple[tuple[str, str, tuple[str, ...]], ...]]] = {
    "x86_64": ({"SYS_OPEN": 2, "SYS_OPENAT": 257, "SYS_OPENAT2": 437, "SIZEOF_PT_REGS": 168},
               (("OFF_REGS_NR", "pt_regs", ("orig_ax",)),
                ("OFF_REGS_ARG1", "pt_regs", ("di",)),
                ("OFF_REGS_ARG2", "pt_regs", ("si",)))),
}

Key = tuple[int, int]  # kernel (dev, ino)


@dataclass(frozen=True, slots=True)
class Notice:
    """One record of the enforcer's ring buffer."""

    ts_ns: int
    ino: int
    ctime_ns: int
    blocked_ctime_ns: int
    kind: int
    notice: int
    dev: int  # kernel s_dev
    pid: int
    ppid: int
    uid: int
    gid: int
    fd: int  # N_MAP / N_OPENED: the fd mapped executable / opened
    comm: str
    path: str  # exec: the path given to execve; empty for mappings

    @classmethod
    def decode(cls, data: bytes) -> "Notice":
        (ts, ino, ctime, bctime, kind, notice, dev, pid, ppid, uid, gid, fd, comm,
         path) = EVENT.unpack_from(data)
        return cls(ts, ino, ctime, bctime, kind, notice, dev, pid, ppid, uid, gid, fd,
                   cstr(comm), cstr(path))

    @property
    def key(self) -> Key:
        return self.dev, self.ino

    @property
    def is_mapping(self) -> bool:
        return bool(self.notice & (N_MAP | N_MPROTECT)) or self.kind == K_MAP_BLOCKED
