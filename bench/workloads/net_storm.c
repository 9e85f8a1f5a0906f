/* loopback TCP storm: a forked server (same user) accepts; the client
 * connects ITER times, sends 1 KiB, reads the 1 KiB echo, closes.
 * Network monitor events per iteration: the client's connect_close and the
 * server's accept_close (2: each connection is shorter than a second).
 * usage: net_storm ITER */
#include "common.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int full_io(int fd, char *buf, size_t len, int is_write)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = is_write ? write(fd, buf + done, len - done) : read(fd, buf + done, len - done);
        if (r <= 0)
            return -1;
        done += r;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s ITER\n", argv[0]);
        return 2;
    }
    long n = atol(argv[1]), errors = 0;
    char buf[1024];
    memset(buf, 'n', sizeof(buf));
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 512) ||
        getsockname(ls, (struct sockaddr *)&a, &alen)) {
        perror("listen");
        return 1;
    }
    pid_t server = fork();
    if (server == 0) {
        for (;;) {
            int c = accept(ls, NULL, NULL);
            if (c < 0)
                continue;
            if (full_io(c, buf, sizeof(buf), 0) == 0)
                full_io(c, buf, sizeof(buf), 1);
            close(c);
        }
    }
    close(ls);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(s, (struct sockaddr *)&a, sizeof(a)) != 0 ||
            full_io(s, buf, sizeof(buf), 1) != 0 || full_io(s, buf, sizeof(buf), 0) != 0)
            errors++;
        close(s);
    }
    double elapsed = now_s() - t0;
    kill(server, SIGKILL);
    waitpid(server, NULL, 0);
    report(elapsed, n, errors, 2 * n);
    return 0;
}
