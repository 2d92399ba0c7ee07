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

/* The body of every allocation wrapper. `wrapper` names the row of the
 * interposition table; `real_call` is the driver call (using `real`);
 * `out_ptr` and `out_size` read its results after a success. Nested inside
 * another vramguard entry: forward only. */
#define TRACKED_ALLOC(wrapper, api, kind, request, real_call, out_ptr, out_size)                  \
    __typeof__(&wrapper) real = REAL(wrapper);                                                    \
    if (real == NULL)                                                                             \
        return missing_real(api);                                                                 \
    struct vg_call c;                                                                             \
    CUresult r;                                                                                   \
    if (!call_enter(&c, api, kind, request, __builtin_return_address(0))) {                       \
        r = real_call;                                                                            \
    } else if (!alloc_refused(&c, &r)) {                                                          \
        r = real_call;                                                                            \
        alloc_done(&c, r, r == CUDA_SUCCESS ? (uintptr_t)(out_ptr) : 0,                           \
                   r == CUDA_SUCCESS ? (uint64_t)(out_size) : 0);                                 \
    }                                                                                             \
    call_leave();                                                                                 \
    return r

/* The body of every free wrapper: remove the entry before the real free
 * (the address may be reused the moment it returns), put it back if the
 * real free fails. */
#define TRACKED_FREE(wrapper, api, ptr, real_call)                                                \
    __typeof__(&wrapper) real = REAL(wrapper);                                                    \
    if (real == NULL)                                                                             \
        return missing_real(api);                                                                 \
    struct vg_call c;                                                                             \
    CUresult r;                                                                                   \
    if (!call_enter(&c, api, VG_KIND_DEVICE, 0, __builtin_return_address(0))) {                   \
        r = real_call;                                                                            \
    } else {                                                                                      \
        struct vg_alloc old;                                                                      \
        bool had = vg_table_remove((uintptr_t)(ptr), &old);                                       \
        r = real_call;                                                                            \
        if (had && r != CUDA_SUCCESS)                                                             \
            vg_table_restore(&old);                                                               \
    }                                                                                             \
    call_leave();                                                                                 \
    return r

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
    TRACKED_ALLOC(cuMemAlloc_v2, "cuMemAlloc_v2", VG_KIND_DEVICE, bytesize, real(dptr, bytesize),
                  dptr ? *dptr : 0, bytesize);
}

/* The driver writes 32 bits; so do we read. */
EXPORT CUresult vg_cuMemAlloc_v1(vg_devptr_v1 *dptr, unsigned int bytesize)
{
    TRACKED_ALLOC(vg_cuMemAlloc_v1, "cuMemAlloc", VG_KIND_DEVICE, bytesize, real(dptr, bytesize),
                  dptr ? *dptr : 0, bytesize);
}

EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes, size_t Height,
                                   unsigned int ElementSizeBytes)
{
    TRACKED_ALLOC(cuMemAllocPitch_v2, "cuMemAllocPitch_v2", VG_KIND_DEVICE, (uint64_t)WidthInBytes * Height,
                  real(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes), dptr && pPitch ? *dptr : 0,
                  pPitch ? (uint64_t)*pPitch * Height : 0);
}

EXPORT CUresult vg_cuMemAllocPitch_v1(vg_devptr_v1 *dptr, unsigned int *pPitch, unsigned int WidthInBytes,
                                      unsigned int Height, unsigned int ElementSizeBytes)
{
    TRACKED_ALLOC(vg_cuMemAllocPitch_v1, "cuMemAllocPitch", VG_KIND_DEVICE, (uint64_t)WidthInBytes * Height,
                  real(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes), dptr && pPitch ? *dptr : 0,
                  pPitch ? (uint64_t)*pPitch * Height : 0);
}

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
