/* Memory monitor: kernel allocations (kmalloc/kfree) and page allocations
 * and frees of each monitored process, aggregated in the kernel per process
 * (tgid). Nothing per allocation crosses to user space: user space reads
 * the `stats` map every interval and reports, per active process, how much
 * its counters grew, with its resident set read from /proc (memory.py).
 *
 * Why counters that only grow (user space never resets them): a reset races
 * with the probes (an add between user space's read and its delete or zero
 * would be lost). Cumulative counters with atomic adds (threads of one
 * process update one entry from several CPUs) have no such window; user
 * space keeps the values it saw last and reports the difference.
 *
 * An entry lives as long as its process: sched_process_exit (last thread)
 * stamps exit_ts, and user space deletes the entry a little later, after
 * the pages freed by the exit itself were counted. The map is bounded; an
 * event that finds it full is counted in lost_events.
 *
 * The kmem probes fire for every allocation on the machine, watched or
 * not: user space attaches them only while a watched process runs
 * (probe_gate.py) and says so in `gate`. While they are detached, an exec
 * by a watched user puts a wake-up record in the ring buffer, and user
 * space attaches them at once.
 *
 * No kmem:rss_stat probe: it fires on every page fault, and attached (even
 * a program that returns at once) it cost an allocation storm 4x what the
 * page allocation probes cost per hit, 60 % of the monitor's overhead
 * (issue 14's note). The resident set is sampled from /proc instead.
 *
 * Only tracepoint arguments and helpers are read.
 */
#include "common.h"

#ifndef MAX_PIDS
#error "the loader defines MAX_PIDS"
#endif
#ifndef MAX_PTRS
#error "the loader defines MAX_PTRS"
#endif
#ifndef BUSY_CREATED
#error "the loader defines BUSY_CREATED"
#endif
#ifndef DOTS_PAGE_SIZE
#define DOTS_PAGE_SIZE 4096
#endif

struct mem_stats {
    u64 bytes_alloc;        /* kmalloc: bytes_alloc (the slab object size) */
    u64 bytes_freed;        /* kfree of an allocation counted above */
    u64 pages_alloc;        /* bytes: page size << order */
    u64 pages_freed;
    u64 exit_ts;            /* boot ns when the last thread exited; 0 alive */
    u32 uid;
    u32 pad;
    char comm[TASK_COMM_LEN];
};

/* kfree gives only the pointer: remember who allocated what, for monitored
 * allocations only. LRU: objects freed without a kfree event (kfree_rcu
 * batches, kmem_cache_free_bulk) age out instead of filling the map. */
struct alloc_owner {
    u32 tgid;
    u32 bytes;
};

BPF_F_TABLE("hash", u32, struct mem_stats, stats, MAX_PIDS, BPF_F_NO_PREALLOC);  /* grows with its entries */
BPF_TABLE("lru_hash", u64, struct alloc_owner, allocs, MAX_PTRS);
/* [0]: entries put in `allocs` and not yet freed. An entry the LRU evicts
 * is not subtracted, so after evictions this stays above 0 and kfree looks
 * up every pointer (as it always did); with nobody watched (or the watched
 * users idle) it is 0 and kfree costs one array read. */
BPF_ARRAY(outstanding, u64, 1);
/* [0]: 1 while user space has the kmem probes attached */
BPF_ARRAY(gate, u32, 1);
/* [0]: entries created since user space's last sample (it zeroes it).
 * An entry stays until the sample after its process's exit, so thousands
 * of short-lived processes a second (an exec storm, a build) would fill
 * the map within one interval: past BUSY_CREATED new entries, every 64th
 * wakes user space (WAKE_BUSY) to sample at once. */
BPF_ARRAY(created, u64, 1);
#define WAKE_EXEC 1
#define WAKE_BUSY 2

static __always_inline void wake_user_space(u32 why)
{
    events.ringbuf_output(&why, sizeof(why), BPF_RB_FORCE_WAKEUP);
}

/* The current process's entry, created on first use. The common case is
 * one lookup; comm is copied only when the entry is created. */
static __always_inline struct mem_stats *stats_of_current(u32 tgid, u32 uid)
{
    struct mem_stats *s = stats.lookup(&tgid);
    if (s)
        return s;
    if (tgid == 0)          /* the idle task, in interrupt context */
        return 0;
    struct mem_stats fresh = {};
    fresh.uid = uid;
    bpf_get_current_comm(&fresh.comm, sizeof(fresh.comm));
    s = stats.lookup_or_try_init(&tgid, &fresh);
    if (!s) {
        count_lost();       /* map full: this event is not accounted */
        return s;
    }
    u32 zero = 0;
    u64 *n = created.lookup(&zero);
    if (n) {
        u64 made = *n + 1;  /* a race between CPUs may skip one: the next 64 wake */
        __sync_fetch_and_add(n, 1);
        if (made >= BUSY_CREATED && (made & 63) == 0)
            wake_user_space(WAKE_BUSY);
    }
    return s;
}

/* The kmem probes are raw tracepoints: the program gets the tracepoint's
 * own arguments (ctx->args[], as in the kernel's btf_trace_<event>
 * prototypes) without the perf machinery that copies them into a record
 * first. On this VM that machinery is a third of the probes' cost on an
 * allocation storm (issue 14's note). */

/* kmalloc(call_site, ptr, bytes_req, bytes_alloc, gfp_flags, node) */
RAW_TRACEPOINT_PROBE(kmalloc)
{
    u32 uid = current_uid();
    if (!uid_wanted(uid))
        return 0;
    u64 ptr = ctx->args[1];
    u32 bytes = ctx->args[3];
    if (!ptr || bytes == 0)     /* failed, or kmalloc(0) */
        return 0;
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    struct mem_stats *s = stats_of_current(tgid, uid);
    if (!s)
        return 0;
    __sync_fetch_and_add(&s->bytes_alloc, bytes);
#ifdef TRACK_FREE
    struct alloc_owner owner = {.tgid = tgid, .bytes = bytes};
    if (allocs.update(&ptr, &owner) == 0) {
        u32 zero = 0;
        u64 *n = outstanding.lookup(&zero);
        if (n)
            __sync_fetch_and_add(n, 1);
    }
#endif
    return 0;
}

#ifdef TRACK_FREE
/* kfree(call_site, ptr). Freed bytes go to the process that allocated them
 * (the free often runs elsewhere: RCU callbacks, workers, softirq), so
 * alloc - freed is what the process still holds. One lookup for an
 * allocation we did not see. */
RAW_TRACEPOINT_PROBE(kfree)
{
    /* every kfree on the machine comes here. While no watched process has
     * an allocation in `allocs`: one array read and out (no helper call,
     * cheaper still than the uid check). Else the uid check: a free run by
     * a user nobody watches costs that and nothing else. Frees run by uid 0
     * go on (kernel threads: RCU callbacks, workers, softirq on the idle
     * task free what others allocated); a free run in softirq on top of an
     * unwatched user's task is not counted (alloc - freed then overstates
     * what the process holds by that object). */
    u32 zero = 0;
    u64 *n = outstanding.lookup(&zero);
    if (!n || *n == 0)
        return 0;
    u32 uid = current_uid();
    if (uid != 0 && !uid_wanted(uid))
        return 0;
    u64 ptr = ctx->args[1];
    struct alloc_owner *owner = allocs.lookup(&ptr);
    if (!owner)
        return 0;
    u32 tgid = owner->tgid;
    u64 bytes = owner->bytes;
    if (allocs.delete(&ptr) == 0 && *n > 0)
        __sync_fetch_and_add(n, -1);
    struct mem_stats *s = stats.lookup(&tgid);  /* never recreate a gone pid */
    if (s)
        __sync_fetch_and_add(&s->bytes_freed, bytes);
    return 0;
}
#endif

/* Page allocations and frees come by the hundred per page-faulting loop
 * (a 256 KiB mmap touched and unmapped: ~260 of them), so each costs as
 * little as possible: a per-CPU slot (one for the allocation probe, one
 * for the free probe, so that neither can interrupt the other's update)
 * remembers the process of the last hit on this CPU, its uid, and the
 * bytes counted for it and not yet added to its `stats` entry. A hit by
 * that same process adds to the slot: no uid helper, no hash lookup, no
 * atomic. A hit by another process first adds the slot's bytes to the
 * previous process's entry (if it still has one: never recreated). On an
 * allocation storm this took the probes' cost per hit from what a uid
 * check and a hash update cost to what an empty program costs (issue 14's
 * note: a 256 KiB mmap loop 1.20x -> 1.08x, an empty program 1.08x).
 *
 * User space adds what the slots hold for a process to its entry when it
 * samples (memory.py): it reads the entries first, then the slots, so a
 * flush between the two reads can only make one sample short, never count
 * bytes twice. The uid filter is checked on every hit against the slot's
 * uid (an array read), so a filter change applies at once; an exec (a
 * set-uid program) and an exit empty the current CPU's slots. */
struct page_slot {
    u32 tgid;
    u32 uid;
    u32 ready;          /* the process has a `stats` entry */
    u32 pad;
    u64 bytes;          /* counted for tgid, not yet in its entry */
};
#define SLOT_ALLOC 0
#define SLOT_FREE 1
BPF_PERCPU_ARRAY(page_slots, struct page_slot, 2);

/* Add what a slot holds to its process's entry and empty it. */
static __always_inline void flush_slot(struct page_slot *sl, u32 which)
{
    if (sl->bytes) {
        u32 tgid = sl->tgid;
        struct mem_stats *s = stats.lookup(&tgid);
        if (s) {
            if (which == SLOT_FREE)
                __sync_fetch_and_add(&s->pages_freed, sl->bytes);
            else
                __sync_fetch_and_add(&s->pages_alloc, sl->bytes);
        }
    }
    sl->bytes = 0;  /* after the add: a reader never sees the bytes twice */
    sl->tgid = 0;
    sl->ready = 0;
}

static __always_inline int count_pages(u32 which, u64 bytes)
{
    u32 key = which;
    struct page_slot *sl = page_slots.lookup(&key);
    if (!sl)
        return 0;
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (sl->tgid != tgid || tgid == 0) {
        flush_slot(sl, which);
        sl->tgid = tgid;
        sl->uid = current_uid();
    }
    if (!uid_wanted(sl->uid))
        return 0;
    if (!sl->ready) {
        if (!stats_of_current(tgid, sl->uid))
            return 0;
        sl->ready = 1;
    }
    sl->bytes += bytes;
    return 0;
}

/* The current CPU's slots, if they hold this process: emptied into its
 * entry (an exec may change the uid; an exit ends the process). */
static __always_inline void flush_slots_of(u32 tgid)
{
#pragma unroll
    for (u32 which = SLOT_ALLOC; which <= SLOT_FREE; which++) {
        u32 key = which;
        struct page_slot *sl = page_slots.lookup(&key);
        if (sl && sl->tgid == tgid)
            flush_slot(sl, which);
    }
}

/* mm_page_alloc(page, order, gfp_flags, migratetype) */
RAW_TRACEPOINT_PROBE(mm_page_alloc)
{
    if (!ctx->args[0])                      /* allocation failed */
        return 0;
    return count_pages(SLOT_ALLOC, (u64)DOTS_PAGE_SIZE << (ctx->args[1] & 31));
}

/* mm_page_free(page, order). Charged to the current process (a pfn ->
 * owner map would be as large as memory); frees of a process's pages
 * mostly run in its own context. */
RAW_TRACEPOINT_PROBE(mm_page_free)
{
    return count_pages(SLOT_FREE, (u64)DOTS_PAGE_SIZE << (ctx->args[1] & 31));
}

/* exec changes comm (and uid for a set-uid program): refresh them. An
 * exec by a watched user while the kmem probes are detached wakes user
 * space to attach them (a login execs its shell after setuid). */
TRACEPOINT_PROBE(sched, sched_process_exec)
{
    u32 zero = 0;
    u32 *attached = gate.lookup(&zero);
    if (attached && !*attached && uid_wanted(current_uid()))
        wake_user_space(WAKE_EXEC);
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    flush_slots_of(tgid);
    struct mem_stats *s = stats.lookup(&tgid);
    if (!s)
        return 0;
    s->uid = current_uid();
    bpf_get_current_comm(&s->comm, sizeof(s->comm));
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tgid = pid_tgid >> 32;
#ifdef EXIT_HAS_GROUP_DEAD
    if (!args->group_dead)          /* other threads still run */
        return 0;
#else
    if ((u32)pid_tgid != tgid)
        return 0;
#endif
    flush_slots_of(tgid);
    struct mem_stats *s = stats.lookup(&tgid);
    if (!s)
        return 0;
    s->exit_ts = bpf_ktime_get_boot_ns();
    return 0;
}
