/* enforcement latency, exec -> kill: N times spawn PROGRAM and wait; the
 * time from posix_spawn() to waitpid() returning, with how it ended.
 * With --fresh SRC DIR, PROGRAM is ignored: each iteration first writes a
 * NEW copy of SRC into DIR (a fresh inode, outside the timing) and runs
 * that copy. With --replace SRC, each iteration moves PROGRAM aside and
 * writes SRC's content followed by i + 1 zero bytes at PROGRAM's path: a
 * new program (another size and content each time) installed at a blocked
 * path. The copies and old files are left in place (the harness removes
 * them later): a freed inode number reused by the next file would be
 * found in the enforcer's block map and killed in the kernel, which is
 * not the path being measured.
 * Prints {"lat_ns": [...], "status": [...]}: status is -signal when killed,
 * else the exit code.
 * usage: exec_latency N PROGRAM [--fresh SRC DIR | --replace SRC] */
#include "common.h"
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st))
        return NULL;
    char *buf = malloc(st.st_size);
    size_t done = 0;
    while (done < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + done, st.st_size - done);
        if (r <= 0)
            return NULL;
        done += r;
    }
    close(fd);
    *len = done;
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s N PROGRAM [--fresh SRC DIR]\n", argv[0]);
        return 2;
    }
    long n = atol(argv[1]);
    const char *prog = argv[2];
    char *src = NULL, path[4096];
    size_t len = 0;
    int fresh = argc >= 6 && strcmp(argv[3], "--fresh") == 0;
    int replace = argc >= 5 && strcmp(argv[3], "--replace") == 0;
    if ((fresh || replace) && !(src = slurp(argv[4], &len))) {
        perror("read SRC");
        return 1;
    }
    long long *lat = calloc(n, sizeof(*lat));
    int *status = calloc(n, sizeof(*status));
    char *env[] = {NULL};
    for (long i = 0; i < n; i++) {
        if (fresh || replace) {
            if (fresh) {
                snprintf(path, sizeof(path), "%s/copy-%d-%ld", argv[5], getpid(), i);
            } else {
                char old[4096];
                snprintf(path, sizeof(path), "%s", argv[2]);
                snprintf(old, sizeof(old), "%s.old-%d-%ld", argv[2], getpid(), i);
                rename(path, old);
            }
            int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
            if (fd < 0 || write(fd, src, len) != (ssize_t)len) {
                perror("write copy");
                return 1;
            }
            if (replace) {
                static char zeros[65536];
                if (write(fd, zeros, (i + 1) % sizeof(zeros)) < 0) {
                    perror("write padding");
                    return 1;
                }
            }
            close(fd);
            prog = path;
        }
        char *args[] = {(char *)prog, NULL};
        pid_t pid;
        int st = 0;
        long long t0 = now_ns();
        if (posix_spawn(&pid, prog, NULL, NULL, args, env) != 0) {
            lat[i] = -1;
            status[i] = 999;
            continue;
        }
        waitpid(pid, &st, 0);
        lat[i] = now_ns() - t0;
        status[i] = WIFSIGNALED(st) ? -WTERMSIG(st) : WEXITSTATUS(st);
    }
    printf("{\"lat_ns\": [");
    for (long i = 0; i < n; i++)
        printf("%s%lld", i ? "," : "", lat[i]);
    printf("], \"status\": [");
    for (long i = 0; i < n; i++)
        printf("%s%d", i ? "," : "", status[i]);
    printf("]}\n");
    return 0;
}
