// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The event source of bench_bpf_programs.py: a getpid() loop or UDP round trips over loopback. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* loop getpid|udp COUNT [NETNS_PATH]: prints the mean ns per iteration. */
static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long n = atol(argv[2]), i;
    double start;

    if (argc > 3) {
        int fd = open(argv[3], O_RDONLY);

        if (fd < 0 || setns(fd, CLONE_NEWNET)) {
            perror(argv[3]);
            return 1;
        }
    }
    if (!strcmp(argv[1], "getpid")) {
        start = now();
        for (i = 0; i < n; i++)
            syscall(SYS_getpid);
    } else {
        struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(addr);
        char buf[64] = { 0 };
        int s = socket(AF_INET, SOCK_DGRAM, 0);

        if (s < 0 || bind(s, (void *)&addr, sizeof(addr)) || getsockname(s, (void *)&addr, &len)) {
            perror("udp socket");
            return 1;
        }
        start = now();
        for (i = 0; i < n; i++) {
            if (sendto(s, buf, 18, 0, (void *)&addr, sizeof(addr)) != 18 || recv(s, buf, sizeof(buf), 0) != 18) {
                perror("udp loop");
                return 1;
            }
        }
    }
    printf("%.3f\n", (now() - start) / n);
    return 0;
}
