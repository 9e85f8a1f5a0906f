/* enforcement latency, blocked connect -> EPERM: N times a TCP connect()
 * to ADDR:PORT, timed around the call, with its errno (0 = connected).
 * usage: connect_latency N ADDR PORT */
#include "common.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s N ADDR PORT\n", argv[0]);
        return 2;
    }
    long n = atol(argv[1]);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
    inet_pton(AF_INET, argv[2], &a.sin_addr);
    printf("{\"lat_ns\": [");
    long long *lat = calloc(n, sizeof(*lat));
    int *err = calloc(n, sizeof(*err));
    for (long i = 0; i < n; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        long long t0 = now_ns();
        int r = connect(s, (struct sockaddr *)&a, sizeof(a));
        lat[i] = now_ns() - t0;
        err[i] = r == 0 ? 0 : errno;
        close(s);
    }
    for (long i = 0; i < n; i++)
        printf("%s%lld", i ? "," : "", lat[i]);
    printf("], \"errno\": [");
    for (long i = 0; i < n; i++)
        printf("%s%d", i ? "," : "", err[i]);
    printf("]}\n");
    return 0;
}
