/* Allocates through the driver (cuMemAlloc), from its own module. */
#include <cuda.h>
#include <stddef.h>

__attribute__((visibility("default"))) CUdeviceptr attrib_b_alloc(size_t size);
CUdeviceptr attrib_b_alloc(size_t size)
{
    CUdeviceptr p = 0;
    return cuMemAlloc(&p, size) == CUDA_SUCCESS ? p : 0;
}
