/* Shared pieces of every DOTS monitor: the in-kernel uid filter, the ring
 * buffer and its lost-events counter.
 *
 * The loader defines RINGBUF_PAGES (a power of two) and compiles each
 * monitor as its own BPF object, so every monitor has its own maps.
 * The loader pastes this file in place of `#include "common.h"`: bcc
 * rewrites map methods (map.lookup(...)) only in the main source text,
 * never in an included header.
 * Only tracepoint arguments and BPF helpers are read: the kernel headers
 * bcc compiles against may not match the running kernel.
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

/* uid -> 1: the uids watched while filter_state[0] == FILTER_LISTED. */
BPF_HASH(monitored_uids, u32, u8, MAX_MONITORED_UIDS);
/* [0]: FILTER_NOBODY until the loader sets the filter (so nothing slips
 * through between attaching and setting it), FILTER_LISTED, or FILTER_ALL
 * (an empty uid list given by the loader: every uid). */
#define FILTER_NOBODY 0
#define FILTER_LISTED 1
#define FILTER_ALL 2
BPF_ARRAY(filter_state, u32, 1);
/* [0] = events dropped because the ring buffer was full. */
BPF_PERCPU_ARRAY(lost_events, u64, 1);

BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);

/* The hot path: one array lookup, then one hash lookup only when a
 * filter is set. No string work happens before this check. */
static __always_inline int uid_wanted(u32 uid)
{
    u32 zero = 0;
    u32 *state = filter_state.lookup(&zero);
    if (!state || *state == FILTER_NOBODY)
        return 0;
    if (*state == FILTER_ALL)
        return 1;
    return monitored_uids.lookup(&uid) != 0;
}

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
 * with submit_event(e).
 *
 * Wake-ups per batch, not per record: a commit wakes the reader only on
 * every WAKEUP_EVERY-th record of a CPU (the loader derives it from the
 * ring's size: well under a quarter of the ring per wake-up); in between
 * the collector reads on a timer (core.py DRAIN_INTERVAL). A wake-up costs
 * the reader tens of microseconds, a record a fraction of one.
 * (bpf_ringbuf_query would give the bytes waiting, but bcc 0.26 cannot
 * pass it the map.) `submitted` also counts what was generated: per
 * monitor, submitted + lost = generated. */
#ifndef WAKEUP_EVERY
#define WAKEUP_EVERY 32          /* a power of two */
#endif
BPF_PERCPU_ARRAY(submitted, u64, 1);

static __always_inline u64 wakeup_flags(void)
{
    u32 zero = 0;
    u64 *n = submitted.lookup(&zero);
    if (!n)
        return BPF_RB_FORCE_WAKEUP;
    *n += 1;
    return (*n & (WAKEUP_EVERY - 1)) ? BPF_RB_NO_WAKEUP : BPF_RB_FORCE_WAKEUP;
}

static __always_inline void submit_event(void *e)
{
    events.ringbuf_submit(e, wakeup_flags());
}

/* Read a __data_loc string of a tracepoint record. */
#define READ_DATA_LOC_STR(dst, args, field) \
    bpf_probe_read_kernel_str((dst), sizeof(dst), \
        (void *)(args) + ((args)->data_loc_##field & 0xFFFF))

#endif /* DOTS_COMMON_H */
