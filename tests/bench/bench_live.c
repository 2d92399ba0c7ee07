/* make bench: the shim with a large live set (bench.sh runs each mode with and
 * without LD_PRELOAD). Needs FAKECUDA_VRAM_BYTES large enough for L live
 * allocations (bench.sh sets 2^40). Driver entry points as bench_alloc.
 *
 *   bench_live ir L N      L live 4 KiB allocations made first (uninstrumented
 *                          under callgrind --instr-atstart=no), 1000 warm-up
 *                          pairs, then N cuMemAlloc_v2 + cuMemFree_v2 pairs
 *                          between MEASURE_BEGIN/END.
 *   bench_live churn L OPS L live 4 KiB allocations, each call timed; then OPS
 *                          operations, each freeing a random live allocation
 *                          and allocating one of a random size (512 B to
 *                          64 KiB), every single call timed (CLOCK_MONOTONIC).
 *                          Prints "key value" lines: latencies of the build-up
 *                          and of the churn (max, p99.9, p99, median, calls
 *                          over 1 ms, ns), the heap (mallinfo2) and RSS grown
 *                          since just before the build-up, at L live and after
 *                          the churn (bytes), involuntary context switches.
 *                          The random sequence is fixed: the same with and
 *                          without the shim.
 */
#include "bench_common.h"

#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

enum { WARMUP = 1000 };

static int ir(long live, long n)
{
    CUdeviceptr *keep = malloc((size_t)live * sizeof *keep);
    if (!keep)
        return 2;
    for (long i = 0; i < live; i++)
        if (drv_alloc(&keep[i], 4096) != CUDA_SUCCESS) {
            fprintf(stderr, "bench_live: allocation %ld of %ld failed (FAKECUDA_VRAM_BYTES?)\n", i, live);
            return 2;
        }
    CUdeviceptr p;
    for (long i = 0; i < WARMUP; i++)
        if (drv_alloc(&p, 4096) != CUDA_SUCCESS || drv_free(p) != CUDA_SUCCESS)
            abort();
    MEASURE_BEGIN();
    for (long i = 0; i < n; i++)
        if (drv_alloc(&p, 4096) != CUDA_SUCCESS || drv_free(p) != CUDA_SUCCESS)
            abort();
    MEASURE_END();
    printf("done %ld live, %ld pairs\n", live, n);
    return 0; /* the live set is left to exit, as a server's would be */
}

/* Latency samples, ns, in a private mapping (outside the heap we measure). */
static float *samples(size_t n)
{
    void *p = mmap(NULL, n * sizeof(float), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("bench_live: mmap");
        exit(2);
    }
    return p;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static void latency(const char *what, float *v, size_t n)
{
    size_t over = 0;
    for (size_t i = 0; i < n; i++)
        over += v[i] > 1e6f;
    qsort(v, n, sizeof(v[0]), cmp_float);
    printf("%s_max_ns %.0f\n%s_p999_ns %.0f\n%s_p99_ns %.0f\n%s_median_ns %.0f\n%s_over_1ms %zu\n", what,
           (double)v[n - 1], what, (double)v[(size_t)((double)n * 0.999)], what, (double)v[(size_t)((double)n * 0.99)],
           what, (double)v[n / 2], what, over);
}

static int churn(long live, long ops)
{
    uint64_t rng = 0x5eed5eedULL;
    CUdeviceptr *keep = malloc((size_t)live * sizeof *keep);
    float *build = samples((size_t)live), *lat = samples((size_t)ops * 2);
    if (!keep)
        return 2;
    struct rusage ru0, ru1;
    struct mem_use m0 = mem_now();
    for (long i = 0; i < live; i++) {
        double t0 = now_ns();
        CUresult r = drv_alloc(&keep[i], 4096);
        build[i] = (float)(now_ns() - t0);
        if (r != CUDA_SUCCESS) {
            fprintf(stderr, "bench_live: allocation %ld of %ld failed (FAKECUDA_VRAM_BYTES?)\n", i, live);
            return 2;
        }
    }
    struct mem_use m1 = mem_now();
    getrusage(RUSAGE_SELF, &ru0);
    for (long i = 0; i < ops; i++) {
        long k = (long)(rand64(&rng) % (uint64_t)live);
        size_t size = 512 + (size_t)(rand64(&rng) % (64 * 1024 - 512 + 1));
        double t0 = now_ns();
        CUresult r = drv_free(keep[k]);
        double t1 = now_ns();
        CUresult r2 = drv_alloc(&keep[k], size);
        double t2 = now_ns();
        if (r != CUDA_SUCCESS || r2 != CUDA_SUCCESS) {
            fprintf(stderr, "bench_live: churn operation %ld failed (%d, %d)\n", i, (int)r, (int)r2);
            return 2;
        }
        lat[2 * i] = (float)(t1 - t0);
        lat[2 * i + 1] = (float)(t2 - t1);
    }
    getrusage(RUSAGE_SELF, &ru1);
    struct mem_use m2 = mem_now();
    latency("build", build, (size_t)live);
    latency("churn", lat, (size_t)ops * 2);
    printf("heap_live %.0f\nheap_churn %.0f\nrss_live %.0f\nrss_churn %.0f\nchurn_nivcsw %ld\n", m1.heap - m0.heap,
           m2.heap - m0.heap, m1.rss - m0.rss, m2.rss - m0.rss, ru1.ru_nivcsw - ru0.ru_nivcsw);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4) {
        bench_driver_init();
        if (strcmp(argv[1], "ir") == 0)
            return ir(atol(argv[2]), atol(argv[3]));
        if (strcmp(argv[1], "churn") == 0)
            return churn(atol(argv[2]), atol(argv[3]));
    }
    fprintf(stderr, "usage: bench_live ir LIVE PAIRS | churn LIVE OPS\n");
    return 2;
}
