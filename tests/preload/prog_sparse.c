/* Sparse and deferred-mapping arrays (issue 9 item 15). Such an array
 * allocates nothing: its memory is VMM handles (cuMemCreate with the tile
 * pool usage) mapped into it with cuMemMapArrayAsync, charged at
 * cuMemCreate and freed when released and unmapped everywhere, arrays
 * included (measured on an H200). Every step is compared with the driver's
 * free memory (cuMemGetInfo, within its 2 MiB granularity). Runs on the
 * fake driver and on a real GPU; "note:" lines carry the figures. */
#include <cuda.h>

#include "preload_common.h"

/* AGREES_WITH_MEMGETINFO, printing both figures as a "note:" line too (the
 * GPU run's record). */
#define MEASURED(name, stmt) MEMGETINFO_CHECK(name, cuMemGetInfo, stmt, 1)

static CUarrayMapInfo whole(CUarray a, CUmemGenericAllocationHandle h, int map)
{
    CUarrayMapInfo mi;
    memset(&mi, 0, sizeof mi);
    mi.resourceType = CU_RESOURCE_TYPE_ARRAY;
    mi.resource.array = a;
    mi.memOperationType = map ? CU_MEM_OPERATION_TYPE_MAP : CU_MEM_OPERATION_TYPE_UNMAP;
    mi.memHandleType = CU_MEM_HANDLE_TYPE_GENERIC;
    mi.memHandle.memHandle = map ? h : 0;
    mi.deviceBitMask = 1;
    return mi;
}

static CUresult map_ops(CUarrayMapInfo *mi, CUstream s)
{
    CUresult r = cuMemMapArrayAsync(mi, 1, s);
    cuStreamSynchronize(s);
    return r;
}

int main(void)
{
    start("prog_sparse");
    CUcontext ctx = NULL;
    CUdevice dev = 0;
    CHECK("cuInit", cuInit(0) == CUDA_SUCCESS, "failed");
    cuDevicePrimaryCtxRetain(&ctx, dev);
    cuCtxSetCurrent(ctx);
    CUstream s = NULL;
    cuStreamCreate(&s, CU_STREAM_NON_BLOCKING);

    /* ---- deferred mapping: 2048 x 2048 float4 = 64 MiB ---------------------- */
    CUDA_ARRAY3D_DESCRIPTOR ad = {.Width = 2048, .Height = 2048, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 4,
                                  .Flags = CUDA_ARRAY3D_DEFERRED_MAPPING};
    CUarray a = NULL;
    MEASURED("deferred-mapping array: created, charged what the driver allocated",
             CHECK("cuArray3DCreate(deferred mapping)", cuArray3DCreate(&a, &ad) == CUDA_SUCCESS, "failed"));
    CHECK("... counted as a 0-byte array", kind_live(VRAMGUARD_KIND_ARRAY) == 0 && usage()->vram_bytes == 0,
          "array %llu vram %llu", kind_live(VRAMGUARD_KIND_ARRAY), (unsigned long long)usage()->vram_bytes);
    CUDA_ARRAY_MEMORY_REQUIREMENTS rq = {0};
    CHECK("cuArrayGetMemoryRequirements", cuArrayGetMemoryRequirements(&rq, a, dev) == CUDA_SUCCESS, "failed");
    printf("note: deferred 2048 x 2048 float4 array needs %llu bytes\n", (unsigned long long)rq.size);
    CUmemAllocationProp tp = {.type = CU_MEM_ALLOCATION_TYPE_PINNED, .location = {CU_MEM_LOCATION_TYPE_DEVICE, dev}};
    tp.allocFlags.usage = CU_MEM_CREATE_USAGE_TILE_POOL;
    size_t gran = 2 * MiB;
    cuMemGetAllocationGranularity(&gran, &tp, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
    size_t size = (rq.size + gran - 1) / gran * gran;
    CUmemGenericAllocationHandle h1 = 0, h2 = 0, h3 = 0;
    MEASURED("tile pool handle: charged",
             CHECK("cuMemCreate(tile pool)", cuMemCreate(&h1, size, &tp, 0) == CUDA_SUCCESS, "failed"));
    CUarrayMapInfo mi = whole(a, h1, 1);
    CHECK("cuMemMapArrayAsync(map)", map_ops(&mi, s) == CUDA_SUCCESS, "failed");
    MEASURED("released while mapped into the array: still charged",
             CHECK("cuMemRelease(h1)", cuMemRelease(h1) == CUDA_SUCCESS, "failed"));
    CHECK("... charged", kind_live(VRAMGUARD_KIND_VMM) == size, "vmm %llu", kind_live(VRAMGUARD_KIND_VMM));
    mi = whole(a, 0, 0);
    MEASURED("unmapped from the array: uncharged",
             CHECK("cuMemMapArrayAsync(unmap)", map_ops(&mi, s) == CUDA_SUCCESS, "failed"));
    CHECK("... uncharged", kind_live(VRAMGUARD_KIND_VMM) == 0, "vmm %llu", kind_live(VRAMGUARD_KIND_VMM));
    cuMemCreate(&h2, size, &tp, 0);
    cuMemCreate(&h3, size, &tp, 0);
    mi = whole(a, h2, 1);
    map_ops(&mi, s);
    mi = whole(a, h3, 1);
    CHECK("h3 mapped over h2", map_ops(&mi, s) == CUDA_SUCCESS, "failed");
    MEASURED("h2 (mapped over) and h3 (mapped) released: h2 uncharged, h3 still charged",
             (cuMemRelease(h2), cuMemRelease(h3)));
    CHECK("... h3 alone charged", kind_live(VRAMGUARD_KIND_VMM) == size, "vmm %llu (want %zu)", kind_live(VRAMGUARD_KIND_VMM),
          size);
    MEASURED("the array destroyed with h3 mapped: uncharged",
             CHECK("cuArrayDestroy", cuArrayDestroy(a) == CUDA_SUCCESS, "failed"));
    CHECK("... nothing charged", kind_live(VRAMGUARD_KIND_VMM) == 0 && kind_live(VRAMGUARD_KIND_ARRAY) == 0,
          "vmm %llu array %llu", kind_live(VRAMGUARD_KIND_VMM), kind_live(VRAMGUARD_KIND_ARRAY));

    /* ---- a deferred-mapping mipmapped array ---------------------------------- */
    CUmipmappedArray mm = NULL;
    MEASURED("deferred-mapping mipmapped array: charged what the driver allocated",
             CHECK("cuMipmappedArrayCreate(deferred mapping)", cuMipmappedArrayCreate(&mm, &ad, 4) == CUDA_SUCCESS,
                   "failed"));
    CHECK("cuMipmappedArrayDestroy", cuMipmappedArrayDestroy(mm) == CUDA_SUCCESS, "failed");

    /* ---- sparse: tiles of a level region -------------------------------------- */
    ad.Flags = CUDA_ARRAY3D_SPARSE;
    CUarray sp = NULL;
    MEASURED("sparse array: charged what the driver allocated",
             CHECK("cuArray3DCreate(sparse)", cuArray3DCreate(&sp, &ad) == CUDA_SUCCESS, "failed"));
    CUDA_ARRAY_SPARSE_PROPERTIES props;
    memset(&props, 0, sizeof props);
    CHECK("cuArrayGetSparseProperties", cuArrayGetSparseProperties(&props, sp) == CUDA_SUCCESS, "failed");
    printf("note: sparse tile %u x %u x %u\n", props.tileExtent.width, props.tileExtent.height, props.tileExtent.depth);
    CUmemGenericAllocationHandle h4 = 0;
    CHECK("cuMemCreate(tile pool, 4 MiB)", cuMemCreate(&h4, 4 * MiB, &tp, 0) == CUDA_SUCCESS, "failed");
    mi = whole(sp, h4, 1);
    mi.subresourceType = CU_ARRAY_SPARSE_SUBRESOURCE_TYPE_SPARSE_LEVEL;
    mi.subresource.sparseLevel.extentWidth = props.tileExtent.width * 4;
    mi.subresource.sparseLevel.extentHeight = props.tileExtent.height * 4;
    mi.subresource.sparseLevel.extentDepth = 1;
    CHECK("16 tiles mapped", map_ops(&mi, s) == CUDA_SUCCESS, "failed");
    MEASURED("h4 released while its tiles are mapped: still charged", cuMemRelease(h4));
    mi.memOperationType = CU_MEM_OPERATION_TYPE_UNMAP;
    mi.memHandle.memHandle = 0;
    MEASURED("its tiles unmapped: uncharged",
             CHECK("cuMemMapArrayAsync(unmap 16 tiles)", map_ops(&mi, s) == CUDA_SUCCESS, "failed"));
    CHECK("... uncharged", kind_live(VRAMGUARD_KIND_VMM) == 0, "vmm %llu", kind_live(VRAMGUARD_KIND_VMM));
    CUmemGenericAllocationHandle h5 = 0;
    cuMemCreate(&h5, 4 * MiB, &tp, 0);
    mi.memOperationType = CU_MEM_OPERATION_TYPE_MAP;
    mi.memHandle.memHandle = h5;
    map_ops(&mi, s);
    cuMemRelease(h5);
    MEASURED("the sparse array destroyed with tiles mapped: uncharged",
             CHECK("cuArrayDestroy(sparse)", cuArrayDestroy(sp) == CUDA_SUCCESS, "failed"));

    /* ---- a context that ends takes its arrays and their mappings ------------- */
    /* Measured over the whole context's life: made, an array mapped with a
     * released handle, destroyed: everything comes back, the driver's
     * memory and the shim's charge alike (the context's own memory too). */
    CUcontext created = NULL;
    CUmemGenericAllocationHandle h6 = 0;
    unsigned long long vmm_mapped = 0;
    MEASURED("a context destroyed with a deferred-mapping array holding a released handle: all freed", {
        CHECK("cuCtxCreate", cuCtxCreate(&created, NULL, 0, dev) == CUDA_SUCCESS, "failed");
        CUstream cs = NULL;
        cuStreamCreate(&cs, CU_STREAM_NON_BLOCKING);
        ad.Flags = CUDA_ARRAY3D_DEFERRED_MAPPING;
        CHECK("a deferred-mapping array in the created context", cuArray3DCreate(&a, &ad) == CUDA_SUCCESS, "failed");
        cuMemCreate(&h6, size, &tp, 0);
        mi = whole(a, h6, 1);
        CHECK("h6 mapped into it", map_ops(&mi, cs) == CUDA_SUCCESS, "failed");
        cuMemRelease(h6);
        cuStreamDestroy(cs);
        vmm_mapped = kind_live(VRAMGUARD_KIND_VMM);
        CHECK("cuCtxDestroy", cuCtxDestroy(created) == CUDA_SUCCESS, "failed");
        cuCtxSetCurrent(ctx);
    });
    CHECK("... h6 was charged while mapped", vmm_mapped == size, "vmm %llu", vmm_mapped);
    CHECK("... the context's end unmapped h6: uncharged", kind_live(VRAMGUARD_KIND_VMM) == 0, "vmm %llu",
          kind_live(VRAMGUARD_KIND_VMM));

    cuStreamDestroy(s);
    CHECK("nothing live at the end", snap().vram == 0, "vram %llu", snap().vram);
    cuDevicePrimaryCtxRelease(dev);
    return finish("prog_sparse");
}
