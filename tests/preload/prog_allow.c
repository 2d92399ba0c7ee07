/* Allowances, audit then suggest (issue 8): the program of the CLI's round
 * trip (check_preload.c, allow_round_trip). It asks the driver for host and
 * managed memory from two calling modules:
 *
 *   prog_allow            cuMemHostAlloc 4 B, cuMemAllocHost 3000 B,
 *                         cuMemHostRegister 8 KiB, cuMemAllocManaged 256 KiB
 *   liballow_helper.so    cuMemHostAlloc 64 KiB, 64 KiB, 1.5 MiB
 *                         (this file built with -DALLOW_HELPER)
 *
 * and with the argument "big" one more cuMemHostAlloc of 64 MiB from
 * prog_allow. It does not judge the policy: it prints what each call
 * returned, frees what it got and exits 0 (2 when the shim is not loaded, 1
 * when the driver cannot be set up), so that `vramguard run` decides from the
 * shim's reports whether the run passes. */
#include <cuda.h>
#include <stddef.h>

#ifdef ALLOW_HELPER

__attribute__((visibility("default"))) CUresult allow_helper_pinned(size_t size, void **out);

/* Not a tail call: the driver call's return address stays in this module. */
__attribute__((noinline)) CUresult allow_helper_pinned(size_t size, void **out)
{
    CUresult r = cuMemHostAlloc(out, size, 0);
    if (r != CUDA_SUCCESS)
        *out = NULL;
    return r;
}

#else

#include "preload_common.h"

CUresult allow_helper_pinned(size_t size, void **out);

static int refused;

static CUresult said(const char *what, unsigned long long size, CUresult r)
{
    printf("prog_allow: %s of %llu bytes: %d%s\n", what, size, (int)r, r == CUDA_SUCCESS ? "" : " (refused)");
    if (r != CUDA_SUCCESS)
        refused++;
    return r;
}

int main(int argc, char **argv)
{
    int big = argc > 1 && strcmp(argv[1], "big") == 0;
    start("prog_allow");
    CUdevice dev;
    CUcontext ctx;
    CHECK("cuInit", cuInit(0) == CUDA_SUCCESS, "failed");
    CHECK("cuDeviceGet", cuDeviceGet(&dev, 0) == CUDA_SUCCESS, "failed");
    CHECK("cuDevicePrimaryCtxRetain", cuDevicePrimaryCtxRetain(&ctx, dev) == CUDA_SUCCESS, "failed");
    CHECK("cuCtxSetCurrent", cuCtxSetCurrent(ctx) == CUDA_SUCCESS, "failed");
    if (failures)
        return finish("prog_allow");

    void *pinned[6] = {NULL};
    int n = 0;
    if (said("cuMemHostAlloc", 4, cuMemHostAlloc(&pinned[n], 4, 0)) == CUDA_SUCCESS)
        n++;
    if (said("cuMemAllocHost", 3000, cuMemAllocHost(&pinned[n], 3000)) == CUDA_SUCCESS)
        n++;
    static const size_t helper_sizes[] = {64 * KiB, 64 * KiB, 1536 * KiB};
    for (size_t i = 0; i < sizeof(helper_sizes) / sizeof(helper_sizes[0]); i++)
        if (said("liballow_helper.so cuMemHostAlloc", helper_sizes[i],
                 allow_helper_pinned(helper_sizes[i], &pinned[n])) == CUDA_SUCCESS)
            n++;
    if (big && said("cuMemHostAlloc", 64 * MiB, cuMemHostAlloc(&pinned[n], 64 * MiB, 0)) == CUDA_SUCCESS)
        n++;

    void *buffer = aligned_alloc(4096, 8 * KiB);
    int registered = buffer && said("cuMemHostRegister", 8 * KiB, cuMemHostRegister(buffer, 8 * KiB, 0)) == CUDA_SUCCESS;
    CUdeviceptr managed = 0;
    said("cuMemAllocManaged", 256 * KiB, cuMemAllocManaged(&managed, 256 * KiB, CU_MEM_ATTACH_GLOBAL));

    for (int i = 0; i < n; i++)
        CHECK("cuMemFreeHost", cuMemFreeHost(pinned[i]) == CUDA_SUCCESS, "failed");
    if (registered)
        CHECK("cuMemHostUnregister", cuMemHostUnregister(buffer) == CUDA_SUCCESS, "failed");
    free(buffer);
    if (managed)
        CHECK("cuMemFree(managed)", cuMemFree(managed) == CUDA_SUCCESS, "failed");
    printf("prog_allow: %d refused\n", refused);
    return finish("prog_allow");
}

#endif
