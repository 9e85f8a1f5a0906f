/* Exec enforcer (one object on purpose: its exec, mapping, open and fork
 * checks share the rule maps and one ring buffer, hence its length).
 *
 * A raw tracepoint on sched_process_exec kills a blocked
 * program of an enforced uid with bpf_send_signal(SIGKILL) before it runs
 * a single instruction of its own (the signal is acted on when exec
 * returns to user space).
 *
 * The program is identified by the inode of bprm->file: (s_dev, i_ino).
 * bprm->file, file->f_inode, inode->i_ino/i_sb/i_ctime and sb->s_dev are
 * read at offsets the loader takes from the running kernel's BTF (OFF_*
 * macros), never from the compile-time headers. s_dev is the kernel's
 * encoding, major << 20 | minor.
 *
 * Userspace learns about executables it has not identified yet through
 * "first seen" notices (one per (dev, ino, ctime), remembered in an LRU
 * map), hashes them, and adds copies of blocked programs to the block map.
 * A copy has the size of its original: a first-seen executable with the
 * byte size of one of the uid's blocked programs is killed here at once
 * (KILL_SAME_SIZE), before userspace has hashed it; if its content turns
 * out to differ, userspace marks it seen and it runs from its next start.
 * For a #! script, bprm->file is the INTERPRETER: the script itself is
 * reported with a "script" notice (by path) and judged in userspace. The
 * dynamic loader run by hand (/lib64/ld-linux-x86-64.so.2 ./prog) maps the
 * program without exec'ing it: every exec of a file userspace found to be
 * a loader (or an interpreter: python3 game.py) gets a notice, and the
 * program on its command line is judged in userspace.
 *
 * The backstop: whatever an enforced uid maps executable with mmap()
 * (shared objects, LD_PRELOAD, dlopen, a loader's target, a memfd) is
 * looked up by the inode of the mapped fd (task->files->fdt->fd[fd]): a
 * blocked file is killed here at the syscall; a file userspace has not
 * judged yet (block mode: not seen; allow-list mode: not allowed and not
 * judged fine for the uid) is reported with N_MAP and judged from
 * /proc/PID/map_files. mprotect(PROT_EXEC) of an enforced uid's process is
 * reported once per process until userspace has looked at its mappings
 * ("pending" map), which it then checks the same way.
 *
 * Files an interpreter opens: python3 -c "exec(open('game.py').read())",
 * python3 < game.py (the shell opens it), a symlink flipped between the
 * judge's look at the command line and the interpreter's open, name no
 * program on the command line. An open by an interpreter (or a copy
 * user space recognised, "programs" map: P_INTERPRETER) of an enforced
 * uid with a block list, for reading, is checked at the syscall's exit by
 * the inode of the file opened: a blocked file is killed here (K_OPEN_BLOCKED); a
 * regular file not seen before with the byte size of one of the uid's
 * blocked programs (a copy) is reported (N_OPENED, with the fd) and judged
 * in user space; so is, when the uid's list has scripts (F_SCRIPTS), any
 * regular file root did not install (N_EDITABLE: an edited copy of a
 * blocked script, judged by its content's similarity). Other programs reading a blocked file (cat, a file
 * manager, an indexer) are left alone.
 *
 * Forks: a program that keeps forking itself (the parent leaves, the
 * child lives on in a new pid) never execs, so neither check above sees
 * it. The child's return from fork, clone, clone3 or vfork (the syscall's
 * exit tracepoint fires in the new task, with ret 0) is checked by the
 * inode of task->mm->exe_file: a fork of a blocked program dies before it
 * runs an instruction (K_FORK_BLOCKED); so does a fork of a program that
 * is not allowed while allow-list mode is coming on (F_FOLLOW: set with
 * the mode, cleared once user space has swept what ran before it; not
 * for longer, because root's sshd runs as the uid and forks its shell).
 */
#define DOTS_NO_UID_FILTER  /* enforced_uids is this object's filter */
#include "common.h"

#define DOTS_SIGKILL 9
#define ANY_UID 0xffffffff
#define PATH_LEN 256

/* enforced_uids flags */
#define F_BLOCKS 1   /* uid has a block list: send first-seen/script notices */
#define F_ALLOW  2   /* uid is in allow-list mode */
#define F_SCRIPTS 8  /* uid's block list has scripts: an interpreter's opens of
                        files not root's are judged (edited copies) */
#define F_FOLLOW 4   /* allow-list mode is coming on: forks of programs that
                      * are not allowed die at birth */

/* event kinds (exec_block.py) */
#define K_BLOCKED 0      /* killed: on the block list */
#define K_NOT_ALLOWED 1  /* killed: allow-list mode, not on the list */
#define K_NOTICE 2       /* not killed; see the N_* bits */
#define K_SUSPECT 3      /* killed: first seen, size of a blocked program */
/* notice bits */
#define N_FIRST_SEEN 1   /* executable not identified yet */
#define N_SCRIPT 2       /* a #! script (or binfmt_misc): bprm->file is the
                          * interpreter, path is the script */
#define N_LOADER 4       /* the dynamic loader run by hand (ld.so PROGRAM):
                          * the program is on its command line */
#define N_INTERP 8       /* an interpreter: its argument file is the program */
#define N_MAP 16         /* mmap(PROT_EXEC) of a file not judged yet */
#define N_MPROTECT 32    /* mprotect(PROT_EXEC): look at the process's maps */
#define K_MAP_BLOCKED 4  /* killed: mapped a blocked file executable */
#define N_OPENED 64      /* an interpreter opened a file not judged yet */
#define N_EDITABLE 128   /* ... not for its size: a file the child may have edited */
#define K_OPEN_BLOCKED 6 /* killed: an interpreter opened a blocked file */
#define DOTS_S_IFMT 0170000
#define DOTS_S_IFREG 0100000
#define DOTS_FMODE_READ 1
#define K_FORK_BLOCKED 5 /* killed at birth: a fork of a program that must stop */
/* values of the "programs" map */
#define P_LOADER 1
#define P_INTERPRETER 2
#define DOTS_PROT_EXEC 4
#define DOTS_MAP_ANONYMOUS 0x20

#ifndef MAX_ENFORCED_UIDS
#error "the loader defines MAX_ENFORCED_UIDS"
#endif
#ifndef MAX_EXE_ENTRIES
#error "the loader defines MAX_EXE_ENTRIES"
#endif
#ifndef KILL_SAME_SIZE
#define KILL_SAME_SIZE 1
#endif
#ifndef MAX_SEEN
#error "the loader defines MAX_SEEN"
#endif
#ifndef SYS_OPEN
#error "the loader defines SYS_OPEN, SYS_OPENAT, SYS_OPENAT2 and the pt_regs layout"
#endif

struct exe_key {
    u64 ino;
    u32 dev;
    u32 uid;   /* ANY_UID: every uid (the default allow list) */
};

struct file_key {
    u64 ino;
    u32 dev;
    u32 pad;
};

struct size_key {
    u64 size;
    u32 uid;
    u32 pad;
};

struct exec_event {
    u64 ts_ns;
    u64 ino;
    u64 ctime_ns;
    u64 blocked_ctime_ns;  /* K_BLOCKED: the ctime the block was made for */
    u32 kind;
    u32 notice;
    u32 dev;
    u32 pid;
    u32 ppid;
    u32 uid;
    u32 gid;
    u32 fd;
    char comm[TASK_COMM_LEN];
    char path[PATH_LEN];
};

/* uid -> F_* flags; a uid not here is never looked at again. */
BPF_F_TABLE("hash", u32, u32, enforced_uids, MAX_ENFORCED_UIDS, BPF_F_NO_PREALLOC);  /* grows with its entries */
/* (uid, dev, ino) -> inode ctime (ns) when the program was identified. */
BPF_F_TABLE("hash", struct exe_key, u64, blocked, MAX_EXE_ENTRIES, BPF_F_NO_PREALLOC);  /* grows with its entries */
/* (uid or ANY_UID, dev, ino) -> 1 */
BPF_F_TABLE("hash", struct exe_key, u64, allowed, MAX_EXE_ENTRIES, BPF_F_NO_PREALLOC);  /* grows with its entries */
/* (dev, ino) -> ctime (ns) of the last first-seen notice. */
BPF_TABLE("lru_hash", struct file_key, u64, seen, MAX_SEEN);
/* (size, uid) -> number of the uid's blocked programs of that size */
BPF_F_TABLE("hash", struct size_key, u32, blocked_sizes, MAX_EXE_ENTRIES, BPF_F_NO_PREALLOC);  /* grows with its entries */
/* (dev, ino) of loaders and interpreters (and copies of them) -> P_* */
BPF_F_TABLE("hash", struct file_key, u8, programs, 1024, BPF_F_NO_PREALLOC);  /* grows with its entries */
/* (uid, dev, ino) -> ctime: judged fine to map executable in allow-list mode */
BPF_TABLE("lru_hash", struct exe_key, u64, mapped_ok, MAX_SEEN);
/* tgid -> 1: an mprotect(PROT_EXEC) notice userspace has not handled yet */
BPF_TABLE("lru_hash", u32, u8, pending, 512);
/* [0] = programs killed here */
BPF_PERCPU_ARRAY(kills, u64, 1);

/* (dev, ino, uid) of a file and its ctime in ns (bit 31 of the nsec word
 * is a flag on kernels with multigrain ctime) */
static __always_inline u64 file_key_of(void *file, u32 uid, struct exe_key *key)
{
    void *inode = (void *)read_u64(file + OFF_FILE_INODE);
    void *sb = (void *)read_u64(inode + OFF_INODE_SB);
    key->ino = read_u64(inode + OFF_INODE_INO);
    key->dev = read_u32(sb + OFF_SB_DEV);
    key->uid = uid;
    return read_u64(inode + OFF_INODE_CTIME_SEC) * 1000000000ULL +
           (read_u32(inode + OFF_INODE_CTIME_NSEC) & 0x3fffffff);
}

static __always_inline void kill_current(void)
{
    bpf_send_signal(DOTS_SIGKILL);
    u32 zero = 0;
    u64 *n = kills.lookup(&zero);
    if (n)
        *n += 1;
}

/* A ring buffer record with what every kind has filled in (NULL: the ring
 * is full, counted as lost). */
static __always_inline struct exec_event *new_event(u32 kind, u32 notice, u32 uid, u64 uid_gid,
                                                    struct exe_key *key, u64 ctime, u32 fd)
{
    struct exec_event *e = events.ringbuf_reserve(sizeof(*e));
    if (!e) {
        count_lost();
        return 0;
    }
    e->ts_ns = bpf_ktime_get_boot_ns();
    e->ino = key->ino;
    e->dev = key->dev;
    e->ctime_ns = ctime;
    e->blocked_ctime_ns = 0;
    e->kind = kind;
    e->notice = notice;
    e->pid = bpf_get_current_pid_tgid() >> 32;
    void *task = (void *)bpf_get_current_task();
    void *parent = (void *)read_u64(task + OFF_TASK_REAL_PARENT);
    e->ppid = read_u32(parent + OFF_TASK_TGID);
    e->uid = uid;
    e->gid = uid_gid >> 32;
    e->fd = fd;
    bpf_get_current_comm(&e->comm, sizeof(e->comm));
    e->path[0] = 0;
    return e;
}

int dots_exec_block(struct bpf_raw_tracepoint_args *ctx)
{
    u64 uid_gid = bpf_get_current_uid_gid();
    u32 uid = (u32)uid_gid;
    u32 *flags = enforced_uids.lookup(&uid);
    if (!flags)
        return 0;
    u32 mode = *flags;

    /* TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm) */
    void *bprm = (void *)ctx->args[2];
    void *file = (void *)read_u64(bprm + OFF_BPRM_FILE);
    struct exe_key key = {};
    u64 ctime = file_key_of(file, uid, &key);

    u32 kind = K_NOTICE;
    u32 notice = 0;
    u64 blocked_ctime = 0;
    /* a blocked (dev, ino) with another ctime is another file (inode
     * numbers are reused) or a changed one: user space judges it again */
    u64 *b = blocked.lookup(&key);
    if (b && *b == ctime) {
        kind = K_BLOCKED;
        blocked_ctime = *b;
    } else if (mode & F_ALLOW) {
        if (!allowed.lookup(&key)) {
            key.uid = ANY_UID;
            if (!allowed.lookup(&key))
                kind = K_NOT_ALLOWED;
            key.uid = uid;
        }
    }

    if (kind == K_NOTICE) {
        if (!(mode & F_BLOCKS))
            return 0;
        struct file_key fk = {};
        fk.ino = key.ino;
        fk.dev = key.dev;
        u64 *last = seen.lookup(&fk);
        if (!last || *last != ctime || b) {
            notice |= N_FIRST_SEEN;
            if (KILL_SAME_SIZE) {
                struct size_key sk = {};
                sk.size = read_u64((void *)read_u64(file + OFF_FILE_INODE) + OFF_INODE_SIZE);
                sk.uid = uid;
                if (blocked_sizes.lookup(&sk))
                    kind = K_SUSPECT;
            }
        }
        /* bprm->interp differs from bprm->filename once binfmt_script (or
         * binfmt_misc) replaced the file by an interpreter */
        if (read_u64(bprm + OFF_BPRM_FILENAME) != read_u64(bprm + OFF_BPRM_INTERP))
            notice |= N_SCRIPT;
        u8 *what = programs.lookup(&fk);
        if (what)
            notice |= (*what & P_LOADER) ? N_LOADER : N_INTERP;
        if (!notice)
            return 0;
    }

    if (kind != K_NOTICE)
        kill_current();

    struct exec_event *e = new_event(kind, notice, uid, uid_gid, &key, ctime, 0);
    if (!e)
        return 0;   /* a lost notice leaves "seen" unset: the next exec retries */
    e->blocked_ctime_ns = blocked_ctime;
    void *filename = (void *)read_u64(bprm + OFF_BPRM_FILENAME);
    bpf_probe_read_kernel_str(&e->path, sizeof(e->path), filename);
    /* a suspect stays unseen until userspace has cleared it */
    if ((notice & N_FIRST_SEEN) && kind == K_NOTICE) {
        struct file_key fk = {};
        fk.ino = key.ino;
        fk.dev = key.dev;
        seen.update(&fk, &ctime);
    }
    events.ringbuf_submit(e, 0);
    return 0;
}

/* --- the backstop on executable mappings ------------------------------------ */

static __always_inline void *fd_file(u32 fd)
{
    void *task = (void *)bpf_get_current_task();
    void *files = (void *)read_u64(task + OFF_TASK_FILES);
    void *fdt = (void *)read_u64(files + OFF_FILES_FDT);
    if (!fdt || fd >= read_u32(fdt + OFF_FDT_MAX_FDS))
        return 0;
    void *fds = (void *)read_u64(fdt + OFF_FDT_FD);
    return (void *)read_u64(fds + (u64)fd * 8);
}

static __always_inline int map_event(u32 kind, u32 notice, u32 uid, u64 uid_gid,
                                     struct exe_key *key, u64 ctime, u32 fd)
{
    struct exec_event *e = new_event(kind, notice, uid, uid_gid, key, ctime, fd);
    if (!e)
        return 0;
    events.ringbuf_submit(e, 0);
    return 1;
}

/* User space identified the file at this ctime ("seen"), and it is not a
 * blocked inode with another ctime (reused or changed): nothing to report. */
static __always_inline int seen_at(struct exe_key *key, u64 ctime, u64 *b)
{
    struct file_key fk = {};
    fk.ino = key->ino;
    fk.dev = key->dev;
    u64 *last = seen.lookup(&fk);
    return last && *last == ctime && !b;
}

static __always_inline void mark_seen(struct exe_key *key, u64 ctime)
{
    struct file_key fk = {};
    fk.ino = key->ino;
    fk.dev = key->dev;
    seen.update(&fk, &ctime);
}

/* A file of a blocked (dev, ino, uid) with the ctime it was blocked at:
 * SIGKILL, and the event saying so (1); else 0. */
static __always_inline int kill_if_blocked(u64 *b, u64 ctime, u32 kind, u32 notice, u64 uid_gid,
                                           struct exe_key *key, u32 fd)
{
    if (!b || *b != ctime)
        return 0;
    kill_current();
    map_event(kind, notice, (u32)uid_gid, uid_gid, key, ctime, fd);
    return 1;
}

TRACEPOINT_PROBE(syscalls, sys_enter_mmap)
{
    if (!(args->prot & DOTS_PROT_EXEC) || (args->flags & DOTS_MAP_ANONYMOUS))
        return 0;
    u64 uid_gid = bpf_get_current_uid_gid();
    u32 uid = (u32)uid_gid;
    u32 *flags = enforced_uids.lookup(&uid);
    if (!flags)
        return 0;
    u32 mode = *flags;
    u32 fd = (u32)args->fd;
    void *file = fd_file(fd);
    if (!file)
        return 0;
    struct exe_key key = {};
    u64 ctime = file_key_of(file, uid, &key);

    u64 *b = blocked.lookup(&key);
    if (kill_if_blocked(b, ctime, K_MAP_BLOCKED, N_MAP, uid_gid, &key, fd))
        return 0;
    if (mode & F_ALLOW) {
        if (allowed.lookup(&key))
            return 0;
        u64 *ok = mapped_ok.lookup(&key);
        if (ok && *ok == ctime)
            return 0;
        key.uid = ANY_UID;
        if (allowed.lookup(&key))
            return 0;
        key.uid = uid;
        map_event(K_NOTICE, N_MAP, uid, uid_gid, &key, ctime, fd);
        return 0;
    }
    if (seen_at(&key, ctime, b))
        return 0;
    /* a lost notice leaves the file unseen: the next mapping retries */
    if (map_event(K_NOTICE, N_MAP | N_FIRST_SEEN, uid, uid_gid, &key, ctime, fd))
        mark_seen(&key, ctime);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_mprotect)
{
    if (!(args->prot & DOTS_PROT_EXEC))
        return 0;
    u64 uid_gid = bpf_get_current_uid_gid();
    u32 uid = (u32)uid_gid;
    if (!enforced_uids.lookup(&uid))
        return 0;
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    u8 one = 1;
    if (pending.lookup(&tgid))
        return 0;
    struct exe_key key = {};
    key.uid = uid;
    if (map_event(K_NOTICE, N_MPROTECT, uid, uid_gid, &key, 0, 0))
        pending.update(&tgid, &one);
    return 0;
}

/* --- forks of a program that must stop -------------------------------------- */

/* The executable the current task runs (task->mm->exe_file; 0: none, a
 * kernel thread). */
static __always_inline void *current_exe(void)
{
    void *task = (void *)bpf_get_current_task();
    void *mm = (void *)read_u64(task + OFF_TASK_MM);
    return mm ? (void *)read_u64(mm + OFF_MM_EXE_FILE) : 0;
}

static __always_inline int fork_child(long ret)
{
    if (ret != 0)
        return 0;   /* the parent's return (or a failed fork) */
    u64 uid_gid = bpf_get_current_uid_gid();
    u32 uid = (u32)uid_gid;
    u32 *flags = enforced_uids.lookup(&uid);
    if (!flags)
        return 0;
    u32 mode = *flags;
    void *file = current_exe();
    if (!file)
        return 0;
    struct exe_key key = {};
    u64 ctime = file_key_of(file, uid, &key);
    u64 *b = blocked.lookup(&key);
    if (!(b && *b == ctime)) {
        if ((mode & (F_ALLOW | F_FOLLOW)) != (F_ALLOW | F_FOLLOW) || allowed.lookup(&key))
            return 0;
        key.uid = ANY_UID;
        if (allowed.lookup(&key))
            return 0;
        key.uid = uid;
    }
    kill_current();
    map_event(K_FORK_BLOCKED, 0, uid, uid_gid, &key, ctime, 0);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_fork) { return fork_child(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_vfork) { return fork_child(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_clone) { return fork_child(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_clone3) { return fork_child(args->ret); }

/* --- files an interpreter opens --------------------------------------------- */

/* The uid's flags if it has a block list and the executable of the
 * current task is a known interpreter; else 0. */
static __always_inline u32 interpreter_of_blocking_uid(u32 uid)
{
    u32 *flags = enforced_uids.lookup(&uid);
    if (!flags || !(*flags & F_BLOCKS))
        return 0;
    u32 mode = *flags;
    void *exe = current_exe();
    if (!exe)
        return 0;
    struct exe_key key = {};
    file_key_of(exe, uid, &key);
    struct file_key fk = {};
    fk.ino = key.ino;
    fk.dev = key.dev;
    u8 *what = programs.lookup(&fk);
    return what && (*what & P_INTERPRETER) ? mode : 0;
}

/* The name the current syscall was given (its argument register, from the
 * task's saved user registers at the top of its kernel stack: THREAD_SIZE
 * and the padding above the registers depend on the build, so each
 * candidate is tried until the saved syscall number is the expected one).
 * Only read for a notice: the fd is often closed again before user space
 * looks (exec(open(f).read())). 0 if not found. */
static __always_inline u64 syscall_arg(u64 nr, u32 arg_off)
{
    void *task = (void *)bpf_get_current_task();
    void *stack = (void *)read_u64(task + OFF_TASK_STACK);
    #pragma unroll
    for (int i = 0; i < 4; i++) {
        u64 top = (i & 1) ? 32768 : 16384;
        u64 pad = (i & 2) ? 16 : 0;
        void *regs = stack + top - pad - SIZEOF_PT_REGS;
        if (read_u64(regs + OFF_REGS_NR) == nr)
            return read_u64(regs + arg_off);
    }
    return 0;
}

/* An interpreter's open, at the syscall's exit (the fd exists then): one
 * (perf) tracepoint per open syscall, no sys_enter twin. */
static __always_inline int opened(long ret, u64 nr, u32 arg_off)
{
    if (ret < 0)
        return 0;
    u64 uid_gid = bpf_get_current_uid_gid();
    u32 uid = (u32)uid_gid;
    u32 mode = interpreter_of_blocking_uid(uid);
    if (!mode)
        return 0;
    u32 fd = (u32)ret;
    void *file = fd_file(fd);
    if (!file)
        return 0;
    if (!(read_u32(file + OFF_FILE_MODE) & DOTS_FMODE_READ))
        return 0;   /* written to, not read: a shell's "> file" or ">> file" */
    void *inode = (void *)read_u64(file + OFF_FILE_INODE);
    u16 imode = read_u16(inode + OFF_INODE_MODE);
    if ((imode & DOTS_S_IFMT) != DOTS_S_IFREG)
        return 0;
    struct exe_key key = {};
    u64 ctime = file_key_of(file, uid, &key);
    u64 *b = blocked.lookup(&key);
    if (kill_if_blocked(b, ctime, K_OPEN_BLOCKED, N_OPENED, uid_gid, &key, fd))
        return 0;
    /* a copy has its original's size: only a file of the size of one of
     * the uid's blocked programs is worth user space's hashing */
    struct size_key sk = {};
    sk.size = read_u64(inode + OFF_INODE_SIZE);
    sk.uid = uid;
    u32 notice = N_OPENED | N_FIRST_SEEN;
    if (!blocked_sizes.lookup(&sk)) {
        /* an edited copy of a blocked script has a size of its own: with
         * scripts on the list, a file root did not install (not root's,
         * or writable by others) is judged too, by its content */
        if (!(mode & F_SCRIPTS))
            return 0;
        if (read_u32(inode + OFF_INODE_UID) == 0 && !(imode & 0022))
            return 0;
        if (sk.size > MAX_EDITABLE_BYTES)
            return 0;   /* too big to be compared by content */
        notice |= N_EDITABLE;
    }
    if (seen_at(&key, ctime, b))
        return 0;
    struct exec_event *e = new_event(K_NOTICE, notice, uid, uid_gid, &key, ctime, fd);
    if (!e)
        return 0;   /* a lost notice leaves the file unseen: the next open retries */
    u64 name = syscall_arg(nr, arg_off);
    if (name)
        bpf_probe_read_user_str(&e->path, sizeof(e->path), (void *)name);
    events.ringbuf_submit(e, 0);
    mark_seen(&key, ctime);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_open) { return opened(args->ret, SYS_OPEN, OFF_REGS_ARG1); }
TRACEPOINT_PROBE(syscalls, sys_exit_openat) { return opened(args->ret, SYS_OPENAT, OFF_REGS_ARG2); }
TRACEPOINT_PROBE(syscalls, sys_exit_openat2) { return opened(args->ret, SYS_OPENAT2, OFF_REGS_ARG2); }
