/* endpoint_load: load on a live vramguard endpoint, for `make bench-endpoint`
 * (tests/endpoint/bench_endpoint.sh).
 *
 *   endpoint_load ADDRESS slowloris SLOW PROBES INTERVAL_MS
 *       SLOW connections send a header byte a second (reopened when
 *       dropped) while GET /health is probed PROBES times; prints the
 *       probes' latency percentiles and the share answered within 100 ms.
 *   endpoint_load ADDRESS flood TOTAL PARALLEL
 *       TOTAL GET /health requests, PARALLEL at a time; prints the rate.
 *
 * ADDRESS: http://127.0.0.1:PORT or unix:/path. Exit status 0 when every
 * probe or request was answered. */
#include "load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: endpoint_load ADDRESS slowloris SLOW PROBES INTERVAL_MS\n"
                    "       endpoint_load ADDRESS flood TOTAL PARALLEL\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct ep_target t;
    if (argc < 3 || ep_target_parse(argv[1], &t) != 0)
        return usage();
    if (strcmp(argv[2], "slowloris") == 0 && argc == 6) {
        struct ep_slowloris o = {.slow = atoi(argv[3]), .byte_ms = 1000, .probes = atoi(argv[4]),
                                 .interval_ms = atoi(argv[5]), .timeout_ms = 5000, .min_ms = 3000};
        struct ep_slowloris_result r;
        if (o.probes <= 0 || ep_run_slowloris(&t, &o, &r) != 0) {
            perror("endpoint_load");
            return 1;
        }
        printf("probes %d\nanswered %d\np50_ms %.2f\np90_ms %.2f\np99_ms %.2f\nmax_ms %.2f\n"
               "within_100ms_pct %.2f\nslow_most_open %d\nslow_dropped %d\nslow_told_busy %d\nelapsed_ms %lld\n",
               r.probes, r.answered, ep_percentile(&r, 50), ep_percentile(&r, 90), ep_percentile(&r, 99),
               ep_percentile(&r, 100), 100.0 * ep_within(&r, 100) / r.probes, r.slow_open_max, r.slow_dropped,
               r.slow_answered, r.elapsed_ms);
        int ok = r.answered == r.probes;
        free(r.latency_ms);
        return ok ? 0 : 1;
    }
    if (strcmp(argv[2], "flood") == 0 && argc == 5) {
        const struct ep_flood_kind kinds[] = {{"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 200}};
        struct ep_flood_result f;
        if (ep_flood(&t, kinds, 1, atoi(argv[3]), atoi(argv[4]), 5000, &f) != 0) {
            perror("endpoint_load");
            return 1;
        }
        printf("requests %d\nanswered %d\nelapsed_ms %lld\nper_second %.0f\n", f.sent, f.as_expected, f.elapsed_ms,
               f.elapsed_ms > 0 ? 1000.0 * f.as_expected / (double)f.elapsed_ms : 0.0);
        if (f.wrong)
            fprintf(stderr, "endpoint_load: %s\n", f.first_wrong);
        return f.as_expected == f.sent ? 0 : 1;
    }
    return usage();
}
