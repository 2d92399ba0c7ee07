/* Two devices: every allocation is recorded on the device it was made on
 * (from the context, the pool or the VMM location), per-device totals are
 * exact, and memory of device 0 freed on a device-1 stream (from a thread
 * with no context of device 0) is uncharged from device 0. Needs 2 devices. */
#include <cuda.h>
#include <pthread.h>

#include "preload_common.h"

static unsigned long long on(const struct vramguard_usage *u, int d, int kind)
{
    unsigned long long sum = 0;
    for (int p = 0; p < VRAMGUARD_PURPOSE_SLOTS; p++)
        sum += u->cell[d][kind][p].live_bytes;
    return sum;
}

static CUdeviceptr to_free;
static CUstream stream1;

static void *free_elsewhere(void *arg)
{
    (void)arg;
    /* This thread has only device 1's context current. */
    CUcontext c1;
    CUdevice d1;
    cuDeviceGet(&d1, 1);
    cuDevicePrimaryCtxRetain(&c1, d1);
    cuCtxSetCurrent(c1);
    CHECK("cuMemFreeAsync of device-0 memory on a device-1 stream", cuMemFreeAsync(to_free, stream1) == CUDA_SUCCESS,
          "failed");
    cuStreamSynchronize(stream1);
    return NULL;
}

int main(void)
{
    start("prog_multi");
    int n = 0;
    cuInit(0);
    cuDeviceGetCount(&n);
    if (n < 2) {
        printf("SKIP prog_multi: %d device(s)\n", n);
        return 0;
    }
    CUcontext c[2];
    CUdevice dv[2];
    for (int i = 0; i < 2; i++) {
        cuDeviceGet(&dv[i], i);
        cuDevicePrimaryCtxRetain(&c[i], dv[i]);
    }
    CUdeviceptr a0 = 0, a1 = 0, p0 = 0;
    cuCtxSetCurrent(c[0]);
    CHECK("cuMemAlloc on device 0", cuMemAlloc(&a0, 3 * MiB) == CUDA_SUCCESS, "failed");
    CUstream s0;
    cuStreamCreate(&s0, CU_STREAM_NON_BLOCKING);
    CHECK("cuMemAllocAsync on device 0", cuMemAllocAsync(&p0, 2 * MiB, s0) == CUDA_SUCCESS, "failed");
    cuStreamSynchronize(s0);
    cuCtxSetCurrent(c[1]);
    CHECK("cuMemAlloc on device 1", cuMemAlloc(&a1, 5 * MiB) == CUDA_SUCCESS, "failed");
    cuStreamCreate(&stream1, CU_STREAM_NON_BLOCKING);

    CUmemAllocationProp prop = {0};
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = 0; /* device 0's memory, created while device 1 is current */
    size_t gran = 0;
    cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
    CUmemGenericAllocationHandle h;
    CHECK("cuMemCreate on device 0 from device 1's context", cuMemCreate(&h, gran, &prop, 0) == CUDA_SUCCESS, "failed");

    const struct vramguard_usage *u = usage();
    CHECK("two devices seen", u->device_count >= 2, "device_count %u", u->device_count);
    CHECK("device 0: 3 MiB device", on(u, 0, VRAMGUARD_KIND_DEVICE) == 3 * MiB, "got %llu", on(u, 0, VRAMGUARD_KIND_DEVICE));
    CHECK("device 0: 2 MiB pool", on(u, 0, VRAMGUARD_KIND_POOL) == 2 * MiB, "got %llu", on(u, 0, VRAMGUARD_KIND_POOL));
    CHECK("device 0: the VMM handle", on(u, 0, VRAMGUARD_KIND_VMM) == gran, "got %llu", on(u, 0, VRAMGUARD_KIND_VMM));
    CHECK("device 1: 5 MiB device only", on(u, 1, VRAMGUARD_KIND_DEVICE) == 5 * MiB && on(u, 1, VRAMGUARD_KIND_VMM) == 0 &&
          on(u, 1, VRAMGUARD_KIND_POOL) == 0, "got %llu", on(u, 1, VRAMGUARD_KIND_DEVICE));

    to_free = p0;
    pthread_t t;
    pthread_create(&t, NULL, free_elsewhere, NULL);
    pthread_join(t, NULL);
    u = usage();
    CHECK("the async free uncharged device 0's pool", on(u, 0, VRAMGUARD_KIND_POOL) == 0, "got %llu",
          on(u, 0, VRAMGUARD_KIND_POOL));
    cuMemRelease(h);
    cuMemFree(a1);
    cuCtxSetCurrent(c[0]);
    cuMemFree(a0);
    CHECK("nothing live", snap().vram == 0, "vram %llu", snap().vram);
    return finish("prog_multi");
}
