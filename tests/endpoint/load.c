/* Load on the live endpoint (load.h): one thread, one poll loop per run, so
 * that a probe's answer is seen as soon as it arrives. */
#include "load.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char slow_start[] = "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
static const char probe_request[] = "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";

long long ep_now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

int ep_target_parse(const char *address, struct ep_target *t)
{
    memset(t, 0, sizeof(*t));
    if (strncmp(address, "unix:", 5) == 0) {
        snprintf(t->unix_path, sizeof(t->unix_path), "%s", address + 5);
        return t->unix_path[0] ? 0 : -1;
    }
    const char *colon = strrchr(address, ':');
    t->port = colon ? atoi(colon + 1) : 0;
    return t->port > 0 ? 0 : -1;
}

int ep_connect(const struct ep_target *t, int nonblock)
{
    int type = SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0);
    int fd, r;
    if (t->unix_path[0]) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", t->unix_path);
        fd = socket(AF_UNIX, type, 0);
        if (fd < 0)
            return -1;
        r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    } else {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        fd = socket(AF_INET, type, 0);
        if (fd < 0)
            return -1;
        r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    }
    if (r != 0 && !(nonblock && errno == EINPROGRESS)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int connect_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        return errno;
    return err;
}

/* ---- one request's answer, read as it comes --------------------------------- */

struct answer {
    char head[4096]; /* the first bytes: status line, headers, some body */
    size_t got;      /* all bytes received */
};

static void answer_add(struct answer *a, const char *p, size_t n)
{
    if (a->got < sizeof(a->head) - 1) {
        size_t room = sizeof(a->head) - 1 - a->got;
        memcpy(a->head + a->got, p, n < room ? n : room);
        a->head[a->got + (n < room ? n : room)] = '\0';
    }
    a->got += n;
}

static int answer_status(const struct answer *a)
{
    if (a->got < 13 || strncmp(a->head, "HTTP/1.1 ", 9) != 0)
        return 0;
    return atoi(a->head + 9);
}

/* The whole answer arrived: its Content-Length matches what came. */
static int answer_complete(const struct answer *a)
{
    const char *end = strstr(a->head, "\r\n\r\n");
    const char *cl = strstr(a->head, "Content-Length: ");
    if (end == NULL || cl == NULL || cl > end)
        return 0;
    size_t head_len = (size_t)(end + 4 - a->head);
    return a->got >= head_len && a->got - head_len == (size_t)strtoull(cl + 16, NULL, 10);
}

/* Read what is there; 1 when the server closed (EOF or reset), else 0. */
static int read_some(int fd, struct answer *a)
{
    char buf[16384];
    for (;;) {
        ssize_t k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (k > 0) {
            if (a)
                answer_add(a, buf, (size_t)k);
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        return !(k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    }
}

/* ---- slowloris with probes ----------------------------------------------------- */

struct slow {
    int fd;           /* -1: to be (re)opened at next_us */
    int connecting;
    int answered;     /* the server sent something on it */
    long long next_us; /* next byte (or reopen) */
};

struct probe {
    int fd;
    int sent;
    long long start_us;
    struct answer a;
};

static void slow_open(struct slow *s, const struct ep_target *t, long long now, struct ep_slowloris_result *r)
{
    s->fd = ep_connect(t, 1);
    s->answered = 0;
    if (s->fd < 0) {
        s->next_us = now + 50000; /* refused or backlog full: try again */
        return;
    }
    s->connecting = 1;
    r->slow_opened++;
}

static void slow_dropped(struct slow *s, long long now, struct ep_slowloris_result *r)
{
    close(s->fd);
    s->fd = -1;
    r->slow_dropped++;
    if (s->answered)
        r->slow_answered++;
    s->next_us = now; /* reopen at once, as a slowloris does */
}

static void slow_event(struct slow *s, short revents, const struct ep_target *t, const struct ep_slowloris *o,
                       long long now, struct ep_slowloris_result *r)
{
    if (s->connecting) {
        if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
            return;
        s->connecting = 0;
        if (connect_error(s->fd) != 0 ||
            send(s->fd, slow_start, sizeof(slow_start) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(slow_start) - 1) {
            close(s->fd);
            s->fd = -1;
            s->next_us = now + 50000;
            (void)t;
            return;
        }
        s->next_us = now + (long long)o->byte_ms * 1000;
        return;
    }
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        struct answer a = {.got = 0};
        int closed = read_some(s->fd, &a);
        if (a.got > 0) {
            s->answered = 1;
            if (r->slow_answer[0] == '\0')
                snprintf(r->slow_answer, sizeof(r->slow_answer), "%.255s", a.head);
        }
        if (closed)
            slow_dropped(s, now, r);
    }
}

static void probe_finish(struct probe *p, struct ep_slowloris_result *r, long long now, int ok)
{
    r->latency_ms[r->probes] = ok ? (double)(now - p->start_us) / 1000.0 : -1;
    r->probes++;
    if (ok)
        r->answered++;
    close(p->fd);
    p->fd = -1;
}

int ep_run_slowloris(const struct ep_target *t, const struct ep_slowloris *o, struct ep_slowloris_result *r)
{
    memset(r, 0, sizeof(*r));
    r->latency_ms = calloc((size_t)(o->probes > 0 ? o->probes : 1), sizeof(double));
    struct slow *slow = calloc((size_t)(o->slow > 0 ? o->slow : 1), sizeof(*slow));
    struct pollfd *pfd = calloc((size_t)o->slow + 1, sizeof(*pfd));
    if (r->latency_ms == NULL || slow == NULL || pfd == NULL) {
        free(slow);
        free(pfd);
        return -1;
    }
    long long t0 = ep_now_us(), now = t0;
    for (int i = 0; i < o->slow; i++)
        slow_open(&slow[i], t, now, r);
    struct probe p = {.fd = -1};
    /* The first probe once the slow connections had a moment to be taken. */
    long long next_probe = t0 + 300000;
    for (;;) {
        now = ep_now_us();
        int done = r->probes >= o->probes || (o->stop_on_miss && r->probes > r->answered);
        if (done && now - t0 >= (long long)o->min_ms * 1000)
            break;
        /* Timers: bytes, reopenings, the probe's start and deadline. */
        long long wake = now + 50000;
        int open_now = 0;
        for (int i = 0; i < o->slow; i++) {
            struct slow *s = &slow[i];
            if (s->fd < 0) {
                if (now >= s->next_us)
                    slow_open(s, t, now, r);
                else if (s->next_us < wake)
                    wake = s->next_us;
                continue;
            }
            if (s->connecting)
                continue;
            open_now++;
            if (now >= s->next_us) {
                if (send(s->fd, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN) {
                    slow_dropped(s, now, r);
                    continue;
                }
                s->next_us = now + (long long)o->byte_ms * 1000;
            }
            if (s->next_us < wake)
                wake = s->next_us;
        }
        if (open_now > r->slow_open_max)
            r->slow_open_max = open_now;
        if (!done && p.fd < 0 && now >= next_probe) {
            memset(&p, 0, sizeof(p));
            p.start_us = now;
            p.fd = ep_connect(t, 1);
            if (p.fd < 0) {
                p.fd = open("/dev/null", O_RDONLY | O_CLOEXEC); /* a miss, closed by probe_finish */
                probe_finish(&p, r, now, 0);
                next_probe = now + (long long)o->interval_ms * 1000;
                continue;
            }
        }
        if (p.fd >= 0) {
            long long deadline = p.start_us + (long long)o->timeout_ms * 1000;
            if (now >= deadline) {
                probe_finish(&p, r, now, 0);
                next_probe = now + (long long)o->interval_ms * 1000;
                continue;
            }
            if (deadline < wake)
                wake = deadline;
        } else if (!done && next_probe < wake) {
            wake = next_probe;
        }

        int n = 0;
        for (int i = 0; i < o->slow; i++) {
            if (slow[i].fd < 0)
                continue;
            pfd[n++] = (struct pollfd){.fd = slow[i].fd, .events = slow[i].connecting ? POLLOUT : POLLIN};
        }
        int probe_at = -1;
        if (p.fd >= 0) {
            probe_at = n;
            pfd[n++] = (struct pollfd){.fd = p.fd, .events = p.sent ? POLLIN : POLLOUT};
        }
        int ms = (int)((wake - now + 999) / 1000);
        if (poll(pfd, (nfds_t)n, ms < 0 ? 0 : ms) < 0 && errno != EINTR)
            break;
        now = ep_now_us();
        if (probe_at >= 0 && pfd[probe_at].revents) {
            if (!p.sent) {
                if (connect_error(p.fd) != 0 ||
                    send(p.fd, probe_request, sizeof(probe_request) - 1, MSG_NOSIGNAL) !=
                        (ssize_t)sizeof(probe_request) - 1) {
                    probe_finish(&p, r, now, 0);
                    next_probe = now + (long long)o->interval_ms * 1000;
                } else {
                    p.sent = 1;
                }
            } else if (read_some(p.fd, &p.a)) {
                probe_finish(&p, r, now, answer_status(&p.a) == 200 && answer_complete(&p.a));
                next_probe = now + (long long)o->interval_ms * 1000;
            }
        }
        for (int k = 0, i = 0; i < o->slow && k < (probe_at >= 0 ? probe_at : n); i++) {
            if (slow[i].fd < 0)
                continue;
            short rev = pfd[k++].revents;
            if (rev)
                slow_event(&slow[i], rev, t, o, now, r);
        }
    }
    if (p.fd >= 0)
        close(p.fd);
    for (int i = 0; i < o->slow; i++)
        if (slow[i].fd >= 0)
            close(slow[i].fd);
    free(slow);
    free(pfd);
    r->elapsed_ms = (ep_now_us() - t0) / 1000;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double ep_percentile(const struct ep_slowloris_result *r, double p)
{
    if (r->probes == 0)
        return -1;
    double *v = malloc((size_t)r->probes * sizeof(double));
    for (int i = 0; i < r->probes; i++)
        v[i] = r->latency_ms[i] < 0 ? 1e300 : r->latency_ms[i];
    qsort(v, (size_t)r->probes, sizeof(double), cmp_double);
    /* nearest rank */
    int rank = (int)((p / 100.0) * r->probes + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > r->probes)
        rank = r->probes;
    double x = v[rank - 1];
    free(v);
    return x >= 1e300 ? -1 : x;
}

int ep_within(const struct ep_slowloris_result *r, double ms)
{
    int n = 0;
    for (int i = 0; i < r->probes; i++)
        if (r->latency_ms[i] >= 0 && r->latency_ms[i] <= ms)
            n++;
    return n;
}

/* ---- clients that never read ------------------------------------------------------ */

int ep_never_readers(const struct ep_target *t, const char *request, int n, int *fds)
{
    int open_n = 0;
    for (int i = 0; i < n; i++) {
        fds[i] = -1;
        int fd = socket(t->unix_path[0] ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int tiny = 1; /* the kernel's least: the answer cannot all be taken */
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &tiny, sizeof(tiny));
        int r;
        if (t->unix_path[0]) {
            struct sockaddr_un sa = {.sun_family = AF_UNIX};
            snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", t->unix_path);
            r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
        } else {
            struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->port),
                                     .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
        }
        if (r != 0 || send(fd, request, strlen(request), MSG_NOSIGNAL) != (ssize_t)strlen(request)) {
            close(fd);
            continue;
        }
        fds[i] = fd;
        open_n++;
    }
    return open_n;
}

/* ---- single requests and floods ---------------------------------------------------- */

int ep_request(const struct ep_target *t, const char *request, size_t len, char *buf, size_t size, int timeout_ms)
{
    buf[0] = '\0';
    int fd = ep_connect(t, 0);
    if (fd < 0)
        return 0;
    long long deadline = ep_now_us() + (long long)timeout_ms * 1000;
    size_t sent = 0;
    while (sent < len && ep_now_us() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t k = send(fd, request + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && errno != EAGAIN && errno != EINTR)
            break; /* the server stopped reading (it answered already, or dropped us) */
        if (k > 0)
            sent += (size_t)k;
    }
    struct answer a = {.got = 0};
    while (ep_now_us() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        if (read_some(fd, &a))
            break;
    }
    close(fd);
    snprintf(buf, size, "%s", a.head);
    return answer_status(&a);
}

struct flood_slot {
    int fd;
    int kind;
    size_t sent;
    long long deadline;
    struct answer a;
};

static void flood_done(struct flood_slot *s, const struct ep_flood_kind *kinds, struct ep_flood_result *r, int closed)
{
    int status = closed ? answer_status(&s->a) : -1;
    int want = kinds[s->kind].want;
    int ok = status >= 0 && (want == 0 ? (status == 0 || status == 400)
                                       : status == want && answer_complete(&s->a));
    if (status < 0)
        r->unanswered++;
    if (ok) {
        r->as_expected++;
    } else {
        r->wrong++;
        if (r->first_wrong[0] == '\0')
            snprintf(r->first_wrong, sizeof(r->first_wrong), "request %.40s... -> %s: %.150s", kinds[s->kind].request,
                     status < 0 ? "no answer in time" : "answered", s->a.head);
    }
    close(s->fd);
    s->fd = -1;
}

int ep_flood(const struct ep_target *t, const struct ep_flood_kind *kinds, int nkinds, int total, int parallel,
             int timeout_ms, struct ep_flood_result *r)
{
    memset(r, 0, sizeof(*r));
    struct flood_slot *slot = calloc((size_t)parallel, sizeof(*slot));
    struct pollfd *pfd = calloc((size_t)parallel, sizeof(*pfd));
    if (slot == NULL || pfd == NULL) {
        free(slot);
        free(pfd);
        return -1;
    }
    for (int i = 0; i < parallel; i++)
        slot[i].fd = -1;
    long long t0 = ep_now_us();
    int active = 0;
    for (;;) {
        long long now = ep_now_us();
        for (int i = 0; i < parallel; i++) {
            struct flood_slot *s = &slot[i];
            if (s->fd >= 0 && now >= s->deadline) {
                flood_done(s, kinds, r, 0);
                active--;
            }
            if (s->fd < 0 && r->sent < total) {
                memset(s, 0, sizeof(*s));
                s->kind = r->sent % nkinds;
                s->deadline = now + (long long)timeout_ms * 1000;
                s->fd = ep_connect(t, 1);
                r->sent++;
                if (s->fd < 0) {
                    r->unanswered++;
                    r->wrong++;
                    if (r->first_wrong[0] == '\0')
                        snprintf(r->first_wrong, sizeof(r->first_wrong), "connect: %s", strerror(errno));
                    continue;
                }
                active++;
            }
        }
        if (active == 0 && r->sent >= total)
            break;
        for (int i = 0; i < parallel; i++) {
            const struct flood_slot *s = &slot[i];
            size_t len = strlen(kinds[s->kind].request);
            pfd[i] = (struct pollfd){.fd = s->fd, .events = s->sent < len ? POLLOUT : POLLIN};
        }
        if (poll(pfd, (nfds_t)parallel, 50) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < parallel; i++) {
            struct flood_slot *s = &slot[i];
            if (s->fd < 0 || pfd[i].revents == 0)
                continue;
            const char *req = kinds[s->kind].request;
            size_t len = strlen(req);
            if (s->sent < len) {
                ssize_t k = send(s->fd, req + s->sent, len - s->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k > 0)
                    s->sent += (size_t)k;
                else if (k < 0 && errno != EAGAIN && errno != EINTR)
                    s->sent = len; /* the server closed: read its answer, if any */
                continue;
            }
            if (read_some(s->fd, &s->a)) {
                flood_done(s, kinds, r, 1);
                active--;
            }
        }
    }
    free(slot);
    free(pfd);
    r->elapsed_ms = (ep_now_us() - t0) / 1000;
    return 0;
}
