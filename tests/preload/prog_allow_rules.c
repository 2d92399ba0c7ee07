/* VRAMGUARD_ALLOW rules at work: a fixed sequence of host and managed
 * requests, from this program and from libpinned_helper.so, whose outcomes
 * the Check test (check_preload.c, allow_rules_*) judges for a given
 * VRAMGUARD_ALLOW. Prints one "RESULT <step> <CUresult>" line per step;
 * exits 0 unless the program itself went wrong. PROG_ALLOW_KEEP=1 leaves
 * the library's 4 KiB allocation live at exit (for the report's list). */
#include <cuda.h>
#include <stdio.h>
#include <stdlib.h>

CUresult pinned_helper_alloc(void **p, size_t size);
CUresult pinned_helper_free(void *p);

static void result(const char *step, CUresult r)
{
    printf("RESULT %s %d\n", step, (int)r);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    CUdevice dev;
    CUcontext ctx;
    if (cuInit(0) != CUDA_SUCCESS || cuDeviceGet(&dev, 0) != CUDA_SUCCESS ||
        cuDevicePrimaryCtxRetain(&ctx, dev) != CUDA_SUCCESS || cuCtxSetCurrent(ctx) != CUDA_SUCCESS) {
        printf("no device\n");
        return 2;
    }
    void *main4k = NULL, *main8k = NULL, *lib4k = NULL, *lib1m = NULL;
    CUdeviceptr managed = 0;
    static char region[64 * 1024] __attribute__((aligned(4096)));
    CUresult r;
    result("main_4K", r = cuMemHostAlloc(&main4k, 4096, 0));
    if (r != CUDA_SUCCESS) main4k = NULL;
    result("main_8K", r = cuMemHostAlloc(&main8k, 8192, 0));
    if (r != CUDA_SUCCESS) main8k = NULL;
    result("lib_4K", r = pinned_helper_alloc(&lib4k, 4096));
    if (r != CUDA_SUCCESS) lib4k = NULL;
    result("lib_1M", r = pinned_helper_alloc(&lib1m, 1 << 20));
    if (r != CUDA_SUCCESS) lib1m = NULL;
    CUresult reg = cuMemHostRegister(region, sizeof(region), 0);
    result("main_register_64K", reg);
    result("main_managed_4K", r = cuMemAllocManaged(&managed, 4096, CU_MEM_ATTACH_GLOBAL));
    if (r != CUDA_SUCCESS) managed = 0;
    /* Give everything back: the caps count live bytes. */
    if (main4k) cuMemFreeHost(main4k);
    if (main8k) cuMemFreeHost(main8k);
    const char *keep = getenv("PROG_ALLOW_KEEP");
    if (lib4k && !(keep && keep[0] == '1'))
        pinned_helper_free(lib4k);
    if (lib1m) pinned_helper_free(lib1m);
    if (reg == CUDA_SUCCESS) cuMemHostUnregister(region);
    if (managed) cuMemFree(managed);
    void *again = NULL;
    result("main_4K_after_frees", r = cuMemHostAlloc(&again, 4096, 0));
    if (r == CUDA_SUCCESS) cuMemFreeHost(again);
    return 0;
}
