/* A library that links cudart itself, loaded by prog_rtld_local with
 * RTLD_LOCAL (as Python loads extension modules): its cudart is not in the
 * global scope, so the shim's cudaMalloc must find it through its caller. */
#include <cuda_runtime_api.h>
#include <stddef.h>

__attribute__((visibility("default"))) int cudauser_alloc_free(size_t size, void **out);

int cudauser_alloc_free(size_t size, void **out)
{
    void *p = NULL;
    cudaError_t r = cudaMalloc(&p, size);
    if (r != cudaSuccess)
        return (int)r;
    *out = p;
    return 0;
}

__attribute__((visibility("default"))) int cudauser_free(void *p);

int cudauser_free(void *p)
{
    return (int)cudaFree(p);
}
