/* The generator of the offered-rate runs (bench/lib/offered.py): CALLS
 * getppid() calls per second for SECONDS; bench/flood/flood.bpf.c turns
 * each call of this user into a fixed number of records in a running
 * collector's ring buffer. CALLS 0: as fast as possible. Paced by 1 ms
 * slots against an absolute clock, so a slow slot is made up for.
 * usage: getppid_flood CALLS SECONDS */
#include "common.h"
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s CALLS SECONDS\n", argv[0]);
        return 2;
    }
    double rate = atof(argv[1]), seconds = atof(argv[2]);
    long done = 0;
    long long start = now_ns(), end = start + (long long)(seconds * 1e9);
    struct timespec slot;
    clock_gettime(CLOCK_MONOTONIC, &slot);
    for (;;) {
        long long now = now_ns();
        if (now >= end)
            break;
        long target = rate > 0 ? (long)((now - start) / 1e9 * rate) + 1 : done + 64;
        while (done < target) {
            syscall(SYS_getppid);  /* never cached by libc */
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
    report((now_ns() - start) / 1e9, done, 0, done);
    return 0;
}
