/* __managed__ globals (issue 8, section 4). A module and a library, each
 * with __device__ and __managed__ globals (the fake driver's text images),
 * looked up the ways cudart and programs do: cuModuleGetGlobal_v2 and
 * cuLibraryGetGlobal (any global), cuLibraryGetManaged (managed ones), the
 * legacy 32-bit cuModuleGetGlobal, and through cuGetProcAddress. Every
 * lookup succeeds (a managed global is reported, never refused); each
 * managed global is one violation however often it is looked up; __device__
 * globals are none; nothing enters the allocation table (no live memory, no
 * leak at exit). The expected violations follow VRAMGUARD_POLICY; the Check
 * test reads the log for sizes and the calling module. */
#include <cuda.h>

#include "preload_common.h"

static const char module_image[] = "fakecuda-module\n"
                                   "device counters 4096\n"
                                   "managed flag 4\n"
                                   "managed table 65536\n";
static const char library_image[] = "fakecuda-module\n"
                                    "device weights 8192\n"
                                    "managed state 24\n";

/* A managed global of `size` bytes is a violation unless the policy is off
 * or the test lets managed globals up to PROG_MANAGED_ALLOWED_UPTO bytes
 * through with a VRAMGUARD_ALLOW rule (the Check test sets both). */
static unsigned long long violation(unsigned long long size)
{
    unsigned long long upto = strtoull(env_or("PROG_MANAGED_ALLOWED_UPTO", "0"), NULL, 10);
    return expect_managed_violation() && !(upto > 0 && size <= upto) ? 1 : 0;
}


int main(void)
{
    start("prog_managed_globals");
    CUdevice dev;
    CUcontext ctx;
    cuInit(0);
    cuDeviceGet(&dev, 0);
    cuDevicePrimaryCtxRetain(&ctx, dev);
    cuCtxSetCurrent(ctx);
    /* Violations expected after the first, second and third managed global. */
    unsigned long long want1 = violation(4), want2 = want1 + violation(65536), want3 = want2 + violation(24);
    unsigned long long v0 = snap().violations, live0 = live_allocations();

    CUmodule mod = NULL;
    CUlibrary lib = NULL;
    CHECK("cuModuleLoadData", cuModuleLoadData(&mod, module_image) == CUDA_SUCCESS, "failed");
    CHECK("cuLibraryLoadData", cuLibraryLoadData(&lib, library_image, NULL, NULL, 0, NULL, NULL, 0) == CUDA_SUCCESS,
          "failed");

    /* A __device__ global: nothing to report. */
    CUdeviceptr p = 0;
    size_t bytes = 0;
    CHECK("cuModuleGetGlobal __device__", cuModuleGetGlobal(&p, &bytes, mod, "counters") == CUDA_SUCCESS &&
                                                 p != 0 && bytes == 4096, "bytes %zu", bytes);
    CHECK("a __device__ global is no violation", snap().violations == v0, "%llu", snap().violations - v0);

    /* A __managed__ global found by cuModuleGetGlobal: reported, let through. */
    CUdeviceptr flag = 0;
    CHECK("cuModuleGetGlobal __managed__ succeeds", cuModuleGetGlobal(&flag, &bytes, mod, "flag") == CUDA_SUCCESS &&
                                                        flag != 0 && bytes == 4, "bytes %zu", bytes);
    CHECK("the program can use it", (*(volatile int *)(uintptr_t)flag = 7) == 7, "failed");
    CHECK("a __managed__ global is a violation", snap().violations - v0 == want1, "%llu",
          snap().violations - v0);
    /* Looked up again (and with the size left out): the same global, no new violation. */
    CUdeviceptr again = 0;
    cuModuleGetGlobal(&again, NULL, mod, "flag");
    cuModuleGetGlobal(&again, &bytes, mod, "flag");
    CHECK("reported once per global", again == flag && snap().violations - v0 == want1, "%llu",
          snap().violations - v0);
    /* Only the size asked for: the shim still finds the address. */
    bytes = 0;
    CHECK("cuModuleGetGlobal with only the size", cuModuleGetGlobal(NULL, &bytes, mod, "table") == CUDA_SUCCESS &&
                                                      bytes == 65536, "bytes %zu", bytes);
    CHECK("the second managed global of the module is reported", snap().violations - v0 == want2, "%llu",
          snap().violations - v0);

    /* The library: cuLibraryGetManaged, then cuLibraryGetGlobal of the same global. */
    CUdeviceptr state = 0, w = 0;
    CHECK("cuLibraryGetManaged", cuLibraryGetManaged(&state, &bytes, lib, "state") == CUDA_SUCCESS && state != 0 &&
                                     bytes == 24, "bytes %zu", bytes);
    CHECK("cuLibraryGetManaged of a __device__ global: the driver's answer",
          cuLibraryGetManaged(&w, &bytes, lib, "weights") == CUDA_ERROR_NOT_FOUND, "failed");
    CUdeviceptr state2 = 0;
    CHECK("cuLibraryGetGlobal of the managed global", cuLibraryGetGlobal(&state2, NULL, lib, "state") == CUDA_SUCCESS &&
                                                          state2 == state, "failed");
    CHECK("cuLibraryGetGlobal __device__", cuLibraryGetGlobal(&w, &bytes, lib, "weights") == CUDA_SUCCESS &&
                                               bytes == 8192, "failed");
    CHECK("three managed globals, three violations", snap().violations - v0 == want3, "%llu",
          snap().violations - v0);

    /* Through cuGetProcAddress (cudart's way in): the wrappers again, still once per global. */
    CUresult (*get_managed)(CUdeviceptr *, size_t *, CUlibrary, const char *) = NULL;
    CUresult (*get_global)(CUdeviceptr *, size_t *, CUmodule, const char *) = NULL;
    CUdriverProcAddressQueryResult st;
    cuGetProcAddress("cuLibraryGetManaged", (void **)&get_managed, 12000, 0, &st);
    cuGetProcAddress("cuModuleGetGlobal", (void **)&get_global, 3020, 0, &st);
    CHECK("cuGetProcAddress hands out both", get_managed && get_global, "failed");
    if (get_managed && get_global) {
        CUdeviceptr q = 0;
        CHECK("cuLibraryGetManaged via cuGetProcAddress", get_managed(&q, NULL, lib, "state") == CUDA_SUCCESS &&
                                                              q == state, "failed");
        CHECK("cuModuleGetGlobal via cuGetProcAddress", get_global(&q, NULL, mod, "flag") == CUDA_SUCCESS &&
                                                            q == flag, "failed");
        CHECK("no new violation", snap().violations - v0 == want3, "%llu", snap().violations - v0);
    }

    /* The legacy 32-bit entry point: the driver's own answer, unchanged. */
    CUresult (*legacy)(unsigned int *, unsigned int *, CUmodule, const char *) = NULL;
    cuGetProcAddress("cuModuleGetGlobal", (void **)&legacy, 2000, 0, &st);
    if (legacy) {
        unsigned int p32 = 0xdeadbeef, b32 = 0;
        CUresult r = legacy(&p32, &b32, mod, "flag");
        printf("note: legacy cuModuleGetGlobal answered %d\n", (int)r);
        CHECK("legacy cuModuleGetGlobal: no new violation", snap().violations - v0 == want3, "%llu",
              snap().violations - v0);
    }

    CHECK("globals are not allocations: nothing live", live_allocations() == live0, "%llu live, %llu before", live_allocations(),
          live0);
    CHECK("and no residency offender", vramguard_verify_residency() == 0, "offenders");
    CHECK("cuModuleUnload", cuModuleUnload(mod) == CUDA_SUCCESS, "failed");
    CHECK("cuLibraryUnload", cuLibraryUnload(lib) == CUDA_SUCCESS, "failed");
    return finish("prog_managed_globals");
}
