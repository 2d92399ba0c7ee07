#include "driver_hooks.h"
#include "callctx.h"
#include "config.h"
#include "devices.h"
#include "entry_table.h"
#include "events.h"
#include "log.h"
#include "policy.h"
#include "purposes.h"
#include "real.h"
#include "table.h"

#include <stdatomic.h>
#include <stdbool.h>

__thread struct vg_tls_call vg_tls_call __attribute__((tls_model("initial-exec")));

static atomic_int reached;

void vg_reached_driver(void)
{
    if (atomic_load_explicit(&reached, memory_order_acquire))
        return;
    if (atomic_exchange(&reached, 1) == 0) {
        vg_config();
        vg_events_process_start();
    }
}

int vg_process_reached_driver(void)
{
    return atomic_load(&reached);
}

void vg_forget_reached_driver(void)
{
    atomic_store(&reached, 0);
}

#define REAL(wrapper) ((__typeof__(&wrapper))vg_real_fn(VG_FN_##wrapper))
#define EXPORT __attribute__((visibility("default")))

static CUresult missing_real(const char *symbol)
{
    static atomic_bool warned;
    if (!atomic_exchange(&warned, true))
        vg_log("cannot find the real %s in libcuda.so.1; returning CUDA_ERROR_NOT_INITIALIZED", symbol);
    return CUDA_ERROR_NOT_INITIALIZED;
}

/* ---- the accounting protocol shared by every allocation wrapper ---------- */

/* Enter a driver wrapper. Returns false when nested inside another driver
 * wrapper: the caller then only forwards. call_leave() must follow either way. */
static bool call_enter(struct vg_call *c, const char *api, int kind, uint64_t size, void *ret)
{
    struct vg_tls_call *t = &vg_tls_call;
    if (t->drv_depth++ > 0)
        return false;
    vg_reached_driver();
    c->driver_api = api;
    c->api = t->rt_depth ? t->rt_api : api;
    c->caller = t->rt_depth ? t->rt_caller : ret;
    c->kind = kind;
    c->size = size;
    c->device = -1;
    c->action = VG_ACTION_ALLOW;
    vg_purpose_current(&c->purpose, &c->label);
    return true;
}

static void call_leave(void)
{
    vg_tls_call.drv_depth--;
}

/* Before the real allocation: learn the device, apply the policy. Returns
 * true when the call is refused; *refusal is then what to return. */
static bool alloc_refused(struct vg_call *c, CUresult *refusal)
{
    c->device = vg_current_device();
    struct vg_decision d = vg_policy_decide(vg_config(), c->kind);
    c->action = d.action;
    if (d.action != VG_ACTION_REJECT)
        return false;
    vg_event_violation(c, d.refusal);
    *refusal = d.refusal;
    return true;
}

/* After the real allocation: record a success, explain an OOM. */
static void alloc_done(struct vg_call *c, CUresult r, uintptr_t ptr, uint64_t size)
{
    if (r == CUDA_SUCCESS && ptr != 0) {
        c->size = size;
        struct vg_alloc a = {
            .ptr = ptr, .size = size, .api = c->api, .caller = c->caller,
            .device = (int16_t)c->device, .kind = (uint8_t)c->kind,
            .purpose = c->purpose, .label = c->label,
        };
        vg_table_insert(&a);
    } else if (r == CUDA_ERROR_OUT_OF_MEMORY) {
        vg_event_oom(c, r);
    }
    if (c->action == VG_ACTION_WARN)
        vg_event_violation(c, r);
}

/* Remove before the real free; put back if the real free fails. */
static CUresult free_tracked(uintptr_t ptr, CUresult (*real_free)(uintptr_t, void *), void *real)
{
    struct vg_alloc old;
    bool had = vg_table_remove(ptr, &old);
    CUresult r = real_free(ptr, real);
    if (had && r != CUDA_SUCCESS)
        vg_table_restore(&old);
    return r;
}

/* ---- cuGetProcAddress, both ABIs, and cuInit ------------------------------ */

EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                                    CUdriverProcAddressQueryResult *symbolStatus)
{
    __typeof__(&cuGetProcAddress_v2) real = REAL(cuGetProcAddress_v2);
    if (real == NULL)
        return missing_real("cuGetProcAddress_v2");
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
        return missing_real("cuGetProcAddress");
    vg_reached_driver();
    CUresult r = real(symbol, pfn, cudaVersion, flags);
    if (r == CUDA_SUCCESS && pfn != NULL && *pfn != NULL)
        *pfn = vg_entry_swap(symbol, *pfn, cudaVersion, flags);
    return r;
}

EXPORT CUresult cuInit(unsigned int Flags)
{
    __typeof__(&cuInit) real = REAL(cuInit);
    if (real == NULL)
        return missing_real("cuInit");
    vg_reached_driver();
    return real(Flags);
}

/* ---- device memory ------------------------------------------------------- */

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
    __typeof__(&cuMemAlloc_v2) real = REAL(cuMemAlloc_v2);
    if (real == NULL)
        return missing_real("cuMemAlloc_v2");
    struct vg_call c;
    if (!call_enter(&c, "cuMemAlloc_v2", VG_KIND_DEVICE, bytesize, __builtin_return_address(0))) {
        CUresult r = real(dptr, bytesize);
        call_leave();
        return r;
    }
    CUresult r;
    if (!alloc_refused(&c, &r)) {
        r = real(dptr, bytesize);
        alloc_done(&c, r, (r == CUDA_SUCCESS && dptr) ? (uintptr_t)*dptr : 0, bytesize);
    }
    call_leave();
    return r;
}

EXPORT CUresult vg_cuMemAlloc_v1(vg_devptr_v1 *dptr, unsigned int bytesize)
{
    __typeof__(&vg_cuMemAlloc_v1) real = REAL(vg_cuMemAlloc_v1);
    if (real == NULL)
        return missing_real("cuMemAlloc");
    struct vg_call c;
    if (!call_enter(&c, "cuMemAlloc", VG_KIND_DEVICE, bytesize, __builtin_return_address(0))) {
        CUresult r = real(dptr, bytesize);
        call_leave();
        return r;
    }
    CUresult r;
    if (!alloc_refused(&c, &r)) {
        r = real(dptr, bytesize); /* the driver writes 32 bits; so do we read */
        alloc_done(&c, r, (r == CUDA_SUCCESS && dptr) ? (uintptr_t)*dptr : 0, bytesize);
    }
    call_leave();
    return r;
}

EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes, size_t Height,
                                   unsigned int ElementSizeBytes)
{
    __typeof__(&cuMemAllocPitch_v2) real = REAL(cuMemAllocPitch_v2);
    if (real == NULL)
        return missing_real("cuMemAllocPitch_v2");
    struct vg_call c;
    if (!call_enter(&c, "cuMemAllocPitch_v2", VG_KIND_DEVICE, (uint64_t)WidthInBytes * Height,
                    __builtin_return_address(0))) {
        CUresult r = real(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
        call_leave();
        return r;
    }
    CUresult r;
    if (!alloc_refused(&c, &r)) {
        r = real(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
        bool ok = r == CUDA_SUCCESS && dptr && pPitch;
        alloc_done(&c, r, ok ? (uintptr_t)*dptr : 0, ok ? (uint64_t)*pPitch * Height : 0);
    }
    call_leave();
    return r;
}

EXPORT CUresult vg_cuMemAllocPitch_v1(vg_devptr_v1 *dptr, unsigned int *pPitch, unsigned int WidthInBytes,
                                      unsigned int Height, unsigned int ElementSizeBytes)
{
    __typeof__(&vg_cuMemAllocPitch_v1) real = REAL(vg_cuMemAllocPitch_v1);
    if (real == NULL)
        return missing_real("cuMemAllocPitch");
    struct vg_call c;
    if (!call_enter(&c, "cuMemAllocPitch", VG_KIND_DEVICE, (uint64_t)WidthInBytes * Height,
                    __builtin_return_address(0))) {
        CUresult r = real(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
        call_leave();
        return r;
    }
    CUresult r;
    if (!alloc_refused(&c, &r)) {
        r = real(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
        bool ok = r == CUDA_SUCCESS && dptr && pPitch;
        alloc_done(&c, r, ok ? (uintptr_t)*dptr : 0, ok ? (uint64_t)*pPitch * Height : 0);
    }
    call_leave();
    return r;
}

static CUresult call_free_v2(uintptr_t ptr, void *real)
{
    return ((__typeof__(&cuMemFree_v2))real)((CUdeviceptr)ptr);
}

EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr)
{
    __typeof__(&cuMemFree_v2) real = REAL(cuMemFree_v2);
    if (real == NULL)
        return missing_real("cuMemFree_v2");
    struct vg_call c;
    CUresult r;
    if (!call_enter(&c, "cuMemFree_v2", VG_KIND_DEVICE, 0, __builtin_return_address(0)))
        r = real(dptr);
    else
        r = free_tracked((uintptr_t)dptr, call_free_v2, (void *)real);
    call_leave();
    return r;
}

static CUresult call_free_v1(uintptr_t ptr, void *real)
{
    return ((__typeof__(&vg_cuMemFree_v1))real)((vg_devptr_v1)ptr);
}

EXPORT CUresult vg_cuMemFree_v1(vg_devptr_v1 dptr)
{
    __typeof__(&vg_cuMemFree_v1) real = REAL(vg_cuMemFree_v1);
    if (real == NULL)
        return missing_real("cuMemFree");
    struct vg_call c;
    CUresult r;
    if (!call_enter(&c, "cuMemFree", VG_KIND_DEVICE, 0, __builtin_return_address(0)))
        r = real(dptr);
    else
        r = free_tracked((uintptr_t)dptr, call_free_v1, (void *)real);
    call_leave();
    return r;
}

/* ---- host-pinned memory -------------------------------------------------- */

EXPORT CUresult cuMemAllocHost_v2(void **pp, size_t bytesize)
{
    __typeof__(&cuMemAllocHost_v2) real = REAL(cuMemAllocHost_v2);
    if (real == NULL)
        return missing_real("cuMemAllocHost_v2");
    struct vg_call c;
    if (!call_enter(&c, "cuMemAllocHost_v2", VG_KIND_HOST_PINNED, bytesize, __builtin_return_address(0))) {
        CUresult r = real(pp, bytesize);
        call_leave();
        return r;
    }
    CUresult r;
    if (!alloc_refused(&c, &r)) {
        r = real(pp, bytesize);
        alloc_done(&c, r, (r == CUDA_SUCCESS && pp) ? (uintptr_t)*pp : 0, bytesize);
    }
    call_leave();
    return r;
}

EXPORT CUresult vg_cuMemAllocHost_v1(void **pp, unsigned int bytesize)
{
    __typeof__(&vg_cuMemAllocHost_v1) real = REAL(vg_cuMemAllocHost_v1);
    if (real == NULL)
        return missing_real("cuMemAllocHost");
    struct vg_call c;
    if (!call_enter(&c, "cuMemAllocHost", VG_KIND_HOST_PINNED, bytesize, __builtin_return_address(0))) {
        CUresult r = real(pp, bytesize);
        call_leave();
        return r;
    }
    CUresult r;
    if (!alloc_refused(&c, &r)) {
        r = real(pp, bytesize);
        alloc_done(&c, r, (r == CUDA_SUCCESS && pp) ? (uintptr_t)*pp : 0, bytesize);
    }
    call_leave();
    return r;
}

EXPORT CUresult cuMemHostAlloc(void **pp, size_t bytesize, unsigned int Flags)
{
    __typeof__(&cuMemHostAlloc) real = REAL(cuMemHostAlloc);
    if (real == NULL)
        return missing_real("cuMemHostAlloc");
    struct vg_call c;
    if (!call_enter(&c, "cuMemHostAlloc", VG_KIND_HOST_PINNED, bytesize, __builtin_return_address(0))) {
        CUresult r = real(pp, bytesize, Flags);
        call_leave();
        return r;
    }
    CUresult r;
    if (!alloc_refused(&c, &r)) {
        r = real(pp, bytesize, Flags);
        alloc_done(&c, r, (r == CUDA_SUCCESS && pp) ? (uintptr_t)*pp : 0, bytesize);
    }
    call_leave();
    return r;
}

static CUresult call_free_host(uintptr_t ptr, void *real)
{
    return ((__typeof__(&cuMemFreeHost))real)((void *)ptr);
}

EXPORT CUresult cuMemFreeHost(void *p)
{
    __typeof__(&cuMemFreeHost) real = REAL(cuMemFreeHost);
    if (real == NULL)
        return missing_real("cuMemFreeHost");
    struct vg_call c;
    CUresult r;
    if (!call_enter(&c, "cuMemFreeHost", VG_KIND_HOST_PINNED, 0, __builtin_return_address(0)))
        r = real(p);
    else
        r = free_tracked((uintptr_t)p, call_free_host, (void *)real);
    call_leave();
    return r;
}

/* ---- managed memory ------------------------------------------------------ */

EXPORT CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
    __typeof__(&cuMemAllocManaged) real = REAL(cuMemAllocManaged);
    if (real == NULL)
        return missing_real("cuMemAllocManaged");
    struct vg_call c;
    if (!call_enter(&c, "cuMemAllocManaged", VG_KIND_MANAGED, bytesize, __builtin_return_address(0))) {
        CUresult r = real(dptr, bytesize, flags);
        call_leave();
        return r;
    }
    CUresult r;
    if (!alloc_refused(&c, &r)) {
        r = real(dptr, bytesize, flags);
        alloc_done(&c, r, (r == CUDA_SUCCESS && dptr) ? (uintptr_t)*dptr : 0, bytesize);
    }
    call_leave();
    return r;
}
