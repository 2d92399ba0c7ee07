/* The runtime API (cudaMalloc & co.), built with static cudart (nvcc's
 * default) and with shared cudart: purposes, scope macro exits, the
 * cudaGetDriverEntryPoint path, refused managed and pinned memory. */
#include <cuda.h>
#include <cuda_runtime_api.h>

#include "preload_common.h"

typedef CUresult (*alloc_fn)(CUdeviceptr *, size_t);
typedef CUresult (*free_fn)(CUdeviceptr);

static void *scope_break(void)
{
    void *p = NULL;
    VRAMGUARD_PURPOSE(VRAMGUARD_KV_CACHE)
    {
        break;
    }
    cudaMalloc(&p, 64 * KiB); /* after the scope: unknown */
    return p;
}

static cudaError_t scope_return(void **p)
{
    VRAMGUARD_PURPOSE(VRAMGUARD_WEIGHTS)
    {
        return cudaMalloc(p, 64 * KiB); /* weights, then popped on return */
    }
    return cudaErrorUnknown;
}

static void *scope_goto(void)
{
    void *p = NULL;
    VRAMGUARD_PURPOSE(VRAMGUARD_INTERMEDIATE)
    {
        goto out;
    }
out:
    cudaMalloc(&p, 64 * KiB); /* unknown */
    return p;
}

int main(void)
{
    start("prog_runtime");
    CHECK("cudaFree(0) initialises", cudaFree(0) == cudaSuccess, "cudaFree(0) failed");
    struct snapshot s0 = snap();

    void *w[3] = {0}, *kv = NULL, *tmp = NULL, *untagged = NULL, *ret = NULL;
    VRAMGUARD_PURPOSE_LABEL(VRAMGUARD_WEIGHTS, "layers")
    {
        for (int i = 0; i < 3; i++)
            CHECK("cudaMalloc weights", cudaMalloc(&w[i], 1 * MiB) == cudaSuccess, "failed");
    }
    VRAMGUARD_PURPOSE(VRAMGUARD_KV_CACHE)
    CHECK("cudaMalloc kv", cudaMalloc(&kv, 2 * MiB) == cudaSuccess, "failed");
    vramguard_purpose_push(VRAMGUARD_INTERMEDIATE, "scratch");
    CHECK("cudaMalloc intermediate", cudaMalloc(&tmp, 256 * KiB) == cudaSuccess, "failed");
    vramguard_purpose_pop();
    CHECK("cudaMalloc untagged", cudaMalloc(&untagged, 512 * KiB) == cudaSuccess, "failed");
    void *after_break = scope_break();
    CHECK("scope_return", scope_return(&ret) == cudaSuccess, "failed");
    void *after_return = NULL;
    cudaMalloc(&after_return, 64 * KiB);
    void *after_goto = scope_goto();

    struct snapshot s1 = snap();
    CHECK("weights bytes", s1.purpose[VRAMGUARD_WEIGHTS] - s0.purpose[VRAMGUARD_WEIGHTS] == 3 * MiB + 64 * KiB,
          "got %llu", s1.purpose[VRAMGUARD_WEIGHTS] - s0.purpose[VRAMGUARD_WEIGHTS]);
    CHECK("kv_cache bytes", s1.purpose[VRAMGUARD_KV_CACHE] - s0.purpose[VRAMGUARD_KV_CACHE] == 2 * MiB,
          "got %llu", s1.purpose[VRAMGUARD_KV_CACHE] - s0.purpose[VRAMGUARD_KV_CACHE]);
    CHECK("intermediate bytes",
          s1.purpose[VRAMGUARD_INTERMEDIATE] - s0.purpose[VRAMGUARD_INTERMEDIATE] == 256 * KiB, "got %llu",
          s1.purpose[VRAMGUARD_INTERMEDIATE] - s0.purpose[VRAMGUARD_INTERMEDIATE]);
    CHECK("unknown bytes (break, return, goto left no purpose behind)",
          s1.purpose[VRAMGUARD_UNKNOWN] - s0.purpose[VRAMGUARD_UNKNOWN] == 512 * KiB + 3 * 64 * KiB, "got %llu",
          s1.purpose[VRAMGUARD_UNKNOWN] - s0.purpose[VRAMGUARD_UNKNOWN]);
    CHECK("vram total", s1.vram - s0.vram == 5 * MiB + 768 * KiB + 4 * 64 * KiB, "got %llu", s1.vram - s0.vram);

    void *big = NULL;
    AGREES_WITH_MEMGETINFO("cudaMalloc(64 MiB) agrees with cudaMemGetInfo", cudaMemGetInfo,
                           cudaMalloc(&big, 64 * MiB));
    cudaFree(big);

    /* The driver entry point through cudart: counted once, at the driver. */
    alloc_fn drv_alloc = NULL;
    free_fn drv_free = NULL;
    enum cudaDriverEntryPointQueryResult q;
    CHECK("cudaGetDriverEntryPointByVersion(cuMemAlloc)",
          cudaGetDriverEntryPointByVersion("cuMemAlloc", (void **)&drv_alloc, 12000, cudaEnableDefault, &q) ==
                  cudaSuccess && drv_alloc != NULL,
          "lookup failed");
    cudaGetDriverEntryPointByVersion("cuMemFree", (void **)&drv_free, 12000, cudaEnableDefault, &q);
    CUdeviceptr d = 0;
    if (drv_alloc && drv_free) {
        struct snapshot a = snap();
        CHECK("entry-point cuMemAlloc", drv_alloc(&d, 128 * KiB) == CUDA_SUCCESS, "failed");
        struct snapshot b = snap();
        CHECK("entry-point allocation counted once", b.vram - a.vram == 128 * KiB, "delta %llu", b.vram - a.vram);
        CHECK("entry-point cuMemFree", drv_free(d) == CUDA_SUCCESS, "failed");
        CHECK("entry-point free uncounted", snap().vram == a.vram, "vram %llu vs %llu", snap().vram, a.vram);
    }

    /* Managed memory. */
    struct snapshot m0 = snap();
    void *m = NULL;
    cudaError_t rm = cudaMallocManaged(&m, 1 * MiB, cudaMemAttachGlobal);
    if (policy_rejects()) {
        CHECK("cudaMallocManaged refused with cudaErrorNotSupported", rm == cudaErrorNotSupported, "got %d", rm);
        CHECK("refused managed not counted", snap().managed == m0.managed, "counted");
        cudaGetLastError();
    } else {
        CHECK("cudaMallocManaged let through", rm == cudaSuccess, "got %d", rm);
        CHECK("managed counted as managed", snap().managed - m0.managed == 1 * MiB, "got %llu",
              snap().managed - m0.managed);
    }
    CHECK("managed violation counted", snap().violations - m0.violations == (expect_managed_violation() ? 1u : 0u),
          "violations %llu", snap().violations - m0.violations);

    /* Host-pinned memory. */
    struct snapshot p0 = snap();
    void *h = NULL;
    cudaError_t rh = cudaMallocHost(&h, 1 * MiB);
    if (expect_pinned_ok()) {
        CHECK("cudaMallocHost let through", rh == cudaSuccess, "got %d", rh);
        CHECK("pinned counted as host_pinned", snap().pinned - p0.pinned == 1 * MiB, "got %llu",
              snap().pinned - p0.pinned);
    } else {
        CHECK("cudaMallocHost refused with cudaErrorNotPermitted", rh == cudaErrorNotPermitted, "got %d", rh);
        cudaGetLastError();
    }
    CHECK("pinned violation counted", snap().violations - p0.violations == (expect_pinned_violation() ? 1u : 0u),
          "violations %llu", snap().violations - p0.violations);

    /* Residency: everything live that is not device memory is an offender. */
    int expected_offenders = (rm == cudaSuccess) + (rh == cudaSuccess);
    CHECK("vramguard_verify_residency", vramguard_verify_residency() == expected_offenders, "expected %d",
          expected_offenders);

    char text[8192];
    size_t need = vramguard_report(text, sizeof(text));
    CHECK("vramguard_report names the purposes", need > 0 && strstr(text, "weights") && strstr(text, "kv_cache"),
          "report: %.200s", text);

    if (rm == cudaSuccess)
        cudaFree(m);
    if (rh == cudaSuccess)
        cudaFreeHost(h);
    void *all[] = {w[0], w[1], w[2], kv, tmp, untagged, after_break, ret, after_return, after_goto};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        cudaFree(all[i]);
    struct snapshot s2 = snap();
    CHECK("all freed", s2.vram == s0.vram && s2.pinned == s0.pinned && s2.managed == s0.managed,
          "vram %llu (was %llu)", s2.vram, s0.vram);
    return finish("prog_runtime");
}
