/* Two cudart majors in one process: this program links cudart 13 (global);
 * a library loaded RTLD_LOCAL links cudart 12. Each call must reach the
 * cudart its caller would have reached without the shim (symbol versions
 * bind the library to its own major). Fake driver only: it counts which copy
 * served each cudaMalloc. */
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include "preload_common.h"

int fakecudart_malloc_calls(void);

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *lib = argc > 1 ? argv[1] : "libcudauser12.so";
    void *user = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    CHECK("dlopen the cudart-12 user RTLD_LOCAL", user != NULL, "%s", dlerror());
    if (!user)
        return finish("prog_two_majors");
    void *rt12 = dlopen("libcudart.so.12", RTLD_NOW | RTLD_NOLOAD);
    int (*calls12)(void) = rt12 ? (int (*)(void))dlsym(rt12, "fakecudart_malloc_calls") : NULL;
    int (*alloc)(size_t, void **) = (int (*)(size_t, void **))dlsym(user, "cudauser_alloc_free");
    int (*release)(void *) = (int (*)(void *))dlsym(user, "cudauser_free");
    CHECK("both majors loaded", calls12 && alloc && release, "missing");
    if (!(calls12 && alloc && release))
        return finish("prog_two_majors");

    void *p13 = NULL, *p12 = NULL;
    CHECK("cudaMalloc from the program", cudaMalloc(&p13, 1 * MiB) == cudaSuccess, "failed");
    CHECK("served by cudart 13", fakecudart_malloc_calls() == 1 && calls12() == 0, "13: %d, 12: %d",
          fakecudart_malloc_calls(), calls12());
    CHECK("cudaMalloc from the library", alloc(2 * MiB, &p12) == 0, "failed");
    CHECK("served by cudart 12", fakecudart_malloc_calls() == 1 && calls12() == 1, "13: %d, 12: %d",
          fakecudart_malloc_calls(), calls12());
    if (vramguard_loaded())
        CHECK("both counted", snap().vram == 3 * MiB, "vram %llu", snap().vram);
    release(p12);
    cudaFree(p13);
    return finish("prog_two_majors");
}
