/* cudart reached only through a library loaded with RTLD_LOCAL. */
#include <dlfcn.h>

#include "preload_common.h"

int main(int argc, char **argv)
{
    start("prog_rtld_local");
    const char *lib = argc > 1 ? argv[1] : "libcudauser.so";
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    CHECK("dlopen the cudart user RTLD_LOCAL", h != NULL, "%s", dlerror());
    if (!h)
        return finish("prog_rtld_local");
    CHECK("its cudart is not global", dlsym(RTLD_DEFAULT, "cudaGetDeviceCount") == NULL,
          "cudart leaked into the global scope");
    int (*alloc)(size_t, void **) = (int (*)(size_t, void **))dlsym(h, "cudauser_alloc_free");
    int (*release)(void *) = (int (*)(void *))dlsym(h, "cudauser_free");
    struct snapshot s0 = snap();
    void *p = NULL;
    int r = -1;
    VRAMGUARD_PURPOSE(VRAMGUARD_WEIGHTS)
    r = alloc(3 * MiB, &p);
    CHECK("cudaMalloc from the RTLD_LOCAL library succeeds", r == 0, "returned %d", r);
    CHECK("counted once, with its purpose", snap().purpose[VRAMGUARD_WEIGHTS] - s0.purpose[VRAMGUARD_WEIGHTS] == 3 * MiB,
          "got %llu", snap().purpose[VRAMGUARD_WEIGHTS] - s0.purpose[VRAMGUARD_WEIGHTS]);
    CHECK("cudaFree from the RTLD_LOCAL library", release(p) == 0, "failed");
    CHECK("freed", snap().vram == s0.vram, "vram %llu", snap().vram);
    return finish("prog_rtld_local");
}
