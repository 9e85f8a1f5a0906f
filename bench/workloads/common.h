/* Shared by the bench workloads: a monotonic clock and the one-line JSON
 * result every workload prints on stdout. Workloads time themselves, so
 * setpriv and process start-up are not part of the figure. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline void report(double elapsed, long iterations, long errors, long events)
{
    printf("{\"elapsed_s\": %.6f, \"iterations\": %ld, \"errors\": %ld, \"events\": %ld}\n",
           elapsed, iterations, errors, events);
    fflush(stdout);
}

static inline long arg_long(int argc, char **argv, int i, long dflt)
{
    return argc > i ? atol(argv[i]) : dflt;
}
/* Call op(arg) RATE times a second for SECONDS (RATE 0: as fast as
 * possible, in runs of `burst`), paced by 1 ms slots against an absolute
 * clock, so a slow slot is made up for; then print the one-line result
 * (calls, the calls op() said failed). */
static inline void paced_calls(double rate, double seconds, long burst,
                               int (*op)(void *), void *arg)
{
    long errors = 0, done = 0;
    long long start = now_ns(), end = start + (long long)(seconds * 1e9);
    struct timespec slot;
    clock_gettime(CLOCK_MONOTONIC, &slot);
    for (;;) {
        long long now = now_ns();
        if (now >= end)
            break;
        long target = rate > 0 ? (long)((now - start) / 1e9 * rate) + 1 : done + burst;
        while (done < target) {
            if (op(arg) != 0)
                errors++;
            done++;
        }
        if (rate > 0) {
            slot.tv_nsec += 1000000;
            if (slot.tv_nsec >= 1000000000) {
                slot.tv_sec++;
                slot.tv_nsec -= 1000000000;
            }
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &slot, NULL);
        }
    }
    report((now_ns() - start) / 1e9, done, errors, done);
}
#endif
