/* Declarations of the driver-level wrappers (driver_hooks.c, hooks_pools.c,
 * hooks_vmm.c, hooks_misc.c, hooks_context.c, hooks_modules.c): the only places where the
 * allocation table changes. A header of declarations only, so that the
 * interposition table (entry_table.c) can list them without depending on
 * their files. Each
 * has the exact prototype of the driver variant it stands for; most carry
 * the driver's own names and cuda.h declares them. Declared here: the legacy
 * variants, exported under their driver names with asm labels (cuda.h
 * #defines cuMemAlloc to cuMemAlloc_v2), and the _ptsz variants. */
#ifndef VG_WRAPPERS_H
#define VG_WRAPPERS_H

#include <cuda.h>
#include <stdbool.h>

typedef unsigned int vg_devptr_v1; /* CUdeviceptr_v1: 32-bit */

CUresult vg_cuGetProcAddress_v1(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags)
    __asm__("cuGetProcAddress");
CUresult vg_cuMemAlloc_v1(vg_devptr_v1 *dptr, unsigned int bytesize) __asm__("cuMemAlloc");
CUresult vg_cuMemAllocPitch_v1(vg_devptr_v1 *dptr, unsigned int *pPitch, unsigned int WidthInBytes,
                               unsigned int Height, unsigned int ElementSizeBytes)
    __asm__("cuMemAllocPitch");
CUresult vg_cuMemFree_v1(vg_devptr_v1 dptr) __asm__("cuMemFree");
CUresult vg_cuMemGetInfo_v1(unsigned int *free, unsigned int *total) __asm__("cuMemGetInfo");
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

/* hooks_modules.c */
CUresult vg_cuModuleGetGlobal_v1(vg_devptr_v1 *dptr, unsigned int *bytes, CUmodule hmod, const char *name)
    __asm__("cuModuleGetGlobal");

/* hooks_context.c: legacy variants and those cuda.h 13.0 declares only for
 * the driver's own build. */
CUresult vg_cuCtxPushCurrent_v1(CUcontext ctx) __asm__("cuCtxPushCurrent");
CUresult vg_cuCtxPopCurrent_v1(CUcontext *pctx) __asm__("cuCtxPopCurrent");
CUresult vg_cuCtxCreate_v1(CUcontext *pctx, unsigned int flags, CUdevice dev) __asm__("cuCtxCreate");
CUresult vg_cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev) __asm__("cuCtxCreate_v2");
CUresult vg_cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *params, int numParams, unsigned int flags,
                           CUdevice dev) __asm__("cuCtxCreate_v3");
CUresult vg_cuCtxDestroy_v1(CUcontext ctx) __asm__("cuCtxDestroy");
CUresult vg_cuDevicePrimaryCtxRelease_v1(CUdevice dev) __asm__("cuDevicePrimaryCtxRelease");
CUresult vg_cuDevicePrimaryCtxReset_v1(CUdevice dev) __asm__("cuDevicePrimaryCtxReset");
CUresult vg_cuStreamDestroy_v1(CUstream stream) __asm__("cuStreamDestroy");
CUresult vg_cuStreamBeginCapture_v1(CUstream stream) __asm__("cuStreamBeginCapture");
CUresult vg_cuStreamBeginCapture_v1_ptsz(CUstream stream) __asm__("cuStreamBeginCapture_ptsz");
CUresult cuStreamBeginCapture_v2_ptsz(CUstream stream, CUstreamCaptureMode mode);
CUresult cuStreamBeginCaptureToGraph_ptsz(CUstream stream, CUgraph graph, const CUgraphNode *deps,
                                          const CUgraphEdgeData *edges, size_t n, CUstreamCaptureMode mode);
CUresult cuStreamEndCapture_ptsz(CUstream stream, CUgraph *graph);


/* Per-thread-default-stream variants: cuda.h declares them only when a
 * program is compiled for per-thread streams. */
CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream);
CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool, CUstream hStream);
CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream);
CUresult cuMemMapArrayAsync_ptsz(CUarrayMapInfo *mapInfoList, unsigned int count, CUstream hStream);



#endif
