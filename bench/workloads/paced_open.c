/* paced open storm for the throughput runs: RATE opens (each followed by
 * close) per second for SECONDS, on PATH (nothing read or written, so the
 * filesystem monitor reports exactly one "open" event per open). RATE 0:
 * as fast as possible. Paced by 1 ms slots against an absolute clock, so a
 * slow slot is made up for. Built static: no library is opened at start.
 * usage: paced_open RATE SECONDS PATH */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s RATE SECONDS PATH\n", argv[0]);
        return 2;
    }
    double rate = atof(argv[1]), seconds = atof(argv[2]);
    long errors = 0, done = 0;
    long long start = now_ns(), end = start + (long long)(seconds * 1e9);
    struct timespec slot;
    clock_gettime(CLOCK_MONOTONIC, &slot);
    for (;;) {
        long long now = now_ns();
        if (now >= end)
            break;
        long target = rate > 0 ? (long)((now - start) / 1e9 * rate) + 1 : done + 256;
        while (done < target) {
            int fd = open(argv[3], O_RDONLY);
            if (fd < 0)
                errors++;
            else
                close(fd);
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
    return 0;
}
