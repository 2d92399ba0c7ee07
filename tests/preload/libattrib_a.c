/* Allocates through the runtime (cudaMalloc), from its own module. */
#include <cuda_runtime_api.h>
#include <stddef.h>

__attribute__((visibility("default"))) void *attrib_a_alloc(size_t size);
void *attrib_a_alloc(size_t size)
{
    void *p = NULL;
    return cudaMalloc(&p, size) == cudaSuccess ? p : NULL;
}
