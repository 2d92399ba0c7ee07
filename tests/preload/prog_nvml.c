/* NVML's per-process figure for every device, run by check_preload.c with
 * the fake NVML (tests/endpoint/fake_nvml.c) on two fake devices: two
 * threads reach their devices at the same moment (one of them loads NVML,
 * slowly with FAKE_NVML_INIT_MS), then each device gets one OOM, whose
 * breakdown in the shim's log says what NVML gives for this process. */
#include <cuda.h>
#include <pthread.h>

#include "preload_common.h"

static pthread_barrier_t together;
static CUcontext ctx[2];
static CUresult first[2];

static void *first_allocation(void *arg)
{
    int d = (int)(long)arg;
    CUdevice dev;
    cuDeviceGet(&dev, d);
    cuDevicePrimaryCtxRetain(&ctx[d], dev);
    cuCtxSetCurrent(ctx[d]);
    pthread_barrier_wait(&together);
    CUdeviceptr p = 0;
    first[d] = cuMemAlloc(&p, 4096);
    return NULL;
}

int main(void)
{
    start("prog_nvml");
    int n = 0;
    cuInit(0);
    cuDeviceGetCount(&n);
    if (n < 2) {
        printf("SKIP prog_nvml: %d device(s)\n", n);
        return 0;
    }
    pthread_barrier_init(&together, NULL, 2);
    pthread_t t[2];
    for (long d = 0; d < 2; d++)
        pthread_create(&t[d], NULL, first_allocation, (void *)d);
    for (int d = 0; d < 2; d++)
        pthread_join(t[d], NULL);
    CHECK("both first allocations succeed", first[0] == CUDA_SUCCESS && first[1] == CUDA_SUCCESS, "%d %d",
          first[0], first[1]);
    for (int d = 0; d < 2; d++) {
        cuCtxSetCurrent(ctx[d]);
        CUdeviceptr p = 0;
        CUresult r = cuMemAlloc(&p, (size_t)1 << 40); /* more than the fake device has: an OOM */
        CHECK(d ? "device 1: an OOM" : "device 0: an OOM", r == CUDA_ERROR_OUT_OF_MEMORY, "got %d", r);
    }
    return finish("prog_nvml");
}
