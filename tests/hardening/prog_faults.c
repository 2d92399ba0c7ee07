/* Fault injection (README "Hardening"): a workload of synchronous, stream-
 * ordered, pool and VMM allocations through the driver API, run once per
 * failure position. After every step the shim's charged VRAM must equal
 * what the fake driver holds (fakecuda_charged_bytes): nothing counted that
 * the driver refused, nothing lost that it granted. A failed call is not
 * retried except frees, so that everything granted is given back and both
 * figures end at 0.
 *
 *   prog_faults            the workload once (FAKECUDA_FAIL as given)
 *   prog_faults sweep      count each entry point's calls in one run, then
 *                          run the workload again once per (entry point,
 *                          call number) with FAKECUDA_FAIL=NAME:N; prints
 *                          "swept P positions of E entry points, F failed"
 * Needs the shim (LD_PRELOAD) and the fake driver. */
#include <cuda.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload_common.h"

unsigned long long fakecuda_charged_bytes(int dev);
unsigned long long fakecuda_fault_calls(const char *name);

/* Every entry point the workload reaches, and those the shim calls itself
 * while accounting (pointer, pool and handle queries). */
static const char *const swept[] = {
    "cuMemAlloc_v2",         "cuMemAllocPitch_v2",      "cuMemFree_v2",          "cuStreamCreate",
    "cuMemAllocAsync",       "cuMemFreeAsync",          "cuStreamSynchronize",   "cuMemPoolCreate",
    "cuMemAllocFromPoolAsync", "cuMemPoolTrimTo",       "cuMemPoolDestroy",      "cuMemCreate",
    "cuMemAddressReserve",   "cuMemMap",                "cuMemSetAccess",        "cuMemUnmap",
    "cuMemRelease",          "cuMemAddressFree",        "cuStreamDestroy_v2",    "cuMemGetAllocationGranularity",
    "cuPointerGetAttribute", "cuPointerGetAttributes",  "cuMemPoolGetAttribute", "cuStreamIsCapturing",
    "cuCtxGetDevice",        "cuMemGetAllocationPropertiesFromHandle", "cuDeviceGetDefaultMemPool",
    "cuMemGetAddressRange_v2",
};
enum { N_SWEPT = sizeof(swept) / sizeof(swept[0]) };

/* The shim's own queries of pool figures: when one fails, the figure it
 * would have read stays as it was until the next query succeeds. */
static const char *const figure_queries[] = {"cuMemPoolGetAttribute", "cuPointerGetAttributes",
                                             "cuPointerGetAttribute"};

/* A failed figure query (FAKECUDA_FAIL names one) may leave one step's
 * figure stale; the next step's must be right again, and the last one. */
static int stale_allowed, stale;

static void verify_at(const char *step, int last)
{
    unsigned long long shim = usage()->charged_bytes[0], driver = fakecuda_charged_bytes(0);
    if (shim == driver) {
        stale = 0;
    } else if (stale_allowed && !stale && !last) {
        stale = 1;
        printf("stale after %s: the shim charges %llu bytes, the driver holds %llu\n", step, shim, driver);
    } else {
        failures++;
        printf("FAIL after %s: the shim charges %llu bytes, the driver holds %llu\n", step, shim, driver);
    }
}
static void verify(const char *step) { verify_at(step, 0); }

/* A free the driver refused (injected) is tried once more. */
#define FREE(call) ((call) == CUDA_SUCCESS || (call) == CUDA_SUCCESS)

static int workload(void)
{
    CUdevice dev;
    CUcontext ctx;
    if (cuInit(0) || cuDeviceGet(&dev, 0) || cuDevicePrimaryCtxRetain(&ctx, dev) || cuCtxSetCurrent(ctx)) {
        printf("FAIL CUDA did not start\n");
        return 1;
    }
    verify("start");

    /* synchronous */
    CUdeviceptr d[3] = {0};
    size_t sizes[3] = {1 << 20, 512 << 10, 3 << 20};
    for (int i = 0; i < 3; i++) {
        if (cuMemAlloc_v2(&d[i], sizes[i]) != CUDA_SUCCESS)
            d[i] = 0;
        verify("cuMemAlloc_v2");
    }
    CUdeviceptr pitched = 0;
    size_t pitch = 0;
    if (cuMemAllocPitch_v2(&pitched, &pitch, 1000, 64, 16) != CUDA_SUCCESS)
        pitched = 0;
    verify("cuMemAllocPitch_v2");
    if (d[1] && !FREE(cuMemFree_v2(d[1])))
        printf("FAIL cuMemFree_v2 refused twice\n"), failures++;
    d[1] = 0;
    verify("cuMemFree_v2");

    /* stream-ordered, from the device's default pool */
    CUstream s = NULL;
    if (cuStreamCreate(&s, 0) != CUDA_SUCCESS)
        s = NULL;
    CUdeviceptr a[3] = {0};
    for (int i = 0; i < 3 && s; i++) {
        if (cuMemAllocAsync(&a[i], (size_t)(i + 1) << 20, s) != CUDA_SUCCESS)
            a[i] = 0;
        verify("cuMemAllocAsync");
    }
    if (a[0] && !FREE(cuMemFreeAsync(a[0], s)))
        printf("FAIL cuMemFreeAsync refused twice\n"), failures++;
    a[0] = 0;
    verify("cuMemFreeAsync");
    if (s)
        (void)cuStreamSynchronize(s);
    verify("cuStreamSynchronize");

    /* a created pool */
    CUmemoryPool pool = NULL;
    CUmemPoolProps props = {.allocType = CU_MEM_ALLOCATION_TYPE_PINNED,
                            .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
    if (cuMemPoolCreate(&pool, &props) != CUDA_SUCCESS)
        pool = NULL;
    verify("cuMemPoolCreate");
    CUdeviceptr p[2] = {0};
    for (int i = 0; i < 2 && pool && s; i++) {
        if (cuMemAllocFromPoolAsync(&p[i], (size_t)(i + 1) * (768 << 10), pool, s) != CUDA_SUCCESS)
            p[i] = 0;
        verify("cuMemAllocFromPoolAsync");
    }
    if (p[1] && !FREE(cuMemFreeAsync(p[1], s)))
        printf("FAIL cuMemFreeAsync refused twice\n"), failures++;
    p[1] = 0;
    if (pool)
        (void)cuMemPoolTrimTo(pool, 0);
    verify("cuMemPoolTrimTo");

    /* VMM: two handles mapped into one reservation */
    CUmemAllocationProp vprop = {.type = CU_MEM_ALLOCATION_TYPE_PINNED,
                                 .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
    size_t gran = 0;
    if (cuMemGetAllocationGranularity(&gran, &vprop, CU_MEM_ALLOC_GRANULARITY_MINIMUM) != CUDA_SUCCESS || gran == 0)
        gran = 2 << 20;
    CUmemGenericAllocationHandle h[2] = {0};
    for (int i = 0; i < 2; i++) {
        if (cuMemCreate(&h[i], gran, &vprop, 0) != CUDA_SUCCESS)
            h[i] = 0;
        verify("cuMemCreate");
    }
    CUdeviceptr va = 0;
    if (cuMemAddressReserve(&va, 2 * gran, 0, 0, 0) != CUDA_SUCCESS)
        va = 0;
    int mapped[2] = {0};
    for (int i = 0; i < 2 && va; i++) {
        mapped[i] = h[i] && cuMemMap(va + i * gran, gran, 0, h[i], 0) == CUDA_SUCCESS;
        verify("cuMemMap");
    }
    CUmemAccessDesc acc = {.location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0},
                           .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
    if (va)
        (void)cuMemSetAccess(va, 2 * gran, &acc, 1);
    verify("cuMemSetAccess");
    /* release first, unmap second: the memory stays until the unmap */
    for (int i = 0; i < 2; i++) {
        if (h[i] && !FREE(cuMemRelease(h[i])))
            printf("FAIL cuMemRelease refused twice\n"), failures++;
        verify("cuMemRelease");
        if (mapped[i] && !FREE(cuMemUnmap(va + i * gran, gran)))
            printf("FAIL cuMemUnmap refused twice\n"), failures++;
        verify("cuMemUnmap");
    }
    if (va && !FREE(cuMemAddressFree(va, 2 * gran)))
        printf("FAIL cuMemAddressFree refused twice\n"), failures++;
    verify("cuMemAddressFree");

    /* everything back */
    for (int i = 0; i < 3; i++)
        if (d[i] && !FREE(cuMemFree_v2(d[i])))
            printf("FAIL cuMemFree_v2 refused twice\n"), failures++;
    if (pitched && !FREE(cuMemFree_v2(pitched)))
        printf("FAIL cuMemFree_v2 refused twice\n"), failures++;
    verify("the synchronous frees");
    for (int i = 0; i < 3; i++)
        if (a[i] && !FREE(cuMemFreeAsync(a[i], s)))
            printf("FAIL cuMemFreeAsync refused twice\n"), failures++;
    if (p[0] && !FREE(cuMemFreeAsync(p[0], s)))
        printf("FAIL cuMemFreeAsync refused twice\n"), failures++;
    verify("the stream-ordered frees");
    if (s && !FREE(cuStreamSynchronize(s)))
        printf("FAIL cuStreamSynchronize refused twice\n"), failures++;
    verify("the last cuStreamSynchronize");
    if (pool && !FREE(cuMemPoolDestroy(pool)))
        printf("FAIL cuMemPoolDestroy refused twice\n"), failures++;
    verify("cuMemPoolDestroy");
    if (s && !FREE(cuStreamDestroy_v2(s)))
        printf("FAIL cuStreamDestroy refused twice\n"), failures++;
    unsigned long long left = fakecuda_charged_bytes(0);
    CHECK("the driver holds nothing at the end", left == 0, "%llu bytes", left);
    verify_at("the end", 1);
    return failures ? 1 : 0;
}

/* Run this program again with FAKECUDA_FAIL=fail; its output in out. */
static int rerun(const char *fail, char *out, size_t size)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        setenv("FAKECUDA_FAIL", fail, 1);
        execl("/proc/self/exe", "prog_faults", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t n;
    while ((n = read(fds[0], out + got, size - 1 - got)) > 0 && got + (size_t)n < size - 1)
        got += (size_t)n;
    while (n > 0) { /* drain past the buffer */
        char skip[4096];
        n = read(fds[0], skip, sizeof skip);
    }
    out[got] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int sweep(void)
{
    static char out[1 << 16];
    /* Count: every name at 0 (counted, never failed). */
    char counting[2048] = "";
    for (int i = 0; i < N_SWEPT; i++)
        snprintf(counting + strlen(counting), sizeof counting - strlen(counting), "%s%s:0", i ? "," : "", swept[i]);
    setenv("PROG_FAULTS_COUNT", "1", 1);
    int rc = rerun(counting, out, sizeof out);
    unsetenv("PROG_FAULTS_COUNT");
    if (rc != 0) {
        printf("FAIL the workload fails without a fault (status %d):\n%s\n", rc, out);
        return 1;
    }
    int positions = 0, points = 0, failed = 0;
    for (int i = 0; i < N_SWEPT; i++) {
        char key[96];
        snprintf(key, sizeof key, "calls %s ", swept[i]);
        const char *line = strstr(out, key);
        int calls = line ? atoi(line + strlen(key)) : 0;
        points += calls > 0;
        for (int k = 1; k <= calls; k++) {
            static char child_out[1 << 16];
            char fail[128];
            snprintf(fail, sizeof fail, "%s:%d", swept[i], k);
            positions++;
            int status = rerun(fail, child_out, sizeof child_out);
            if (status != 0 || !strstr(child_out, "PASS the driver holds nothing at the end")) {
                failed++;
                printf("FAIL FAKECUDA_FAIL=%s: status %d\n%s\n", fail, status, child_out);
            }
        }
    }
    printf("swept %d positions of %d entry points, %d failed\n", positions, points, failed);
    return failed || positions == 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "sweep") == 0)
        return sweep();
    start("prog_faults");
    const char *fail = getenv("FAKECUDA_FAIL");
    for (size_t i = 0; fail && i < sizeof figure_queries / sizeof figure_queries[0]; i++)
        if (strncmp(fail, figure_queries[i], strlen(figure_queries[i])) == 0 && fail[strlen(figure_queries[i])] == ':')
            stale_allowed = 1;
    int rc = workload();
    if (getenv("PROG_FAULTS_COUNT"))
        for (int i = 0; i < N_SWEPT; i++)
            printf("calls %s %llu\n", swept[i], fakecuda_fault_calls(swept[i]));
    return rc;
}
