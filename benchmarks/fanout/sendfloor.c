/* The kernel's share of one delivery: a C sender writing one frame to each of N loopback sockets.
 *
 * Built and run by benchmarks/bench_steady.py: ``sendfloor N ROUNDS RATE SENDER_CPU READER_CPU``.
 * A reader process (pinned to READER_CPU) holds N TCP connections to this process and reads
 * them with epoll, as the load client does; the sender (pinned to SENDER_CPU, TCP_NODELAY
 * like the servers) writes one 130-byte frame to every socket, ROUNDS times at RATE rounds
 * per second. It prints {"us_per_send": ...}: the sender's CPU time (user + system) per
 * send(), which is what any server pays per delivery when messages arrive one at a time and
 * cannot be coalesced; on loopback it includes the receiving side's TCP processing.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double user_seconds(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6;
}

static double system_seconds(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof(set), &set); /* best effort: a missing CPU leaves it unpinned */
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: sendfloor N ROUNDS RATE SENDER_CPU READER_CPU\n");
        return 2;
    }
    int n = atoi(argv[1]), rounds = atoi(argv[2]);
    double rate = atof(argv[3]);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7F000001)};
    socklen_t len = sizeof(addr);
    if (bind(listener, (struct sockaddr *)&addr, sizeof(addr)) || listen(listener, 4096) ||
        getsockname(listener, (struct sockaddr *)&addr, &len)) {
        perror("listen");
        return 1;
    }
    long want = (long)n * rounds * 130;
    pid_t reader = fork();
    if (reader == 0) {
        pin(atoi(argv[5]));
        int ep = epoll_create1(0);
        for (int i = 0; i < n; i++) {
            int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            connect(s, (struct sockaddr *)&addr, sizeof(addr));
            struct epoll_event ev = {.events = EPOLLIN, .data.fd = s};
            epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
        }
        static char buf[1 << 16];
        struct epoll_event events[1024];
        long total = 0;
        while (total < want) {
            int k = epoll_wait(ep, events, 1024, 5000);
            if (k <= 0) break;
            for (int i = 0; i < k; i++) {
                ssize_t got = recv(events[i].data.fd, buf, sizeof(buf), 0);
                if (got > 0) total += got;
            }
        }
        _exit(total == want ? 0 : 1);
    }
    pin(atoi(argv[4]));
    int *fds = malloc(n * sizeof(int));
    int one = 1;
    for (int i = 0; i < n; i++) {
        fds[i] = accept(listener, NULL, NULL);
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    char frame[130];
    memset(frame, 'x', sizeof(frame));
    frame[0] = (char)0x81;
    frame[1] = 126;
    usleep(200000);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    double user_before = user_seconds(), system_before = system_seconds();
    long failed = 0;
    for (int r = 0; r < rounds; r++) {
        double due = r / rate;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double elapsed = (now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9;
        if (due > elapsed) usleep((useconds_t)((due - elapsed) * 1e6));
        for (int i = 0; i < n; i++)
            if (send(fds[i], frame, sizeof(frame), 0) != (ssize_t)sizeof(frame)) failed++;
    }
    double user = user_seconds() - user_before, system = system_seconds() - system_before;
    int status = 0;
    waitpid(reader, &status, 0);
    double sends = (double)n * rounds;
    printf("{\"us_per_send\": %.3f, \"user_us\": %.3f, \"system_us\": %.3f, \"sends\": %ld, "
           "\"failed\": %ld, \"reader_ok\": %s}\n",
           (user + system) * 1e6 / sends, user * 1e6 / sends, system * 1e6 / sends, (long)sends,
           failed,
           WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "true" : "false");
    return 0;
}
