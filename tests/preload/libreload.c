/* Built twice, as libreload_a.so and libreload_b.so: the same code under two
 * names, so that one, loaded after the other was unloaded, lands at its
 * address (prog_reload, part 3). */
#include <cuda.h>

__attribute__((visibility("default"))) int reload_pin(void **p);
__attribute__((visibility("default"))) int reload_alloc(CUdeviceptr *p);

int reload_pin(void **p)
{
    return (int)cuMemAllocHost(p, 4096);
}

int reload_alloc(CUdeviceptr *p)
{
    return (int)cuMemAlloc(p, 1 << 20);
}
