/* block I/O storm on FILE with O_DIRECT: ITER times a 4 KiB pwrite then
 * a 4 KiB pread at rotating aligned offsets, and an fdatasync every 8th
 * iteration (a flush request). Disk monitor events: one per completed
 * block request (about 2 per iteration, plus flushes).
 * usage: disk_storm ITER FILE */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

#define BLK 4096
#define SPAN 1024 /* blocks: a 4 MiB file */

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s ITER FILE\n", argv[0]);
        return 2;
    }
    long n = atol(argv[1]), errors = 0;
    int fd = open(argv[2], O_RDWR | O_CREAT | O_DIRECT, 0644);
    if (fd < 0) {
        perror("open O_DIRECT");
        return 1;
    }
    void *buf;
    if (posix_memalign(&buf, BLK, BLK))
        return 1;
    memset(buf, 'd', BLK);
    /* lay the file out first (outside the timing) */
    for (long b = 0; b < SPAN; b++)
        if (pwrite(fd, buf, BLK, b * BLK) != BLK)
            errors++;
    fsync(fd);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        off_t off = (off_t)((i * 7) % SPAN) * BLK;
        if (pwrite(fd, buf, BLK, off) != BLK) errors++;
        if (pread(fd, buf, BLK, (off + 512 * BLK) % (SPAN * BLK)) != BLK) errors++;
        if (i % 8 == 7 && fdatasync(fd) != 0) errors++;
    }
    report(now_s() - t0, n, errors, 2 * n + n / 8);
    close(fd);
    return 0;
}
