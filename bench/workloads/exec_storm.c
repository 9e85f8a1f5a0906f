/* exec storm: ITER times posix_spawn(PROGRAM) and wait for it.
 * Process monitor events per iteration: fork, exec, exit (3).
 * usage: exec_storm ITER PROGRAM */
#include "common.h"
#include <spawn.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s ITER PROGRAM\n", argv[0]);
        return 2;
    }
    long n = atol(argv[1]), errors = 0;
    char *args[] = {argv[2], NULL};
    char *env[] = {NULL};
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        pid_t pid;
        int st;
        if (posix_spawn(&pid, argv[2], NULL, NULL, args, env) != 0) {
            errors++;
            continue;
        }
        if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            errors++;
    }
    report(now_s() - t0, n, errors, 3 * n);
    return 0;
}
