/* The generator of the offered-rate runs (bench/lib/offered.py): CALLS
 * getppid() calls per second for SECONDS; bench/flood/flood.bpf.c turns
 * each call of this user into a fixed number of records in a running
 * collector's ring buffer. CALLS 0: as fast as possible. Paced by 1 ms
 * slots against an absolute clock, so a slow slot is made up for.
 * usage: getppid_flood CALLS SECONDS */
#include "common.h"
#include <sys/syscall.h>
#include <unistd.h>

static int call_getppid(void *unused)
{
    (void)unused;
    syscall(SYS_getppid);  /* never cached by libc */
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s CALLS SECONDS\n", argv[0]);
        return 2;
    }
    paced_calls(atof(argv[1]), atof(argv[2]), 64, call_getppid, NULL);
    return 0;
}
