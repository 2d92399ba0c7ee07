/* The other ways memory is obtained: CUDA arrays (VRAM), host registration
 * (host memory, refused like pinned; I/O memory is not host RAM), imported
 * memory (another process's or device's VRAM: shown, not charged; a pool
 * pointer that is host or managed memory is decided by the policy), and graph
 * memory nodes (classified by their pool properties when added; their
 * memory is counted by the device's graph-pool reserve when graphs run). */
#include "allow.h"
#include "devices.h"
#include "hooks_vmm.h"
#include "wrappers.h"
#include "hook_protocol.h"
#include "pools.h"
#include "log.h"

/* Legacy descriptors of the 32-bit array entry points. */
struct vg_array_desc_v1 {
    unsigned int Width, Height;
    CUarray_format Format;
    unsigned int NumChannels;
};
struct vg_array3d_desc_v1 {
    unsigned int Width, Height, Depth;
    CUarray_format Format;
    unsigned int NumChannels, Flags;
};


/* ---- arrays ------------------------------------------------------------------ */

static unsigned format_bytes(CUarray_format f)
{
    switch (f) {
    case CU_AD_FORMAT_UNSIGNED_INT16:
    case CU_AD_FORMAT_SIGNED_INT16:
    case CU_AD_FORMAT_HALF:
        return 2;
    case CU_AD_FORMAT_UNSIGNED_INT32:
    case CU_AD_FORMAT_SIGNED_INT32:
    case CU_AD_FORMAT_FLOAT:
        return 4;
    default:
        return 1;
    }
}

static uint64_t described_bytes(uint64_t w, uint64_t h, uint64_t d, CUarray_format f, unsigned channels)
{
    return w * (h ? h : 1) * (d ? d : 1) * format_bytes(f) * (channels ? channels : 1);
}

/* The size the driver reports for an array where it can, else the size the
 * descriptor implies. */
static uint64_t array_bytes(CUarray a, uint64_t described)
{
    __typeof__(&cuArrayGetMemoryRequirements) req_fn = vg_helper_fn(VG_H_cuArrayGetMemoryRequirements);
    CUDA_ARRAY_MEMORY_REQUIREMENTS req;
    int dev = vg_current_device();
    if (req_fn && dev >= 0 && req_fn(&req, a, dev) == CUDA_SUCCESS && req.size)
        return req.size;
    return described;
}

static uint64_t mipmapped_bytes(CUmipmappedArray a, const CUDA_ARRAY3D_DESCRIPTOR *desc, unsigned levels)
{
    __typeof__(&cuMipmappedArrayGetMemoryRequirements) req_fn =
        vg_helper_fn(VG_H_cuMipmappedArrayGetMemoryRequirements);
    CUDA_ARRAY_MEMORY_REQUIREMENTS req;
    int dev = vg_current_device();
    if (req_fn && dev >= 0 && req_fn(&req, a, dev) == CUDA_SUCCESS && req.size)
        return req.size;
    uint64_t sum = 0, w = desc->Width, h = desc->Height, d = desc->Depth;
    for (unsigned i = 0; i < (levels ? levels : 1); i++) {
        sum += described_bytes(w, h, d, desc->Format, desc->NumChannels);
        w = w > 1 ? w / 2 : 1;
        h = h > 1 ? h / 2 : h;
        d = d > 1 ? d / 2 : d;
    }
    return sum;
}

/* Created with CUDA_ARRAY3D_SPARSE or CUDA_ARRAY3D_DEFERRED_MAPPING: the
 * driver allocates nothing for it (measured on an H200); its memory is VMM
 * handles that cuMemMapArrayAsync maps into it, charged at cuMemCreate
 * (hooks_vmm.c). */
static bool maps_vmm(unsigned flags)
{
    return (flags & (CUDA_ARRAY3D_SPARSE | CUDA_ARRAY3D_DEFERRED_MAPPING)) != 0;
}

/* Such an array is charged 0, and remembered for cuMemMapArrayAsync with
 * the calling thread's context, which owns it. */
static uint64_t vmm_backed(uintptr_t array, unsigned flags)
{
    vg_vmm_array_created(array, (flags & CUDA_ARRAY3D_DEFERRED_MAPPING) != 0, vg_tls_call.owner);
    return 0;
}

EXPORT CUresult cuArrayCreate_v2(CUarray *pHandle, const CUDA_ARRAY_DESCRIPTOR *d)
{
    uint64_t described = d ? described_bytes(d->Width, d->Height, 0, d->Format, d->NumChannels) : 0;
    TRACKED_ALLOC(cuArrayCreate_v2, "cuArrayCreate_v2", VG_KIND_ARRAY, described, real(pHandle, d),
                  pHandle ? *pHandle : 0, pHandle ? array_bytes(*pHandle, described) : 0);
}

EXPORT CUresult vg_cuArrayCreate_v1(CUarray *pHandle, const struct vg_array_desc_v1 *d)
{
    uint64_t described = d ? described_bytes(d->Width, d->Height, 0, d->Format, d->NumChannels) : 0;
    TRACKED_ALLOC(vg_cuArrayCreate_v1, "cuArrayCreate", VG_KIND_ARRAY, described, real(pHandle, d),
                  pHandle ? *pHandle : 0, pHandle ? array_bytes(*pHandle, described) : 0);
}

EXPORT CUresult cuArray3DCreate_v2(CUarray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *d)
{
    uint64_t described = d && !maps_vmm(d->Flags)
                             ? described_bytes(d->Width, d->Height, d->Depth, d->Format, d->NumChannels)
                             : 0;
    TRACKED_ALLOC(cuArray3DCreate_v2, "cuArray3DCreate_v2", VG_KIND_ARRAY, described, real(pHandle, d),
                  pHandle ? *pHandle : 0,
                  !pHandle        ? 0
                  : d && maps_vmm(d->Flags) ? vmm_backed((uintptr_t)*pHandle, d->Flags)
                                            : array_bytes(*pHandle, described));
}

EXPORT CUresult vg_cuArray3DCreate_v1(CUarray *pHandle, const struct vg_array3d_desc_v1 *d)
{
    uint64_t described = d && !maps_vmm(d->Flags)
                             ? described_bytes(d->Width, d->Height, d->Depth, d->Format, d->NumChannels)
                             : 0;
    TRACKED_ALLOC(vg_cuArray3DCreate_v1, "cuArray3DCreate", VG_KIND_ARRAY, described, real(pHandle, d),
                  pHandle ? *pHandle : 0,
                  !pHandle        ? 0
                  : d && maps_vmm(d->Flags) ? vmm_backed((uintptr_t)*pHandle, d->Flags)
                                            : array_bytes(*pHandle, described));
}

EXPORT CUresult cuMipmappedArrayCreate(CUmipmappedArray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *d,
                                       unsigned int numMipmapLevels)
{
    uint64_t described = d && !maps_vmm(d->Flags)
                             ? described_bytes(d->Width, d->Height, d->Depth, d->Format, d->NumChannels)
                             : 0;
    TRACKED_ALLOC(cuMipmappedArrayCreate, "cuMipmappedArrayCreate", VG_KIND_ARRAY, described,
                  real(pHandle, d, numMipmapLevels), pHandle ? *pHandle : 0,
                  !pHandle || !d     ? 0
                  : maps_vmm(d->Flags) ? vmm_backed((uintptr_t)*pHandle, d->Flags)
                                       : mipmapped_bytes(*pHandle, d, numMipmapLevels));
}

/* Destroying a sparse or deferred-mapping array unmaps the handles mapped
 * into it. */
EXPORT CUresult cuArrayDestroy(CUarray hArray)
{
    TRACKED_FREE_AND(cuArrayDestroy, "cuArrayDestroy", hArray, real(hArray),
                     vg_vmm_array_destroyed((uintptr_t)hArray));
}

EXPORT CUresult cuMipmappedArrayDestroy(CUmipmappedArray hMipmappedArray)
{
    TRACKED_FREE_AND(cuMipmappedArrayDestroy, "cuMipmappedArrayDestroy", hMipmappedArray, real(hMipmappedArray),
                     vg_vmm_array_destroyed((uintptr_t)hMipmappedArray));
}

/* ---- host registration -------------------------------------------------------- */

static int registration_kind(unsigned int flags)
{
    /* I/O memory (another device's BAR) is not host RAM. */
    return (flags & CU_MEMHOSTREGISTER_IOMEMORY) ? VG_KIND_IMPORTED : VG_KIND_HOST_REGISTERED;
}

EXPORT CUresult cuMemHostRegister_v2(void *p, size_t bytesize, unsigned int Flags)
{
    TRACKED_ALLOC(cuMemHostRegister_v2, "cuMemHostRegister_v2", registration_kind(Flags), bytesize,
                  real(p, bytesize, Flags), p, bytesize);
}

EXPORT CUresult vg_cuMemHostRegister_v1(void *p, size_t bytesize, unsigned int Flags)
{
    TRACKED_ALLOC(vg_cuMemHostRegister_v1, "cuMemHostRegister", registration_kind(Flags), bytesize,
                  real(p, bytesize, Flags), p, bytesize);
}

EXPORT CUresult cuMemHostUnregister(void *p)
{
    TRACKED_FREE(cuMemHostUnregister, "cuMemHostUnregister", p, real(p));
}

/* ---- imported memory -------------------------------------------------------------- */

static uint64_t range_bytes(CUdeviceptr p)
{
    __typeof__(&cuMemGetAddressRange_v2) range = vg_helper_fn(VG_H_cuMemGetAddressRange_v2);
    CUdeviceptr base = 0;
    size_t size = 0;
    return range && range(&base, &size, p) == CUDA_SUCCESS ? size : 0;
}

EXPORT CUresult cuIpcOpenMemHandle_v2(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int Flags)
{
    TRACKED_ALLOC(cuIpcOpenMemHandle_v2, "cuIpcOpenMemHandle_v2", VG_KIND_IMPORTED, 0, real(pdptr, handle, Flags),
                  pdptr ? *pdptr : 0, pdptr ? range_bytes(*pdptr) : 0);
}

EXPORT CUresult vg_cuIpcOpenMemHandle_v1(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int Flags)
{
    TRACKED_ALLOC(vg_cuIpcOpenMemHandle_v1, "cuIpcOpenMemHandle", VG_KIND_IMPORTED, 0, real(pdptr, handle, Flags),
                  pdptr ? *pdptr : 0, pdptr ? range_bytes(*pdptr) : 0);
}

EXPORT CUresult cuIpcCloseMemHandle(CUdeviceptr dptr)
{
    TRACKED_FREE(cuIpcCloseMemHandle, "cuIpcCloseMemHandle", dptr, real(dptr));
}

/* What an imported pool pointer is: the kind of its pool when the registry
 * learned one that is not VRAM, else what its attributes say (managed, host,
 * or another process's VRAM: imported), with its device and size. */
static int imported_pointer_kind(CUdeviceptr p, CUmemoryPool pool, int *device, uint64_t *size)
{
    __typeof__(&cuPointerGetAttributes) get = vg_helper_fn(VG_H_cuPointerGetAttributes);
    CUpointer_attribute attrs[4] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE, CU_POINTER_ATTRIBUTE_IS_MANAGED,
                                    CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, CU_POINTER_ATTRIBUTE_RANGE_SIZE};
    unsigned int type = 0, managed = 0;
    int ordinal = -1;
    size_t range = 0;
    void *data[4] = {&type, &managed, &ordinal, &range};
    int kind = VG_KIND_IMPORTED;
    *device = VG_DEVICE_CURRENT;
    if (get != NULL && get(4, attrs, data, p) == CUDA_SUCCESS) {
        if (managed)
            kind = VG_KIND_MANAGED;
        else if (type == CU_MEMORYTYPE_HOST)
            kind = VG_KIND_HOST_PINNED;
        else if (ordinal >= 0)
            *device = ordinal;
    }
    struct vg_pool known;
    if (vg_pool_find(pool, &known) && (known.kind == VG_KIND_HOST_PINNED || known.kind == VG_KIND_MANAGED))
        kind = known.kind;
    *size = range ? range : range_bytes(p);
    return kind;
}

/* A pointer imported from another process's pool is classified by its
 * pool or its attributes: host or managed memory goes through the policy
 * (refused: freed again with cuMemFree, the refusal returned; let through:
 * tracked as that kind); another process's VRAM is shown as imported. */
EXPORT CUresult cuMemPoolImportPointer(CUdeviceptr *ptr_out, CUmemoryPool pool, CUmemPoolPtrExportData *shareData)
{
    __typeof__(&cuMemPoolImportPointer) real = REAL(cuMemPoolImportPointer);
    if (real == NULL)
        return vg_missing_real("cuMemPoolImportPointer");
    struct vg_call c;
    CUresult r;
    if (!vg_call_enter(&c, "cuMemPoolImportPointer", VG_KIND_IMPORTED, 0, __builtin_return_address(0))) {
        r = real(ptr_out, pool, shareData);
    } else {
        r = real(ptr_out, pool, shareData);
        if (r == CUDA_SUCCESS && ptr_out && *ptr_out) {
            int device;
            uint64_t size;
            c.kind = imported_pointer_kind(*ptr_out, pool, &device, &size);
            c.size = size;
            CUresult refusal;
            if (vg_alloc_refused(&c, device, &refusal)) {
                /* Not VRAM: free it again ("may be freed with cuMemFree"), then refuse. */
                __typeof__(&cuMemFree_v2) free_fn = REAL(cuMemFree_v2);
                if (free_fn == NULL || free_fn(*ptr_out) != CUDA_SUCCESS)
                    vg_log("cannot free the refused imported pointer 0x%llx; it stays imported, untracked",
                           (unsigned long long)*ptr_out);
                *ptr_out = 0;
                r = refusal;
            } else {
                vg_alloc_done(&c, r, *ptr_out, size, 0);
            }
        }
    }
    vg_call_leave();
    return r;
}

EXPORT CUresult cuExternalMemoryGetMappedBuffer(CUdeviceptr *devPtr, CUexternalMemory extMem,
                                                const CUDA_EXTERNAL_MEMORY_BUFFER_DESC *bufferDesc)
{
    uint64_t size = bufferDesc ? bufferDesc->size : 0;
    TRACKED_ALLOC(cuExternalMemoryGetMappedBuffer, "cuExternalMemoryGetMappedBuffer", VG_KIND_IMPORTED, size,
                  real(devPtr, extMem, bufferDesc), devPtr ? *devPtr : 0, size);
}

EXPORT CUresult cuImportExternalMemory(CUexternalMemory *extMem_out, const CUDA_EXTERNAL_MEMORY_HANDLE_DESC *desc)
{
    FORWARD(cuImportExternalMemory, "cuImportExternalMemory", real(extMem_out, desc));
}

EXPORT CUresult cuDestroyExternalMemory(CUexternalMemory extMem)
{
    FORWARD(cuDestroyExternalMemory, "cuDestroyExternalMemory", real(extMem));
}

/* ---- graph memory nodes ------------------------------------------------------------ */

/* A memory-allocation node: refused when its pool properties are not VRAM.
 * Not live memory: the graph pool's reserve is read per device. */
static bool graph_node_refused(const char *api, const CUmemPoolProps *props, size_t size, void *ret,
                               CUresult *refusal)
{
    struct vg_call c;
    if (!vg_call_enter(&c, api, VG_KIND_POOL, size, ret)) {
        vg_call_leave();
        return false;
    }
    c.kind = props ? vg_pool_kind_of(props->allocType, &props->location) : VG_KIND_POOL;
    int device = c.kind == VG_KIND_POOL && props ? props->location.id : VG_DEVICE_CURRENT;
    bool refused = vg_alloc_refused(&c, device, refusal);
    if (!refused && c.allow_rule >= 0)
        vg_allow_give_back(c.kind, c.size); /* a node is no live memory: the caps hold nothing for it */
    if (!refused && c.action == VG_ACTION_WARN)
        vg_event_violation(&c, CUDA_SUCCESS);
    vg_call_leave();
    return refused;
}

EXPORT CUresult cuGraphAddMemAllocNode(CUgraphNode *phGraphNode, CUgraph hGraph, const CUgraphNode *dependencies,
                                       size_t numDependencies, CUDA_MEM_ALLOC_NODE_PARAMS *nodeParams)
{
    __typeof__(&cuGraphAddMemAllocNode) real = REAL(cuGraphAddMemAllocNode);
    if (real == NULL)
        return vg_missing_real("cuGraphAddMemAllocNode");
    CUresult r;
    if (nodeParams && graph_node_refused("cuGraphAddMemAllocNode", &nodeParams->poolProps, nodeParams->bytesize,
                                         __builtin_return_address(0), &r))
        return r;
    return real(phGraphNode, hGraph, dependencies, numDependencies, nodeParams);
}

EXPORT CUresult cuGraphAddNode_v2(CUgraphNode *phGraphNode, CUgraph hGraph, const CUgraphNode *dependencies,
                                  const CUgraphEdgeData *dependencyData, size_t numDependencies,
                                  CUgraphNodeParams *nodeParams)
{
    __typeof__(&cuGraphAddNode_v2) real = REAL(cuGraphAddNode_v2);
    if (real == NULL)
        return vg_missing_real("cuGraphAddNode_v2");
    CUresult r;
    if (nodeParams && nodeParams->type == CU_GRAPH_NODE_TYPE_MEM_ALLOC &&
        graph_node_refused("cuGraphAddNode_v2", &nodeParams->alloc.poolProps, nodeParams->alloc.bytesize,
                           __builtin_return_address(0), &r))
        return r;
    return real(phGraphNode, hGraph, dependencies, dependencyData, numDependencies, nodeParams);
}

EXPORT CUresult vg_cuGraphAddNode_v1(CUgraphNode *phGraphNode, CUgraph hGraph, const CUgraphNode *dependencies,
                                     size_t numDependencies, CUgraphNodeParams *nodeParams)
{
    __typeof__(&vg_cuGraphAddNode_v1) real = REAL(vg_cuGraphAddNode_v1);
    if (real == NULL)
        return vg_missing_real("cuGraphAddNode");
    CUresult r;
    if (nodeParams && nodeParams->type == CU_GRAPH_NODE_TYPE_MEM_ALLOC &&
        graph_node_refused("cuGraphAddNode", &nodeParams->alloc.poolProps, nodeParams->alloc.bytesize,
                           __builtin_return_address(0), &r))
        return r;
    return real(phGraphNode, hGraph, dependencies, numDependencies, nodeParams);
}

EXPORT CUresult cuGraphAddMemFreeNode(CUgraphNode *phGraphNode, CUgraph hGraph, const CUgraphNode *dependencies,
                                      size_t numDependencies, CUdeviceptr dptr)
{
    FORWARD(cuGraphAddMemFreeNode, "cuGraphAddMemFreeNode", real(phGraphNode, hGraph, dependencies, numDependencies, dptr));
}

EXPORT CUresult cuDeviceGraphMemTrim(CUdevice device)
{
    FORWARD(cuDeviceGraphMemTrim, "cuDeviceGraphMemTrim", real(device));
}

/* ---- memory information: VRAMGUARD_LIMIT_MEMINFO=1 ----------------------------------- */

/* The driver's answer, replaced by the current device's total budget and
 * what is left of it (vg_policy_meminfo) when the option and a budget are
 * set; forwarded unchanged otherwise (and when nested in another wrapper). */
static bool budget_meminfo(uint64_t *free_b, uint64_t *total_b)
{
    const struct vg_config *cfg = vg_config();
    if (!cfg->limit_meminfo || !vg_budgets_active)
        return false;
    return vg_policy_meminfo(cfg, vg_current_device(), free_b, total_b);
}

EXPORT CUresult cuMemGetInfo_v2(size_t *free, size_t *total)
{
    __typeof__(&cuMemGetInfo_v2) real = REAL(cuMemGetInfo_v2);
    if (real == NULL)
        return vg_missing_real("cuMemGetInfo_v2");
    bool outer = vg_free_enter();
    CUresult r = real(free, total);
    uint64_t f, t;
    if (outer && r == CUDA_SUCCESS && free && total && (f = *free, t = *total, budget_meminfo(&f, &t))) {
        *free = (size_t)f;
        *total = (size_t)t;
    }
    vg_call_leave();
    return r;
}

EXPORT CUresult vg_cuMemGetInfo_v1(unsigned int *free, unsigned int *total)
{
    __typeof__(&vg_cuMemGetInfo_v1) real = REAL(vg_cuMemGetInfo_v1);
    if (real == NULL)
        return vg_missing_real("cuMemGetInfo");
    bool outer = vg_free_enter();
    CUresult r = real(free, total);
    uint64_t f, t;
    if (outer && r == CUDA_SUCCESS && free && total && (f = *free, t = *total, budget_meminfo(&f, &t))) {
        *free = f > UINT32_MAX ? UINT32_MAX : (unsigned int)f;
        *total = t > UINT32_MAX ? UINT32_MAX : (unsigned int)t;
    }
    vg_call_leave();
    return r;
}
