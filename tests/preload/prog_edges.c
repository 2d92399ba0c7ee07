/* The protocol's edge cases (issue 9 item 18), one per run, chosen by
 * PROG_CASE (fake driver only: they need its test hooks):
 *   nested      a host allocation (and free) made inside another driver call
 *               on the same thread, as a CUPTI callback or a tool's hook
 *               does: decided and tracked like any other (fake driver's
 *               fakecuda_set_alloc_callback runs inside cuMemAlloc_v2)
 *   host_oom    a host-pinned allocation the driver refuses for lack of
 *               host memory is no device out-of-memory
 *   pool_slots  more than 255 pools in a process's lifetime: destroyed
 *               pools' slots are reused, a pool made after them is known
 *   pool_refused a stream-ordered allocation refused after the driver made
 *               it (a pool the registry could not hold): freed, and the
 *               caller's pointer is 0, not the freed address
 *   vmm_nomem   the shim's own memory runs out while it records a VMM
 *               handle or mapping (libmalloc_spy.so preloaded after the
 *               shim fails its next realloc/malloc): the handle is still
 *               uncharged when the driver frees it */
#include <cuda.h>
#include <dlfcn.h>
#include <stdint.h>

#include "preload_common.h"

static const char *which;

/* ---- nested ------------------------------------------------------------------ */

static void *nested_buf;
static CUresult nested_alloc_result = (CUresult)-1, nested_free_result = (CUresult)-1;
static int nested_free_next;

static void inside_cuMemAlloc(void *arg)
{
    (void)arg;
    if (nested_free_next) {
        nested_free_result = cuMemFreeHost(nested_buf);
        nested_free_next = 0;
    } else {
        nested_alloc_result = cuMemAllocHost(&nested_buf, 4096);
    }
}

static void nested(void)
{
    void (*set_callback)(void (*)(void *), void *) =
        (void (*)(void (*)(void *), void *))dlsym(RTLD_DEFAULT, "fakecuda_set_alloc_callback");
    CHECK("the fake driver's callback hook", set_callback != NULL, "not found");
    if (!set_callback)
        return;
    struct snapshot s0 = snap();
    set_callback(inside_cuMemAlloc, NULL);
    CUdeviceptr d = 0;
    CHECK("cuMemAlloc (its callback asks for host memory)", cuMemAlloc(&d, 1 * MiB) == CUDA_SUCCESS, "failed");
    set_callback(NULL, NULL);
    CUresult want = expect_pinned_ok() ? CUDA_SUCCESS : CUDA_ERROR_NOT_PERMITTED;
    CHECK("the nested cuMemAllocHost is decided by the policy", nested_alloc_result == want, "got %d want %d",
          nested_alloc_result, want);
    struct snapshot s1 = snap();
    CHECK("... a violation when not allowed", s1.violations - s0.violations == (expect_pinned_violation() ? 1u : 0u),
          "%llu violations", s1.violations - s0.violations);
    CHECK("... tracked when let through", s1.pinned - s0.pinned == (nested_alloc_result == CUDA_SUCCESS ? 4096u : 0u),
          "pinned %llu", s1.pinned - s0.pinned);
    CHECK("the outer allocation counted once", s1.vram - s0.vram == 1 * MiB, "vram %llu", s1.vram - s0.vram);
    if (nested_alloc_result == CUDA_SUCCESS) {
        nested_free_next = 1;
        set_callback(inside_cuMemAlloc, NULL);
        CUdeviceptr d2 = 0;
        cuMemAlloc(&d2, 1 * MiB);
        set_callback(NULL, NULL);
        CHECK("a nested cuMemFreeHost", nested_free_result == CUDA_SUCCESS, "got %d", nested_free_result);
        CHECK("... takes it out of the table", snap().pinned == s0.pinned, "pinned %llu", snap().pinned);
        cuMemFree(d2);
    }
    cuMemFree(d);
}

/* ---- host_oom ----------------------------------------------------------------- */

static void host_oom(void)
{
    void *p = NULL;
    CUresult r = cuMemHostAlloc(&p, SIZE_MAX / 4, 0);
    CHECK("a host allocation too large for the host: OUT_OF_MEMORY", r == CUDA_ERROR_OUT_OF_MEMORY, "got %d", r);
    r = cuMemAllocHost(&p, SIZE_MAX / 4);
    CHECK("again through cuMemAllocHost", r == CUDA_ERROR_OUT_OF_MEMORY, "got %d", r);
    CHECK("no device OOM counted", usage()->oom_events == 0, "%llu OOM events", (unsigned long long)usage()->oom_events);
    CUdeviceptr d = 0;
    r = cuMemAlloc(&d, 2ull << 40);
    CHECK("a device allocation beyond the device: OUT_OF_MEMORY", r == CUDA_ERROR_OUT_OF_MEMORY, "got %d", r);
    CHECK("... one device OOM", usage()->oom_events == 1, "%llu OOM events", (unsigned long long)usage()->oom_events);
}

/* ---- pools ----------------------------------------------------------------------- */

enum { MANY = 255 };

static CUmemoryPool device_pool(void)
{
    CUmemPoolProps pp = {.allocType = CU_MEM_ALLOCATION_TYPE_PINNED, .location = {CU_MEM_LOCATION_TYPE_DEVICE, 0}};
    CUmemoryPool p = NULL;
    return cuMemPoolCreate(&p, &pp) == CUDA_SUCCESS ? p : NULL;
}

static void pool_slots(void)
{
    static CUmemoryPool pools[MANY];
    int made = 0;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < MANY; i++)
            made += (pools[i] = device_pool()) != NULL;
        for (int i = 0; i < MANY; i++)
            cuMemPoolDestroy(pools[i]);
    }
    CHECK("510 pools made and destroyed", made == 2 * MANY, "%d", made);
    /* A pool made now keeps its cache charged only if the shim knows it. */
    CUmemoryPool p = device_pool();
    cuuint64_t keep = 64 * MiB;
    cuMemPoolSetAttribute(p, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &keep);
    CUstream s = NULL;
    cuStreamCreate(&s, CU_STREAM_NON_BLOCKING);
    CUdeviceptr d = 0;
    CHECK("an allocation from the 511th pool", cuMemAllocFromPoolAsync(&d, 8 * MiB, p, s) == CUDA_SUCCESS, "failed");
    cuMemFreeAsync(d, s);
    cuStreamSynchronize(s);
    const struct vramguard_usage *u = usage();
    CHECK("its reserve is charged as pool cache (the pool is known)",
          u->pool_reserved_bytes[0] >= 8 * MiB && u->charged_bytes[0] >= 8 * MiB, "reserve %llu charged %llu",
          (unsigned long long)u->pool_reserved_bytes[0], (unsigned long long)u->charged_bytes[0]);
    cuMemPoolDestroy(p);
    cuStreamDestroy(s);
}

static void pool_refused(void)
{
    /* Fill the registry with live pools: a host pool made then is unknown. */
    static CUmemoryPool pools[MANY];
    for (int i = 0; i < MANY; i++)
        pools[i] = device_pool();
    CUmemPoolProps hp = {.allocType = CU_MEM_ALLOCATION_TYPE_PINNED, .location = {CU_MEM_LOCATION_TYPE_HOST, 0}};
    CUmemoryPool host = NULL;
    CHECK("a host pool (VRAMGUARD_ALLOW=pinned:total<=1M lets a pool through)", cuMemPoolCreate(&host, &hp) == CUDA_SUCCESS,
          "failed");
    unsigned long long (*live_ranges)(void) =
        (unsigned long long (*)(void))dlsym(RTLD_DEFAULT, "fakecuda_live_ranges");
    unsigned long long before = live_ranges ? live_ranges() : 0;
    CUstream s = NULL;
    cuStreamCreate(&s, CU_STREAM_NON_BLOCKING);
    CUdeviceptr d = 0x1234;
    CUresult r = cuMemAllocFromPoolAsync(&d, 2 * MiB, host, s);
    cuStreamSynchronize(s);
    CHECK("2 MiB from it refused once known to be host memory", r == CUDA_ERROR_NOT_PERMITTED, "got %d", r);
    CHECK("... the pointer the caller gets is 0, not the freed address", d == 0, "0x%llx", (unsigned long long)d);
    CHECK("... and the driver's allocation was freed", !live_ranges || live_ranges() == before, "%llu ranges (was %llu)",
          live_ranges ? live_ranges() : 0, before);
    cuMemPoolDestroy(host);
    for (int i = 0; i < MANY; i++)
        cuMemPoolDestroy(pools[i]);
    cuStreamDestroy(s);
}

/* ---- vmm_nomem --------------------------------------------------------------------- */

static void vmm_nomem(void)
{
    void (*fail_reallocs)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "spy_fail_reallocs");
    void (*fail_mallocs)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "spy_fail_mallocs");
    CHECK("libmalloc_spy.so preloaded", fail_reallocs && fail_mallocs, "not found");
    if (!fail_reallocs || !fail_mallocs)
        return;
    CUmemAllocationProp vp = {.type = CU_MEM_ALLOCATION_TYPE_PINNED, .location = {CU_MEM_LOCATION_TYPE_DEVICE, 0}};
    CUmemGenericAllocationHandle h = 0;
    /* 1. recording the handle fails */
    fail_reallocs(1);
    CHECK("cuMemCreate while the shim's memory runs out", cuMemCreate(&h, 2 * MiB, &vp, 0) == CUDA_SUCCESS, "failed");
    fail_reallocs(0);
    CHECK("cuMemRelease", cuMemRelease(h) == CUDA_SUCCESS, "failed");
    CHECK("1: nothing stays charged after the driver freed it", kind_bytes(usage(), VRAMGUARD_KIND_VMM) == 0,
          "vmm %llu", kind_bytes(usage(), VRAMGUARD_KIND_VMM));
    /* 2. recording a mapping fails */
    enum { N = 65 };
    CUdeviceptr va = 0;
    CHECK("cuMemAddressReserve", cuMemAddressReserve(&va, N * 2 * MiB, 0, 0, 0) == CUDA_SUCCESS, "failed");
    CHECK("cuMemCreate", cuMemCreate(&h, 2 * MiB, &vp, 0) == CUDA_SUCCESS, "failed");
    fail_reallocs(1);
    CHECK("cuMemMap while the shim's memory runs out", cuMemMap(va, 2 * MiB, 0, h, 0) == CUDA_SUCCESS, "failed");
    fail_reallocs(0);
    cuMemRelease(h);
    cuMemUnmap(va, 2 * MiB);
    CHECK("2: nothing stays charged after the driver freed it", kind_bytes(usage(), VRAMGUARD_KIND_VMM) == 0,
          "vmm %llu", kind_bytes(usage(), VRAMGUARD_KIND_VMM));
    /* 3. an unmap of more mappings than the shim keeps on its stack, its
     * memory running out */
    CHECK("cuMemCreate", cuMemCreate(&h, 2 * MiB, &vp, 0) == CUDA_SUCCESS, "failed");
    int mapped = 0;
    for (int i = 0; i < N; i++)
        mapped += cuMemMap(va + (CUdeviceptr)i * 2 * MiB, 2 * MiB, 0, h, 0) == CUDA_SUCCESS;
    CHECK("65 mappings of one handle", mapped == N, "%d", mapped);
    cuMemRelease(h);
    CHECK("... charged while mapped", kind_bytes(usage(), VRAMGUARD_KIND_VMM) == 2 * MiB, "vmm %llu",
          kind_bytes(usage(), VRAMGUARD_KIND_VMM));
    fail_mallocs(1);
    CHECK("cuMemUnmap of all 65 while the shim's memory runs out", cuMemUnmap(va, N * 2 * MiB) == CUDA_SUCCESS,
          "failed");
    fail_mallocs(0);
    CHECK("3: uncharged when the last mapping went", kind_bytes(usage(), VRAMGUARD_KIND_VMM) == 0, "vmm %llu",
          kind_bytes(usage(), VRAMGUARD_KIND_VMM));
    cuMemAddressFree(va, N * 2 * MiB);
}

int main(void)
{
    start("prog_edges");
    which = env_or("PROG_CASE", "");
    CUcontext ctx = NULL;
    CHECK("cuInit", cuInit(0) == CUDA_SUCCESS, "failed");
    cuDevicePrimaryCtxRetain(&ctx, 0);
    cuCtxSetCurrent(ctx);
    if (!strcmp(which, "nested"))
        nested();
    else if (!strcmp(which, "host_oom"))
        host_oom();
    else if (!strcmp(which, "pool_slots"))
        pool_slots();
    else if (!strcmp(which, "pool_refused"))
        pool_refused();
    else if (!strcmp(which, "vmm_nomem"))
        vmm_nomem();
    else
        CHECK("PROG_CASE", 0, "unknown case '%s'", which);
    return finish("prog_edges");
}
