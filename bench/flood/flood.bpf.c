/* Bench only (bench/lib/offered.py): offers a running collector more
 * records than any storm on this machine can, to see what it loses at a
 * given rate.
 *
 * Built with common.h whose ring buffer, `submitted`, `lost_events` and
 * `doze` are the collector's own, opened from its pins (offered.py swaps
 * their declarations for pinned ones), so every record goes the way a
 * monitor's does: output_record() with the same wake-up threshold, counted
 * in `submitted` once committed and in `lost_events` when the ring is full.
 * The collector then reads, decodes and prints them as that monitor's.
 *
 * Each getppid() of FLOOD_UID commits setup[1] records, copies of the
 * templates (real records of the monitor, made by offered.py) in turn,
 * each stamped with the time.
 */
#include "common.h"

#define BLOB_MAX 512
#define MAX_TEMPLATES 8
#define MAX_PER_CALL 64

struct blob {
    u32 len;
    u32 pad;
    char data[BLOB_MAX];
};

BPF_ARRAY(templates, struct blob, MAX_TEMPLATES);
/* [0] templates in use, [1] records per call */
BPF_ARRAY(setup, u32, 2);
/* [0] records offered (committed or lost) */
BPF_PERCPU_ARRAY(offered, u64, 1);
BPF_PERCPU_ARRAY(flood_scratch, struct blob, 1);

TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{
    if (current_uid() != FLOOD_UID)
        return 0;
    u32 zero = 0, one = 1;
    u32 *ntemplates = setup.lookup(&zero);
    u32 *per_call = setup.lookup(&one);
    struct blob *s = flood_scratch.lookup(&zero);
    u64 *made = offered.lookup(&zero);
    if (!ntemplates || !per_call || !s || !made)
        return 0;
    u32 nt = *ntemplates, k = *per_call;
    if (nt == 0 || nt > MAX_TEMPLATES)
        return 0;
    u64 first = *made;
#pragma clang loop unroll(disable)
    for (u32 i = 0; i < MAX_PER_CALL; i++) {
        if (i >= k)
            break;
        u32 t = (first + i) % nt;
        struct blob *b = templates.lookup(&t);
        if (!b)
            break;
        __builtin_memcpy(s, b, sizeof(*s));
        *(u64 *)s->data = bpf_ktime_get_boot_ns();   /* every record starts with ts_ns */
        output_record(s->data, 0, s->len, BLOB_MAX, 0);
        *made += 1;
    }
    return 0;
}
