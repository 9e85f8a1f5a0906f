/* Shared pieces of every DOTS monitor: the in-kernel uid filter, the ring
 * buffer and its lost-events counter.
 *
 * The loader defines RINGBUF_PAGES (a power of two) and compiles each
 * monitor as its own BPF object, so every monitor has its own maps.
 * The loader pastes this file in place of `#include "common.h"`: bcc
 * rewrites map methods (map.lookup(...)) only in the main source text,
 * never in an included header.
 * Only tracepoint arguments, BPF helpers and struct members at offsets
 * taken from the running kernel's BTF (btf.py) are read: the kernel headers
 * bcc compiles against may not match the running kernel.
 * A probe that can run in interrupt context (disk completion, TCP state
 * changes in softirq) is a raw tracepoint: the kernel skips a (perf)
 * tracepoint program that interrupts any other BPF program on its CPU
 * (bpf_prog_active), and a raw one only when it interrupts itself.
 */
#ifndef DOTS_COMMON_H
#define DOTS_COMMON_H

#ifndef RINGBUF_PAGES
#define RINGBUF_PAGES 64
#endif
#ifndef MAX_MONITORED_UIDS
#define MAX_MONITORED_UIDS 4096
#endif

#define TASK_COMM_LEN 16

#ifndef DOTS_NO_UID_FILTER
/* The uid filter, checked first by every probe (before any other map
 * lookup), so a user nobody watches costs one array read.
 *
 * uid_filter[uid >> 6] bit (uid & 63): uid is watched, for uids below
 * UID_BITMAP_UIDS (an array lookup the verifier inlines: no call, no hash).
 * uid_filter[UID_WORDS] holds flags for the bigger uids (LDAP, sssd and
 * idmapped ranges): UID_BIG_LISTED = look them up in monitored_uids,
 * UID_BIG_ALL = every one. "Every uid" is every bit set plus UID_BIG_ALL;
 * nobody (the state until the loader sets the filter, so nothing slips
 * through between attaching and setting it) is all zero.
 * The Python side (monitors/base.py) writes whole words, new bits before
 * old ones are cleared, so no wanted event is dropped while the set
 * changes. */
#define UID_WORDS 1024                      /* 8 KiB: uids 0..65535 */
#define UID_BITMAP_UIDS (UID_WORDS * 64)
#define UID_BIG_LISTED 1
#define UID_BIG_ALL 2
BPF_ARRAY(uid_filter, u64, UID_WORDS + 1);
/* uid -> 1: watched uids >= UID_BITMAP_UIDS (grows with its entries) */
BPF_F_TABLE("hash", u32, u8, monitored_uids, MAX_MONITORED_UIDS, BPF_F_NO_PREALLOC);

static __always_inline int uid_wanted(u32 uid)
{
    if (uid < UID_BITMAP_UIDS) {
        u32 idx = uid >> 6;
        u64 *word = uid_filter.lookup(&idx);
        return word && ((*word >> (uid & 63)) & 1);
    }
    u32 fidx = UID_WORDS;
    u64 *flags = uid_filter.lookup(&fidx);
    if (!flags || *flags == 0)
        return 0;
    if (*flags & UID_BIG_ALL)
        return 1;
    return monitored_uids.lookup(&uid) != 0;
}
#endif /* DOTS_NO_UID_FILTER */
/* [0] = events dropped because the ring buffer was full. */
BPF_PERCPU_ARRAY(lost_events, u64, 1);

BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);

static __always_inline u32 current_uid(void)
{
    return (u32)bpf_get_current_uid_gid();
}

static __always_inline void count_lost(void)
{
    u32 zero = 0;
    u64 *n = lost_events.lookup(&zero);
    if (n)
        *n += 1;
}

/* Events are reserved in each probe with
 *     e = events.ringbuf_reserve(sizeof(*e)); if (!e) { count_lost(); ... }
 * (bcc cannot rewrite a map method written inside a macro) and committed
 * with submit_event(e, sizeof(*e)).
 *
 * Wake-ups per batch, not per record: a commit wakes the reader only when
 * its CPU's committed bytes cross a multiple of 2^WAKEUP_SHIFT, which the
 * loader sets to half the ring divided by the number of CPUs (so at most
 * half the ring fills before a wake-up, however many CPUs produce); in
 * between the collector reads on its timer (ticker.py TICK). On this kind of
 * VM a wake-up costs the reader ~0.2 ms of CPU, a record ~2 us. A reader
 * that found nothing for a while sets `doze` and stops its timer: the next
 * commit then wakes it at once (wake_flag). Counting
 * bytes, not records, lets small records (fork, exit) come in bigger
 * batches than the biggest (exec, rename) without risking the ring.
 * (bpf_ringbuf_query would give the bytes waiting, but bcc 0.26 cannot
 * pass it the map.) `submitted` also counts what was generated: per
 * monitor, submitted.records + lost = generated. */
#ifndef WAKEUP_SHIFT
#define WAKEUP_SHIFT 14
#endif
struct ring_count {
    u64 records;
    u64 bytes;          /* with each record's 8-byte header and padding */
};
BPF_PERCPU_ARRAY(submitted, struct ring_count, 1);

/* A record's bytes in the ring: its 8-byte header, padded to 8. */
static __always_inline u64 ring_bytes(u32 size)
{
    return (size + 8 + 7) & ~7;
}

/* [0] = 1 while the collector dozes: with nothing read for a while it stops
 * its timer (ticker.py), and the next commit wakes it (and clears this). Two
 * CPUs may both see it set: one wake-up more, never one less. */
BPF_ARRAY(doze, u32, 1);

/* The commit flags of `bytes` more on this CPU: a wake-up when they cross
 * a multiple of 2^WAKEUP_SHIFT, or when the reader dozes. */
static __always_inline u64 wake_flag(struct ring_count *n, u64 bytes)
{
    if ((n->bytes ^ (n->bytes + bytes)) >> WAKEUP_SHIFT)
        return BPF_RB_FORCE_WAKEUP;
    u32 zero = 0;
    u32 *dozing = doze.lookup(&zero);
    if (dozing && *dozing) {
        *dozing = 0;
        return BPF_RB_FORCE_WAKEUP;
    }
    return BPF_RB_NO_WAKEUP;
}

/* Count a reserved record (its commit cannot fail) and say whether to wake. */
static __always_inline u64 wakeup_flags(u32 size)
{
    u32 zero = 0;
    struct ring_count *n = submitted.lookup(&zero);
    if (!n)
        return BPF_RB_FORCE_WAKEUP;
    u64 bytes = ring_bytes(size);
    u64 flags = wake_flag(n, bytes);
    n->records += 1;
    n->bytes += bytes;
    return flags;
}

static __always_inline void submit_event(void *e, u32 size)
{
    events.ringbuf_submit(e, wakeup_flags(size));
}

/* Copy a record built elsewhere (a per-CPU scratch struct) into the ring:
 * its `head` bytes and `len` bytes of the string that ends it (a record
 * takes its string's length, not its buffer's; `len` is clamped to
 * 1..max_len). Counted once committed; a full ring counts it lost.
 * `quiet`: the caller's `submitted` counter, looked up once for a loop of
 * records that never wake the reader (they wait for its timer or the next
 * wake-up); NULL: look it up and wake the reader as submit_event does. */
static __always_inline void output_record(void *e, u32 head, u32 len, u32 max_len,
                                          struct ring_count *quiet)
{
    /* 64-bit, and the compiler forgets what it knew of len: the clamps
     * below are then what the verifier sees bounding the copy (32-bit
     * arithmetic left it a wrapped range) */
    u64 clamped = len;
    asm volatile("" : "+r"(clamped));
    if (clamped > max_len)
        clamped = max_len;
    if (clamped < 1)
        clamped = 1;
    u64 size = head + clamped;
    u64 bytes = ring_bytes(size);
    struct ring_count *n = quiet;
    u64 flags = BPF_RB_NO_WAKEUP;
    if (!quiet) {
        u32 zero = 0;
        n = submitted.lookup(&zero);
        if (!n) {               /* never: an array's element always exists */
            count_lost();
            return;
        }
        flags = wake_flag(n, bytes);
    }
    if (events.ringbuf_output(e, size, flags) != 0) {
        count_lost();
        return;
    }
    n->records += 1;
    n->bytes += bytes;
}

/* A kernel struct member at an offset from the running kernel's BTF
 * (btf.py hands the OFF_* macros to the compiler); 0 if it cannot be read. */
static __always_inline u64 read_u64(void *p)
{
    u64 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), p);
    return v;
}

static __always_inline u32 read_u32(void *p)
{
    u32 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), p);
    return v;
}

static __always_inline u16 read_u16(void *p)
{
    u16 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), p);
    return v;
}

/* Read a __data_loc string of a tracepoint record. */
#define READ_DATA_LOC_STR(dst, args, field) \
    bpf_probe_read_kernel_str((dst), sizeof(dst), \
        (void *)(args) + ((args)->data_loc_##field & 0xFFFF))

#endif /* DOTS_COMMON_H */
