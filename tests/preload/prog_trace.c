/* VRAMGUARD_TRACE's writer under known workloads (tests/preload/check_trace.c
 * runs them; tests/preload/trace_checks.py reads the traces and knows what
 * each one must hold). Driver API, one fake 1 GiB device.
 *
 *   prog_trace basic     device allocations with purposes and labels, a
 *                        stream-ordered pair (pool cache kept), a VMM
 *                        handle created and released, a refused managed
 *                        allocation, an OOM; one allocation left live; exits
 *                        at once (before the writer's first round: the
 *                        exit writes everything)
 *   prog_trace threads   4 threads x 3000 pairs, joined, then SIGKILL: what
 *                        the threads did is in the trace (each ring written
 *                        when full and when its thread ended)
 *   prog_trace fork      1 MiB in the parent, fork; the child allocates and
 *                        frees 2 MiB and exits; then 3 MiB in the parent
 *   prog_trace flood N   N pairs of 4 KiB with a 512 MiB allocation alive
 *                        for 10 pairs in the middle (under a small
 *                        VRAMGUARD_TRACE_MAX: the peak is reached while
 *                        coalescing), and a refused managed allocation
 *                        every 1000 pairs */
#include <cuda.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload_common.h"

static CUcontext ctx;

static void context(void)
{
    CUdevice dev;
    cuInit(0);
    cuDeviceGet(&dev, 0);
    cuDevicePrimaryCtxRetain(&ctx, dev);
    cuCtxSetCurrent(ctx);
}

__attribute__((noinline)) static int basic(void) /* its name is the stacks' site */
{
    CUdeviceptr w0 = 0, w1 = 0, kv = 0, managed = 0, huge = 0, tmp = 0;
    VRAMGUARD_PURPOSE_LABEL(VRAMGUARD_WEIGHTS, "w.0")
    CHECK("weights w.0", cuMemAlloc(&w0, 8 * MiB) == CUDA_SUCCESS, "failed");
    VRAMGUARD_PURPOSE_LABEL(VRAMGUARD_WEIGHTS, "w.1")
    CHECK("weights w.1", cuMemAlloc(&w1, 8 * MiB) == CUDA_SUCCESS, "failed");
    VRAMGUARD_PURPOSE(VRAMGUARD_KV_CACHE)
    CHECK("kv cache", cuMemAlloc(&kv, 16 * MiB) == CUDA_SUCCESS, "failed");

    CUstream s;
    CUmemoryPool pool;
    cuStreamCreate(&s, CU_STREAM_NON_BLOCKING);
    cuDeviceGetDefaultMemPool(&pool, 0);
    cuuint64_t keep = 64 * MiB;
    cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &keep);
    VRAMGUARD_PURPOSE(VRAMGUARD_INTERMEDIATE)
    CHECK("stream-ordered", cuMemAllocAsync(&tmp, 4 * MiB, s) == CUDA_SUCCESS, "failed");
    cuMemFreeAsync(tmp, s);
    cuStreamSynchronize(s);

    CUmemAllocationProp prop = {0};
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = 0;
    size_t gran = 0;
    cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
    CUmemGenericAllocationHandle h = 0;
    CHECK("cuMemCreate", cuMemCreate(&h, 2 * MiB, &prop, 0) == CUDA_SUCCESS, "failed");
    CHECK("cuMemRelease", cuMemRelease(h) == CUDA_SUCCESS, "failed");

    CHECK("managed refused", cuMemAllocManaged(&managed, 1 * MiB, CU_MEM_ATTACH_GLOBAL) != CUDA_SUCCESS, "allowed");
    VRAMGUARD_PURPOSE(VRAMGUARD_KV_CACHE)
    CHECK("out of memory", cuMemAlloc(&huge, 2048 * MiB) == CUDA_ERROR_OUT_OF_MEMORY, "allocated");

    cuMemFree(kv);
    cuMemFree(w0); /* w1 stays live */
    return finish("prog_trace basic");
}

enum { THREADS = 4, PAIRS = 3000 };

static void *pairs(void *arg)
{
    (void)arg;
    cuCtxSetCurrent(ctx);
    for (int i = 0; i < PAIRS; i++) {
        CUdeviceptr p = 0;
        if (cuMemAlloc(&p, 4096) != CUDA_SUCCESS || cuMemFree(p) != CUDA_SUCCESS)
            abort();
    }
    return NULL;
}

static int threads(void)
{
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, pairs, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    printf("prog_trace threads: joined, killing myself\n");
    raise(SIGKILL); /* no exit handler: what the threads wrote must be there */
    return 1;
}

static int forked(void)
{
    CUdeviceptr a = 0, b = 0, c = 0;
    VRAMGUARD_PURPOSE(VRAMGUARD_WEIGHTS)
    CHECK("parent 1 MiB", cuMemAlloc(&a, 1 * MiB) == CUDA_SUCCESS, "failed");
    pid_t pid = fork();
    if (pid == 0) {
        context();
        int ok = 0;
        VRAMGUARD_PURPOSE(VRAMGUARD_KV_CACHE)
        ok = cuMemAlloc(&b, 2 * MiB) == CUDA_SUCCESS && cuMemFree(b) == CUDA_SUCCESS;
        exit(ok ? 0 : 1);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK("child", WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    VRAMGUARD_PURPOSE(VRAMGUARD_INTERMEDIATE)
    CHECK("parent 3 MiB", cuMemAlloc(&c, 3 * MiB) == CUDA_SUCCESS, "failed");
    cuMemFree(a);
    cuMemFree(c);
    printf("child pid %d\n", (int)pid);
    return finish("prog_trace fork");
}

static int flood(long n)
{
    CUdeviceptr big = 0;
    for (long i = 0; i < n; i++) {
        CUdeviceptr p = 0;
        if (cuMemAlloc(&p, 4096) != CUDA_SUCCESS || cuMemFree(p) != CUDA_SUCCESS)
            abort();
        if (i == n / 2)
            CHECK("512 MiB in the middle", cuMemAlloc(&big, 512 * MiB) == CUDA_SUCCESS, "failed");
        if (i == n / 2 + 10)
            cuMemFree(big);
        if (i % 1000 == 999) { /* a refusal now and then: markers while coalescing */
            CUdeviceptr m = 0;
            if (cuMemAllocManaged(&m, 4096, CU_MEM_ATTACH_GLOBAL) == CUDA_SUCCESS)
                abort();
        }
    }
    return finish("prog_trace flood");
}

int main(int argc, char **argv)
{
    start("prog_trace");
    context();
    const char *mode = argc > 1 ? argv[1] : "basic";
    if (strcmp(mode, "basic") == 0)
        return basic();
    if (strcmp(mode, "threads") == 0)
        return threads();
    if (strcmp(mode, "fork") == 0)
        return forked();
    if (strcmp(mode, "flood") == 0 && argc > 2)
        return flood(atol(argv[2]));
    fprintf(stderr, "usage: prog_trace basic|threads|fork|flood N\n");
    return 2;
}
