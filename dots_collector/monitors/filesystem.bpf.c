/* Filesystem monitor: open / unlink / rename with their results, and read /
 * write BYTES aggregated in the kernel per (tgid, fd). (One object on
 * purpose: every probe here shares the fd table and the ring, and bcc
 * compiles one source per object, hence its length.)
 *
 * Only syscall tracepoints are used, and only their arguments: the headers
 * bcc compiles against do not describe the running kernel.
 *
 * - open: sys_enter_* keeps the user pointers per thread; sys_exit_* reads
 *   the strings (the kernel has just copied them, so they are paged in and
 *   bpf_probe_read_user_str cannot miss) and knows the result.
 * - An fd opened while its uid was monitored, whose path is not excluded,
 *   gets an entry in `fds` holding its path and byte counters. Only those fds
 *   are counted, so reads on sockets, pipes or unmonitored files never create
 *   entries: this is what keeps `fds` bounded.
 * - read/write family: enter looks the (tgid, fd) up and, only when tracked,
 *   parks the fd for the thread; exit adds the returned byte count.
 * - Bytes are reported once, as one "read" and/or one "write" event, when the
 *   fd is closed, replaced (dup2/dup3 or reuse of the number after a
 *   close-on-exec), or when the process exits (sched_process_exit of the group
 *   leader scans its fds). Long-lived files are reported by user space
 *   (filesystem.py periodic()), which never writes the counters: the kernel
 *   always reports totals and user space subtracts what it already reported.
 * - Fewer, richer records: a successful open that gets an entry in `fds` is
 *   not reported at the open but with the fd's flush. A file closed less
 *   than SHORT_NS after its open is one record: "open_read" or
 *   "open_write" with its bytes (both: "open_read" then "write"), or
 *   "open" when it moved none. An fd that lives longer is announced by
 *   user space (periodic() reports its open once it is SHORT_NS old); its
 *   flush then carries OPEN_UNSENT on its first record, so that user space
 *   reports the open first when no look at `fds` came before. The
 *   storm's create-write-close, open-read-close makes two records instead
 *   of four. fds a fork or dup copies were not opened there: they report
 *   bytes only, as before.
 */
#include "common.h"

#define EV_OPEN 0
#define EV_READ 1
#define EV_WRITE 2
#define EV_UNLINK 3
#define EV_RENAME 4
#define EV_OPEN_READ 5           /* EV_READ + 4: opened, read and closed */
#define EV_OPEN_WRITE 6          /* EV_WRITE + 4 */
/* on a flushed fd's first record: its open was never sent by the kernel */
#define OPEN_UNSENT 0x100

#ifndef SHORT_NS
#error "the loader defines SHORT_NS"
#endif

/* uapi open(2) flags, for creat() */
#define DOTS_O_WRONLY 01
#define DOTS_O_CREAT 0100
#define DOTS_O_TRUNC 01000
#define DOTS_CLONE_FILES 0x00000400
#define DOTS_CLONE_THREAD 0x00010000

#define PATH_LEN 256
#define PREFIX_LEN 64            /* power of two: used as an index mask */
#define MAX_PREFIXES 16
#ifndef MAX_TRACKED_FDS
#error "the loader defines MAX_TRACKED_FDS"
#endif
/* watched threads inside an open/unlink/rename or a tracked read/write */
#define MAX_INFLIGHT 1024
/* watched processes with tracked fds */
#define MAX_FD_PROCS 1024
/* fds scanned at process exit; higher ones are swept by user space (the
 * verifier walks every iteration: 256 of them exceeded its 1M limit, 128
 * did once records were counted by their bytes for the wake-ups, and 64
 * did once a flush could also bring its open) */
#ifndef EXIT_FD_SCAN
#define EXIT_FD_SCAN 32
#endif
/* [0] = the collector's pid, never reported (no feedback loop): a map, not
 * a constant, because the pinned programs outlive the collector that
 * loaded them (pinning.py) and a restarted one sets its own pid */
BPF_ARRAY(self_tgid, u32, 1);

struct file_event {
    u64 ts_ns;
    u64 bytes;               /* read/write: total since open */
    u64 gen;                 /* read/write: open time, tells reused fds apart */
    s64 result;              /* open: fd or -errno; unlink/rename: 0 or -errno; read/write: fd */
    u32 type;
    u32 pid;
    u32 uid;
    u32 flags;
    char comm[TASK_COMM_LEN];
    char path[PATH_LEN];
};

struct rename_event {
    struct file_event e;
    char new_path[PATH_LEN];
};

struct fd_key {
    u32 tgid;
    u32 fd;
};

struct fd_info {
    u64 rbytes;              /* added atomically: threads share fds */
    u64 wbytes;
    u64 gen;
    u32 uid;
    u32 flags;
    u32 plen;                /* bytes of path with its NUL (1..PATH_LEN) */
    u32 opened;              /* 1: opened here, its open not sent yet */
    char comm[TASK_COMM_LEN];
    char path[PATH_LEN];
};

/* What sys_enter saw, for sys_exit (per thread). */
struct pending {
    u64 path;                /* user pointers */
    u64 aux;                 /* rename: new path; openat2: struct open_how */
    u32 type;
    u32 flags;
};

struct prefix {
    u32 len;
    char s[PREFIX_LEN];
};

BPF_F_TABLE("hash", struct fd_key, struct fd_info, fds, MAX_TRACKED_FDS, BPF_F_NO_PREALLOC);  /* grows with its entries */
/* tgid -> highest tracked fd + 1: bounds the scan at exit */
BPF_F_TABLE("hash", u32, u32, fd_hi, MAX_FD_PROCS, BPF_F_NO_PREALLOC);  /* grows with its entries */
BPF_F_TABLE("hash", u32, struct pending, pending, MAX_INFLIGHT, BPF_F_NO_PREALLOC);  /* grows with its entries */
/* tid -> fd of a read/write in flight on a tracked fd */
BPF_F_TABLE("hash", u32, u32, io_inflight, MAX_INFLIGHT, BPF_F_NO_PREALLOC);  /* grows with its entries */
/* too big for the BPF stack */
BPF_PERCPU_ARRAY(scratch, struct fd_info, 1);
/* open/read/write/unlink events are built here and copied into the ring
 * buffer with only the path bytes they use (a record is ~100 bytes for a
 * typical path instead of 328: three times as many fit in the ring) */
BPF_PERCPU_ARRAY(evbuf, struct file_event, 1);
#define EVENT_HEAD (sizeof(struct file_event) - PATH_LEN)

/* Only the path's bytes go into the ring (common.h output_record).
 * `quiet` (the exit scan, which looks the counter up once for all its
 * fds): never wake the reader. A lookup and a wake-up branch per fd in
 * that loop made the verifier walk more than its 1M instructions. */
static __always_inline void output_event(struct file_event *e, u32 plen,
                                         struct ring_count *quiet)
{
    output_record(e, EVENT_HEAD, plen, PATH_LEN, quiet);
}

/* filled by the loader; the first entry with len == 0 ends the list */
BPF_ARRAY(excluded, struct prefix, MAX_PREFIXES);
/* [0] = fds left uncounted because `fds` was full */
BPF_ARRAY(fs_stats, u64, 1);
/* Entries in `pending` [0] and `io_inflight` [1]. The exits of reads,
 * writes and opens read this count first (one inlined array read, no
 * helper call: while nobody watched is in such a syscall that is all),
 * then check the uid (an unwatched user's syscall stops there), and only
 * then look for their thread in those maps. */
#define IN_PENDING 0
#define IN_IO 1
BPF_ARRAY(in_flight, u64, 2);

static __always_inline int none_in_flight(u32 which)
{
    u64 *n = in_flight.lookup(&which);
    return n && *n == 0;
}

static __always_inline void count_in_flight(u32 which, s64 delta)
{
    u64 *n = in_flight.lookup(&which);
    if (n)
        __sync_fetch_and_add(n, delta);
}

static __always_inline void count_untracked(void)
{
    u32 zero = 0;
    u64 *full = fs_stats.lookup(&zero);
    if (full)
        __sync_fetch_and_add(full, 1);
}

/* ---- path filter ------------------------------------------------------- */

/* A prefix matches the path itself and what lies under it ("/proc" matches
 * "/proc" and "/proc/1/stat", not "/process"). Relative paths never match:
 * they are reported as given. */
static __always_inline int excluded_path(const char *path)
{
    if (path[0] != '/')
        return 0;
    for (u32 i = 0; i < MAX_PREFIXES; i++) {
        u32 idx = i;
        struct prefix *pre = excluded.lookup(&idx);
        if (!pre)
            return 0;
        /* the mask gives the verifier its bound (the loader keeps len < 64) */
        u32 len = pre->len & (PREFIX_LEN - 1);
        if (len == 0)
            return 0;
        int same = 1;
        for (u32 j = 0; j < PREFIX_LEN; j++) {
            if (j >= len)
                break;
            if (path[j] != pre->s[j]) {
                same = 0;
                break;
            }
        }
        if (!same)
            continue;
        char next = path[len];
        if (next == 0 || next == '/')
            return 1;
    }
    return 0;
}

/* ---- read / write byte counting: the hot path ---------------------------- */

static __always_inline int io_enter(u32 fd)
{
    if (!uid_wanted(current_uid()))
        return 0;
    u64 id = bpf_get_current_pid_tgid();
    struct fd_key key = {.tgid = id >> 32, .fd = fd};
    if (!fds.lookup(&key))
        return 0;
    u32 tid = id;
    if (io_inflight.insert(&tid, &fd) == 0)
        count_in_flight(IN_IO, 1);
    else
        io_inflight.update(&tid, &fd);
    return 0;
}

static __always_inline int io_exit(long ret, int is_write)
{
    if (none_in_flight(IN_IO))      /* one array read: nobody watched is in one */
        return 0;
    if (!uid_wanted(current_uid()))
        return 0;
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = id;
    u32 *fdp = io_inflight.lookup(&tid);   /* misses for untracked fds */
    if (!fdp)
        return 0;
    struct fd_key key = {.tgid = id >> 32, .fd = *fdp};
    if (io_inflight.delete(&tid) == 0)
        count_in_flight(IN_IO, -1);
    if (ret <= 0)
        return 0;
    struct fd_info *fi = fds.lookup(&key);
    if (!fi)
        return 0;
    if (is_write)
        __sync_fetch_and_add(&fi->wbytes, ret);
    else
        __sync_fetch_and_add(&fi->rbytes, ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_read) { return io_enter(args->fd); }
TRACEPOINT_PROBE(syscalls, sys_exit_read) { return io_exit(args->ret, 0); }
TRACEPOINT_PROBE(syscalls, sys_enter_readv) { return io_enter(args->fd); }
TRACEPOINT_PROBE(syscalls, sys_exit_readv) { return io_exit(args->ret, 0); }
TRACEPOINT_PROBE(syscalls, sys_enter_pread64) { return io_enter(args->fd); }
TRACEPOINT_PROBE(syscalls, sys_exit_pread64) { return io_exit(args->ret, 0); }
TRACEPOINT_PROBE(syscalls, sys_enter_preadv) { return io_enter(args->fd); }
TRACEPOINT_PROBE(syscalls, sys_exit_preadv) { return io_exit(args->ret, 0); }
TRACEPOINT_PROBE(syscalls, sys_enter_write) { return io_enter(args->fd); }
TRACEPOINT_PROBE(syscalls, sys_exit_write) { return io_exit(args->ret, 1); }
TRACEPOINT_PROBE(syscalls, sys_enter_writev) { return io_enter(args->fd); }
TRACEPOINT_PROBE(syscalls, sys_exit_writev) { return io_exit(args->ret, 1); }
TRACEPOINT_PROBE(syscalls, sys_enter_pwrite64) { return io_enter(args->fd); }
TRACEPOINT_PROBE(syscalls, sys_exit_pwrite64) { return io_exit(args->ret, 1); }
TRACEPOINT_PROBE(syscalls, sys_enter_pwritev) { return io_enter(args->fd); }
TRACEPOINT_PROBE(syscalls, sys_exit_pwritev) { return io_exit(args->ret, 1); }

/* ---- reporting the counters ---------------------------------------------- */

static __always_inline void emit_io(u32 type, struct fd_key *key, struct fd_info *fi,
                                    u64 bytes, u64 now, struct ring_count *quiet)
{
    u32 zero = 0;
    struct file_event *e = evbuf.lookup(&zero);
    if (!e)
        return;
    e->ts_ns = now;
    e->bytes = bytes;
    e->gen = fi->gen;
    e->result = key->fd;
    e->type = type;
    e->pid = key->tgid;
    e->uid = fi->uid;
    e->flags = fi->flags;
    /* flushes run in the owner's context: name the program that did the
     * I/O (a forked child may have exec'd since the open) */
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    __builtin_memcpy(e->path, fi->path, sizeof(e->path));
    output_event(e, fi->plen, quiet);
}

/* One "read" and/or one "write" event with the totals (when the caller's
 * uid check, made at the close, still wants them: the filter may have
 * changed since the open), then forget the fd. An fd opened here brings
 * its open: in the same record when it is younger than SHORT_NS
 * (EV_OPEN_READ / EV_OPEN_WRITE, or EV_OPEN when it moved no bytes), else
 * as OPEN_UNSENT on its first record. The types are computed, not
 * branched on: this runs in the exit scan's loop, whose every path the
 * verifier walks; there (`quiet`, output_event) the open is never merged,
 * only tagged: one branch less per fd kept the loop under the verifier's
 * limit. */
static __always_inline void flush_fd(struct fd_key *key, int wanted, struct ring_count *quiet)
{
    struct fd_info *fi = fds.lookup(key);
    if (!fi)
        return;
    u64 r = fi->rbytes, w = fi->wbytes;
    u32 opened = fi->opened;
    if ((r || w || opened) && wanted) {
        u64 now = bpf_ktime_get_boot_ns();
        u32 merged = !quiet && opened && now - fi->gen < SHORT_NS;
        u32 tag = opened && !merged ? OPEN_UNSENT : 0;
        /* the first record: the reads, else the writes, else the open */
        u64 first = r ? r : w;
        u32 type = r ? EV_READ : (w ? EV_WRITE : EV_OPEN);
        if (first)
            type += 4 * merged;
        else
            now = fi->gen;      /* an open alone: when it was opened */
        emit_io(type | tag, key, fi, first, now, quiet);
        if (r && w)
            emit_io(EV_WRITE, key, fi, w, now, quiet);
    }
    fds.delete(key);
}

TRACEPOINT_PROBE(syscalls, sys_enter_close)
{
    if (!uid_wanted(current_uid()))
        return 0;
    struct fd_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = args->fd};
    flush_fd(&key, 1, 0);
    return 0;
}

static __always_inline int track_fd(u32 tgid, u32 fd, struct fd_info *fi);

/* dup2/dup3 silently close newfd; and when oldfd is tracked newfd becomes
 * the same file (a shell's "cmd > file": open, dup2 to 1, close): newfd
 * gets its own counters with the same path. */
static __always_inline int dup_enter(u32 oldfd, u32 newfd)
{
    if (oldfd == newfd || !uid_wanted(current_uid()))
        return 0;
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    struct fd_key key = {.tgid = tgid, .fd = newfd};
    flush_fd(&key, 1, 0);
    key.fd = oldfd;
    struct fd_info *old = fds.lookup(&key);
    u32 zero = 0;
    struct fd_info *fi = scratch.lookup(&zero);
    if (!old || !fi)
        return 0;
    __builtin_memcpy(fi, old, sizeof(*fi));
    fi->rbytes = 0;
    fi->wbytes = 0;
    fi->opened = 0;
    fi->gen = bpf_ktime_get_boot_ns();
    track_fd(tgid, newfd, fi);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_dup2) { return dup_enter(args->oldfd, args->newfd); }
TRACEPOINT_PROBE(syscalls, sys_enter_dup3) { return dup_enter(args->oldfd, args->newfd); }

/* fork: the child inherits the parent's open files (a shell opens the
 * redirect target, then forks the command that writes to it), so it gets
 * its own counters for the tracked ones. Threads and CLONE_FILES children
 * share the parent's fd table and key. */
TRACEPOINT_PROBE(task, task_newtask)
{
    if (args->clone_flags & (DOTS_CLONE_THREAD | DOTS_CLONE_FILES))
        return 0;
    if (!uid_wanted(current_uid()))
        return 0;
    u32 parent = bpf_get_current_pid_tgid() >> 32, child = args->pid;
    u32 *hi = fd_hi.lookup(&parent);
    if (!hi)
        return 0;
    u32 n = *hi;
    u32 zero = 0;
    u64 now = bpf_ktime_get_boot_ns();
#pragma clang loop unroll(disable)
    for (u32 fd = 0; fd < EXIT_FD_SCAN; fd++) {
        if (fd >= n)
            break;
        struct fd_key key = {.tgid = parent, .fd = fd};
        struct fd_info *from = fds.lookup(&key);
        struct fd_info *fi = scratch.lookup(&zero);
        if (!from || !fi)
            continue;
        __builtin_memcpy(fi, from, sizeof(*fi));
        fi->rbytes = 0;
        fi->wbytes = 0;
        fi->opened = 0;
        fi->gen = now;
        key.tgid = child;
        if (fds.update(&key, fi) != 0) {
            count_untracked();
            break;
        }
    }
    fd_hi.update(&child, &n);
    return 0;
}

/* A process's fds at its exit: reported (when its uid is watched) and
 * forgotten. The uid check once, and two loops: the verifier walks each
 * loop's every iteration, and a branch on the check in the body would
 * double the paths it walks per fd. */
static __always_inline void flush_process(u32 tgid)
{
    u32 *hi = fd_hi.lookup(&tgid);   /* no uid check: always clean up */
    if (!hi)
        return;
    u32 n = *hi;
    fd_hi.delete(&tgid);
    if (!uid_wanted(current_uid())) {
#pragma clang loop unroll(disable)
        for (u32 fd = 0; fd < EXIT_FD_SCAN; fd++) {
            if (fd >= n)
                break;
            struct fd_key key = {.tgid = tgid, .fd = fd};
            fds.delete(&key);
        }
        return;
    }
    u32 zero = 0;
    struct ring_count *count = submitted.lookup(&zero);
    if (!count)                      /* never: an array's element always exists */
        return;
#pragma clang loop unroll(disable)
    for (u32 fd = 0; fd < EXIT_FD_SCAN; fd++) {
        if (fd >= n)
            break;
        struct fd_key key = {.tgid = tgid, .fd = fd};
        flush_fd(&key, 1, count);
    }
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = id, tgid = id >> 32;
    if (tid == tgid)                 /* not a thread: the fds die with it */
        flush_process(tgid);
    /* a syscall that never returned (or whose exit the uid check skipped:
     * the filter changed meanwhile), whatever the uid now. After the loops:
     * the verifier walks them once per distinct state they start from. */
    if (!none_in_flight(IN_PENDING) || !none_in_flight(IN_IO)) {
        if (pending.delete(&tid) == 0)
            count_in_flight(IN_PENDING, -1);
        if (io_inflight.delete(&tid) == 0)
            count_in_flight(IN_IO, -1);
    }
    return 0;
}

/* ---- open / unlink / rename ----------------------------------------------- */

static __always_inline int remember(u32 type, const void *path, const void *aux, u32 flags)
{
    if (!uid_wanted(current_uid()))
        return 0;
    u64 id = bpf_get_current_pid_tgid();
    u32 zero = 0;
    u32 *self = self_tgid.lookup(&zero);
    if (self && (id >> 32) == *self)
        return 0;
    u32 tid = id;
    struct pending p = {.path = (u64)path, .aux = (u64)aux, .type = type, .flags = flags};
    if (pending.insert(&tid, &p) == 0)
        count_in_flight(IN_PENDING, 1);
    else
        pending.update(&tid, &p);
    return 0;
}

#define EV_OPENAT2 100   /* internal: flags are in struct open_how */

TRACEPOINT_PROBE(syscalls, sys_enter_open) { return remember(EV_OPEN, args->filename, 0, args->flags); }
TRACEPOINT_PROBE(syscalls, sys_enter_creat)
{
    return remember(EV_OPEN, args->pathname, 0, DOTS_O_CREAT | DOTS_O_WRONLY | DOTS_O_TRUNC);
}
TRACEPOINT_PROBE(syscalls, sys_enter_openat) { return remember(EV_OPEN, args->filename, 0, args->flags); }
TRACEPOINT_PROBE(syscalls, sys_enter_openat2) { return remember(EV_OPENAT2, args->filename, args->how, 0); }
TRACEPOINT_PROBE(syscalls, sys_enter_unlink) { return remember(EV_UNLINK, args->pathname, 0, 0); }
TRACEPOINT_PROBE(syscalls, sys_enter_unlinkat) { return remember(EV_UNLINK, args->pathname, 0, args->flag); }
TRACEPOINT_PROBE(syscalls, sys_enter_rename) { return remember(EV_RENAME, args->oldname, args->newname, 0); }
TRACEPOINT_PROBE(syscalls, sys_enter_renameat) { return remember(EV_RENAME, args->oldname, args->newname, 0); }
TRACEPOINT_PROBE(syscalls, sys_enter_renameat2)
{
    return remember(EV_RENAME, args->oldname, args->newname, args->flags);
}

static __always_inline void fill_event(struct file_event *e, struct fd_info *fi, u32 type,
                                       u32 tgid, long ret)
{
    e->ts_ns = fi->gen;
    e->bytes = 0;
    e->gen = 0;
    e->result = ret;
    e->type = type;
    e->pid = tgid;
    e->uid = fi->uid;
    e->flags = fi->flags;
    __builtin_memcpy(e->comm, fi->comm, sizeof(e->comm));
    __builtin_memcpy(e->path, fi->path, sizeof(e->path));
}

/* A new fd: start its counters (flushing whatever held that number before,
 * e.g. an fd closed by exec's close-on-exec, which no close() reports).
 * 0 once tracked. */
static __always_inline int track_fd(u32 tgid, u32 fd, struct fd_info *fi)
{
    struct fd_key key = {.tgid = tgid, .fd = fd};
    flush_fd(&key, 1, 0);
    if (fds.update(&key, fi) != 0) {
        count_untracked();
        return -1;
    }
    u32 *hi = fd_hi.lookup(&tgid);
    if (!hi || *hi <= fd) {
        u32 v = fd + 1;
        fd_hi.update(&tgid, &v);
    }
    return 0;
}

static __always_inline int finish(long ret)
{
    if (none_in_flight(IN_PENDING)) /* one array read: nobody watched is in one */
        return 0;
    if (!uid_wanted(current_uid()))
        return 0;
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = id, tgid = id >> 32;
    struct pending *pp = pending.lookup(&tid);   /* misses unless monitored */
    if (!pp)
        return 0;
    struct pending p = *pp;
    if (pending.delete(&tid) == 0)
        count_in_flight(IN_PENDING, -1);

    u32 zero = 0;
    struct fd_info *fi = scratch.lookup(&zero);
    if (!fi)
        return 0;
    long plen = bpf_probe_read_user_str(fi->path, sizeof(fi->path), (void *)p.path);
    if (plen <= 0) {
        fi->path[0] = 0;
        plen = 1;
    }
    fi->plen = plen;
    u32 type = p.type;
    if (type == EV_OPENAT2) {
        u64 how_flags = 0;   /* struct open_how (uapi) starts with u64 flags */
        bpf_probe_read_user(&how_flags, sizeof(how_flags), (void *)p.aux);
        p.flags = how_flags;
        type = EV_OPEN;
    }

    if (type == EV_RENAME) {
        struct rename_event *r = events.ringbuf_reserve(sizeof(*r));
        if (!r) {
            count_lost();
            return 0;
        }
        bpf_probe_read_user_str(r->new_path, sizeof(r->new_path), (void *)p.aux);
        /* a rename is dropped only when both ends are excluded */
        if (excluded_path(fi->path) && excluded_path(r->new_path)) {
            events.ringbuf_discard(r, 0);
            return 0;
        }
        fi->uid = current_uid();
        fi->flags = p.flags;
        fi->gen = bpf_ktime_get_boot_ns();
        bpf_get_current_comm(fi->comm, sizeof(fi->comm));
        fill_event(&r->e, fi, type, tgid, ret);
        submit_event(r, sizeof(*r));
        return 0;
    }

    /* filter before reserving: an excluded path is neither sent nor lost */
    if (excluded_path(fi->path))
        return 0;
    fi->rbytes = 0;
    fi->wbytes = 0;
    fi->uid = current_uid();
    fi->flags = p.flags;
    fi->gen = bpf_ktime_get_boot_ns();
    bpf_get_current_comm(fi->comm, sizeof(fi->comm));

    /* a tracked open is sent with its flush (flush_fd); one that found the
     * table full, or failed, now */
    if (type == EV_OPEN && ret >= 0) {
        fi->opened = 1;
        if (track_fd(tgid, ret, fi) == 0)
            return 0;
    }
    struct file_event *e = evbuf.lookup(&zero);
    if (!e)
        return 0;
    fill_event(e, fi, type, tgid, ret);
    output_event(e, fi->plen, 0);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_open) { return finish(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_creat) { return finish(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_openat) { return finish(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_openat2) { return finish(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_unlink) { return finish(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_unlinkat) { return finish(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_rename) { return finish(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_renameat) { return finish(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_renameat2) { return finish(args->ret); }
