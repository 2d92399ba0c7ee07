/* Load on the live endpoint, for the endpoint suite (check_endpoint.c) and
 * its benchmark (endpoint_load.c, `make bench-endpoint`): slow clients
 * (slowloris) while /health is probed, clients that never read, and a flood
 * of requests. Loopback or a Unix socket only; every wait is bounded. */
#ifndef VG_TEST_ENDPOINT_LOAD_H
#define VG_TEST_ENDPOINT_LOAD_H

#include <stddef.h>

/* Where the endpoint listens: a Unix socket path, else 127.0.0.1:port. */
struct ep_target {
    char unix_path[108];
    int port;
};

/* "http://127.0.0.1:PORT" or "unix:/path" (the shim's "listening on" form). */
int ep_target_parse(const char *address, struct ep_target *t);

long long ep_now_us(void);

/* A connected socket (non-blocking connect completed or in progress when
 * `nonblock`), or -1. */
int ep_connect(const struct ep_target *t, int nonblock);

struct ep_slowloris {
    int slow;          /* slow connections kept open (reopened when dropped) */
    int byte_ms;       /* each sends one more header byte this often */
    int probes;        /* GET /health, one at a time */
    int interval_ms;   /* pause between probes */
    int timeout_ms;    /* a probe not fully answered by then is missed */
    int stop_on_miss;  /* stop at the first missed probe */
    int min_ms;        /* keep the slow connections at least this long */
};

struct ep_slowloris_result {
    int probes, answered; /* answered: a whole 200 response within timeout_ms */
    double *latency_ms;   /* per probe (malloc'd, `probes` of them); -1 when missed */
    int slow_opened;      /* slow connections ever opened */
    int slow_dropped;     /* closed by the server */
    int slow_answered;    /* of those, answered something first (a 503 at the cap) */
    int slow_open_max;    /* most slow connections open at once (client side) */
    char slow_answer[256]; /* the first answer a slow connection got ("" if none) */
    long long elapsed_ms;
};

/* Run the slow connections and the probes; 0 on success (counts filled),
 * -1 when the load could not be set up (errno). Free latency_ms. */
int ep_run_slowloris(const struct ep_target *t, const struct ep_slowloris *o, struct ep_slowloris_result *r);

/* The p-th percentile (0..100) of the probes' latencies, missed probes
 * counting as infinitely slow (returns -1 then). */
double ep_percentile(const struct ep_slowloris_result *r, double p);
/* How many probes were answered within `ms`. */
int ep_within(const struct ep_slowloris_result *r, double ms);

/* `n` connections that send `request` and then never read: each asks for a
 * tiny receive buffer so that the answer cannot all be taken. fds into
 * `fds` (-1 where a connection failed); returns how many are open. */
int ep_never_readers(const struct ep_target *t, const char *request, int n, int *fds);

/* One request and its whole answer (until the server closes), within
 * timeout_ms. Returns the status (0: no status line), the answer in `buf`
 * (NUL-terminated, truncated to size). */
int ep_request(const struct ep_target *t, const char *request, size_t len, char *buf, size_t size, int timeout_ms);

struct ep_flood_kind {
    const char *request; /* sent whole */
    int want;            /* expected status (0: dropped or 400) */
};

struct ep_flood_result {
    int sent, as_expected, unanswered, wrong;
    char first_wrong[256]; /* the first unexpected answer, for the message */
    long long elapsed_ms;
};

/* `total` requests, `parallel` in flight, cycling through `kinds`; each
 * connection is answered and closed by the server within timeout_ms. */
int ep_flood(const struct ep_target *t, const struct ep_flood_kind *kinds, int nkinds, int total, int parallel,
             int timeout_ms, struct ep_flood_result *r);

#endif
