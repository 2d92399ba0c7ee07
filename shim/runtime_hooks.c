/* Runtime-level wrappers (cudaMalloc, ...): for programs with a shared
 * cudart. They only name the call and record its true caller; the driver
 * wrapper underneath does the accounting. Each forwards to the cudart its
 * caller would have reached without the shim (see vg_real_runtime). */
#include "callctx.h"
#include "log.h"
#include "real.h"

#include <cuda_runtime_api.h>
#include <stdatomic.h>

#define EXPORT __attribute__((visibility("default")))

void *vg_runtime_wrappers[VG_RT_COUNT] = {
    [VG_RT_cudaMalloc] = (void *)cudaMalloc,
    [VG_RT_cudaFree] = (void *)cudaFree,
    [VG_RT_cudaMallocHost] = (void *)cudaMallocHost,
    [VG_RT_cudaMallocManaged] = (void *)cudaMallocManaged,
};

static cudaError_t no_runtime(const char *name)
{
    static atomic_bool warned;
    if (!atomic_exchange(&warned, true))
        vg_log("%s was called but no cudart defines it for this caller; returning "
               "cudaErrorInitializationError",
               name);
    return cudaErrorInitializationError;
}

/* Name the call for the driver wrapper below, unless already inside one. */
static void runtime_enter(const char *api, void *caller)
{
    struct vg_tls_call *t = &vg_tls_call;
    if (t->rt_depth++ == 0) {
        t->rt_api = api;
        t->rt_caller = caller;
    }
}

static void runtime_leave(void)
{
    vg_tls_call.rt_depth--;
}

EXPORT cudaError_t cudaMalloc(void **devPtr, size_t size)
{
    void *caller = __builtin_return_address(0);
    __typeof__(&cudaMalloc) real = vg_real_runtime(VG_RT_cudaMalloc, caller);
    if (real == NULL)
        return no_runtime("cudaMalloc");
    runtime_enter("cudaMalloc", caller);
    cudaError_t r = real(devPtr, size);
    runtime_leave();
    return r;
}

EXPORT cudaError_t cudaFree(void *devPtr)
{
    void *caller = __builtin_return_address(0);
    __typeof__(&cudaFree) real = vg_real_runtime(VG_RT_cudaFree, caller);
    if (real == NULL)
        return no_runtime("cudaFree");
    runtime_enter("cudaFree", caller);
    cudaError_t r = real(devPtr);
    runtime_leave();
    return r;
}

EXPORT cudaError_t cudaMallocHost(void **ptr, size_t size)
{
    void *caller = __builtin_return_address(0);
    __typeof__(&cudaMallocHost) real = vg_real_runtime(VG_RT_cudaMallocHost, caller);
    if (real == NULL)
        return no_runtime("cudaMallocHost");
    runtime_enter("cudaMallocHost", caller);
    cudaError_t r = real(ptr, size);
    runtime_leave();
    return r;
}

EXPORT cudaError_t cudaMallocManaged(void **devPtr, size_t size, unsigned int flags)
{
    void *caller = __builtin_return_address(0);
    __typeof__(&cudaMallocManaged) real = vg_real_runtime(VG_RT_cudaMallocManaged, caller);
    if (real == NULL)
        return no_runtime("cudaMallocManaged");
    runtime_enter("cudaMallocManaged", caller);
    cudaError_t r = real(devPtr, size, flags);
    runtime_leave();
    return r;
}
