/* Stream-ordered allocation and memory pools. A device pool is VRAM; host,
 * host-NUMA and managed pools are not. Pools are classified where the
 * program obtains them; an allocation from a pool never seen is classified
 * from its pointer's attributes and, if it is not VRAM under `reject`, freed
 * again and refused. An allocation or free on a stream being captured makes
 * a graph node, not live memory: graph memory is counted by the device's
 * graph-pool reserve when graphs run. */
#include "allow.h"
#include "hooks_pools.h"
#include "wrappers.h"
#include "hook_protocol.h"
#include "hot_path.h"
#include "log.h"
#include "policy.h"
#include "config.h"
#include "devices.h"
#include "pools.h"

typedef CUresult (*free_async_fn)(CUdeviceptr, CUstream);

bool vg_stream_capturing(CUstream stream, bool ptsz)
{
    __typeof__(&cuStreamIsCapturing) is_capturing =
        vg_helper_fn(ptsz ? VG_H_cuStreamIsCapturing_ptsz : VG_H_cuStreamIsCapturing);
    CUstreamCaptureStatus status = CU_STREAM_CAPTURE_STATUS_NONE;
    return is_capturing && is_capturing(stream, &status) == CUDA_SUCCESS &&
           status != CU_STREAM_CAPTURE_STATUS_NONE;
}

/* The driver is asked only while some capture is in progress (hooks_context.c
 * counts them). */
static inline bool capturing(CUstream stream, bool ptsz)
{
    return atomic_load_explicit(&vg_process_captures, memory_order_acquire) > 0 && vg_stream_capturing(stream, ptsz);
}

/* What this thread learned about `stream` (its device, and the pool
 * cuMemAllocAsync draws from there), or NULL: learned from the first
 * allocation's pointer attributes, forgotten when a context, stream or
 * current pool changes (process.h). */
static inline struct vg_stream_fact *stream_slot(CUstream stream)
{
    return &vg_tls_call.streams[((uintptr_t)stream >> 4) % VG_STREAM_FACTS];
}

static inline const struct vg_stream_fact *stream_fact(CUstream stream)
{
    const struct vg_stream_fact *f = stream_slot(stream);
    if (f->valid && f->stream == (void *)stream &&
        vg_tls_call.epoch == atomic_load_explicit(&vg_process_epoch, memory_order_relaxed))
        return f;
    return NULL;
}

static void remember_stream(CUstream stream, int device, uint16_t pool, int kind)
{
    if (vg_tls_call.epoch != atomic_load_explicit(&vg_process_epoch, memory_order_relaxed))
        return; /* learned under facts that have changed since */
    struct vg_stream_fact *f = stream_slot(stream);
    *f = (struct vg_stream_fact){(void *)stream, (int16_t)device, pool, (uint8_t)kind, true,
                                 (uint16_t)vg_table_device_meta(device)};
}

/* Kind, device and pool of a fresh stream-ordered allocation. */
static void classify_pointer(CUdeviceptr ptr, int *kind, int *device, uint16_t *pool)
{
    __typeof__(&cuPointerGetAttributes) get = vg_helper_fn(VG_H_cuPointerGetAttributes);
    CUpointer_attribute attrs[4] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE, CU_POINTER_ATTRIBUTE_IS_MANAGED,
                                    CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE};
    unsigned int type = 0, managed = 0;
    int ordinal = -1;
    CUmemoryPool handle = NULL;
    void *data[4] = {&type, &managed, &ordinal, &handle};
    *kind = VG_KIND_POOL;
    *device = vg_current_device();
    *pool = 0;
    if (get == NULL || get(4, attrs, data, ptr) != CUDA_SUCCESS)
        return; /* the driver does not say: assume its device pool */
    if (managed)
        *kind = VG_KIND_MANAGED;
    else if (type == CU_MEMORYTYPE_HOST)
        *kind = VG_KIND_HOST_PINNED;
    if (ordinal >= 0 && *kind == VG_KIND_POOL)
        *device = ordinal;
    struct vg_pool known;
    *pool = vg_pool_find(handle, &known);
    if (*pool == 0)
        *pool = vg_pool_register(handle, *kind == VG_KIND_POOL ? *device : -1, *kind);
    else
        *kind = known.kind; /* classified where the program obtained it */
}

/* One stream-ordered allocation: from the stream device's current pool
 * (from_pool NULL) or from `pool`. The steady state (no capture anywhere, a
 * stream whose device pool this thread knows) is inline in ORDERED_ALLOC;
 * everything else comes here. */
__attribute__((noinline)) static CUresult ordered_alloc(struct vg_call *c, CUdeviceptr *dptr, size_t size, CUstream stream, CUmemoryPool pool,
                              bool ptsz, CUresult (*alloc)(CUdeviceptr *, size_t, CUmemoryPool, CUstream, void *),
                              void *real, free_async_fn undo)
{
    if (capturing(stream, ptsz))
        return alloc(dptr, size, pool, stream, real); /* a graph node, not live memory */
    CUresult r;
    struct vg_pool known;
    uint32_t epoch = atomic_load_explicit(&vg_process_epoch, memory_order_acquire);
    uint16_t index = pool ? vg_pool_find(pool, &known) : 0;
    if (index) {
        /* A pool we classified: decide before the driver is called. */
        c->kind = known.kind;
        if (known.kind == VG_KIND_POOL) /* the hot path's fact (HOT_ALLOC_FROM_POOL) */
            vg_tls_call.pool = (struct vg_pool_fact){pool, epoch, (int16_t)known.device, index,
                                                     (uint16_t)vg_table_device_meta(known.device)};
        if (vg_alloc_refused(c, known.kind == VG_KIND_POOL ? known.device : vg_current_device(), &r))
            return r;
        r = alloc(dptr, size, pool, stream, real);
        vg_alloc_done(c, r, r == CUDA_SUCCESS && dptr ? *dptr : 0, size, index);
        return r;
    }
    const struct vg_stream_fact *f = pool ? NULL : stream_fact(stream);
    if (f) {
        /* This stream's device and pool are known: decide before the call. */
        c->kind = f->kind;
        uint16_t from = f->pool;
        if (vg_alloc_refused(c, f->device, &r))
            return r;
        r = alloc(dptr, size, pool, stream, real);
        vg_alloc_done(c, r, r == CUDA_SUCCESS && dptr ? *dptr : 0, size, from);
        return r;
    }
    r = alloc(dptr, size, pool, stream, real);
    if (r != CUDA_SUCCESS || dptr == NULL) {
        c->device = vg_current_device();
        vg_alloc_done(c, r, 0, 0, 0);
        return r;
    }
    int kind, device;
    classify_pointer(*dptr, &kind, &device, &index);
    c->kind = kind;
    if (pool == NULL && index != 0)
        remember_stream(stream, device, index, kind);
    CUresult refusal;
    if (vg_alloc_refused(c, device, &refusal)) {
        /* Only now known not to be VRAM: give it back, then refuse, leaving
         * no freed address where the caller looks for its pointer. */
        if (undo && undo(*dptr, stream) != CUDA_SUCCESS)
            vg_log("cannot free the refused stream-ordered allocation 0x%llx; it stays allocated, untracked",
                   (unsigned long long)*dptr);
        *dptr = 0;
        return refusal;
    }
    vg_alloc_done(c, r, *dptr, size, index);
    return r;
}

static CUresult call_alloc_async(CUdeviceptr *dptr, size_t size, CUmemoryPool pool, CUstream stream, void *real)
{
    (void)pool;
    return ((__typeof__(&cuMemAllocAsync))real)(dptr, size, stream);
}

static CUresult call_alloc_from_pool(CUdeviceptr *dptr, size_t size, CUmemoryPool pool, CUstream stream, void *real)
{
    return ((__typeof__(&cuMemAllocFromPoolAsync))real)(dptr, size, pool, stream);
}

/* This thread's fact about `stream` when it names a device pool and no
 * capture is in progress anywhere: the allocation needs no question. */
static inline const struct vg_stream_fact *steady(CUstream stream, CUmemoryPool pool)
{
    if (pool != NULL || atomic_load_explicit(&vg_process_captures, memory_order_relaxed) != 0)
        return NULL;
    const struct vg_stream_fact *f = stream_fact(stream);
    return f && f->kind == VG_KIND_POOL ? f : NULL;
}

static inline uint16_t vg_fact_pool(const struct vg_stream_fact *f)
{
    return f->pool;
}

#define ORDERED_ALLOC(wrapper, api, pool, ptsz, call, undo_wrapper, ret)                            \
    __typeof__(&wrapper) real = REAL(wrapper);                                                    \
    if (real == NULL)                                                                             \
        return vg_missing_real(api);                                                              \
    struct vg_call c;                                                                             \
    CUresult r;                                                                                   \
    const struct vg_stream_fact *f;                                                               \
    if (!vg_call_enter(&c, api, VG_KIND_POOL, bytesize, ret)) {                                   \
        r = call(dptr, bytesize, pool, hStream, (void *)real);                                    \
    } else if ((f = steady(hStream, pool)) != NULL) {                                             \
        c.device = f->device;                                                                     \
        uint16_t from = vg_fact_pool(f);                                                          \
        if (!__builtin_expect(vg_budgets_active, 0) || !vg_call_over_budget(&c, VG_KIND_POOL, &r)) { \
            r = call(dptr, bytesize, pool, hStream, (void *)real);                                \
            vg_alloc_done_as(&c, VG_KIND_POOL, r, r == CUDA_SUCCESS && dptr ? *dptr : 0, bytesize, from); \
        }                                                                                         \
    } else                                                                                        \
        r = ordered_alloc(&c, dptr, bytesize, hStream, pool, ptsz, call, (void *)real,            \
                          REAL(undo_wrapper));                                                    \
    vg_call_leave();                                                                              \
    return r

/* The hot path (hot_path.h) of cuMemAllocAsync: no capture anywhere, and
 * this thread knows the stream's device pool (steady()). */
static inline const struct vg_stream_fact *hot_fact(const struct vg_tls_call *t, CUstream stream)
{
    if (atomic_load_explicit(&vg_process_captures, memory_order_relaxed) != 0)
        return NULL;
    const struct vg_stream_fact *f = &t->streams[((uintptr_t)stream >> 4) % VG_STREAM_FACTS];
    return f->stream == (void *)stream && f->valid && f->kind == VG_KIND_POOL ? f : NULL;
}

/* cuMemAllocAsync and its _ptsz variant: the hot path, else ORDERED_ALLOC
 * in a function of its own. */
#define HOT_ALLOC_ASYNC(wrapper, api, ptsz, undo_wrapper)                                           \
    __attribute__((noinline)) static CUresult wrapper##_general(CUdeviceptr *dptr, size_t bytesize,  \
                                                                CUstream hStream, void *vg_ret)   \
    {                                                                                             \
        ORDERED_ALLOC(wrapper, api, NULL, ptsz, call_alloc_async, undo_wrapper, vg_ret);          \
    }                                                                                             \
    EXPORT CUresult wrapper(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)                 \
    {                                                                                             \
        __typeof__(&wrapper) real = REAL(wrapper);                                                \
        struct vg_tls_call *t = &vg_tls_call;                                                     \
        uint32_t slow = vg_process_slow_reasons();                                                \
        const struct vg_stream_fact *f;                                                           \
        if (__builtin_expect(real == NULL || !vg_hot_ready(t, slow, VG_SLOW_RULES) ||               \
                                 (f = hot_fact(t, hStream)) == NULL,                              \
                             0))                                                                  \
            return wrapper##_general(dptr, bytesize, hStream, __builtin_return_address(0));       \
        VG_HOT_BODY(t, slow, api, VG_KIND_POOL, bytesize, f->device, f->device_meta,               \
                    vg_table_place(f->pool, VG_CONTEXT_NONE), real(dptr, bytesize, hStream),      \
                    dptr ? *dptr : 0, bytesize);                                                  \
    }

HOT_ALLOC_ASYNC(cuMemAllocAsync, "cuMemAllocAsync", false, cuMemFreeAsync)
HOT_ALLOC_ASYNC(cuMemAllocAsync_ptsz, "cuMemAllocAsync_ptsz", true, cuMemFreeAsync_ptsz)

/* cuMemAllocFromPoolAsync and its _ptsz variant: the hot path when no
 * capture is in progress and `pool` is the device pool this thread last
 * allocated from (facts still current), else ORDERED_ALLOC in a function of
 * its own. */
#define HOT_ALLOC_FROM_POOL(wrapper, api, ptsz, undo_wrapper)                                       \
    __attribute__((noinline)) static CUresult wrapper##_general(CUdeviceptr *dptr, size_t bytesize,  \
                                                                CUmemoryPool pool, CUstream hStream, \
                                                                void *vg_ret)                     \
    {                                                                                             \
        ORDERED_ALLOC(wrapper, api, pool, ptsz, call_alloc_from_pool, undo_wrapper, vg_ret);      \
    }                                                                                             \
    EXPORT CUresult wrapper(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool, CUstream hStream) \
    {                                                                                             \
        __typeof__(&wrapper) real = REAL(wrapper);                                                \
        struct vg_tls_call *t = &vg_tls_call;                                                     \
        uint32_t slow = vg_process_slow_reasons();                                                \
        const struct vg_pool_fact *f = &t->pool;                                                  \
        if (__builtin_expect(real == NULL || f->pool != (void *)pool || pool == NULL ||           \
                                 !vg_hot_ready_at(t, slow, VG_SLOW_RULES, f->epoch) ||            \
                                 atomic_load_explicit(&vg_process_captures, memory_order_relaxed) != 0, \
                             0))                                                                  \
            return wrapper##_general(dptr, bytesize, pool, hStream, __builtin_return_address(0)); \
        VG_HOT_BODY(t, slow, api, VG_KIND_POOL, bytesize, f->device, f->device_meta,               \
                    vg_table_place(f->index, VG_CONTEXT_NONE), real(dptr, bytesize, pool, hStream), \
                    dptr ? *dptr : 0, bytesize);                                                  \
    }

HOT_ALLOC_FROM_POOL(cuMemAllocFromPoolAsync, "cuMemAllocFromPoolAsync", false, cuMemFreeAsync)
HOT_ALLOC_FROM_POOL(cuMemAllocFromPoolAsync_ptsz, "cuMemAllocFromPoolAsync_ptsz", true, cuMemFreeAsync_ptsz)

/* A free on a capturing stream is a graph node: the memory stays live
 * until the graph runs. */
#define ORDERED_FREE(wrapper, api, ptsz)                                                          \
    __typeof__(&wrapper) real = REAL(wrapper);                                                    \
    if (real == NULL)                                                                             \
        return vg_missing_real(api);                                                              \
    CUresult r;                                                                                   \
    (void)vg_free_enter(); /* nested or not: what it frees is gone */                             \
    if (capturing(hStream, ptsz)) {                                                               \
        r = real(dptr, hStream);                                                                  \
    } else {                                                                                      \
        struct vg_table_saved old;                                                                \
        bool had = vg_table_take((uintptr_t)dptr, &old);                                          \
        r = real(dptr, hStream);                                                                  \
        if (__builtin_expect(had && r != CUDA_SUCCESS, 0))                                        \
            vg_table_put_back(&old);                                                              \
        else                                                                                      \
            vg_trace_free(&old); /* old.ptr 0 when it had none */                                 \
    }                                                                                             \
    vg_call_leave();                                                                              \
    return r

EXPORT CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream)
{
    ORDERED_FREE(cuMemFreeAsync, "cuMemFreeAsync", false);
}

EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream)
{
    ORDERED_FREE(cuMemFreeAsync_ptsz, "cuMemFreeAsync_ptsz", true);
}

/* ---- obtaining pools: where they are classified --------------------------- */

EXPORT CUresult cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *poolProps)
{
    __typeof__(&cuMemPoolCreate) real = REAL(cuMemPoolCreate);
    if (real == NULL)
        return vg_missing_real("cuMemPoolCreate");
    struct vg_call c;
    CUresult r;
    if (!vg_call_enter(&c, "cuMemPoolCreate", VG_KIND_POOL, 0, __builtin_return_address(0)) || !poolProps) {
        r = real(pool, poolProps);
    } else {
        int kind = vg_pool_kind_of(poolProps->allocType, &poolProps->location);
        int device = kind == VG_KIND_POOL ? poolProps->location.id : -1;
        c.kind = kind;
        /* Refused at creation when it would hold memory that is not VRAM. */
        if (!vg_alloc_refused(&c, kind == VG_KIND_POOL ? device : VG_DEVICE_CURRENT, &r)) {
            if (c.allow_rule >= 0)
                vg_allow_give_back(c.kind, c.size); /* a pool, not memory yet: its allocations are decided one by one */
            r = real(pool, poolProps);
            if (r == CUDA_SUCCESS && pool)
                vg_pool_register(*pool, device, kind);
            if (c.action == VG_ACTION_WARN)
                vg_event_violation(&c, r);
        }
    }
    vg_call_leave();
    return r;
}

EXPORT CUresult cuMemPoolDestroy(CUmemoryPool pool)
{
    __typeof__(&cuMemPoolDestroy) real = REAL(cuMemPoolDestroy);
    if (real == NULL)
        return vg_missing_real("cuMemPoolDestroy");
    vg_reached_driver();
    struct vg_pool known;
    uint16_t index = vg_pool_find(pool, &known);
    CUresult r = real(pool);
    /* Allocations still live in it stay valid (and charged) until they are
     * freed: the driver releases the pool's memory only then. The handle is
     * no longer queried. */
    if (r == CUDA_SUCCESS && index)
        vg_pool_destroyed(pool);
    if (r == CUDA_SUCCESS)
        vg_process_facts_changed(); /* it may have been a device's current pool */
    return r;
}

static void learn_device_pool(CUresult r, CUmemoryPool *pool, CUdevice dev)
{
    if (r == CUDA_SUCCESS && pool)
        vg_pool_register(*pool, dev, VG_KIND_POOL);
}

static void learn_pool_at(CUresult r, CUmemoryPool *pool, const CUmemLocation *location, CUmemAllocationType type)
{
    if (r != CUDA_SUCCESS || pool == NULL)
        return;
    int kind = vg_pool_kind_of(type, location);
    vg_pool_register(*pool, kind == VG_KIND_POOL ? location->id : -1, kind);
}

EXPORT CUresult cuDeviceGetDefaultMemPool(CUmemoryPool *pool_out, CUdevice dev)
{
    FORWARD_AND_LEARN(cuDeviceGetDefaultMemPool, "cuDeviceGetDefaultMemPool", real(pool_out, dev),
                      learn_device_pool(r, pool_out, dev));
}

EXPORT CUresult cuDeviceGetMemPool(CUmemoryPool *pool, CUdevice dev)
{
    FORWARD_AND_LEARN(cuDeviceGetMemPool, "cuDeviceGetMemPool", real(pool, dev), learn_device_pool(r, pool, dev));
}

/* A device's current pool changes: what threads remember of its streams. */
static void learn_current_pool(CUresult r, CUmemoryPool *pool, CUdevice dev)
{
    learn_device_pool(r, pool, dev);
    if (r == CUDA_SUCCESS)
        vg_process_facts_changed();
}

EXPORT CUresult cuDeviceSetMemPool(CUdevice dev, CUmemoryPool pool)
{
    FORWARD_AND_LEARN(cuDeviceSetMemPool, "cuDeviceSetMemPool", real(dev, pool), learn_current_pool(r, &pool, dev));
}

EXPORT CUresult cuMemGetDefaultMemPool(CUmemoryPool *pool_out, CUmemLocation *location, CUmemAllocationType type)
{
    FORWARD_AND_LEARN(cuMemGetDefaultMemPool, "cuMemGetDefaultMemPool", real(pool_out, location, type),
                      learn_pool_at(r, pool_out, location, type));
}

EXPORT CUresult cuMemGetMemPool(CUmemoryPool *pool, CUmemLocation *location, CUmemAllocationType type)
{
    FORWARD_AND_LEARN(cuMemGetMemPool, "cuMemGetMemPool", real(pool, location, type),
                      learn_pool_at(r, pool, location, type));
}

EXPORT CUresult cuMemSetMemPool(CUmemLocation *location, CUmemAllocationType type, CUmemoryPool pool)
{
    FORWARD_AND_LEARN(cuMemSetMemPool, "cuMemSetMemPool", real(location, type, pool),
                      learn_pool_at(r, &pool, location, type);
                      if (r == CUDA_SUCCESS) vg_process_facts_changed());
}

EXPORT CUresult cuMemPoolImportFromShareableHandle(CUmemoryPool *pool_out, void *handle,
                                                   CUmemAllocationHandleType handleType, unsigned long long flags)
{
    FORWARD_AND_LEARN(cuMemPoolImportFromShareableHandle, "cuMemPoolImportFromShareableHandle",
                      real(pool_out, handle, handleType, flags),
                      if (r == CUDA_SUCCESS && pool_out) vg_pool_register(*pool_out, -1, VG_KIND_IMPORTED));
}
