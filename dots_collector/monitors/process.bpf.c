/* Process monitor: fork, exec (with the full path given to execve) and exit
 * of thread-group leaders, with ppid, uid, gid, comm and the exit code.
 *
 * ppid comes from a pid -> parent map filled at task:task_newtask (which
 * tells a new process from a new thread by CLONE_THREAD) and seeded by the
 * loader from /proc for processes that existed before it.
 * The exit code is recorded at sys_enter_exit_group, or as -signal when a
 * fatal signal with the default action is delivered.
 */
#include "common.h"

/* uapi constants, spelled out so no kernel header is needed */
#define DOTS_CLONE_THREAD 0x00010000
#define DOTS_SIGCHLD 17
#define DOTS_SIGCONT 18
#define DOTS_SIGSTOP 19
#define DOTS_SIGTSTP 20
#define DOTS_SIGTTIN 21
#define DOTS_SIGTTOU 22
#define DOTS_SIGURG 23
#define DOTS_SIGWINCH 28

#define EV_FORK 0
#define EV_EXEC 1
#define EV_EXIT 2
#define PATH_LEN 256
/* processes alive on the whole machine (a desktop runs a few hundred) */
#define MAX_PIDS 8192
/* watched processes between exit_group (or a fatal signal) and their exit */
#define MAX_EXITING 1024

struct event_head {
    u64 ts_ns;
    u32 type;
    u32 pid;
    u32 ppid;
    u32 uid;
    u32 gid;
    s32 exit_code;
    char comm[TASK_COMM_LEN];
};

struct exec_event {
    struct event_head h;
    char path[PATH_LEN];
};

/* An exec record is built here, then copied into the ring with only the
 * path bytes it uses (with its NUL): ~80 bytes for a typical path instead
 * of 304, so three times as many execs fit in the ring and the reader
 * copies a third of the bytes. */
BPF_PERCPU_ARRAY(execbuf, struct exec_event, 1);
/* tgid -> parent tgid, for processes (not threads). */
BPF_F_TABLE("hash", u32, u32, parents, MAX_PIDS, BPF_F_NO_PREALLOC);  /* grows with its entries */
/* tgid -> exit code, only for monitored uids between exit_group and exit. */
BPF_F_TABLE("hash", u32, s32, exit_codes, MAX_EXITING, BPF_F_NO_PREALLOC);  /* grows with its entries */

static __always_inline void fill_head(struct event_head *h, u32 type, u32 pid, u64 uid_gid)
{
    h->ts_ns = bpf_ktime_get_boot_ns();
    h->type = type;
    h->pid = pid;
    u32 *pp = parents.lookup(&pid);
    h->ppid = pp ? *pp : 0;
    h->uid = (u32)uid_gid;
    h->gid = uid_gid >> 32;
    h->exit_code = 0;
    bpf_get_current_comm(&h->comm, sizeof(h->comm));
}

TRACEPOINT_PROBE(task, task_newtask)
{
    if (args->clone_flags & DOTS_CLONE_THREAD)
        return 0;
    u32 child = args->pid;
    u32 parent = bpf_get_current_pid_tgid() >> 32;
    parents.update(&child, &parent);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_fork)
{
    u64 uid_gid = bpf_get_current_uid_gid();
    if (!uid_wanted((u32)uid_gid))
        return 0;
    u32 child = args->child_pid;
    u32 *known = parents.lookup(&child);
    if (!known)                 /* a new thread, not a process */
        return 0;
    struct event_head *h = events.ringbuf_reserve(sizeof(*h));
    if (!h) {
        count_lost();
        return 0;
    }
    fill_head(h, EV_FORK, child, uid_gid);
    h->ppid = *known;
    submit_event(h, sizeof(*h));
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exec)
{
    u64 uid_gid = bpf_get_current_uid_gid();
    if (!uid_wanted((u32)uid_gid))
        return 0;
    u32 zero = 0;
    struct exec_event *e = execbuf.lookup(&zero);
    if (!e)                     /* never: an array's element always exists */
        return 0;
    fill_head(&e->h, EV_EXEC, bpf_get_current_pid_tgid() >> 32, uid_gid);
    long got = READ_DATA_LOC_STR(e->path, args, filename);
    if (got <= 0)
        e->path[0] = 0;
    output_record(e, sizeof(e->h), got, PATH_LEN, 0);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_exit_group)
{
    if (!uid_wanted(current_uid()))
        return 0;
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    s32 code = args->error_code & 0xff;
    exit_codes.update(&tgid, &code);
    return 0;
}

TRACEPOINT_PROBE(signal, signal_deliver)
{
    /* Default action of a fatal signal: the process dies of it. SIGCHLD,
     * SIGCONT, SIGURG and SIGWINCH are ignored by default; SIGSTOP & co stop. */
    int sig = args->sig;
    if (args->sa_handler != 0 || sig == DOTS_SIGCHLD || sig == DOTS_SIGCONT ||
        sig == DOTS_SIGURG || sig == DOTS_SIGWINCH || sig == DOTS_SIGSTOP ||
        sig == DOTS_SIGTSTP || sig == DOTS_SIGTTIN || sig == DOTS_SIGTTOU)
        return 0;
    if (!uid_wanted(current_uid()))
        return 0;
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    s32 code = -sig;
    exit_codes.update(&tgid, &code);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tgid = pid_tgid >> 32;
    if ((u32)pid_tgid != tgid)  /* a thread, not the group leader */
        return 0;
    u64 uid_gid = bpf_get_current_uid_gid();
    if (uid_wanted((u32)uid_gid)) {
        struct event_head *h = events.ringbuf_reserve(sizeof(*h));
        if (!h) {
            count_lost();
        } else {
            fill_head(h, EV_EXIT, tgid, uid_gid);
            s32 *code = exit_codes.lookup(&tgid);
            h->exit_code = code ? *code : 0;
            submit_event(h, sizeof(*h));
        }
    }
    exit_codes.delete(&tgid);
    parents.delete(&tgid);
    return 0;
}
