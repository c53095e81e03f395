/* Load client of the steady-state benchmark: tens of thousands of WebSockets on one epoll loop.
 *
 * Built and run by benchmarks/bench_steady.py (gcc -O2, no dependencies). It reads one command
 * per line on stdin and answers each with one JSON line on stdout, servicing its sockets all
 * the while (heartbeats and pings are answered, so idle sockets stay open):
 *
 *   connect KIND PORT PATH COUNT CHANNEL CONCURRENCY TIMEOUT_S
 *       open COUNT sockets to 127.0.0.1:PORT, at most CONCURRENCY handshakes at a time, and
 *       answer once each is ready or failed. KIND says when a socket is ready:
 *       rtbridge  welcome, then {"op":"subscribe"} and its ack;
 *       pusher    pusher:connection_established, then pusher:subscribe and
 *                 pusher_internal:subscription_succeeded (soketi);
 *       channels  the 101 response (the consumer joins its group before accepting).
 *   arm         zero the counters (and note the CPU time).
 *   collect EXPECTED QUIET_S DEADLINE_S
 *       answer once EXPECTED message frames arrived since arm, or none arrived for QUIET_S,
 *       or DEADLINE_S passed: counts, latency percentiles and this process's CPU time.
 *   close       reset every socket (SO_LINGER 0: no TIME_WAIT) and exit.
 *
 * A message frame is a text frame whose payload holds "t": (or \"t\": when the payload is a
 * JSON string inside JSON, as Pusher sends it) followed by time.time_ns() of its publish; its
 * latency is CLOCK_REALTIME at the read that completed it minus that stamp (one machine, one
 * clock). Each read walks every frame it holds with a few integer operations and keeps no
 * per-socket buffer unless a frame is split across reads, so the client stays far cheaper
 * per delivery than the servers it measures (it reports its own CPU time to prove it).
 *
 * Sockets beyond ~28,000 need more than one source address (the ephemeral ports of one
 * source/destination pair run out): socket i binds 127.0.0.(1 + i / 20000).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum kind { KIND_RTBRIDGE, KIND_PUSHER, KIND_CHANNELS };
/* HTTP: waiting for the 101; WELCOME: waiting for the server's first frame (rtbridge, pusher). */
enum state { ST_CONNECTING, ST_HTTP, ST_WELCOME, ST_SUBSCRIBING, ST_READY, ST_CLOSED };

struct sock {
    int fd;
    uint8_t state;
    uint8_t kind;
    uint32_t count;   /* message frames since arm */
    uint8_t *partial; /* bytes of a frame split across reads (malloc'd), or NULL */
    uint32_t partial_len;
};

static struct sock *socks;
static int nsocks, capsocks;
static int epfd;
static uint64_t rng = 0x9E3779B97F4A7C15ull;

/* The connect command in progress. */
static struct {
    int active, kind, port, total, opened, concurrency, inflight, ready, failed;
    char path[512], channel[128], error[256];
    double started, deadline;
} conn;

/* Counters since arm. */
static uint64_t received, reads, first_ns, last_ns, closed_total, write_failures;
static uint32_t *latencies;
static size_t nlat, caplat;
static double last_arrival_mono, cpu_at_arm;
static int close_codes[8][2]; /* (code, count) */
static int nclose_codes;

/* The collect command in progress. */
static struct {
    int active;
    uint64_t expected;
    double quiet, deadline, started;
} coll;

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static uint32_t next_mask(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

/* Send a masked client text frame (RFC 6455 requires clients to mask). */
static void send_frame(struct sock *s, int opcode, const char *payload, size_t len) {
    uint8_t buf[1024];
    size_t head;
    if (len > sizeof(buf) - 14) return;
    buf[0] = 0x80 | opcode;
    if (len < 126) {
        buf[1] = 0x80 | len;
        head = 2;
    } else {
        buf[1] = 0x80 | 126;
        buf[2] = len >> 8;
        buf[3] = len & 0xFF;
        head = 4;
    }
    uint32_t mask = next_mask();
    memcpy(buf + head, &mask, 4);
    const uint8_t *m = buf + head;
    head += 4;
    for (size_t i = 0; i < len; i++) buf[head + i] = payload[i] ^ m[i & 3];
    ssize_t n = send(s->fd, buf, head + len, MSG_NOSIGNAL);
    /* These are tiny control frames; a short write would corrupt the stream, so count it. */
    if (n != (ssize_t)(head + len)) write_failures++;
}

static void send_text(struct sock *s, const char *text) { send_frame(s, 0x1, text, strlen(text)); }

static void json_escape_into(char *out, size_t cap, const char *in) {
    size_t j = 0;
    for (size_t i = 0; in[i] && j + 2 < cap; i++) {
        char c = in[i];
        if (c == '"' || c == '\\') out[j++] = '\\';
        out[j++] = (c == '\n' || c == '\r') ? ' ' : c;
    }
    out[j] = 0;
}

static void set_error(const char *fmt, const char *detail) {
    if (!conn.error[0]) snprintf(conn.error, sizeof(conn.error), fmt, detail);
}

static void note_close_code(int code) {
    for (int i = 0; i < nclose_codes; i++)
        if (close_codes[i][0] == code) {
            close_codes[i][1]++;
            return;
        }
    if (nclose_codes < 8) {
        close_codes[nclose_codes][0] = code;
        close_codes[nclose_codes][1] = 1;
        nclose_codes++;
    }
}

static void open_more(void);

static void sock_close(struct sock *s, int during_connect) {
    if (s->state == ST_CLOSED) return;
    if (during_connect && s->state != ST_READY && conn.active) {
        conn.failed++;
        conn.inflight--;
    }
    if (s->state == ST_READY) closed_total++;
    s->state = ST_CLOSED;
    epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    free(s->partial);
    s->partial = NULL;
    s->partial_len = 0;
}

static void became_ready(struct sock *s) {
    s->state = ST_READY;
    if (conn.active) {
        conn.ready++;
        conn.inflight--;
    }
}

static int starts_with(const uint8_t *p, size_t n, const char *prefix) {
    size_t k = strlen(prefix);
    return n >= k && memcmp(p, prefix, k) == 0;
}

static const uint8_t *find(const uint8_t *p, size_t n, const char *needle, size_t k) {
    return memmem(p, n, needle, k);
}

/* A text frame that is not a benchmark message: protocol chatter of each kind. */
static void control_text(struct sock *s, const uint8_t *p, size_t n) {
    if (s->kind == KIND_RTBRIDGE) {
        if (starts_with(p, n, "{\"op\":\"heartbeat\"")) {
            send_text(s, "{\"op\":\"heartbeat\"}");
        } else if (s->state == ST_WELCOME && starts_with(p, n, "{\"op\":\"welcome\"")) {
            char sub[256];
            snprintf(sub, sizeof(sub), "{\"op\":\"subscribe\",\"id\":1,\"channel\":\"%s\"}",
                     conn.channel);
            send_text(s, sub);
            s->state = ST_SUBSCRIBING;
        } else if (s->state == ST_SUBSCRIBING && starts_with(p, n, "{\"op\":\"ack\"")) {
            became_ready(s);
        } else if (s->state == ST_SUBSCRIBING && starts_with(p, n, "{\"op\":\"error\"")) {
            char text[200];
            size_t k = n < sizeof(text) - 1 ? n : sizeof(text) - 1;
            memcpy(text, p, k);
            text[k] = 0;
            set_error("subscribe refused: %s", text);
            sock_close(s, 1);
        }
    } else if (s->kind == KIND_PUSHER) {
        if (find(p, n, "pusher:ping", 11)) {
            send_text(s, "{\"event\":\"pusher:pong\",\"data\":{}}");
        } else if (s->state == ST_WELCOME && find(p, n, "pusher:connection_established", 29)) {
            char sub[256];
            snprintf(sub, sizeof(sub),
                     "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"%s\"}}",
                     conn.channel);
            send_text(s, sub);
            s->state = ST_SUBSCRIBING;
        } else if (s->state == ST_SUBSCRIBING &&
                   find(p, n, "pusher_internal:subscription_succeeded", 38)) {
            became_ready(s);
        } else if (find(p, n, "pusher:error", 12)) {
            char text[200];
            size_t k = n < sizeof(text) - 1 ? n : sizeof(text) - 1;
            memcpy(text, p, k);
            text[k] = 0;
            set_error("pusher error: %s", text);
        }
    }
}

/* Return the publish stamp in the payload, or 0 if it is not a benchmark message. */
static uint64_t stamp_of(const uint8_t *p, size_t n) {
    const uint8_t *at = find(p, n, "\"t\":", 4);
    size_t skip = 4;
    if (!at) {
        at = find(p, n, "\"t\\\":", 5);
        skip = 5;
    }
    if (!at) return 0;
    at += skip;
    const uint8_t *end = p + n;
    uint64_t v = 0;
    int digits = 0;
    while (at < end && *at >= '0' && *at <= '9') {
        v = v * 10 + (*at - '0');
        at++;
        digits++;
    }
    return digits >= 15 ? v : 0;
}

/* Walk the complete frames in buf; return how many bytes were consumed. */
static size_t walk_frames(struct sock *s, const uint8_t *buf, size_t size, uint64_t now) {
    size_t pos = 0;
    uint64_t before = received;
    while (size - pos >= 2) {
        uint64_t len = buf[pos + 1] & 0x7F;
        size_t head = 2;
        if (len == 126) {
            if (size - pos < 4) break;
            len = ((uint64_t)buf[pos + 2] << 8) | buf[pos + 3];
            head = 4;
        } else if (len == 127) {
            if (size - pos < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = (len << 8) | buf[pos + 2 + i];
            head = 10;
        }
        if (size - pos - head < len) break;
        const uint8_t *payload = buf + pos + head;
        int opcode = buf[pos] & 0x0F;
        pos += head + len;
        if (opcode == 0x1) {
            uint64_t stamp = s->state == ST_READY ? stamp_of(payload, len) : 0;
            if (stamp) {
                s->count++;
                received++;
                if (nlat == caplat) {
                    caplat = caplat ? caplat * 2 : 1 << 16;
                    latencies = realloc(latencies, caplat * sizeof(*latencies));
                }
                uint64_t us = now > stamp ? (now - stamp) / 1000 : 0;
                latencies[nlat++] = us > 0xFFFFFFFFull ? 0xFFFFFFFFu : (uint32_t)us;
            } else {
                control_text(s, payload, len);
                if (s->state == ST_CLOSED) return size;
            }
        } else if (opcode == 0x8) {
            note_close_code(len >= 2 ? (payload[0] << 8) | payload[1] : 1005);
            sock_close(s, 1);
            return size;
        } else if (opcode == 0x9) {
            send_frame(s, 0xA, (const char *)payload, len);
        }
    }
    if (received != before) {
        reads++;
        if (!first_ns) first_ns = now;
        last_ns = now;
        last_arrival_mono = mono();
    }
    return pos;
}

static uint8_t readbuf[1 << 18];

static void on_readable(struct sock *s) {
    size_t have = 0;
    if (s->partial) {
        memcpy(readbuf, s->partial, s->partial_len);
        have = s->partial_len;
        free(s->partial);
        s->partial = NULL;
        s->partial_len = 0;
    }
    for (;;) {
        ssize_t n = recv(s->fd, readbuf + have, sizeof(readbuf) - have, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            if (s->state != ST_READY) set_error("closed during the handshake: %s",
                                                n == 0 ? "EOF" : strerror(errno));
            else note_close_code(1006);
            sock_close(s, 1);
            return;
        }
        if (n < 0) break;
        have += n;
        uint64_t now = wall_ns();
        size_t start = 0;
        if (s->state == ST_HTTP) {
            /* Still in HTTP: wait for the whole response head. */
            uint8_t *end = memmem(readbuf, have, "\r\n\r\n", 4);
            if (!end) {
                if (have > 8192) {
                    set_error("%s", "HTTP response head too long");
                    sock_close(s, 1);
                    return;
                }
                continue;
            }
            if (!memmem(readbuf, end - readbuf, " 101 ", 5)) {
                char status[120];
                size_t k = 0;
                while (k < sizeof(status) - 1 && k < have && readbuf[k] != '\r') {
                    status[k] = readbuf[k];
                    k++;
                }
                status[k] = 0;
                set_error("handshake refused: %s", status);
                sock_close(s, 1);
                return;
            }
            start = end + 4 - readbuf;
            /* Past the head: now a WebSocket; kinds that need no subscribe are ready. */
            if (s->kind == KIND_CHANNELS) became_ready(s);
            else s->state = ST_WELCOME;
        }
        size_t used = start + walk_frames(s, readbuf + start, have - start, now);
        if (s->state == ST_CLOSED) return;
        if (used < have) memmove(readbuf, readbuf + used, have - used);
        have -= used;
        if ((size_t)n < sizeof(readbuf) / 2) break; /* drained what was there */
    }
    if (have) {
        s->partial = malloc(have);
        memcpy(s->partial, readbuf, have);
        s->partial_len = have;
    }
}

static void on_connected(struct sock *s) {
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        set_error("connect: %s", strerror(err));
        sock_close(s, 1);
        return;
    }
    char key[25];
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 22; i++) key[i] = b64[next_mask() & 63];
    key[22] = key[23] = '=';
    key[24] = 0;
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     conn.path, conn.port, key);
    if (send(s->fd, req, n, MSG_NOSIGNAL) != n) {
        set_error("sending the handshake: %s", strerror(errno));
        sock_close(s, 1);
        return;
    }
    s->state = ST_HTTP;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)(s - socks)};
    epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev);
}

static void open_more(void) {
    while (conn.active && conn.opened < conn.total && conn.inflight < conn.concurrency) {
        if (nsocks == capsocks) {
            capsocks = capsocks ? capsocks * 2 : 1024;
            socks = realloc(socks, capsocks * sizeof(*socks));
        }
        struct sock *s = &socks[nsocks];
        memset(s, 0, sizeof(*s));
        s->kind = conn.kind;
        s->state = ST_CONNECTING;
        s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        conn.opened++;
        conn.inflight++;
        if (s->fd < 0) {
            set_error("socket: %s", strerror(errno));
            conn.failed++;
            conn.inflight--;
            continue;
        }
        nsocks++;
        int one = 1;
        setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7F000001u + (uint32_t)(nsocks - 1) / 20000);
        bind(s->fd, (struct sockaddr *)&src, sizeof(src));
        struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(conn.port)};
        dst.sin_addr.s_addr = htonl(0x7F000001u);
        struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)(s - socks)};
        epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev);
        if (connect(s->fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS) {
            set_error("connect: %s", strerror(errno));
            sock_close(s, 1);
        }
    }
}

static void finish_connect(void) {
    char err[300];
    json_escape_into(err, sizeof(err), conn.error);
    printf("{\"ready\": %d, \"failed\": %d, \"error\": %s%s%s, \"seconds\": %.3f}\n", conn.ready,
           conn.total - conn.ready, conn.error[0] ? "\"" : "", conn.error[0] ? err : "null",
           conn.error[0] ? "\"" : "", mono() - conn.started);
    fflush(stdout);
    conn.active = 0;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double q) {
    if (!nlat) return -1;
    size_t i = (size_t)(q * nlat);
    if (i >= nlat) i = nlat - 1;
    return latencies[i] / 1000.0;
}

static void finish_collect(void) {
    double cpu = cpu_seconds() - cpu_at_arm;
    uint32_t lo = UINT32_MAX, hi = 0;
    int ready = 0;
    for (int i = 0; i < nsocks; i++) {
        if (socks[i].state != ST_READY) continue;
        ready++;
        if (socks[i].count < lo) lo = socks[i].count;
        if (socks[i].count > hi) hi = socks[i].count;
    }
    if (!ready) lo = 0;
    qsort(latencies, nlat, sizeof(*latencies), cmp_u32);
    printf("{\"received\": %llu, \"reads\": %llu, \"first_ns\": %llu, \"last_ns\": %llu, "
           "\"lat_ms\": {\"n\": %zu, \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, "
           "\"p999\": %.3f, \"max\": %.3f}, \"min_per_socket\": %u, \"max_per_socket\": %u, "
           "\"open\": %d, \"closed\": %llu, \"write_failures\": %llu, \"cpu\": %.4f, "
           "\"close_codes\": {",
           (unsigned long long)received, (unsigned long long)reads,
           (unsigned long long)first_ns, (unsigned long long)last_ns, nlat, pct(0.5), pct(0.9),
           pct(0.99), pct(0.999), nlat ? latencies[nlat - 1] / 1000.0 : -1.0, lo, hi, ready,
           (unsigned long long)closed_total, (unsigned long long)write_failures, cpu);
    for (int i = 0; i < nclose_codes; i++)
        printf("%s\"%d\": %d", i ? ", " : "", close_codes[i][0], close_codes[i][1]);
    printf("}}\n");
    fflush(stdout);
    coll.active = 0;
}

static void arm(void) {
    for (int i = 0; i < nsocks; i++) socks[i].count = 0;
    received = reads = first_ns = last_ns = closed_total = write_failures = 0;
    nlat = 0;
    nclose_codes = 0;
    last_arrival_mono = mono();
    cpu_at_arm = cpu_seconds();
    printf("{\"armed\": true, \"cpu\": %.4f}\n", cpu_at_arm);
    fflush(stdout);
}

static void close_all_and_exit(void) {
    struct linger lg = {1, 0};
    for (int i = 0; i < nsocks; i++) {
        if (socks[i].state == ST_CLOSED) continue;
        setsockopt(socks[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(socks[i].fd);
    }
    printf("{\"closed\": true}\n");
    fflush(stdout);
    exit(0);
}

static void command(char *line) {
    char verb[32] = "", kind[32] = "", path[512] = "", channel[128] = "";
    sscanf(line, "%31s", verb);
    if (!strcmp(verb, "connect")) {
        double timeout = 60;
        memset(&conn, 0, sizeof(conn));
        if (sscanf(line, "%*s %31s %d %511s %d %127s %d %lf", kind, &conn.port, path,
                   &conn.total, channel, &conn.concurrency, &timeout) < 6) {
            printf("{\"error\": \"usage: connect KIND PORT PATH COUNT CHANNEL CONCURRENCY\"}\n");
            fflush(stdout);
            return;
        }
        conn.kind = !strcmp(kind, "pusher") ? KIND_PUSHER
                    : !strcmp(kind, "channels") ? KIND_CHANNELS
                                                : KIND_RTBRIDGE;
        strcpy(conn.path, path);
        strcpy(conn.channel, channel);
        if (conn.concurrency < 1) conn.concurrency = 1;
        conn.active = 1;
        conn.started = mono();
        conn.deadline = conn.started + timeout;
        open_more();
        if (conn.ready + conn.failed >= conn.total) finish_connect();
    } else if (!strcmp(verb, "arm")) {
        arm();
    } else if (!strcmp(verb, "collect")) {
        unsigned long long expected = 0;
        coll.quiet = 10;
        coll.deadline = 120;
        sscanf(line, "%*s %llu %lf %lf", &expected, &coll.quiet, &coll.deadline);
        coll.expected = expected;
        coll.started = mono();
        coll.deadline += coll.started;
        coll.active = 1;
    } else if (!strcmp(verb, "close")) {
        close_all_and_exit();
    } else {
        printf("{\"error\": \"unknown command\"}\n");
        fflush(stdout);
    }
}

int main(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev);
    static char line[4096];
    size_t line_len = 0;
    struct epoll_event events[1024];
    for (;;) {
        int n = epoll_wait(epfd, events, 1024, 20);
        for (int i = 0; i < n; i++) {
            uint32_t id = events[i].data.u32;
            if (id == UINT32_MAX) {
                ssize_t k = read(0, line + line_len, sizeof(line) - 1 - line_len);
                if (k == 0) close_all_and_exit();
                if (k < 0) continue;
                line_len += k;
                char *nl;
                while ((nl = memchr(line, '\n', line_len))) {
                    *nl = 0;
                    command(line);
                    size_t rest = line_len - (nl + 1 - line);
                    memmove(line, nl + 1, rest);
                    line_len = rest;
                }
                continue;
            }
            struct sock *s = &socks[id];
            if (s->state == ST_CLOSED) continue;
            if (s->state == ST_CONNECTING) on_connected(s);
            else on_readable(s);
        }
        if (conn.active) {
            open_more();
            if (conn.ready + conn.failed >= conn.total) {
                finish_connect();
            } else if (mono() > conn.deadline) {
                set_error("%s", "timed out waiting for sockets to be ready");
                finish_connect();
            }
        }
        if (coll.active) {
            double now = mono();
            double since = now - (last_arrival_mono > coll.started ? last_arrival_mono
                                                                   : coll.started);
            if (received >= coll.expected || now > coll.deadline || since > coll.quiet)
                finish_collect();
        }
    }
}
