/* The legacy 32-bit entry points (version 2000): unsigned int sizes and
 * 32-bit CUdeviceptr_v1 out-parameters. A canary word beside each
 * out-parameter proves nothing writes 64 bits. The real 580 driver answers
 * CUDA_ERROR_INVALID_CONTEXT to legacy cuMemAlloc in a 64-bit process; the
 * answer is passed through either way. */
#include <cuda.h>
#include <dlfcn.h>
#include <stdint.h>

#include "preload_common.h"

typedef CUresult (*legacy_alloc_fn)(uint32_t *, unsigned int);
typedef CUresult (*legacy_pitch_fn)(uint32_t *, unsigned int *, unsigned int, unsigned int, unsigned int);
typedef CUresult (*legacy_free_fn)(uint32_t);
typedef CUresult (*legacy_host_fn)(void **, unsigned int);

#define CANARY 0xC0FFEE42u

int main(void)
{
    start("prog_legacy");
    CUdevice dev;
    CUcontext ctx;
    cuInit(0);
    cuDeviceGet(&dev, 0);
    cuDevicePrimaryCtxRetain(&ctx, dev);
    cuCtxSetCurrent(ctx);

    legacy_alloc_fn la = NULL, la_dlsym = NULL;
    legacy_pitch_fn lp = NULL;
    legacy_free_fn lf = NULL;
    legacy_host_fn lh = NULL;
    void *v2 = NULL;
    CUdriverProcAddressQueryResult st;
    cuGetProcAddress("cuMemAlloc", (void **)&la, 2000, 0, &st);
    cuGetProcAddress("cuMemAlloc", &v2, 3020, 0, &st);
    cuGetProcAddress("cuMemAllocPitch", (void **)&lp, 2000, 0, &st);
    cuGetProcAddress("cuMemFree", (void **)&lf, 2000, 0, &st);
    cuGetProcAddress("cuMemAllocHost", (void **)&lh, 2000, 0, &st);
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    la_dlsym = h ? (legacy_alloc_fn)dlsym(h, "cuMemAlloc") : NULL;
    CHECK("legacy entry points found", la && lp && lf && lh && la_dlsym, "missing");
    CHECK("version 2000 and 3020 give different functions", (void *)la != v2, "same pointer");
    CHECK("cuGetProcAddress and dlsym agree on the legacy wrapper", (void *)la == (void *)la_dlsym, "differ");
    if (!(la && lp && lf && lh))
        return finish("prog_legacy");

    struct { uint32_t ptr; uint32_t canary; } a = {0, CANARY};
    struct snapshot s0 = snap();
    CUresult r = la(&a.ptr, 1 * MiB);
    CHECK("legacy cuMemAlloc canary intact", a.canary == CANARY, "canary 0x%x", a.canary);
    if (r == CUDA_SUCCESS) {
        printf("note: legacy cuMemAlloc succeeded (ptr 0x%x)\n", a.ptr);
        CHECK("legacy allocation counted", snap().vram - s0.vram == 1 * MiB, "delta %llu", snap().vram - s0.vram);
        CHECK("legacy cuMemFree", lf(a.ptr) == CUDA_SUCCESS, "failed");
        CHECK("legacy free uncounted", snap().vram == s0.vram, "vram %llu", snap().vram);
    } else {
        printf("note: legacy cuMemAlloc answered %d (passed through)\n", r);
        CHECK("legacy failure: out-parameter untouched", a.ptr == 0, "ptr 0x%x", a.ptr);
        CHECK("legacy failure: nothing counted", snap().vram == s0.vram, "vram %llu", snap().vram);
    }

    struct { uint32_t ptr; uint32_t canary; unsigned int pitch; uint32_t canary2; } b = {0, CANARY, 0, CANARY};
    r = lp(&b.ptr, &b.pitch, 1000, 10, 4);
    CHECK("legacy cuMemAllocPitch canaries intact", b.canary == CANARY && b.canary2 == CANARY, "0x%x 0x%x", b.canary,
          b.canary2);
    if (r == CUDA_SUCCESS) {
        CHECK("legacy pitch counted", snap().vram - s0.vram == (unsigned long long)b.pitch * 10, "delta %llu",
              snap().vram - s0.vram);
        lf(b.ptr);
    }

    struct { void *ptr; uint32_t canary; } c = {NULL, CANARY};
    struct snapshot p0 = snap();
    r = lh(&c.ptr, 1 * MiB);
    CHECK("legacy cuMemAllocHost canary intact", c.canary == CANARY, "canary 0x%x", c.canary);
    CHECK("legacy cuMemAllocHost per policy", r == (expect_pinned_ok() ? CUDA_SUCCESS : CUDA_ERROR_NOT_PERMITTED),
          "got %d", r);
    if (r == CUDA_SUCCESS) {
        CHECK("legacy pinned counted", snap().pinned - p0.pinned == 1 * MiB, "delta %llu", snap().pinned - p0.pinned);
        cuMemFreeHost(c.ptr);
    }
    CHECK("all freed", snap().vram == s0.vram && snap().pinned == p0.pinned, "left over");
    return finish("prog_legacy");
}
