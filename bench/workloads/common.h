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
#endif
