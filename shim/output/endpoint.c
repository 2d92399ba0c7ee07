/* The live endpoint: VRAMGUARD_LISTEN=PORT | HOST:PORT | unix:/path | auto
 * (unix:DIR/%p.sock in the per-user live directory; config.c names it).
 *
 * The socket is bound by vg_endpoint_start() itself (the first time the
 * process reaches the driver), so the address is logged before the program
 * goes on; one thread then serves up to CONNECTIONS_MAX connections at once
 * from one poll loop, never waiting on any one client:
 *
 *   - every signal blocked in the thread (threads.h), no
 *     signal disposition touched; sockets SOCK_CLOEXEC and non-blocking;
 *     sends MSG_NOSIGNAL;
 *   - a request is its header only: at most REQUEST_MAX bytes, complete
 *     within READ_DEADLINE_MS of the connection, GET or HEAD, HTTP/1.0 or
 *     1.1; anything else is answered 400/405/431/505 or dropped; every
 *     answer is Connection: close and must be taken within WRITE_DEADLINE_MS;
 *   - at the cap, a new connection takes the place of the oldest one still
 *     sending its request (told 503 and why), so slow clients cannot keep a
 *     fresh one out; memory is bounded: REQUEST_MAX per connection, and the
 *     answers held for slow readers (HELD_MAX beyond the small ones);
 *   - an answer is rendered whole before any of it is sent: no model lock
 *     is held during socket I/O, so the program's allocations never wait
 *     on a client;
 *   - no request changes state; the thread makes no CUDA call that needs a
 *     context (see metrics.h) and reports only devices the program used.
 *
 * This file is the server: sockets, connections, deadlines, fork. What a
 * request means and what it is answered is endpoint_http.c's.
 */
#include "endpoint.h"
#include "endpoint_internal.h"
#include "files.h"
#include "threads.h"
#include "config.h"
#include "events.h" /* vg_report_path */
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum {
    READ_DEADLINE_MS = 2000,     /* the whole request must arrive within this */
    WRITE_DEADLINE_MS = 5000,    /* the whole response must be taken within this */
    DRAIN_MS = 200,              /* after the answer: read what the client still sends */
    DRAIN_MAX = 64 * 1024,       /* ... at most this much */
    CONNECTIONS_MAX = 256,       /* open at once, each one of the host's file descriptors */
    ACCEPTS_PER_TURN = 16,       /* at the cap, a new connection outlives 16 turns: time to be read */
    LISTEN_BACKLOG = 512,         /* a burst of connections waits in the kernel, not refused */
    SMALL_ANSWER = 64 * 1024,    /* answers up to this size are always held (256 x 64 KiB at most) */
    HELD_MAX = 16 * 1024 * 1024, /* larger ones, all together, while their clients read them */
};

static atomic_int started;            /* vg_endpoint_start ran in this process */
static int listen_fd = -1;
static atomic_int stopping;           /* set at exit: serve nothing more */
static pid_t owner_pid;               /* process that created unix_path */
static char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static char address[VG_PATH_MAX + 16];

const char *vg_endpoint_address(void)
{
    return address;
}

/* ---- time ------------------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- connections -------------------------------------------------------------- */

/* Each connection is a small state machine driven by one poll loop:
 * READING its request (REQUEST_MAX bytes at most, READ_DEADLINE_MS from
 * accept), WRITING the answer (non-blocking, WRITE_DEADLINE_MS), DRAINING
 * what the client still sends after it (DRAIN_MS), so that closing does not
 * reset the connection under its feet. A slow or silent client costs one
 * slot until its deadline, never the thread's time. */
enum conn_state { CONN_FREE, CONN_READING, CONN_WRITING, CONN_DRAINING };

struct answer {
    char *body_owned; /* malloc'd, or NULL */
    const char *body;
    size_t body_len, head_len;
    size_t sent;      /* of head, then body */
    bool held;        /* counted in held_bytes */
    char head[512];
};

struct conn {
    atomic_int fd;         /* -1 when free; read by the fork child */
    enum conn_state state;
    uint64_t seq;          /* order of acceptance: the oldest goes first at the cap */
    int64_t deadline;      /* of the current state */
    char *req;             /* READING: REQUEST_MAX bytes */
    size_t req_len;
    size_t scanned;        /* of req: looked at, no verdict in it */
    bool line_valid;       /* the request line is complete and valid */
    struct answer *ans;    /* WRITING */
    size_t drained;        /* DRAINING */
};

static struct conn conns[CONNECTIONS_MAX];
static atomic_bool conns_ready; /* every free slot's fd is -1 (a zeroed one would say 0) */
static int conns_open;
static uint64_t conns_accepted;
static size_t held_bytes; /* answers larger than SMALL_ANSWER waiting for their readers */

static void conn_close(struct conn *c, bool reset)
{
    int fd = atomic_exchange(&c->fd, -1); /* before close: a fork child never closes a reused number */
    if (reset) {
        struct linger now = {1, 0}; /* unsent bytes are dropped, not kept by the kernel */
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &now, sizeof(now));
    }
    close(fd);
    free(c->req);
    c->req = NULL;
    if (c->ans) {
        if (c->ans->held)
            held_bytes -= c->ans->body_len;
        free(c->ans->body_owned);
        free(c->ans);
        c->ans = NULL;
    }
    c->state = CONN_FREE;
    conns_open--;
}

static void conn_drain(struct conn *c)
{
    static char sink[4096]; /* one thread */
    for (;;) {
        ssize_t k = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (k > 0) {
            c->drained += (size_t)k;
            if (c->drained < DRAIN_MAX)
                continue;
        } else if (k < 0 && errno == EINTR) {
            continue;
        } else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        conn_close(c, false); /* EOF, error, or enough */
        return;
    }
}

static void conn_write(struct conn *c, int64_t now)
{
    struct answer *a = c->ans;
    size_t total = a->head_len + a->body_len;
    while (a->sent < total) {
        struct iovec v[2];
        int n = 0;
        if (a->sent < a->head_len)
            v[n++] = (struct iovec){a->head + a->sent, a->head_len - a->sent};
        size_t body_sent = a->sent > a->head_len ? a->sent - a->head_len : 0;
        if (a->body_len > body_sent)
            v[n++] = (struct iovec){(char *)a->body + body_sent, a->body_len - body_sent};
        struct msghdr m = {.msg_iov = v, .msg_iovlen = (size_t)n};
        ssize_t k = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k > 0) {
            a->sent += (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; /* the client reads slowly: wait for POLLOUT, until the deadline */
        conn_close(c, true);
        return;
    }
    if (a->held)
        held_bytes -= a->body_len;
    free(a->body_owned);
    free(a);
    c->ans = NULL;
    shutdown(c->fd, SHUT_WR);
    c->state = CONN_DRAINING;
    c->deadline = now + DRAIN_MS;
    c->drained = 0;
    conn_drain(c);
}

/* The request is complete (or hopeless: `status` says why): answer it. */
static void conn_answer(struct conn *c, int status, size_t end, int64_t now)
{
    struct response resp;
    vg_http_answer(c->req, end, status, &resp); /* renders under the model's locks; no socket I/O there */
    free(c->req);
    c->req = NULL;
    struct answer *a = malloc(sizeof(*a));
    if (a == NULL) {
        free(resp.body);
        conn_close(c, true);
        return;
    }
    size_t body_len = resp.head ? 0 : resp.body_len;
    if (body_len > SMALL_ANSWER && held_bytes > 0 && held_bytes + body_len > HELD_MAX) {
        /* Bounded memory: large answers already wait for clients that read
         * slowly (one is always allowed: /vram may be larger than the cap). */
        bool head = resp.head;
        free(resp.body);
        vg_http_error(&resp, 503, "large answers already wait for clients that read slowly; try again");
        resp.head = head;
        body_len = head ? 0 : resp.body_len;
    }
    a->head_len = vg_http_format_head(&resp, a->head, sizeof(a->head));
    a->body_owned = resp.body;
    a->body = vg_http_body(&resp);
    a->body_len = body_len;
    a->sent = 0;
    a->held = body_len > SMALL_ANSWER;
    if (a->held)
        held_bytes += body_len;
    c->ans = a;
    c->state = CONN_WRITING;
    c->deadline = now + WRITE_DEADLINE_MS;
    conn_write(c, now);
}

static void conn_read(struct conn *c, int64_t now)
{
    for (;;) {
        if (c->req_len >= REQUEST_MAX) {
            conn_answer(c, 431, 0, now); /* too large: answer, then drop */
            return;
        }
        ssize_t k = recv(c->fd, c->req + c->req_len, REQUEST_MAX - c->req_len, MSG_DONTWAIT);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (k <= 0) {
            conn_close(c, false); /* gone before asking */
            return;
        }
        c->req_len += (size_t)k;
        size_t end = vg_http_header_end(c->req, c->req_len, c->scanned);
        if (end != 0) {
            conn_answer(c, 0, end, now);
            return;
        }
        if (!c->line_valid) {
            enum line_verdict v = vg_http_first_line(c->req, c->req_len, c->scanned);
            if (v == LINE_HOPELESS) {
                conn_answer(c, 400, 0, now);
                return;
            }
            c->line_valid = v == LINE_VALID;
        }
        c->scanned = c->req_len;
    }
}

/* A connection dropped at the cap is told why, as far as its socket takes
 * it at once; what it sent is read first, so that closing sends the answer
 * and a FIN rather than a reset. */
static void tell_busy(struct conn *c)
{
    static char busy[512];
    static size_t busy_len;
    if (busy_len == 0) {
        char body[160];
        int bn = snprintf(body, sizeof(body),
                          "503 too many connections (%d open): the oldest unfinished one is dropped\n",
                          CONNECTIONS_MAX);
        busy_len = (size_t)snprintf(busy, sizeof(busy),
                                    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                    "Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s",
                                    bn, body);
    }
    static char sink[4096];
    for (int i = 0; i < 4 && recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
        ;
    send(c->fd, busy, busy_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    shutdown(c->fd, SHUT_WR);
}

/* At the cap: make room for a new connection. A connection already
 * answered goes first, then the oldest still sending its request (told
 * why), then the oldest still being answered: a fresh client is never the
 * one refused, and slow ones cannot hold every slot. */
static void conn_make_room(void)
{
    static const enum conn_state order[] = {CONN_DRAINING, CONN_READING, CONN_WRITING};
    for (size_t o = 0; o < sizeof(order) / sizeof(order[0]); o++) {
        struct conn *victim = NULL;
        for (int i = 0; i < CONNECTIONS_MAX; i++)
            if (conns[i].state == order[o] && (victim == NULL || conns[i].seq < victim->seq))
                victim = &conns[i];
        if (victim == NULL)
            continue;
        if (victim->state == CONN_READING)
            tell_busy(victim);
        conn_close(victim, false);
        return;
    }
}

static void conn_accepted(int fd, int64_t now)
{
    if (conns_open == CONNECTIONS_MAX)
        conn_make_room();
    struct conn *c = NULL;
    for (int i = 0; i < CONNECTIONS_MAX && c == NULL; i++)
        if (conns[i].state == CONN_FREE)
            c = &conns[i];
    char *req = malloc(REQUEST_MAX);
    if (c == NULL || req == NULL) {
        free(req);
        close(fd);
        return;
    }
    c->state = CONN_READING;
    c->seq = ++conns_accepted;
    c->deadline = now + READ_DEADLINE_MS;
    c->req = req;
    c->req_len = 0;
    c->scanned = 0;
    c->line_valid = false;
    c->ans = NULL;
    c->drained = 0;
    atomic_store(&c->fd, fd);
    conns_open++;
    conn_read(c, now); /* the request has often arrived with the connection */
}

/* Take what waits on the listening socket (a few per turn, so that the
 * connections already open are read between). False when the socket is gone. */
static bool accept_some(int lfd, int64_t now, int64_t *paused_until)
{
    for (int n = 0; n < ACCEPTS_PER_TURN; n++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return true;
            if (errno == EBADF || errno == EINVAL || errno == ENOTSOCK)
                return false;
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            *paused_until = now + 100; /* EMFILE, ENOBUFS...: do not spin */
            return true;
        }
        if (atomic_load(&stopping))
            close(fd);
        else
            conn_accepted(fd, now);
    }
    return true;
}

static void *serve(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    static struct pollfd p[CONNECTIONS_MAX + 1];
    static struct conn *polled[CONNECTIONS_MAX];
    int64_t paused_until = 0;
    int flags = fcntl(lfd, F_GETFL);
    if (flags < 0 || fcntl(lfd, F_SETFL, flags | O_NONBLOCK) != 0)
        return NULL;
    for (;;) {
        int64_t now = now_ms(), wake = now + 1000;
        int n = 0;
        bool listening = now >= paused_until;
        p[n++] = (struct pollfd){.fd = listening ? lfd : -1, .events = POLLIN};
        if (!listening && paused_until < wake)
            wake = paused_until;
        for (int i = 0; i < CONNECTIONS_MAX; i++) {
            struct conn *c = &conns[i];
            if (c->state == CONN_FREE)
                continue;
            if (now >= c->deadline) {
                conn_close(c, c->state == CONN_WRITING); /* slow or silent client: dropped */
                continue;
            }
            if (c->deadline < wake)
                wake = c->deadline;
            polled[n - 1] = c;
            p[n++] = (struct pollfd){.fd = c->fd, .events = c->state == CONN_WRITING ? POLLOUT : POLLIN};
        }
        int ready = poll(p, (nfds_t)n, (int)(wake - now));
        if (ready < 0) {
            if (errno != EINTR) {
                struct timespec pause = {0, 10 * 1000 * 1000}; /* ENOMEM: do not spin */
                nanosleep(&pause, NULL);
            }
            continue;
        }
        now = now_ms();
        for (int k = 1; k < n; k++) {
            struct conn *c = polled[k - 1];
            if (p[k].revents == 0)
                continue;
            if (c->state == CONN_READING)
                conn_read(c, now);
            else if (c->state == CONN_WRITING)
                conn_write(c, now);
            else if (c->state == CONN_DRAINING)
                conn_drain(c);
        }
        if ((p[0].revents & POLLNVAL) || ((p[0].revents & POLLIN) && !accept_some(lfd, now, &paused_until)))
            return NULL; /* the socket is gone */
    }
}

/* ---- binding ----------------------------------------------------------------- */

static int bind_unix(const char *path, char *why, size_t why_size)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(why, why_size, "path too long (at most %zu bytes)", sizeof(sa.sun_path) - 1);
        return -1;
    }
    strcpy(sa.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(why, why_size, "the path exists and is not a socket");
            return -1;
        }
        /* A socket file: replace it only if nobody answers on it. */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0) {
            int busy = connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
            close(probe);
            if (busy) {
                snprintf(why, why_size, "%s", strerror(EADDRINUSE));
                return -1;
            }
        }
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, why_size, "%s", strerror(errno));
        return -1;
    }
    /* Nobody can connect before listen(): make it 0600 in between. */
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        snprintf(why, why_size, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    if (chmod(path, 0600) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(why, why_size, "%s", strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    return fd;
}

/* VRAMGUARD_LISTEN=auto: the live directory is created (0700) if missing;
 * one that exists must be a directory of this user that others cannot
 * write, else another user could put a socket of theirs where
 * `vramguard top` looks. Only its last component is created. */
static bool private_dir(const char *dir, char *why, size_t why_size)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(why, why_size, "cannot create %.200s: %s", dir, strerror(errno));
        return false;
    }
    struct stat st;
    if (lstat(dir, &st) != 0) {
        snprintf(why, why_size, "%.200s: %s", dir, strerror(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode))
        snprintf(why, why_size, "%.200s is not a directory", dir);
    else if (st.st_uid != geteuid())
        snprintf(why, why_size, "%.200s belongs to another user", dir);
    else if (st.st_mode & (S_IWGRP | S_IWOTH))
        snprintf(why, why_size, "%.200s can be written by other users (chmod go-w)", dir);
    else
        return true;
    return false;
}

/* HOST into `ss`: an IPv4 or IPv6 address literal, or "localhost". Names
 * are not resolved, and short forms getaddrinfo would take ("0", "0.0",
 * which mean 0.0.0.0: every interface) are refused. */
static bool resolve_host(const char *host, int port, struct sockaddr_storage *ss, socklen_t *sl, char *why,
                         size_t why_size)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *sl = sizeof(*in4);
        return true;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *sl = sizeof(*in6);
        return true;
    }
    snprintf(why, why_size, "host '%.100s' is not an address literal (127.0.0.1, ::1, 0.0.0.0) or localhost", host);
    return false;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

static int bind_tcp(const char *spec, char *why, size_t why_size)
{
    char host[256] = "127.0.0.1";
    const char *colon = strrchr(spec, ':');
    const char *port_s = colon ? colon + 1 : spec;
    if (colon) {
        const char *h = spec;
        size_t hn = (size_t)(colon - spec);
        if (hn >= 2 && h[0] == '[' && h[hn - 1] == ']') {
            h++;
            hn -= 2;
        }
        if (hn == 0 || hn >= sizeof(host)) {
            snprintf(why, why_size, "invalid host");
            return -1;
        }
        memcpy(host, h, hn);
        host[hn] = '\0';
    }
    char *endp = NULL;
    long port = strtol(port_s, &endp, 10);
    if (*port_s == '\0' || *endp != '\0' || port < 0 || port > 65535) {
        snprintf(why, why_size, "invalid port");
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    if (!resolve_host(host, (int)port, &ss, &sl, why, why_size))
        return -1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, why_size, "%s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* TIME_WAIT only; never two listeners */
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(why, why_size, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    /* The address actually bound (port 0 picks one). */
    struct sockaddr_storage got;
    socklen_t gl = sizeof(got);
    char text[INET6_ADDRSTRLEN] = "?";
    int bound_port = (int)port;
    if (getsockname(fd, (struct sockaddr *)&got, &gl) == 0) {
        if (got.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&got)->sin_addr, text, sizeof(text));
            bound_port = ntohs(((struct sockaddr_in *)&got)->sin_port);
        } else if (got.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&got)->sin6_addr, text, sizeof(text));
            bound_port = ntohs(((struct sockaddr_in6 *)&got)->sin6_port);
        }
    }
    snprintf(address, sizeof(address), got.ss_family == AF_INET6 ? "http://[%s]:%d" : "http://%s:%d", text,
             bound_port);
    if (!is_loopback(&ss))
        vg_log("endpoint: WARNING: %s is not a loopback address: anyone who can reach it reads this process's "
               "memory use and configuration (/vram); bind 127.0.0.1 and forward, or use unix:/path",
               address);
    return fd;
}

/* Under a report path, record the address next to it (the CLI's run
 * directory then lists every worker's endpoint). */
static void record_address(void)
{
    const char *report = vg_report_path();
    if (report == NULL || report[0] == '\0')
        return;
    char path[VG_PATH_MAX + 32], tmp[VG_PATH_MAX + 96];
    snprintf(path, sizeof(path), "%s.endpoint", report);
    int fd = vg_file_begin_replace(path, tmp, sizeof(tmp));
    if (fd < 0) {
        vg_log("endpoint: cannot write %s: %s", path,
               errno == EINVAL ? "it exists and is not a regular file (left as it is)" : strerror(errno));
        return;
    }
    char line[sizeof(address) + 1];
    int n = snprintf(line, sizeof(line), "%s\n", address);
    int error = vg_write_all(fd, line, (size_t)n);
    if (error != 0) {
        vg_file_abandon(fd, tmp);
        vg_log("endpoint: cannot write %s: %s", path, strerror(error));
    } else if (!vg_file_commit(fd, tmp, path, false)) {
        vg_log("endpoint: cannot write %s: %s", path, strerror(errno));
    }
}

void vg_endpoint_start(void)
{
    const struct vg_config *cfg = vg_config();
    if (cfg->listen[0] == '\0')
        return;
    if (atomic_exchange(&started, 1) != 0)
        return;
    char why[256] = "";
    char shown[VG_PATH_MAX + 16];
    int fd;
    if (strncmp(cfg->listen, "unix:", 5) == 0) {
        char path[VG_PATH_MAX];
        if (!vg_expand_path(cfg->listen + 5, (int)getpid(), path, sizeof(path))) {
            vg_log("endpoint: cannot listen on %s: path too long", cfg->listen);
            return;
        }
        snprintf(shown, sizeof(shown), "unix:%s", path);
        fd = cfg->listen_dir[0] && !private_dir(cfg->listen_dir, why, sizeof(why)) ? -1
                                                                                   : bind_unix(path, why, sizeof(why));
        if (fd >= 0) {
            snprintf(unix_path, sizeof(unix_path), "%s", path);
            owner_pid = getpid();
            snprintf(address, sizeof(address), "unix:%s", path);
        }
    } else {
        snprintf(shown, sizeof(shown), strchr(cfg->listen, ':') ? "%s" : "127.0.0.1:%s", cfg->listen);
        fd = bind_tcp(cfg->listen, why, sizeof(why));
    }
    if (fd < 0) {
        vg_log("endpoint: cannot listen on %s: %s", shown, why);
        address[0] = '\0';
        return;
    }

    if (!atomic_load(&conns_ready)) {
        for (int i = 0; i < CONNECTIONS_MAX; i++)
            atomic_store(&conns[i].fd, -1);
        atomic_store(&conns_ready, true);
    }
    listen_fd = fd;
    pthread_t thread;
    int rc = vg_thread_start(&thread, 0, serve, (void *)(intptr_t)fd);
    if (rc != 0) {
        vg_log("endpoint: cannot listen on %s: cannot start its thread: %s", shown, strerror(rc));
        listen_fd = -1;
        close(fd);
        if (unix_path[0]) {
            unlink(unix_path);
            unix_path[0] = '\0';
        }
        address[0] = '\0';
        return;
    }
    pthread_setname_np(thread, "vramguard-http");
    vg_log_at(VG_LOG_INFO, "endpoint: listening on %s", address);
    record_address();
}

void vg_endpoint_after_fork(void)
{
    /* Only the forking thread exists in the child: the server thread is
     * gone. Its connections are closed; their buffers are left as they are
     * (another allocator's fork handlers may not have run yet). */
    if (atomic_load(&conns_ready)) {
        for (int i = 0; i < CONNECTIONS_MAX; i++) {
            int c = atomic_exchange(&conns[i].fd, -1);
            if (c >= 0)
                close(c);
            conns[i].state = CONN_FREE;
            conns[i].req = NULL;
            conns[i].ans = NULL;
        }
    }
    conns_open = 0;
    held_bytes = 0;
    if (listen_fd >= 0)
        close(listen_fd);
    listen_fd = -1;
    unix_path[0] = '\0'; /* the parent's: never unlinked by the child */
    address[0] = '\0';
    atomic_store(&stopping, 0);
    atomic_store(&started, 0);
}

__attribute__((destructor)) static void endpoint_at_exit(void)
{
    atomic_store(&stopping, 1);
    if (unix_path[0] && owner_pid == getpid())
        unlink(unix_path);
}
