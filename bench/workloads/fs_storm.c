/* open/read/write/close storm in DIR, ITER iterations of:
 *   open(O_CREAT|O_TRUNC) write 4 KiB close, open(O_RDONLY) read close,
 * and every 16th iteration unlink the file. Filesystem monitor events per
 * iteration: an open_write and an open_read (each file is open less than
 * a second: its open and bytes in one event) (+ 1 unlink / 16).
 * usage: fs_storm ITER DIR */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s ITER DIR\n", argv[0]);
        return 2;
    }
    long n = atol(argv[1]), errors = 0, events = 0;
    char buf[4096], path[4096];
    memset(buf, 'x', sizeof(buf));
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/f%ld", argv[2], i % 64);
        int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
        if (fd < 0) { errors++; continue; }
        if (write(fd, buf, sizeof(buf)) != sizeof(buf)) errors++;
        close(fd);
        fd = open(path, O_RDONLY);
        if (fd < 0) { errors++; continue; }
        if (read(fd, buf, sizeof(buf)) != sizeof(buf)) errors++;
        close(fd);
        events += 2;
        if (i % 16 == 15) {
            if (unlink(path) != 0) errors++;
            events++;
        }
    }
    report(now_s() - t0, n, errors, events);
    return 0;
}
