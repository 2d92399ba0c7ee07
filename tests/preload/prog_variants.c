/* Unknown variants (issue 9 item 12). With FAKECUDA_FUTURE_VARIANTS=1 the
 * fake driver answers cuGetProcAddress like a newer one: cuMemAlloc at 14000
 * is cuMemAlloc_v9, whose argument list no wrapper has; cuMemGetInfo is an
 * unexported address (inside libcuda, at a version the table knows);
 * cuMemFree at 14000 is an unexported address above it. A wrapper may stand
 * in only where its ABI is provably the driver's: the others are handed out
 * as the driver answered, and listed as holes. Without the variable the
 * same lookups select known variants, wrapped. */
#include <cuda.h>
#include <dlfcn.h>

#include "preload_common.h"

typedef CUresult (*alloc_v9_fn)(CUdeviceptr *, size_t, unsigned int, unsigned int *);
typedef CUresult (*free_fn)(CUdeviceptr);

static void *gpa(const char *name, int version)
{
    void *p = NULL;
    CUdriverProcAddressQueryResult st;
    CUresult r = cuGetProcAddress(name, &p, version, 0, &st);
    return r == CUDA_SUCCESS ? p : NULL;
}

int main(void)
{
    start("prog_variants");
    CUdevice dev;
    CUcontext ctx;
    int version = 0;
    CHECK("cuInit", cuInit(0) == CUDA_SUCCESS, "failed");
    CHECK("cuDeviceGet", cuDeviceGet(&dev, 0) == CUDA_SUCCESS, "failed");
    CHECK("cuDevicePrimaryCtxRetain", cuDevicePrimaryCtxRetain(&ctx, dev) == CUDA_SUCCESS, "failed");
    CHECK("cuCtxSetCurrent", cuCtxSetCurrent(ctx) == CUDA_SUCCESS, "failed");
    CHECK("cuDriverGetVersion", cuDriverGetVersion(&version) == CUDA_SUCCESS, "failed");
    int future = version >= 14000;
    printf("note: driver version %d\n", version);

    void *driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    CHECK("libcuda is loaded", driver != NULL, "%s", dlerror());
    /* The shim is first in the global scope: these are its wrappers. */
    void *wrap_alloc = dlsym(RTLD_DEFAULT, "cuMemAlloc_v2");
    void *wrap_free = dlsym(RTLD_DEFAULT, "cuMemFree_v2");
    void *wrap_info = dlsym(RTLD_DEFAULT, "cuMemGetInfo_v2");
    Dl_info info;
    CHECK("cuMemAlloc_v2 in the global scope is the shim's",
          wrap_alloc && dladdr(wrap_alloc, &info) && strstr(info.dli_fname, "libvramguard"), "not the shim's");

    void *alloc14 = gpa("cuMemAlloc", 14000);
    void *free14 = gpa("cuMemFree", 14000);
    void *info3020 = gpa("cuMemGetInfo", 3020);
    CHECK("cuGetProcAddress(cuMemFree, 12000) is wrapped", gpa("cuMemFree", 12000) == wrap_free, "not the wrapper");
    /* An unexported address inside libcuda, at a version whose variants the
     * table lists: the version says the ABI (with the future driver too). */
    CHECK("cuGetProcAddress(cuMemGetInfo, 3020) is wrapped", info3020 == wrap_info, "not the wrapper");

    /* dlsym of a variant the table does not know: the driver's own, listed. */
    void *v9 = driver ? dlsym(driver, "cuMemAlloc_v9") : NULL;
    CHECK("dlsym(libcuda, cuMemAlloc_v9) is the driver's own", v9 != NULL && !(dladdr(v9, &info) &&
          strstr(info.dli_fname, "libvramguard")), "got %p", v9);
    CHECK("dlsym(libcuda, cuMemAlloc_v8) finds nothing", driver && dlsym(driver, "cuMemAlloc_v8") == NULL, "found it");

    struct snapshot s0 = snap();
    if (!future) {
        CHECK("cuGetProcAddress(cuMemAlloc, 14000) selects cuMemAlloc_v2, wrapped", alloc14 == wrap_alloc,
              "not the wrapper");
        CHECK("cuGetProcAddress(cuMemFree, 14000) selects cuMemFree_v2, wrapped", free14 == wrap_free,
              "not the wrapper");
        return finish("prog_variants");
    }

    CHECK("cuGetProcAddress(cuMemAlloc, 14000) hands out cuMemAlloc_v9 itself, unwrapped", alloc14 == v9,
          "got %p, the export is %p, the v2 wrapper %p", alloc14, v9, wrap_alloc);
    CUdeviceptr d = 0;
    unsigned int variant = 0;
    CUresult r = alloc14 ? ((alloc_v9_fn)alloc14)(&d, 1 * MiB, 0, &variant) : CUDA_ERROR_UNKNOWN;
    CHECK("the call keeps its own argument list", r == CUDA_SUCCESS && d != 0 && variant == 9,
          "result %d, variant %u (a wrapper of another variant drops the last two arguments)", (int)r, variant);
    CHECK("and is not seen (listed as a hole instead)", snap().vram == s0.vram, "vram %llu, was %llu", snap().vram,
          s0.vram);

    CHECK("cuGetProcAddress(cuMemFree, 14000): an unexported address above the known versions, unwrapped",
          free14 != NULL && free14 != wrap_free, "got %p, the wrapper is %p", free14, wrap_free);
    if (free14 && free14 != wrap_free && d)
        CHECK("it frees", ((free_fn)free14)(d) == CUDA_SUCCESS, "failed");
    return finish("prog_variants");
}
