/* make bench: the CPU-side cost of an allocation + free pair through the shim.
 * bench.sh runs each mode with and without LD_PRELOAD and compares.
 *
 * Cases, each a 4 KiB allocation and its free:
 *   driver   cuMemAlloc_v2 + cuMemFree_v2, fetched with
 *            cudaGetDriverEntryPointByVersion (the driver's cuGetProcAddress);
 *   runtime  cudaMalloc + cudaFree (a static cudart: at the driver for the shim);
 *   async    cudaMallocAsync + cudaFreeAsync on a created stream;
 *   pool     cudaMallocFromPoolAsync + cudaFreeAsync from a created device
 *            pool on a created stream (RMM's async resource, CuPy's pool).
 *
 * Modes:
 *   bench_alloc [wall] [PAIRS]   wall time: median over 11 repetitions of
 *                                PAIRS pairs, in ns per pair, for runtime,
 *                                driver and async with 1 thread, runtime and
 *                                driver with 8 threads (ns per pair = wall
 *                                time / all threads' pairs). One line per
 *                                case: "<case>_<n>thread[s] <ns>"; then
 *                                local_1thread and local_8threads: the
 *                                driver pair with thread-local busy work
 *                                (no shared data) around each call, the
 *                                thread table's reference.
 *   bench_alloc ir CASE N        one case for callgrind (driver, runtime, async,
 *                                pool): 1000 warm-up pairs,
 *                                then N pairs between MEASURE_BEGIN/END (the
 *                                only instructions counted under
 *                                --instr-atstart=no). Prints
 *                                "calls_per_pair <driver calls per pair>"
 *                                (the fake driver's counter; -1 without it).
 */
#include "bench_common.h"

#include <pthread.h>
#include <string.h>

enum { REPS = 11, THREADS = 8, WARMUP = 1000, LOCAL_WORK = 40 };

static long pairs = 20000;

static void runtime_pairs(long n)
{
    for (long i = 0; i < n; i++) {
        void *p;
        if (cudaMalloc(&p, 4096) != cudaSuccess || cudaFree(p) != cudaSuccess)
            abort();
    }
}

static void driver_pairs(long n)
{
    for (long i = 0; i < n; i++) {
        CUdeviceptr p;
        if (drv_alloc(&p, 4096) != CUDA_SUCCESS || drv_free(p) != CUDA_SUCCESS)
            abort();
    }
}

/* The thread table's reference (wall()): the driver pair with thread-local
 * busy work after each call, about the shim's cost with one thread. */
static inline void busy(void)
{
    for (volatile int k = 0; k < LOCAL_WORK; k++)
        ;
}

static void local_pairs(long n)
{
    for (long i = 0; i < n; i++) {
        CUdeviceptr p;
        if (drv_alloc(&p, 4096) != CUDA_SUCCESS)
            abort();
        busy();
        if (drv_free(p) != CUDA_SUCCESS)
            abort();
        busy();
    }
}

static void async_pairs(cudaStream_t s, long n)
{
    for (long i = 0; i < n; i++) {
        void *p;
        if (cudaMallocAsync(&p, 4096, s) != cudaSuccess || cudaFreeAsync(p, s) != cudaSuccess)
            abort();
    }
}

static cudaMemPool_t bench_pool;

static void pool_pairs(cudaStream_t s, long n)
{
    for (long i = 0; i < n; i++) {
        void *p;
        if (cudaMallocFromPoolAsync(&p, 4096, bench_pool, s) != cudaSuccess || cudaFreeAsync(p, s) != cudaSuccess)
            abort();
    }
}

/* A device pool on device 0, as RMM's async resource creates its own. */
static int create_pool(void)
{
    struct cudaMemPoolProps props = {0};
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = 0;
    return cudaMemPoolCreate(&bench_pool, &props) == cudaSuccess;
}

static void *runtime_loop(void *arg)
{
    (void)arg;
    cudaSetDevice(0);
    runtime_pairs(pairs);
    return NULL;
}

static void *driver_loop(void *arg)
{
    (void)arg;
    cudaSetDevice(0);
    cudaFree(0); /* makes the primary context current on this thread */
    driver_pairs(pairs);
    return NULL;
}

static void *local_loop(void *arg)
{
    (void)arg;
    cudaSetDevice(0);
    cudaFree(0);
    local_pairs(pairs);
    return NULL;
}

static void *async_loop(void *arg)
{
    (void)arg;
    cudaSetDevice(0);
    cudaStream_t s;
    if (cudaStreamCreate(&s) != cudaSuccess)
        abort();
    async_pairs(s, pairs);
    cudaStreamSynchronize(s);
    cudaStreamDestroy(s);
    return NULL;
}

/* Median ns per pair over REPS runs of `threads` threads each doing `pairs`. */
static double measure(void *(*loop)(void *), int threads)
{
    double t[REPS];
    for (int r = 0; r < REPS; r++) {
        pthread_t th[THREADS];
        double t0 = now_ns();
        for (int i = 0; i < threads; i++)
            pthread_create(&th[i], NULL, loop, NULL);
        for (int i = 0; i < threads; i++)
            pthread_join(th[i], NULL);
        t[r] = (now_ns() - t0) / ((double)pairs * threads);
    }
    return median(t, REPS);
}

static int wall(void)
{
    runtime_loop(NULL); /* warm up */
    printf("runtime_1thread %.1f\n", measure(runtime_loop, 1));
    printf("driver_1thread %.1f\n", measure(driver_loop, 1));
    printf("async_1thread %.1f\n", measure(async_loop, 1));
    printf("runtime_8threads %.1f\n", measure(runtime_loop, THREADS));
    printf("driver_8threads %.1f\n", measure(driver_loop, THREADS));
    /* The reference: the driver pair with thread-local busy work added
     * around the calls, about the shim's cost with one thread (shares
     * nothing): how this machine's threads and the fake driver's mutex
     * inflate work that no other thread touches. */
    printf("local_1thread %.1f\n", measure(local_loop, 1));
    printf("local_8threads %.1f\n", measure(local_loop, THREADS));
    return 0;
}

/* One case, N measured pairs (callgrind), and the driver calls they made. */
static int instructions(const char *which, long n)
{
    cudaStream_t s = NULL;
    void (*run)(long) = NULL;
    void (*run_on)(cudaStream_t, long) = NULL;
    if (strcmp(which, "driver") == 0)
        run = driver_pairs;
    else if (strcmp(which, "runtime") == 0)
        run = runtime_pairs;
    else if (strcmp(which, "async") == 0)
        run_on = async_pairs;
    else if (strcmp(which, "pool") == 0 && create_pool())
        run_on = pool_pairs;
    if ((!run && !run_on) || (run_on && cudaStreamCreate(&s) != cudaSuccess)) {
        fprintf(stderr, "bench_alloc ir: case driver|runtime|async|pool\n");
        return 2;
    }
    if (run)
        run(WARMUP);
    else
        run_on(s, WARMUP);
    double c0 = driver_calls();
    MEASURE_BEGIN();
    if (run)
        run(n);
    else
        run_on(s, n);
    MEASURE_END();
    double c1 = driver_calls();
    printf("calls_per_pair %.3f\n", c0 < 0 ? -1.0 : (c1 - c0) / (double)n);
    if (s) {
        cudaStreamSynchronize(s);
        cudaStreamDestroy(s);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int a = 1;
    const char *mode = "wall";
    if (argc > 1 && (argv[1][0] < '0' || argv[1][0] > '9'))
        mode = argv[a++];
    bench_driver_init();
    if (strcmp(mode, "wall") == 0) {
        if (argc > a)
            pairs = atol(argv[a]);
        return wall();
    }
    if (strcmp(mode, "ir") == 0 && argc == a + 2)
        return instructions(argv[a], atol(argv[a + 1]));
    fprintf(stderr, "usage: bench_alloc [wall] [PAIRS] | ir driver|runtime|async|pool N\n");
    return 2;
}
