/* Arrays, host registration, graph memory nodes and the runtime names
 * (cudaMallocArray, cudaMalloc3D, cudaHostAlloc, cudaHostRegister). */
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <fcntl.h>
#include <unistd.h>

#include "preload_common.h"

int main(void)
{
    start("prog_misc");
    CHECK("cudaFree(0)", cudaFree(0) == cudaSuccess, "failed");

    /* Arrays: charged as VRAM by the size the driver reports. */
    unsigned long long a0 = kind_live(VRAMGUARD_KIND_ARRAY);
    CUarray arr = NULL, arr3 = NULL;
    CUDA_ARRAY_DESCRIPTOR d2 = {1024, 1024, CU_AD_FORMAT_FLOAT, 1};
    CHECK("cuArrayCreate", cuArrayCreate(&arr, &d2) == CUDA_SUCCESS, "failed");
    CUDA_ARRAY3D_DESCRIPTOR d3 = {256, 256, 16, CU_AD_FORMAT_UNSIGNED_INT8, 4, 0};
    CHECK("cuArray3DCreate", cuArray3DCreate(&arr3, &d3) == CUDA_SUCCESS, "failed");
    unsigned long long a1 = kind_live(VRAMGUARD_KIND_ARRAY);
    CHECK("arrays charged at least their texels", a1 - a0 >= 4 * MiB + 4 * MiB, "got %llu", a1 - a0);
    cudaArray_t rarr = NULL;
    struct cudaChannelFormatDesc ch = {32, 0, 0, 0, cudaChannelFormatKindFloat};
    CHECK("cudaMallocArray", cudaMallocArray(&rarr, &ch, 512, 512, 0) == cudaSuccess, "failed");
    CHECK("cudaMallocArray counted", kind_live(VRAMGUARD_KIND_ARRAY) - a1 >= 1 * MiB, "got %llu",
          kind_live(VRAMGUARD_KIND_ARRAY) - a1);
    CHECK("live arrays are no residency offenders", vramguard_verify_residency() == 0, "offenders");
    cudaFreeArray(rarr);
    CUarray big = NULL;
    CUDA_ARRAY_DESCRIPTOR dbig = {4096, 4096, CU_AD_FORMAT_FLOAT, 1};
    AGREES_WITH_MEMGETINFO("cuArrayCreate(64 MiB) agrees with cudaMemGetInfo", cudaMemGetInfo,
                           cuArrayCreate(&big, &dbig));
    cuArrayDestroy(big);
    cuArrayDestroy(arr);
    cuArrayDestroy(arr3);
    CHECK("arrays uncharged", kind_live(VRAMGUARD_KIND_ARRAY) == a0, "left %llu", kind_live(VRAMGUARD_KIND_ARRAY) - a0);

    /* cudaMalloc3D: pitched VRAM. */
    struct cudaPitchedPtr pp;
    struct snapshot m0 = snap();
    CHECK("cudaMalloc3D", cudaMalloc3D(&pp, (struct cudaExtent){1000, 100, 4}) == cudaSuccess, "failed");
    CHECK("cudaMalloc3D counted as pitch x height x depth", snap().vram - m0.vram == (unsigned long long)pp.pitch * 400,
          "got %llu, pitch %zu", snap().vram - m0.vram, pp.pitch);
    cudaFree(pp.ptr);

    /* Host memory through cudaHostAlloc and registration. */
    struct snapshot h0 = snap();
    void *host = NULL;
    cudaError_t rh = cudaHostAlloc(&host, 1 * MiB, cudaHostAllocPortable);
    CHECK("cudaHostAlloc per policy", rh == (expect_pinned_ok() ? cudaSuccess : cudaErrorNotPermitted), "got %d", rh);
    if (rh == cudaSuccess)
        cudaFreeHost(host);
    cudaGetLastError();
    static char buffer[2 * 1024 * 1024] __attribute__((aligned(4096)));
    cudaError_t rr = cudaHostRegister(buffer, sizeof(buffer), cudaHostRegisterDefault);
    CHECK("cudaHostRegister per policy", rr == (expect_pinned_ok() ? cudaSuccess : cudaErrorNotPermitted), "got %d", rr);
    if (rr == cudaSuccess) {
        CHECK("registered memory counted", kind_live(VRAMGUARD_KIND_HOST_REGISTERED) == sizeof(buffer), "got %llu",
              kind_live(VRAMGUARD_KIND_HOST_REGISTERED));
        cudaHostUnregister(buffer);
        CHECK("unregistered", kind_live(VRAMGUARD_KIND_HOST_REGISTERED) == 0, "left %llu",
              kind_live(VRAMGUARD_KIND_HOST_REGISTERED));
    }
    cudaGetLastError();
    CHECK("violations counted", snap().violations - h0.violations == (expect_pinned_violation() ? 2u : 0u),
          "got %llu", snap().violations - h0.violations);

    /* Legacy variants, fetched at their old versions: cuMemHostRegister (4000)
     * and the 32-bit-descriptor cuArrayCreate (2000), where the driver has it. */
    typedef CUresult (*register_fn)(void *, size_t, unsigned int);
    struct legacy_desc {
        unsigned int Width, Height;
        CUarray_format Format;
        unsigned int NumChannels;
    };
    typedef CUresult (*legacy_array_fn)(CUarray *, const struct legacy_desc *);
    register_fn reg_v1 = NULL;
    legacy_array_fn arr_v1 = NULL;
    CUdriverProcAddressQueryResult q;
    cuGetProcAddress("cuMemHostRegister", (void **)&reg_v1, 4000, 0, &q);
    CHECK("legacy cuMemHostRegister found", reg_v1 != NULL, "NULL");
    if (reg_v1) {
        struct snapshot l0 = snap();
        CUresult lr = reg_v1(buffer, sizeof(buffer), 0);
        CHECK("legacy cuMemHostRegister per policy", lr == (expect_pinned_ok() ? CUDA_SUCCESS : CUDA_ERROR_NOT_PERMITTED),
              "got %d", lr);
        if (lr == CUDA_SUCCESS) {
            CHECK("legacy registration counted", kind_live(VRAMGUARD_KIND_HOST_REGISTERED) == sizeof(buffer), "got %llu",
                  kind_live(VRAMGUARD_KIND_HOST_REGISTERED));
            cuMemHostUnregister(buffer);
        }
        CHECK("legacy registration violation counted",
              snap().violations - l0.violations == (expect_pinned_violation() ? 1u : 0u), "got %llu",
              snap().violations - l0.violations);
    }
    if (cuGetProcAddress("cuArrayCreate", (void **)&arr_v1, 2000, 0, &q) == CUDA_SUCCESS && arr_v1) {
        struct legacy_desc ld = {256, 256, CU_AD_FORMAT_FLOAT, 1};
        CUarray la = NULL;
        unsigned long long b0 = kind_live(VRAMGUARD_KIND_ARRAY);
        CUresult lr = arr_v1(&la, &ld);
        printf("note: legacy cuArrayCreate answered %d\n", lr);
        if (lr == CUDA_SUCCESS) {
            CHECK("legacy array counted", kind_live(VRAMGUARD_KIND_ARRAY) - b0 >= 256 * 1024, "got %llu",
                  kind_live(VRAMGUARD_KIND_ARRAY) - b0);
            cuArrayDestroy(la);
        }
    } else {
        printf("note: no legacy cuArrayCreate in this driver\n");
    }

    /* External memory: a mapped buffer is imported, not charged. Needs an
     * exporter's fd; the fake driver accepts any fd, a real one answers an
     * error for this one, which is passed through (noted, not judged). */
    int fd = open("/dev/zero", O_RDONLY);
    CUDA_EXTERNAL_MEMORY_HANDLE_DESC xd = {0};
    xd.type = CU_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD;
    xd.handle.fd = fd;
    xd.size = 1 * MiB;
    CUexternalMemory ext = NULL;
    CUresult xr = cuImportExternalMemory(&ext, &xd);
    if (xr == CUDA_SUCCESS) {
        CUDA_EXTERNAL_MEMORY_BUFFER_DESC bd = {0};
        bd.size = 1 * MiB;
        CUdeviceptr mapped = 0;
        struct snapshot e0 = snap();
        CHECK("cuExternalMemoryGetMappedBuffer", cuExternalMemoryGetMappedBuffer(&mapped, ext, &bd) == CUDA_SUCCESS,
              "failed");
        CHECK("mapped external buffer shown as imported", kind_live(VRAMGUARD_KIND_IMPORTED) == 1 * MiB, "got %llu",
              kind_live(VRAMGUARD_KIND_IMPORTED));
        CHECK("and not charged", snap().vram == e0.vram, "vram moved %llu", snap().vram - e0.vram);
        cuMemFree(mapped);
        CHECK("freed with cuMemFree", kind_live(VRAMGUARD_KIND_IMPORTED) == 0, "left %llu",
              kind_live(VRAMGUARD_KIND_IMPORTED));
        cuDestroyExternalMemory(ext);
    } else {
        printf("note: cuImportExternalMemory of /dev/zero answered %d (no exporter here)\n", xr);
        close(fd);
    }

    /* Graph memory nodes: a host-located one is refused; a device one is not. */
    CUgraph graph;
    cuGraphCreate(&graph, 0);
    CUDA_MEM_ALLOC_NODE_PARAMS np = {0};
    np.poolProps.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
    np.poolProps.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    np.poolProps.location.id = 0;
    np.bytesize = 4 * MiB;
    CUgraphNode node;
    CHECK("device graph alloc node", cuGraphAddMemAllocNode(&node, graph, NULL, 0, &np) == CUDA_SUCCESS, "failed");
    CUDA_MEM_ALLOC_NODE_PARAMS hp = np;
    hp.poolProps.location.type = CU_MEM_LOCATION_TYPE_HOST;
    CUresult r = cuGraphAddMemAllocNode(&node, graph, NULL, 0, &hp);
    if (policy_rejects() && !pinned_allowed())
        CHECK("host graph alloc node refused", r == CUDA_ERROR_NOT_PERMITTED, "got %d", r);
    else
        printf("note: host graph alloc node answered %d\n", r);
    cuGraphDestroy(graph);
    CHECK("nothing live at the end", snap().vram == 0, "vram %llu", snap().vram);
    return finish("prog_misc");
}
