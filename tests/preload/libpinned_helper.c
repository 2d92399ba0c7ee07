/* A library that asks for host-pinned memory itself, so that a
 * VRAMGUARD_ALLOW rule can name it by module (prog_allow_rules). */
#include <cuda.h>

CUresult pinned_helper_alloc(void **p, size_t size);
CUresult pinned_helper_free(void *p);

CUresult pinned_helper_alloc(void **p, size_t size)
{
    return cuMemHostAlloc(p, size, 0);
}

CUresult pinned_helper_free(void *p)
{
    return cuMemFreeHost(p);
}
