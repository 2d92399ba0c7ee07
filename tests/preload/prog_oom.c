/* Out of memory: the driver's CUDA_ERROR_OUT_OF_MEMORY comes back unchanged
 * (cudaErrorMemoryAllocation), every failure is counted, the log gets one
 * full breakdown then one line per retry (checked by the test harness). */
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include "preload_common.h"

int main(void)
{
    start("prog_oom");
    cudaFree(0);
    void *weights = NULL, *huge = NULL;
    VRAMGUARD_PURPOSE_LABEL(VRAMGUARD_WEIGHTS, "embedding")
    CHECK("a live allocation to show", cudaMalloc(&weights, 8 * MiB) == cudaSuccess, "failed");
    struct snapshot s0 = snap();
    const size_t too_much = (size_t)1 << 40; /* 1 TiB: more than any card */
    /* With tests' malloc spy preloaded: the first failure, whose breakdown
     * is the longest path, allocates nothing on the heap. */
    long (*spy)(void) = (long (*)(void))dlsym(RTLD_DEFAULT, "spy_malloc_count");
    if (spy) {
        long before = spy();
        cudaError_t r = cudaMalloc(&huge, too_much);
        long after = spy();
        CHECK("first OOM returned unchanged", r == cudaErrorMemoryAllocation, "got %d", r);
        CHECK("no heap allocation on the OOM path (breakdown included)", after == before, "%ld allocations",
              after - before);
        cudaGetLastError();
    }
    for (int attempt = spy ? 1 : 0; attempt < 4; attempt++) {
        VRAMGUARD_PURPOSE(VRAMGUARD_KV_CACHE)
        {
            cudaError_t r = cudaMalloc(&huge, too_much);
            CHECK("OOM returned unchanged", r == cudaErrorMemoryAllocation, "got %d", r);
        }
        cudaGetLastError();
    }
    struct snapshot s1 = snap();
    CHECK("every OOM counted", s1.ooms - s0.ooms == 4, "got %llu", s1.ooms - s0.ooms);
    CHECK("OOM is not a violation", s1.violations == s0.violations, "violations %llu", s1.violations);
    CHECK("memory still usable after OOM", cudaFree(weights) == cudaSuccess, "free failed");
    return finish("prog_oom");
}
