/* Driver-level wrappers (driver_hooks.c, hooks_pools.c, hooks_vmm.c,
 * hooks_misc.c): the only places where the allocation table changes. Each
 * has the exact prototype of the driver variant it stands for; most carry
 * the driver's own names and cuda.h declares them. Declared here: the legacy
 * variants, exported under their driver names with asm labels (cuda.h
 * #defines cuMemAlloc to cuMemAlloc_v2), and the _ptsz variants. */
#ifndef VG_DRIVER_HOOKS_H
#define VG_DRIVER_HOOKS_H

#include <cuda.h>

typedef unsigned int vg_devptr_v1; /* CUdeviceptr_v1: 32-bit */

CUresult vg_cuGetProcAddress_v1(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags)
    __asm__("cuGetProcAddress");
CUresult vg_cuMemAlloc_v1(vg_devptr_v1 *dptr, unsigned int bytesize) __asm__("cuMemAlloc");
CUresult vg_cuMemAllocPitch_v1(vg_devptr_v1 *dptr, unsigned int *pPitch, unsigned int WidthInBytes,
                               unsigned int Height, unsigned int ElementSizeBytes)
    __asm__("cuMemAllocPitch");
CUresult vg_cuMemFree_v1(vg_devptr_v1 dptr) __asm__("cuMemFree");
CUresult vg_cuMemAllocHost_v1(void **pp, unsigned int bytesize) __asm__("cuMemAllocHost");

/* hooks_misc.c */
struct vg_array_desc_v1;
struct vg_array3d_desc_v1;
CUresult vg_cuArrayCreate_v1(CUarray *pHandle, const struct vg_array_desc_v1 *desc) __asm__("cuArrayCreate");
CUresult vg_cuArray3DCreate_v1(CUarray *pHandle, const struct vg_array3d_desc_v1 *desc) __asm__("cuArray3DCreate");
CUresult vg_cuMemHostRegister_v1(void *p, size_t bytesize, unsigned int Flags) __asm__("cuMemHostRegister");
CUresult vg_cuIpcOpenMemHandle_v1(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int Flags)
    __asm__("cuIpcOpenMemHandle");
CUresult vg_cuGraphAddNode_v1(CUgraphNode *phGraphNode, CUgraph hGraph, const CUgraphNode *dependencies,
                              size_t numDependencies, CUgraphNodeParams *nodeParams) __asm__("cuGraphAddNode");

/* Per-thread-default-stream variants: cuda.h declares them only when a
 * program is compiled for per-thread streams. */
CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream);
CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool, CUstream hStream);
CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream);

/* VMM bookkeeping (hooks_vmm.c): handles exported with
 * cuMemExportToShareableHandle; forgetting everything in a fork child. */
uint64_t vg_vmm_exported_handles(void);
void vg_vmm_reset_after_fork(void);

/* Called by every way in: marks that this process reached the driver (it
 * then gets a report at exit), loads the configuration and starts the
 * outputs. Cheap after the first call. */
void vg_reached_driver(void);

#endif
