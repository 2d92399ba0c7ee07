/* Journal traffic until killed (README "Hardening", SIGKILL test): under
 * VRAMGUARD_POLICY=warn every pinned allocation is a violation, appended to
 * the journal as it happens, between device allocations and frees.
 *
 *   prog_events [N]     N rounds (default: until killed) */
#include <cuda.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : -1;
    CUdevice dev;
    CUcontext ctx;
    if (cuInit(0) || cuDeviceGet(&dev, 0) || cuDevicePrimaryCtxRetain(&ctx, dev) || cuCtxSetCurrent(ctx))
        return 2;
    for (long i = 0; rounds < 0 || i < rounds; i++) {
        void *h = NULL;
        CUdeviceptr d = 0;
        if (cuMemAllocHost_v2(&h, 4096 + (size_t)(i % 64) * 512) == CUDA_SUCCESS)
            cuMemFreeHost(h);
        if (cuMemAlloc_v2(&d, 1 << 20) == CUDA_SUCCESS)
            cuMemFree_v2(d);
    }
    return 0;
}
