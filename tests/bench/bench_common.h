/* bench_common.h: helpers shared by the `make bench` programs (bench_alloc,
 * bench_live, bench_render). Header-only, C11; each program includes it once.
 *
 *  - clocks and medians;
 *  - the fake driver's call counter (fakecuda_driver_calls, see
 *    tests/fakecuda/README.md), absent on a real driver;
 *  - callgrind client requests: bench.sh runs single cases under
 *    `valgrind --tool=callgrind --instr-atstart=no`, so only what lies between
 *    MEASURE_BEGIN() and MEASURE_END() is counted (and setup, such as a
 *    million preallocations, runs uninstrumented, fast). Outside valgrind
 *    they cost a few instructions; without valgrind's headers they are
 *    no-ops and the whole program is counted (bench.sh's differencing of two
 *    loop lengths still cancels the setup);
 *  - the process's heap in use (glibc mallinfo2) and resident set size;
 *  - the driver's cuMemAlloc_v2 / cuMemFree_v2, fetched the way a
 *    static-cudart program fetches them (cudaGetDriverEntryPointByVersion);
 *  - a small deterministic random generator. */
#ifndef VG_BENCH_COMMON_H
#define VG_BENCH_COMMON_H

#include <cuda.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define BENCH_HAVE_CALLGRIND 1
#endif
#endif
#ifdef BENCH_HAVE_CALLGRIND
#define MEASURE_BEGIN() CALLGRIND_START_INSTRUMENTATION
#define MEASURE_END() CALLGRIND_STOP_INSTRUMENTATION
#else
#define MEASURE_BEGIN() ((void)0)
#define MEASURE_END() ((void)0)
#endif

static inline double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of v[0..n-1] (sorts v). */
static inline double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Calls made so far into the fake driver (every exported entry point, by
 * anyone), or -1 when the driver is not the fake. The fake cudart opens
 * libcuda.so.1 itself; we only look it up, never load it. */
static inline double driver_calls(void)
{
    static unsigned long long (*fn)(void);
    static int tried;
    if (!tried) {
        tried = 1;
        void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
        if (h)
            *(void **)&fn = dlsym(h, "fakecuda_driver_calls");
    }
    return fn ? (double)fn() : -1;
}

/* Host memory in use: heap (glibc: in-use chunks of every arena plus mmapped
 * chunks) and resident set size, in bytes. */
struct mem_use {
    double heap, rss;
};

static inline struct mem_use mem_now(void)
{
    struct mem_use m = {-1, -1};
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();
    m.heap = (double)mi.uordblks + (double)mi.hblkhd;
#endif
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size, resident;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) == 2)
            m.rss = (double)resident * (double)sysconf(_SC_PAGESIZE);
        fclose(f);
    }
    return m;
}

typedef CUresult (*drv_alloc_fn)(CUdeviceptr *, size_t);
typedef CUresult (*drv_free_fn)(CUdeviceptr);
static drv_alloc_fn drv_alloc;
static drv_free_fn drv_free;

/* Initialise the runtime on device 0 and fetch cuMemAlloc_v2 / cuMemFree_v2
 * as a static-cudart program does (through the driver's cuGetProcAddress,
 * which the shim wraps). Exits on failure. */
static inline void bench_driver_init(void)
{
    enum cudaDriverEntryPointQueryResult q;
    if (cudaSetDevice(0) != cudaSuccess || cudaFree(0) != cudaSuccess ||
        cudaGetDriverEntryPointByVersion("cuMemAlloc", (void **)&drv_alloc, 12000, cudaEnableDefault, &q) ||
        cudaGetDriverEntryPointByVersion("cuMemFree", (void **)&drv_free, 12000, cudaEnableDefault, &q) ||
        !drv_alloc || !drv_free) {
        fprintf(stderr, "bench: no CUDA device or driver entry points\n");
        exit(2);
    }
}

/* xorshift64*: deterministic, the same sequence with and without the shim. */
static inline uint64_t rand64(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

#endif
