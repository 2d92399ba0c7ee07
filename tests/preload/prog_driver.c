/* The driver API, linked against libcuda: exported wrappers, cuGetProcAddress
 * (with its self-lookup) and dlsym(libcuda) all count each allocation once;
 * a failed free keeps its entry; unknown frees pass through. */
#include <cuda.h>
#include <dlfcn.h>

#include "preload_common.h"

typedef CUresult (*alloc_fn)(CUdeviceptr *, size_t);
typedef CUresult (*gpa_fn)(const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *);

int main(void)
{
    start("prog_driver");
    CUdevice dev;
    CUcontext ctx;
    CHECK("cuInit", cuInit(0) == CUDA_SUCCESS, "failed");
    CHECK("cuDeviceGet", cuDeviceGet(&dev, 0) == CUDA_SUCCESS, "failed");
    CHECK("cuDevicePrimaryCtxRetain", cuDevicePrimaryCtxRetain(&ctx, dev) == CUDA_SUCCESS, "failed");
    CHECK("cuCtxSetCurrent", cuCtxSetCurrent(ctx) == CUDA_SUCCESS, "failed");
    struct snapshot s0 = snap();

    CUdeviceptr w = 0, p = 0, g = 0, g2 = 0, ds = 0;
    size_t pitch = 0;
    VRAMGUARD_PURPOSE(VRAMGUARD_WEIGHTS)
    CHECK("cuMemAlloc", cuMemAlloc(&w, 1 * MiB) == CUDA_SUCCESS, "failed");
    VRAMGUARD_PURPOSE(VRAMGUARD_KV_CACHE)
    CHECK("cuMemAllocPitch", cuMemAllocPitch(&p, &pitch, 1000, 100, 4) == CUDA_SUCCESS && pitch >= 1000, "failed");
    struct snapshot s1 = snap();
    CHECK("weights bytes", s1.purpose[VRAMGUARD_WEIGHTS] - s0.purpose[VRAMGUARD_WEIGHTS] == 1 * MiB, "got %llu",
          s1.purpose[VRAMGUARD_WEIGHTS] - s0.purpose[VRAMGUARD_WEIGHTS]);
    CHECK("pitch bytes = pitch x height", s1.purpose[VRAMGUARD_KV_CACHE] - s0.purpose[VRAMGUARD_KV_CACHE] == pitch * 100,
          "got %llu, pitch %zu", s1.purpose[VRAMGUARD_KV_CACHE] - s0.purpose[VRAMGUARD_KV_CACHE], pitch);

    /* cuGetProcAddress, then the self-lookup at 12000. */
    alloc_fn via_gpa = NULL;
    gpa_fn gpa2 = NULL;
    CUdriverProcAddressQueryResult st;
    CHECK("cuGetProcAddress(cuMemAlloc)",
          cuGetProcAddress("cuMemAlloc", (void **)&via_gpa, 12000, 0, &st) == CUDA_SUCCESS && via_gpa, "failed");
    CHECK("cuGetProcAddress(cuGetProcAddress, 12000)",
          cuGetProcAddress("cuGetProcAddress", (void **)&gpa2, 12000, 0, &st) == CUDA_SUCCESS && gpa2, "failed");
    alloc_fn via_self = NULL;
    if (gpa2)
        gpa2("cuMemAlloc", (void **)&via_self, 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &st);
    if (via_gpa && via_self) {
        struct snapshot a = snap();
        CHECK("alloc through cuGetProcAddress", via_gpa(&g, 256 * KiB) == CUDA_SUCCESS, "failed");
        CHECK("alloc through the self-looked-up cuGetProcAddress", via_self(&g2, 128 * KiB) == CUDA_SUCCESS, "failed");
        CHECK("each counted once", snap().vram - a.vram == 384 * KiB, "delta %llu", snap().vram - a.vram);
    }

    /* dlsym on the driver's handle, as static cudart, CuPy and XLA do. */
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    alloc_fn via_dlsym = h ? (alloc_fn)dlsym(h, "cuMemAlloc_v2") : NULL;
    CHECK("dlsym(libcuda, cuMemAlloc_v2)", via_dlsym != NULL, "NULL");
    if (via_dlsym) {
        struct snapshot a = snap();
        CHECK("alloc through dlsym", via_dlsym(&ds, 64 * KiB) == CUDA_SUCCESS, "failed");
        CHECK("dlsym allocation counted once", snap().vram - a.vram == 64 * KiB, "delta %llu", snap().vram - a.vram);
    }
    CHECK("dlsym of a name the shim does not wrap still works", h && dlsym(h, "cuCtxGetDevice") != NULL, "NULL");

    /* Pinned and managed memory through the driver. */
    struct snapshot v0 = snap();
    void *pin1 = NULL, *pin2 = NULL;
    CUresult r1 = cuMemAllocHost(&pin1, 1 * MiB);
    CUresult r2 = cuMemHostAlloc(&pin2, 1 * MiB, CU_MEMHOSTALLOC_PORTABLE);
    CUresult want_pin = expect_pinned_ok() ? CUDA_SUCCESS : CUDA_ERROR_NOT_PERMITTED;
    CHECK("cuMemAllocHost per policy", r1 == want_pin, "got %d want %d", r1, want_pin);
    CHECK("cuMemHostAlloc per policy", r2 == want_pin, "got %d want %d", r2, want_pin);
    CHECK("pinned bytes", snap().pinned - v0.pinned == (want_pin == CUDA_SUCCESS ? 2 * MiB : 0), "got %llu",
          snap().pinned - v0.pinned);
    CUdeviceptr man = 0;
    CUresult r3 = cuMemAllocManaged(&man, 1 * MiB, CU_MEM_ATTACH_GLOBAL);
    CUresult want_man = policy_rejects() ? CUDA_ERROR_NOT_SUPPORTED : CUDA_SUCCESS;
    CHECK("cuMemAllocManaged per policy", r3 == want_man, "got %d want %d", r3, want_man);
    unsigned want_violations = (expect_pinned_violation() ? 2u : 0u) + (expect_managed_violation() ? 1u : 0u);
    CHECK("violations counted", snap().violations - v0.violations == want_violations, "got %llu want %u",
          snap().violations - v0.violations, want_violations);

    /* A free that fails leaves the entry; an unknown free passes through. */
    struct snapshot f0 = snap();
    CHECK("cuMemFreeHost(device pointer) fails", cuMemFreeHost((void *)(uintptr_t)w) != CUDA_SUCCESS, "succeeded");
    CHECK("failed free keeps the entry", snap().vram == f0.vram, "vram %llu vs %llu", snap().vram, f0.vram);
    CHECK("cuMemFree(unknown) is the driver's answer", cuMemFree((CUdeviceptr)0x1000) != CUDA_SUCCESS, "succeeded");
    CHECK("cuMemFree(0) passes through", cuMemFree(0) == CUDA_SUCCESS, "failed");

    CUdeviceptr frees[] = {w, p, g, g2, ds};
    for (size_t i = 0; i < sizeof(frees) / sizeof(frees[0]); i++)
        if (frees[i])
            CHECK("cuMemFree", cuMemFree(frees[i]) == CUDA_SUCCESS, "failed");
    if (r1 == CUDA_SUCCESS)
        cuMemFreeHost(pin1);
    if (r2 == CUDA_SUCCESS)
        cuMemFreeHost(pin2);
    if (r3 == CUDA_SUCCESS)
        cuMemFree(man);
    struct snapshot s2 = snap();
    CHECK("all freed", s2.vram == s0.vram && s2.pinned == s0.pinned && s2.managed == s0.managed, "vram %llu vs %llu",
          s2.vram, s0.vram);
    return finish("prog_driver");
}
