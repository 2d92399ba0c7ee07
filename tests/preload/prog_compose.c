/* Composition with another driver interposer (issue 9 item 19), and the
 * lookups the shim does not cover. argv[1] names the set-up the Check test
 * made (tests/preload/check_preload.c):
 *
 *   first   LD_PRELOAD=libinterposer.so:libvramguard.so   the other first
 *   second  LD_PRELOAD=libvramguard.so:libinterposer.so   the shim first
 *   dlsym   LD_PRELOAD=libvramguard.so:libinterposer_dlsym.so
 *           (the other also replaces dlsym, as HAMi-core's libvgpu does)
 *   limits  the shim alone: dlvsym and dlmopen
 *
 * A lookup that resolves to the other interposer must hand out its function
 * (never the shim's wrapper, which would go straight to the driver), and its
 * calls must still reach the shim, once, on their way to the driver. */
#include <cuda.h>
#include <dlfcn.h>
#include <link.h>

#include "preload_common.h"

typedef CUresult (*alloc_fn)(CUdeviceptr *, size_t);
typedef CUresult (*free_fn)(CUdeviceptr);
typedef unsigned long long (*count_fn)(void);

static int in_module(void *p, const char *name)
{
    Dl_info info;
    return p && dladdr(p, &info) && info.dli_fname && strstr(info.dli_fname, name);
}

static unsigned long long counter(const char *name)
{
    count_fn f = (count_fn)dlsym(RTLD_DEFAULT, name);
    return f ? f() : 0;
}

/* Allocate and free 1 MiB through `a` and `f`: the shim must count it once,
 * the interposer `through` times. */
static void round_trip(const char *what, void *a, void *f, unsigned long long through)
{
    unsigned long long a0 = counter("interposer_allocs"), f0 = counter("interposer_frees");
    struct snapshot s0 = snap();
    CUdeviceptr d = 0;
    char name[160];
    snprintf(name, sizeof(name), "%s: allocates", what);
    CUresult r = a ? ((alloc_fn)a)(&d, 1 * MiB) : CUDA_ERROR_UNKNOWN;
    CHECK(name, r == CUDA_SUCCESS && d != 0, "result %d", (int)r);
    snprintf(name, sizeof(name), "%s: the shim counts it once", what);
    CHECK(name, snap().vram - s0.vram == 1 * MiB, "%llu bytes", snap().vram - s0.vram);
    snprintf(name, sizeof(name), "%s: the interposer saw it %llu time(s)", what, through);
    CHECK(name, counter("interposer_allocs") - a0 == through, "%llu", counter("interposer_allocs") - a0);
    r = f ? ((free_fn)f)(d) : CUDA_ERROR_UNKNOWN;
    snprintf(name, sizeof(name), "%s: frees", what);
    CHECK(name, r == CUDA_SUCCESS && snap().vram == s0.vram && counter("interposer_frees") - f0 == through,
          "result %d, vram %llu, interposer frees %llu", (int)r, snap().vram, counter("interposer_frees") - f0);
}

static void first(void *driver)
{
    void *a = dlsym(RTLD_DEFAULT, "cuMemAlloc_v2"), *f = dlsym(RTLD_DEFAULT, "cuMemFree_v2");
    CHECK("dlsym(RTLD_DEFAULT) finds the interposer ahead of the shim", in_module(a, "libinterposer"),
          "found %p", a);
    round_trip("through the interposer's definition", a, f, 1);
    void *n = dlsym(RTLD_NEXT, "cuMemAlloc_v2");
    CHECK("dlsym(RTLD_NEXT) from the program finds the interposer too", n == a && in_module(n, "libinterposer"),
          "found %p", n);
    void *da = dlsym(driver, "cuMemAlloc_v2"), *df = dlsym(driver, "cuMemFree_v2");
    CHECK("dlsym(libcuda) is the shim's wrapper", in_module(da, "libvramguard"), "found %p", da);
    round_trip("dlsym(libcuda)", da, df, 0);
    round_trip("a direct call", (void *)cuMemAlloc_v2, (void *)cuMemFree_v2, 1);
}

static void second(void *driver)
{
    void *a = dlsym(RTLD_DEFAULT, "cuMemAlloc_v2");
    CHECK("dlsym(RTLD_DEFAULT) finds the shim ahead of the interposer", in_module(a, "libvramguard"), "found %p", a);
    void *lib = dlopen("libinterposer.so", RTLD_NOW | RTLD_NOLOAD);
    void *ia = lib ? dlsym(lib, "cuMemAlloc_v2") : NULL, *ifr = lib ? dlsym(lib, "cuMemFree_v2") : NULL;
    CHECK("dlsym(the interposer's handle) is the interposer's own function", in_module(ia, "libinterposer"),
          "found %p", ia);
    round_trip("through the interposer's handle", ia, ifr, 1);
    CHECK("its dlsym(RTLD_NEXT) never found itself", counter("interposer_recursions") == 0, "%llu",
          counter("interposer_recursions"));
    round_trip("dlsym(libcuda)", dlsym(driver, "cuMemAlloc_v2"), dlsym(driver, "cuMemFree_v2"), 0);
    round_trip("a direct call", (void *)cuMemAlloc_v2, (void *)cuMemFree_v2, 0);
}

static void replaced_dlsym(void *driver)
{
    unsigned long long calls = counter("interposer_dlsym_calls");
    CHECK("lookups the shim does not change reach the interposer's dlsym", calls > 0, "%llu", calls);
    void *da = dlsym(driver, "cuMemAlloc_v2"), *df = dlsym(driver, "cuMemFree_v2");
    CHECK("dlsym(libcuda) is the shim's wrapper", in_module(da, "libvramguard"), "found %p", da);
    round_trip("dlsym(libcuda), answered by both", da, df, 1);
    void *ga = dlsym(RTLD_DEFAULT, "cuMemAlloc_v2"), *gf = dlsym(RTLD_DEFAULT, "cuMemFree_v2");
    CHECK("dlsym(RTLD_DEFAULT) is the shim's wrapper too", in_module(ga, "libvramguard"), "found %p", ga);
    round_trip("dlsym(RTLD_DEFAULT), answered by both", ga, gf, 1);
}

static void limits(void *driver)
{
    /* dlvsym is not wrapped. The driver's exports carry no symbol version,
     * and glibc's dlvsym matches an unversioned symbol of a library that
     * has version information (every library linked against glibc) to no
     * version: no CUDA name can be fetched around the shim this way. */
    CHECK("dlvsym(libcuda, cuMemAlloc_v2, GLIBC_2.2.5) finds nothing",
          dlvsym(driver, "cuMemAlloc_v2", "GLIBC_2.2.5") == NULL, "found it");
    CHECK("dlvsym(RTLD_DEFAULT, cuMemAlloc_v2, libcuda.so.1) finds nothing",
          dlvsym(RTLD_DEFAULT, "cuMemAlloc_v2", "libcuda.so.1") == NULL, "found it");

    /* dlmopen: LD_PRELOAD does not reach a new link-map namespace. A library
     * loaded there gets its own cudart and driver, and the shim sees none of
     * its memory (README "Limits"). */
    void *lib = dlmopen(LM_ID_NEWLM, "libcudauser.so", RTLD_NOW);
    CHECK("dlmopen(LM_ID_NEWLM, libcudauser.so)", lib != NULL, "%s", dlerror());
    if (lib == NULL)
        return;
    Lmid_t ns = LM_ID_BASE;
    dlinfo(lib, RTLD_DI_LMID, &ns);
    CHECK("the shim is not in that namespace", dlmopen(ns, "libvramguard.so", RTLD_NOW | RTLD_NOLOAD) == NULL,
          "it is");
    int (*alloc)(size_t, void **) = (int (*)(size_t, void **))dlsym(lib, "cudauser_alloc_free");
    struct snapshot s0 = snap();
    void *p = NULL;
    int r = alloc ? alloc(1 * MiB, &p) : -1;
    CHECK("its cudaMalloc succeeds", r == 0 && p != NULL, "returned %d", r);
    CHECK("and is not seen: a limit", snap().vram == s0.vram, "vram %llu, was %llu", snap().vram, s0.vram);
}

int main(int argc, char **argv)
{
    start("prog_compose");
    const char *mode = argc > 1 ? argv[1] : "limits";
    CUdevice dev;
    CUcontext ctx;
    CHECK("cuInit", cuInit(0) == CUDA_SUCCESS, "failed");
    CHECK("cuDeviceGet", cuDeviceGet(&dev, 0) == CUDA_SUCCESS, "failed");
    CHECK("cuDevicePrimaryCtxRetain", cuDevicePrimaryCtxRetain(&ctx, dev) == CUDA_SUCCESS, "failed");
    CHECK("cuCtxSetCurrent", cuCtxSetCurrent(ctx) == CUDA_SUCCESS, "failed");
    void *driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    CHECK("libcuda is loaded", driver != NULL, "%s", dlerror());
    if (driver == NULL)
        return finish("prog_compose");
    if (strcmp(mode, "first") == 0)
        first(driver);
    else if (strcmp(mode, "second") == 0)
        second(driver);
    else if (strcmp(mode, "dlsym") == 0)
        replaced_dlsym(driver);
    else
        limits(driver);
    return finish("prog_compose");
}
