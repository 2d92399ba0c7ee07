// The GPU probe for __managed__ globals (issue 8, section 4): one managed
// variable, written on the host, incremented by a kernel, read back on the
// host. Built by `make gpu-build` (static cudart, nvcc's default) and run by
// tests/gpu/run_gpu_tests.sh under the shim. cudart registers the variable
// at module load (__cudaRegisterManagedVar) and, on the first host access,
// asks the driver for its address (cuLibraryGetManaged or cuModuleGetGlobal:
// the real libcudart 13.0 fetches both, at 12000 and 3020) and stores it in
// the host-side pointer through which `x` is read and written here.
#include <cstdio>

__managed__ int x;

__global__ void bump(int v) { x += v; }

int main()
{
    x = 1;  // the first host access: cudart loads the module and finds x
    bump<<<1, 1>>>(41);
    cudaError_t e = cudaDeviceSynchronize();
    std::printf("managed_global: sync %d (%s), x = %d\n", (int)e, cudaGetErrorName(e), x);
    return e == cudaSuccess && x == 42 ? 0 : 1;
}
