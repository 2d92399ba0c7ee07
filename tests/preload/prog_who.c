/* Who allocated it: allocations through the static (fake) cudart from
 * functions of their own, each line marked "who:NAME" (the tests find its
 * line number by that mark). cudaMallocArray reaches the driver through an
 * internal function of cudart that has no cuda* name (a tail call), the
 * others directly from the runtime's API function; one allocation is under
 * the 1 MiB at which a stack is taken by default, and one is stream-ordered
 * (no stack by default whatever its size). Everything stays live:
 * the report at exit lists each with its site. Prints vramguard_report().
 *
 *   prog_who [managed]   also asks for managed memory (refused) */
#include <cuda_runtime_api.h>

#include "preload_common.h"

#define STEP __attribute__((noinline)) static

static void *keep[8];
static int kept;

STEP void alloc_device(void)
{
    CHECK("cudaMalloc 2 MiB", cudaMalloc(&keep[kept++], 2 * MiB) == cudaSuccess, "failed"); /* who:alloc_device */
}

STEP void alloc_pitched(void)
{
    size_t pitch = 0;
    CHECK("cudaMallocPitch", cudaMallocPitch(&keep[kept++], &pitch, 1024, 2048) == cudaSuccess, /* who:alloc_pitched */
          "failed");
}

STEP void alloc_array(void)
{
    struct cudaChannelFormatDesc desc = {32, 0, 0, 0, cudaChannelFormatKindFloat};
    cudaArray_t a = NULL;
    CHECK("cudaMallocArray 4 MiB", cudaMallocArray(&a, &desc, 1024, 1024, 0) == cudaSuccess, /* who:alloc_array */
          "failed");
}

STEP void alloc_async(void)
{
    CHECK("cudaMallocAsync 2 MiB", cudaMallocAsync(&keep[kept++], 2 * MiB, 0) == cudaSuccess, /* who:alloc_async */
          "failed");
    CHECK("cudaStreamSynchronize", cudaStreamSynchronize(0) == cudaSuccess, "failed");
}

STEP void alloc_small(void)
{
    CHECK("cudaMalloc 64 KiB", cudaMalloc(&keep[kept++], 64 * KiB) == cudaSuccess, "failed"); /* who:alloc_small */
}

STEP void ask_managed(void)
{
    void *m = NULL;
    CHECK("cudaMallocManaged refused", cudaMallocManaged(&m, 4 * KiB, cudaMemAttachGlobal) != cudaSuccess, /* who:ask_managed */
          "it succeeded");
}

int main(int argc, char **argv)
{
    start("prog_who");
    alloc_device();
    alloc_pitched();
    alloc_array();
    alloc_async();
    alloc_small();
    if (argc > 1 && strcmp(argv[1], "managed") == 0)
        ask_managed();
    static char text[16384];
    vramguard_report(text, sizeof(text));
    printf("%s", text);
    return finish("prog_who");
}
