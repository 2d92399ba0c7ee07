#include "wrappers.h"
#include "process.h"
#include "hook_protocol.h"
#include "hot_path.h"
#include "config.h"
#include "devices.h"
#include "endpoint.h"
#include "entry_table.h"
#include "events.h"
#include "log.h"
#include "policy.h"
#include "purposes.h"
#include "real.h"
#include "table.h"

#include <stdatomic.h>
#include <stdbool.h>


/* ---- cuGetProcAddress, both ABIs, and cuInit ------------------------------ */

EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                                    CUdriverProcAddressQueryResult *symbolStatus)
{
    __typeof__(&cuGetProcAddress_v2) real = REAL(cuGetProcAddress_v2);
    if (real == NULL)
        return vg_missing_real("cuGetProcAddress_v2");
    vg_reached_driver();
    CUresult r = real(symbol, pfn, cudaVersion, flags, symbolStatus);
    if (r == CUDA_SUCCESS && pfn != NULL && *pfn != NULL)
        *pfn = vg_entry_swap(symbol, *pfn, cudaVersion, flags);
    return r;
}

EXPORT CUresult vg_cuGetProcAddress_v1(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags)
{
    __typeof__(&vg_cuGetProcAddress_v1) real = REAL(vg_cuGetProcAddress_v1);
    if (real == NULL)
        return vg_missing_real("cuGetProcAddress");
    vg_reached_driver();
    CUresult r = real(symbol, pfn, cudaVersion, flags);
    if (r == CUDA_SUCCESS && pfn != NULL && *pfn != NULL)
        *pfn = vg_entry_swap(symbol, *pfn, cudaVersion, flags);
    return r;
}

EXPORT CUresult cuInit(unsigned int Flags)
{
    FORWARD(cuInit, "cuInit", real(Flags));
}

/* ---- device memory ------------------------------------------------------- */

HOT_ALLOC_WRAPPER(cuMemAlloc_v2, (CUdeviceptr *dptr, size_t bytesize), (dptr, bytesize), "cuMemAlloc_v2",
                  VG_KIND_DEVICE, bytesize, real(dptr, bytesize), dptr ? *dptr : 0, bytesize)

/* The driver writes 32 bits; so do we read. */
HOT_ALLOC_WRAPPER(vg_cuMemAlloc_v1, (vg_devptr_v1 * dptr, unsigned int bytesize), (dptr, bytesize), "cuMemAlloc",
                  VG_KIND_DEVICE, bytesize, real(dptr, bytesize), dptr ? *dptr : 0, bytesize)

HOT_ALLOC_WRAPPER(cuMemAllocPitch_v2,
                  (CUdeviceptr * dptr, size_t *pPitch, size_t WidthInBytes, size_t Height,
                   unsigned int ElementSizeBytes),
                  (dptr, pPitch, WidthInBytes, Height, ElementSizeBytes), "cuMemAllocPitch_v2", VG_KIND_DEVICE,
                  (uint64_t)WidthInBytes * Height, real(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes),
                  dptr && pPitch ? *dptr : 0, pPitch ? (uint64_t)*pPitch * Height : 0)

HOT_ALLOC_WRAPPER(vg_cuMemAllocPitch_v1,
                  (vg_devptr_v1 * dptr, unsigned int *pPitch, unsigned int WidthInBytes, unsigned int Height,
                   unsigned int ElementSizeBytes),
                  (dptr, pPitch, WidthInBytes, Height, ElementSizeBytes), "cuMemAllocPitch", VG_KIND_DEVICE,
                  (uint64_t)WidthInBytes * Height, real(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes),
                  dptr && pPitch ? *dptr : 0, pPitch ? (uint64_t)*pPitch * Height : 0)

EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr)
{
    TRACKED_FREE(cuMemFree_v2, "cuMemFree_v2", dptr, real(dptr));
}

EXPORT CUresult vg_cuMemFree_v1(vg_devptr_v1 dptr)
{
    TRACKED_FREE(vg_cuMemFree_v1, "cuMemFree", dptr, real(dptr));
}

/* ---- host-pinned memory -------------------------------------------------- */

EXPORT CUresult cuMemAllocHost_v2(void **pp, size_t bytesize)
{
    TRACKED_ALLOC(cuMemAllocHost_v2, "cuMemAllocHost_v2", VG_KIND_HOST_PINNED, bytesize, real(pp, bytesize),
                  pp ? *pp : 0, bytesize);
}

EXPORT CUresult vg_cuMemAllocHost_v1(void **pp, unsigned int bytesize)
{
    TRACKED_ALLOC(vg_cuMemAllocHost_v1, "cuMemAllocHost", VG_KIND_HOST_PINNED, bytesize, real(pp, bytesize),
                  pp ? *pp : 0, bytesize);
}

EXPORT CUresult cuMemHostAlloc(void **pp, size_t bytesize, unsigned int Flags)
{
    TRACKED_ALLOC(cuMemHostAlloc, "cuMemHostAlloc", VG_KIND_HOST_PINNED, bytesize, real(pp, bytesize, Flags),
                  pp ? *pp : 0, bytesize);
}

EXPORT CUresult cuMemFreeHost(void *p)
{
    TRACKED_FREE(cuMemFreeHost, "cuMemFreeHost", p, real(p));
}

/* ---- managed memory ------------------------------------------------------ */

EXPORT CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
    TRACKED_ALLOC(cuMemAllocManaged, "cuMemAllocManaged", VG_KIND_MANAGED, bytesize, real(dptr, bytesize, flags),
                  dptr ? *dptr : 0, bytesize);
}
