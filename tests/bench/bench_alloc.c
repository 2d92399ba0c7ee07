/* make bench: the CPU-side cost of an allocation + free through the shim.
 * Runs the same loop with and without LD_PRELOAD (bench.sh does both) and
 * prints the median over repetitions, in ns per cudaMalloc+cudaFree pair
 * (runtime, as a static-cudart program calls it) and per cuMemAlloc+cuMemFree
 * pair (driver entry point fetched with cuGetProcAddress), per
 * cudaMallocAsync+cudaFreeAsync pair (stream-ordered), one thread and
 * eight. */
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { REPS = 11, THREADS = 8 };

static long pairs = 20000;
typedef CUresult (*alloc_fn)(CUdeviceptr *, size_t);
typedef CUresult (*free_fn)(CUdeviceptr);
static alloc_fn drv_alloc;
static free_fn drv_free;

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void *runtime_loop(void *arg)
{
    (void)arg;
    cudaSetDevice(0);
    for (long i = 0; i < pairs; i++) {
        void *p;
        if (cudaMalloc(&p, 4096) != cudaSuccess || cudaFree(p) != cudaSuccess)
            abort();
    }
    return NULL;
}

static void *driver_loop(void *arg)
{
    (void)arg;
    cudaSetDevice(0);
    cudaFree(0);
    for (long i = 0; i < pairs; i++) {
        CUdeviceptr p;
        if (drv_alloc(&p, 4096) != CUDA_SUCCESS || drv_free(p) != CUDA_SUCCESS)
            abort();
    }
    return NULL;
}

static void *async_loop(void *arg)
{
    (void)arg;
    cudaSetDevice(0);
    cudaStream_t s;
    if (cudaStreamCreate(&s) != cudaSuccess)
        abort();
    for (long i = 0; i < pairs; i++) {
        void *p;
        if (cudaMallocAsync(&p, 4096, s) != cudaSuccess || cudaFreeAsync(p, s) != cudaSuccess)
            abort();
    }
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
    qsort(t, REPS, sizeof(t[0]), cmp);
    return t[REPS / 2];
}

int main(int argc, char **argv)
{
    if (argc > 1)
        pairs = atol(argv[1]);
    cudaFree(0);
    enum cudaDriverEntryPointQueryResult q;
    cudaGetDriverEntryPointByVersion("cuMemAlloc", (void **)&drv_alloc, 12000, cudaEnableDefault, &q);
    cudaGetDriverEntryPointByVersion("cuMemFree", (void **)&drv_free, 12000, cudaEnableDefault, &q);
    if (!drv_alloc || !drv_free)
        return 1;
    runtime_loop(NULL); /* warm up */
    printf("runtime_1thread %.1f\n", measure(runtime_loop, 1));
    printf("driver_1thread %.1f\n", measure(driver_loop, 1));
    printf("async_1thread %.1f\n", measure(async_loop, 1));
    printf("runtime_8threads %.1f\n", measure(runtime_loop, THREADS));
    printf("driver_8threads %.1f\n", measure(driver_loop, THREADS));
    return 0;
}
