/* A worker for the endpoint tests: allocates known bytes per purpose, makes
 * one refused managed allocation, prints "ready" and stays up so that the
 * test can scrape it.
 *
 *   prog_serve [SECONDS [MODE]]
 *
 * SECONDS (default 30): how long to stay up after "ready" (0: exit at once).
 * MODE: "clean"    no managed allocation (no violation);
 *       "fork"     fork a child that reaches nothing and sleeps SECONDS, print
 *                  "child pid PID" before "ready";
 *       "forkcuda" the child allocates itself (reaches the driver on its own);
 *       "churn"    also holds CHURN_HELD allocations of 2 KiB (kv_cache, with
 *                  a long label: /vram lists 1000 of them, over 256 KB), then allocates and frees
 *                  CHURN_BATCH buffers (intermediate, 4 KiB to 32 KiB) over
 *                  and over until the file $PROG_SERVE_STOP exists; then frees
 *                  the held ones and prints "churned N cycles, longest M ms"
 *                  before staying up SECONDS.
 * Expected live VRAM on device 0 (kind device): weights 6 MiB (2 allocations),
 * kv_cache 4 MiB, intermediate 2 MiB (2 allocations, 1 freed), unknown 1 MiB. */
#include <cuda_runtime_api.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../preload/preload_common.h"

enum { CHURN_HELD = 1500, CHURN_BATCH = 8 };

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Allocate and free while the endpoint is under load: every call must
 * succeed, and the shim's counts must come out exact (the test compares). */
static void churn(void)
{
    static void *held[CHURN_HELD];
    int failed = 0;
    /* A long label: /vram (1000 of these listed) is then larger than a Unix
     * socket's send buffer, for the test of clients that never read. */
    VRAMGUARD_PURPOSE_LABEL(VRAMGUARD_KV_CACHE, "held by prog_serve while it churns, to make /vram large: 62 B")
    {
        for (int i = 0; i < CHURN_HELD; i++)
            failed += cudaMalloc(&held[i], 2 * KiB) != cudaSuccess;
    }
    printf("churning\n");
    fflush(stdout);
    const char *stop = getenv("PROG_SERVE_STOP");
    long long cycles = 0, longest = 0, last = now_ms();
    while (stop && access(stop, F_OK) != 0) {
        void *p[CHURN_BATCH];
        VRAMGUARD_PURPOSE(VRAMGUARD_INTERMEDIATE)
        {
            for (int j = 0; j < CHURN_BATCH; j++)
                failed += cudaMalloc(&p[j], (size_t)(j + 1) * 4 * KiB) != cudaSuccess;
        }
        for (int j = 0; j < CHURN_BATCH; j++)
            failed += cudaFree(p[j]) != cudaSuccess;
        cycles++;
        long long t = now_ms();
        if (t - last > longest)
            longest = t - last;
        last = t;
    }
    for (int i = 0; i < CHURN_HELD; i++)
        failed += cudaFree(held[i]) != cudaSuccess;
    CHECK("churn: every call succeeded", failed == 0, "%d calls failed", failed);
    printf("churned %lld cycles, longest %lld ms\n", cycles, longest);
    fflush(stdout);
}

static void stay_up(int seconds)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        struct timespec tick = {0, 50 * 1000 * 1000};
        nanosleep(&tick, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (t.tv_sec - t0.tv_sec < seconds);
}

int main(int argc, char **argv)
{
    int seconds = argc > 1 ? atoi(argv[1]) : 30;
    const char *mode = argc > 2 ? argv[2] : "";
    start("prog_serve");
    CHECK("cudaFree(0)", cudaFree(0) == cudaSuccess, "failed");

    void *w[2] = {0}, *kv = NULL, *tmp = NULL, *scratch = NULL, *plain = NULL;
    VRAMGUARD_PURPOSE_LABEL(VRAMGUARD_WEIGHTS, "layer \"0\"")
    {
        for (int i = 0; i < 2; i++)
            CHECK("weights", cudaMalloc(&w[i], 3 * MiB) == cudaSuccess, "failed");
    }
    VRAMGUARD_PURPOSE(VRAMGUARD_KV_CACHE)
    CHECK("kv_cache", cudaMalloc(&kv, 4 * MiB) == cudaSuccess, "failed");
    VRAMGUARD_PURPOSE(VRAMGUARD_INTERMEDIATE)
    {
        CHECK("intermediate", cudaMalloc(&tmp, 2 * MiB) == cudaSuccess, "failed");
        CHECK("scratch", cudaMalloc(&scratch, 512 * KiB) == cudaSuccess, "failed");
        CHECK("scratch freed", cudaFree(scratch) == cudaSuccess, "failed");
    }
    CHECK("unknown", cudaMalloc(&plain, 1 * MiB) == cudaSuccess, "failed");
    if (strcmp(mode, "clean") != 0) {
        void *managed = NULL;
        cudaError_t e = cudaMallocManaged(&managed, 1 * MiB, cudaMemAttachGlobal);
        CHECK("managed refused", e != cudaSuccess, "cudaMallocManaged succeeded");
    }

    pid_t child = -1;
    if (strncmp(mode, "fork", 4) == 0) {
        fflush(stdout);
        child = fork();
        if (child == 0) {
            if (strcmp(mode, "forkcuda") == 0) {
                void *mine = NULL;
                cudaMalloc(&mine, 1 * MiB);
                printf("child allocated\n");
                fflush(stdout);
            }
            stay_up(seconds);
            _exit(0);
        }
        printf("child pid %d\n", (int)child);
    }
    printf("ready\n");
    fflush(stdout);
    if (strcmp(mode, "churn") == 0)
        churn();
    stay_up(seconds);
    if (child > 0) {
        kill(child, SIGTERM);
        waitpid(child, NULL, 0);
    }
    return finish("prog_serve");
}
