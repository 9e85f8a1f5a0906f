/* allocation churn: ITER times mmap KIB of anonymous memory, touch every
 * page, munmap (page allocations and frees, rss_stat changes, kmallocs).
 * The memory monitor aggregates all of it in the kernel: it reports one
 * sample per process per second, not one event per allocation.
 * usage: mem_storm ITER [KIB=256] */
#include "common.h"
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s ITER [KIB]\n", argv[0]);
        return 2;
    }
    long n = atol(argv[1]), errors = 0;
    size_t len = (size_t)arg_long(argc, argv, 2, 256) * 1024;
    long page = sysconf(_SC_PAGESIZE);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) { errors++; continue; }
        for (size_t off = 0; off < len; off += page)
            p[off] = (char)i;
        munmap(p, len);
    }
    report(now_s() - t0, n, errors, 0);
    return 0;
}
