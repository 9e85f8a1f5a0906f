/* paced open storm for the throughput runs: RATE opens (each followed by
 * close) per second for SECONDS, on PATH (nothing read or written, so the
 * filesystem monitor reports exactly one "open" event per open). RATE 0:
 * as fast as possible. Paced by 1 ms slots against an absolute clock, so a
 * slow slot is made up for. Built static: no library is opened at start.
 * usage: paced_open RATE SECONDS PATH */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

static int open_close(void *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s RATE SECONDS PATH\n", argv[0]);
        return 2;
    }
    paced_calls(atof(argv[1]), atof(argv[2]), 256, open_close, argv[3]);
    return 0;
}
