/* VRAM budgets per device (VRAMGUARD_LIMIT with a DEVICE: prefix), two fake
 * devices, run by check_preload.c with VRAMGUARD_LIMIT=total=8M,1:total=4M:
 * device 0 takes the general budget, device 1 its own, each counted on its
 * own device only (allocations on one never use the other's budget). */
#include <cuda.h>

#include "preload_common.h"

static CUresult alloc_on(CUcontext ctx, CUdeviceptr *p, size_t size)
{
    cuCtxSetCurrent(ctx);
    return cuMemAlloc(p, size);
}

int main(void)
{
    start("prog_budget_devices");
    int n = 0;
    cuInit(0);
    cuDeviceGetCount(&n);
    if (n < 2) {
        printf("SKIP prog_budget_devices: %d device(s)\n", n);
        return 0;
    }
    CUdevice d0, d1;
    CUcontext c0, c1;
    cuDeviceGet(&d0, 0);
    cuDeviceGet(&d1, 1);
    cuDevicePrimaryCtxRetain(&c0, d0);
    cuDevicePrimaryCtxRetain(&c1, d1);
    CUdeviceptr a = 0, b = 0, x = 0, y = 0, z = 0;
    CHECK("device 1: 4 MiB, its own budget exactly", alloc_on(c1, &b, 4 * MiB) == CUDA_SUCCESS, "failed");
    CHECK("device 0: 8 MiB, the general budget exactly (device 1's use does not count)",
          alloc_on(c0, &a, 8 * MiB) == CUDA_SUCCESS, "failed");
    CUresult r = alloc_on(c1, &x, 4096);
    CHECK("device 1: past its 4 MiB refused with 2", r == CUDA_ERROR_OUT_OF_MEMORY, "got %d", r);
    r = alloc_on(c0, &y, 4096);
    CHECK("device 0: past 8 MiB refused with 2", r == CUDA_ERROR_OUT_OF_MEMORY, "got %d", r);
    cuCtxSetCurrent(c1);
    cuMemFree(b);
    CHECK("device 1: room again after a free", alloc_on(c1, &z, 4 * MiB) == CUDA_SUCCESS, "failed");
    cuCtxSetCurrent(c1);
    cuMemFree(z);
    cuCtxSetCurrent(c0);
    cuMemFree(a);
    return finish("prog_budget_devices");
}
