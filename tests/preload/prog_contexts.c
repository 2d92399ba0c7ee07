/* Contexts that end, and what the driver frees with them (issue 9 item 13).
 * The driver frees what a context owns when the context ends: cuMemAlloc*,
 * host-pinned, managed and registered memory, arrays. Stream-ordered and
 * VMM memory belong to no context and stay (measured on an H200). The shim
 * must drop exactly what the driver freed: otherwise VRAMGUARD_FAIL_ON=leak
 * fails falsely and /metrics stays inflated.
 *
 * In this order (driver API first: nothing else holds the primary context
 * until the runtime's first call):
 *   A  the primary context's last release ends it; an earlier one does not
 *   B  a green context holds the primary context; its destruction ends it
 *   C  cuCtxDestroy of a created context: its memory, not pool or VMM memory
 *   D  cudaDeviceReset (cuDevicePrimaryCtxReset) through the runtime
 * Each ending is compared with what the driver's free memory says. At the
 * end nothing is live: a report under VRAMGUARD_FAIL_ON=leak passes.
 * Runs on the fake driver and on a real GPU (prints "note:" lines with the
 * measured figures). */
#include <cuda.h>
#include <cuda_runtime_api.h>

#include "preload_common.h"

static long long driver_free(void)
{
    size_t f = 0, t = 0;
    return cuMemGetInfo(&f, &t) == CUDA_SUCCESS ? (long long)f : -1;
}

/* Over a context's whole life (made, used, ended) the driver's used memory
 * and the shim's charge must move alike: what the context owned went with it
 * on both sides, what outlives it (pool reserve, VMM memory) stays on both. */
static long long life_free0;
static unsigned long long life_charged0;

static void life_begin(void)
{
    life_free0 = driver_free();
    life_charged0 = usage()->charged_bytes[0];
}

static void life_end(const char *name)
{
    long long driver = life_free0 - driver_free();
    long long shim = (long long)usage()->charged_bytes[0] - (long long)life_charged0;
    printf("note: %s: over the context's life the driver used %lld bytes more, the shim charged %lld more\n", name,
           driver, shim);
    CHECK(name, driver - shim < (long long)(2 * MiB) && shim - driver < (long long)(2 * MiB),
          "driver used %lld more, shim charged %lld more", driver, shim);
}

static int primary_active(void)
{
    unsigned flags = 0;
    int active = -1;
    cuDevicePrimaryCtxGetState(0, &flags, &active);
    return active;
}

int main(void)
{
    start("prog_contexts");
    CHECK("cuInit", cuInit(0) == CUDA_SUCCESS, "failed");
    CUdevice dev = 0;
    cuDeviceGet(&dev, 0);
    /* An observer context: memory figures are read in it while others end. */
    CUcontext observer = NULL;
    CHECK("cuCtxCreate(observer)", cuCtxCreate(&observer, NULL, 0, dev) == CUDA_SUCCESS, "failed");

    /* ---- A: primary context, two references ---------------------------------- */
    life_begin();
    CUcontext primary = NULL;
    cuDevicePrimaryCtxRetain(&primary, dev);
    cuDevicePrimaryCtxRetain(&primary, dev);
    CUdeviceptr d = 0;
    void *host = NULL;
    cuCtxPushCurrent(primary);
    VRAMGUARD_PURPOSE(VRAMGUARD_WEIGHTS)
    CHECK("A: cuMemAlloc(32 MiB) in the primary context", cuMemAlloc(&d, 32 * MiB) == CUDA_SUCCESS, "failed");
    int pinned = expect_pinned_ok() && cuMemAllocHost(&host, 1 * MiB) == CUDA_SUCCESS;
    cuCtxPopCurrent(NULL);
    unsigned long long live0 = live_allocations();
    CHECK("A: cuDevicePrimaryCtxRelease (one of two)", cuDevicePrimaryCtxRelease(dev) == CUDA_SUCCESS, "failed");
    CHECK("A: still active", primary_active() == 1, "active %d", primary_active());
    CHECK("A: an earlier release drops nothing", kind_live(VRAMGUARD_KIND_DEVICE) == 32 * MiB &&
          live_allocations() == live0, "device %llu, %llu live (was %llu)", kind_live(VRAMGUARD_KIND_DEVICE),
          live_allocations(), live0);
    long long f0 = driver_free();
    unsigned long long c0 = usage()->charged_bytes[0];
    CHECK("A: the last release", cuDevicePrimaryCtxRelease(dev) == CUDA_SUCCESS, "failed");
    long long freed = driver_free() - f0;
    long long uncharged = (long long)c0 - (long long)usage()->charged_bytes[0];
    printf("note: A last primary release: driver freed %lld bytes (with the context itself), shim uncharged %lld\n",
           freed, uncharged);
    CHECK("A: the primary context ended", primary_active() == 0, "active %d", primary_active());
    CHECK("A: its allocation is dropped", kind_live(VRAMGUARD_KIND_DEVICE) == 0 &&
          kind_live(VRAMGUARD_KIND_HOST_PINNED) == 0 && live_allocations() == live0 - 1 - (unsigned)pinned,
          "device %llu, pinned %llu, %llu live (was %llu)", kind_live(VRAMGUARD_KIND_DEVICE),
          kind_live(VRAMGUARD_KIND_HOST_PINNED), live_allocations(), live0);
    CHECK("A: uncharged exactly 32 MiB, no more than the driver freed", uncharged == (long long)(32 * MiB) &&
          freed >= uncharged, "uncharged %lld, driver freed %lld", uncharged, freed);
    CHECK("A: cuMemFree of it now fails", cuMemFree(d) == CUDA_ERROR_INVALID_VALUE, "did not");
    life_end("A: the primary context's life agrees with cuMemGetInfo");

    /* ---- B: a green context holds the only reference -------------------------- */
    CUdevResource res, split[2], rest;
    memset(&res, 0, sizeof res);
    unsigned groups = 1;
    CUdevResourceDesc desc = NULL;
    CUgreenCtx green = NULL;
    CUcontext green_ctx = NULL;
    life_begin();
    if (cuDeviceGetDevResource(dev, &res, CU_DEV_RESOURCE_TYPE_SM) == CUDA_SUCCESS &&
        cuDevSmResourceSplitByCount(split, &groups, &res, &rest, 0, 8) == CUDA_SUCCESS &&
        cuDevResourceGenerateDesc(&desc, split, 1) == CUDA_SUCCESS &&
        cuGreenCtxCreate(&green, desc, dev, CU_GREEN_CTX_DEFAULT_STREAM) == CUDA_SUCCESS) {
        CHECK("B: cuCtxFromGreenCtx", cuCtxFromGreenCtx(&green_ctx, green) == CUDA_SUCCESS, "failed");
        cuCtxPushCurrent(green_ctx);
        CHECK("B: cuMemAlloc(16 MiB) in the green context", cuMemAlloc(&d, 16 * MiB) == CUDA_SUCCESS, "failed");
        cuCtxPopCurrent(NULL);
        CHECK("B: counted", kind_live(VRAMGUARD_KIND_DEVICE) == 16 * MiB, "device %llu",
              kind_live(VRAMGUARD_KIND_DEVICE));
        f0 = driver_free();
        c0 = usage()->charged_bytes[0];
        CHECK("B: cuGreenCtxDestroy", cuGreenCtxDestroy(green) == CUDA_SUCCESS, "failed");
        freed = driver_free() - f0;
        uncharged = (long long)c0 - (long long)usage()->charged_bytes[0];
        printf("note: B green context destroyed (last primary reference): driver freed %lld, shim uncharged %lld\n",
               freed, uncharged);
        CHECK("B: the primary context ended with it", primary_active() == 0, "active %d", primary_active());
        CHECK("B: the green context's allocation is dropped (it belonged to the primary context)",
              kind_live(VRAMGUARD_KIND_DEVICE) == 0 && uncharged == (long long)(16 * MiB) && freed >= uncharged,
              "device %llu, uncharged %lld, driver freed %lld", kind_live(VRAMGUARD_KIND_DEVICE), uncharged, freed);
        life_end("B: the green context's life agrees with cuMemGetInfo");
    } else {
        printf("SKIP B: no green contexts on this driver\n");
    }

    /* ---- C: a created context: its own memory goes, pool and VMM memory stay -- */
    CUcontext created = NULL;
    life_begin();
    CHECK("C: cuCtxCreate", cuCtxCreate(&created, NULL, 0, dev) == CUDA_SUCCESS, "failed");
    CUstream s = NULL;
    cuStreamCreate(&s, CU_STREAM_NON_BLOCKING);
    CUdeviceptr in_ctx = 0, pitched = 0, pooled = 0;
    size_t pitch = 0;
    CUarray arr = NULL;
    CUDA_ARRAY3D_DESCRIPTOR ad = {.Width = 1024, .Height = 1024, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 4};
    VRAMGUARD_PURPOSE(VRAMGUARD_KV_CACHE)
    CHECK("C: cuMemAlloc(24 MiB)", cuMemAlloc(&in_ctx, 24 * MiB) == CUDA_SUCCESS, "failed");
    CHECK("C: cuMemAllocPitch", cuMemAllocPitch(&pitched, &pitch, 4096, 1024, 16) == CUDA_SUCCESS, "failed");
    CHECK("C: cuArray3DCreate(16 MiB)", cuArray3DCreate(&arr, &ad) == CUDA_SUCCESS, "failed");
    pinned = expect_pinned_ok() && cuMemAllocHost(&host, 1 * MiB) == CUDA_SUCCESS;
    CUmemoryPool pool = NULL;
    CUmemPoolProps pp = {.allocType = CU_MEM_ALLOCATION_TYPE_PINNED, .location = {CU_MEM_LOCATION_TYPE_DEVICE, dev}};
    CHECK("C: cuMemPoolCreate", cuMemPoolCreate(&pool, &pp) == CUDA_SUCCESS, "failed");
    CHECK("C: cuMemAllocFromPoolAsync(8 MiB)", cuMemAllocFromPoolAsync(&pooled, 8 * MiB, pool, s) == CUDA_SUCCESS,
          "failed");
    cuStreamSynchronize(s);
    CUmemAllocationProp vp = {.type = CU_MEM_ALLOCATION_TYPE_PINNED, .location = {CU_MEM_LOCATION_TYPE_DEVICE, dev}};
    size_t gran = 0;
    cuMemGetAllocationGranularity(&gran, &vp, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
    CUmemGenericAllocationHandle vmm = 0;
    CHECK("C: cuMemCreate(8 MiB)", cuMemCreate(&vmm, 8 * MiB, &vp, 0) == CUDA_SUCCESS, "failed");
    unsigned long long ctx_bytes = 24 * MiB + (unsigned long long)pitch * 1024 + kind_live(VRAMGUARD_KIND_ARRAY);
    unsigned long long pool_before = kind_live(VRAMGUARD_KIND_POOL), vmm_before = kind_live(VRAMGUARD_KIND_VMM);
    CHECK("C: the array counted", kind_live(VRAMGUARD_KIND_ARRAY) >= 16 * MiB, "array %llu",
          kind_live(VRAMGUARD_KIND_ARRAY));
    cuCtxPushCurrent(observer); /* over the created one: its destruction must not depend on being current */
    f0 = driver_free();
    c0 = usage()->charged_bytes[0];
    live0 = live_allocations();
    CHECK("C: cuCtxDestroy", cuCtxDestroy(created) == CUDA_SUCCESS, "failed");
    freed = driver_free() - f0;
    uncharged = (long long)c0 - (long long)usage()->charged_bytes[0];
    printf("note: C cuCtxDestroy: driver freed %lld bytes (with the context itself), shim uncharged %lld "
           "(its cuMemAlloc, pitched and array memory: %llu)\n",
           freed, uncharged, ctx_bytes);
    CHECK("C: its allocations and array are dropped", kind_live(VRAMGUARD_KIND_DEVICE) == 0 &&
          kind_live(VRAMGUARD_KIND_ARRAY) == 0 && kind_live(VRAMGUARD_KIND_HOST_PINNED) == 0 &&
          live_allocations() == live0 - 3 - (unsigned)pinned,
          "device %llu array %llu pinned %llu, %llu live (was %llu)", kind_live(VRAMGUARD_KIND_DEVICE),
          kind_live(VRAMGUARD_KIND_ARRAY), kind_live(VRAMGUARD_KIND_HOST_PINNED), live_allocations(), live0);
    CHECK("C: uncharged exactly what the context owned, no more than the driver freed",
          uncharged == (long long)ctx_bytes && freed >= uncharged, "uncharged %lld (want %llu), driver freed %lld",
          uncharged, ctx_bytes, freed);
    CHECK("C: pool and VMM memory stay (no context owns them)", kind_live(VRAMGUARD_KIND_POOL) == pool_before &&
          kind_live(VRAMGUARD_KIND_VMM) == vmm_before && vmm_before == 8 * MiB && pool_before == 8 * MiB,
          "pool %llu (was %llu) vmm %llu (was %llu)", kind_live(VRAMGUARD_KIND_POOL), pool_before,
          kind_live(VRAMGUARD_KIND_VMM), vmm_before);
    life_end("C: the created context's life agrees with cuMemGetInfo (pool and VMM memory still held)");
    CHECK("C: cuMemFree of its allocation fails", cuMemFree(in_ctx) == CUDA_ERROR_INVALID_VALUE, "did not");
    CUstream s2 = NULL;
    cuStreamCreate(&s2, CU_STREAM_NON_BLOCKING);
    CHECK("C: the pool allocation is still freed normally", cuMemFreeAsync(pooled, s2) == CUDA_SUCCESS, "failed");
    cuStreamSynchronize(s2);
    cuStreamDestroy(s2);
    CHECK("C: cuMemPoolDestroy", cuMemPoolDestroy(pool) == CUDA_SUCCESS, "failed");
    CHECK("C: the VMM handle is still released normally", cuMemRelease(vmm) == CUDA_SUCCESS, "failed");
    CHECK("C: pool and VMM uncharged at their own frees", kind_live(VRAMGUARD_KIND_POOL) == 0 &&
          kind_live(VRAMGUARD_KIND_VMM) == 0, "pool %llu vmm %llu", kind_live(VRAMGUARD_KIND_POOL),
          kind_live(VRAMGUARD_KIND_VMM));
    cuCtxPopCurrent(NULL);
    /* cuCtxDestroy popped the created context only where it was on top: here
     * it stays current under the observer, and the runtime uses a context
     * made current through the driver (H200, run 15: D's cudaMalloc failed;
     * run 16: it answers cudaErrorDeviceUninitialized, 201). */
    CUcontext cur = NULL;
    cuCtxGetCurrent(&cur);
    void *probe = NULL;
    cudaError_t in_dead = cudaMalloc(&probe, 1 * MiB);
    cudaGetLastError();
    printf("note: C: after popping the observer the current context is %s; cudaMalloc there answers %d (%s)\n",
           cur == created ? "the destroyed one" : cur == NULL ? "none" : "another", (int)in_dead,
           cudaGetErrorName(in_dead));
    CHECK("C: the destroyed context is still current below the observer, and the runtime's calls fail in it",
          cur == created && in_dead == cudaErrorDeviceUninitialized && probe == NULL, "current %p (created %p), cudaMalloc %d", (void *)cur,
          (void *)created, (int)in_dead);
    CHECK("C: popping it", cuCtxPopCurrent(NULL) == CUDA_SUCCESS, "failed");

    /* ---- D: cudaDeviceReset through the runtime -------------------------------- */
    void *rt = NULL, *rt_async = NULL;
    CHECK("D: cudaSetDevice(0): the primary context current (the observer was)", cudaSetDevice(0) == cudaSuccess &&
          cuCtxGetCurrent(&cur) == CUDA_SUCCESS && cur != observer && cur != NULL, "current %p", (void *)cur);
    CHECK("D: cudaMalloc(32 MiB)", cudaMalloc(&rt, 32 * MiB) == cudaSuccess, "failed");
    CHECK("D: cudaMallocAsync(4 MiB)", cudaMallocAsync(&rt_async, 4 * MiB, 0) == cudaSuccess, "failed");
    cudaStreamSynchronize(0);
    CHECK("D: counted", kind_live(VRAMGUARD_KIND_DEVICE) == 32 * MiB && kind_live(VRAMGUARD_KIND_POOL) == 4 * MiB,
          "device %llu pool %llu", kind_live(VRAMGUARD_KIND_DEVICE), kind_live(VRAMGUARD_KIND_POOL));
    size_t rf0 = 0, rf1 = 0, rt0 = 0, rt1 = 0;
    cudaMemGetInfo(&rf0, &rt0);
    c0 = usage()->charged_bytes[0];
    CHECK("D: cudaDeviceReset", cudaDeviceReset() == cudaSuccess, "failed");
    cudaFree(0); /* the runtime makes the primary context again */
    cudaMemGetInfo(&rf1, &rt1);
    freed = (long long)rf1 - (long long)rf0;
    uncharged = (long long)c0 - (long long)usage()->charged_bytes[0];
    printf("note: D cudaDeviceReset: driver freed %lld bytes, shim uncharged %lld\n", freed, uncharged);
    CHECK("D: cudaDeviceReset: the shim uncharged what the driver freed (within 2 MiB)",
          freed - uncharged < (long long)(2 * MiB) && uncharged - freed < (long long)(2 * MiB),
          "driver freed %lld, shim uncharged %lld", freed, uncharged);
    CHECK("D: its cudaMalloc memory is dropped, its pool allocation stays",
          kind_live(VRAMGUARD_KIND_DEVICE) == 0 && kind_live(VRAMGUARD_KIND_POOL) == 4 * MiB, "device %llu pool %llu",
          kind_live(VRAMGUARD_KIND_DEVICE), kind_live(VRAMGUARD_KIND_POOL));
    CHECK("D: cudaFree of it now fails", cudaFree(rt) != cudaSuccess, "it succeeded");
    cudaGetLastError();
    CHECK("D: cudaFreeAsync of the pool allocation", cudaFreeAsync(rt_async, 0) == cudaSuccess, "failed");
    cudaStreamSynchronize(0);
    CHECK("D: nothing live", live_allocations() == 0 && snap().vram == 0, "%llu live, vram %llu",
          live_allocations(), snap().vram);

    cuCtxDestroy(observer);
    return finish("prog_contexts");
}
