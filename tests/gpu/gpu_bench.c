/* make gpu-bench: one allocation case per process on the real GPU, timed on
 * the CPU (tests/gpu/gpu_bench.sh runs it without and with the shim).
 * Built with nvcc's default static cudart, so the shim sees it only at the
 * driver, as with most CUDA programs.
 *
 *   gpu_bench CASE [PAIRS [REPS]]
 *     async4k     cudaMallocAsync(4 KiB) + cudaFreeAsync on a created stream
 *     asyncmixed  the same with 64 allocations live: each step frees the
 *                 oldest and allocates the next size of a fixed mixed list
 *                 (256 B to 8 MiB)
 *     sync4k      cudaMalloc(4 KiB) + cudaFree
 *   A warm-up repetition, then REPS repetitions of PAIRS pairs (a stream
 *   synchronize closes each repetition of the async cases and is timed with
 *   it). Prints "ns_per_pair <median over the repetitions>".
 */
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_REPS = 64, LIVE = 64 };

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void check(cudaError_t e, const char *what)
{
    if (e != cudaSuccess) {
        fprintf(stderr, "gpu_bench: %s: %s\n", what, cudaGetErrorString(e));
        exit(1);
    }
}

static cudaStream_t stream;
static void *ring[LIVE];
static unsigned step;

static const size_t mixed[] = {256, 4096, 65536, 512, 1 << 20, 16384, 8 << 20, 2048, 262144, 128, 2 << 20, 32768};

static void async4k(long pairs)
{
    for (long i = 0; i < pairs; i++) {
        void *p;
        check(cudaMallocAsync(&p, 4096, stream), "cudaMallocAsync");
        check(cudaFreeAsync(p, stream), "cudaFreeAsync");
    }
    check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

static void asyncmixed(long pairs)
{
    for (long i = 0; i < pairs; i++, step++) {
        void **slot = &ring[step % LIVE];
        check(cudaFreeAsync(*slot, stream), "cudaFreeAsync");
        check(cudaMallocAsync(slot, mixed[step % (sizeof mixed / sizeof mixed[0])], stream), "cudaMallocAsync");
    }
    check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

static void sync4k(long pairs)
{
    for (long i = 0; i < pairs; i++) {
        void *p;
        check(cudaMalloc(&p, 4096), "cudaMalloc");
        check(cudaFree(p), "cudaFree");
    }
}

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "";
    void (*run)(long) = NULL;
    long pairs = 0;
    if (strcmp(which, "async4k") == 0)
        run = async4k, pairs = 100000; /* ~1.1 us a pair on an H200, driver 580 */
    else if (strcmp(which, "asyncmixed") == 0)
        run = asyncmixed, pairs = 100000;
    else if (strcmp(which, "sync4k") == 0)
        run = sync4k, pairs = 500; /* ~90 us a pair */
    if (!run) {
        fprintf(stderr, "usage: gpu_bench async4k|asyncmixed|sync4k [PAIRS [REPS]]\n");
        return 2;
    }
    if (argc > 2)
        pairs = atol(argv[2]);
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    if (pairs < 1 || reps < 1 || reps > MAX_REPS)
        return 2;

    check(cudaSetDevice(0), "cudaSetDevice");
    check(cudaFree(0), "context");
    check(cudaStreamCreate(&stream), "cudaStreamCreate");
    if (run == asyncmixed)
        for (int i = 0; i < LIVE; i++, step++)
            check(cudaMallocAsync(&ring[i], mixed[step % (sizeof mixed / sizeof mixed[0])], stream), "cudaMallocAsync");

    run(pairs / 4 + 1); /* warm-up: pools grown, code paged in */
    double t[MAX_REPS];
    for (int r = 0; r < reps; r++) {
        double t0 = now_ns();
        run(pairs);
        t[r] = (now_ns() - t0) / (double)pairs;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp);
    printf("ns_per_pair %.1f\n", t[reps / 2]);

    if (run == asyncmixed)
        for (int i = 0; i < LIVE; i++)
            check(cudaFreeAsync(ring[i], stream), "cudaFreeAsync");
    check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    check(cudaStreamDestroy(stream), "cudaStreamDestroy");
    return 0;
}
