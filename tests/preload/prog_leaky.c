/* A small workload whose report is known (issue 9 item 8): 8 device
 * allocations of 1 MiB, 5 freed (3 live at exit: 3 MiB leaked), one VMM
 * allocation created, mapped, unmapped and released (nothing left), one
 * host allocation refused (one violation). Run with libmalloc_fail.so
 * failing the shim's own allocations: the program's CUDA calls must get the
 * driver's answers all the same, and the report must be either right or say
 * "unknown". */
#include <cuda.h>

#include "preload_common.h"

int main(void)
{
    start("prog_leaky");
    CUdevice dev;
    CUcontext ctx;
    CHECK("cuInit", cuInit(0) == CUDA_SUCCESS, "failed");
    cuDeviceGet(&dev, 0);
    cuDevicePrimaryCtxRetain(&ctx, dev);
    cuCtxSetCurrent(ctx);

    CUdeviceptr d[8] = {0};
    int ok = 0;
    for (int i = 0; i < 8; i++)
        VRAMGUARD_PURPOSE(i % 2 ? VRAMGUARD_WEIGHTS : VRAMGUARD_KV_CACHE)
        ok += cuMemAlloc(&d[i], 1 * MiB) == CUDA_SUCCESS;
    CHECK("8 device allocations", ok == 8, "%d succeeded", ok);
    int freed = 0;
    for (int i = 0; i < 5; i++)
        freed += cuMemFree(d[i]) == CUDA_SUCCESS;
    CHECK("5 freed", freed == 5, "%d", freed);

    CUmemAllocationProp prop = {0};
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    size_t gran = 0;
    cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
    CUmemGenericAllocationHandle h = 0;
    CUdeviceptr va = 0;
    CHECK("VMM create, reserve, map",
          cuMemCreate(&h, 4 * gran, &prop, 0) == CUDA_SUCCESS && cuMemAddressReserve(&va, 4 * gran, 0, 0, 0) ==
              CUDA_SUCCESS && cuMemMap(va, 4 * gran, 0, h, 0) == CUDA_SUCCESS,
          "failed");
    CHECK("VMM unmap, release, free the range",
          cuMemUnmap(va, 4 * gran) == CUDA_SUCCESS && cuMemRelease(h) == CUDA_SUCCESS &&
              cuMemAddressFree(va, 4 * gran) == CUDA_SUCCESS,
          "failed");

    void *host = NULL;
    CHECK("host memory refused", cuMemAllocHost(&host, 4096) == CUDA_ERROR_NOT_PERMITTED, "not refused");
    return finish("prog_leaky");
}
