/* Where the facts the hot path remembers change (process.h). The shim asks
 * the driver for the current device, a stream's device and pool, or whether
 * a stream is capturing only when one of these may have changed since it
 * last asked:
 *   - this thread's current context: set, push, pop, create;
 *   - every thread's: a context destroyed, a primary context released or
 *     reset, a green context destroyed, a stream destroyed (its handle may
 *     come back for another device);
 *   - captures: counted from begin to end, so that while none is in progress
 *     no stream needs to be asked (a stream joining a capture through an
 *     event wait joins one that was begun here).
 * Each wrapper forwards unchanged and records that the fact changed. The
 * context wrappers also keep the context registry (contexts.h): which
 * context owns what a thread allocates, and, when a context ends (destroyed,
 * reset, last release), dropping what the driver freed with it. */
#include "contexts.h"
#include "hooks_pools.h"
#include "hooks_vmm.h"
#include "wrappers.h"
#include "hook_protocol.h"

/* ---- this thread's current context ---------------------------------------- */

#define CONTEXT_CHANGE(wrapper, api, real_call)                                                   \
    __typeof__(&wrapper) real = REAL(wrapper);                                                    \
    if (real == NULL)                                                                             \
        return vg_missing_real(api);                                                              \
    vg_reached_driver();                                                                          \
    CUresult r = real_call;                                                                       \
    vg_process_thread_context_changed(); /* also when it failed: it may have half-happened */     \
    return r

/* A context's device never changes while it lives (destroying one makes
 * every thread re-learn), so setting the context this thread set last
 * changes nothing: frameworks that set the device around every call do not
 * make the next allocation ask the driver. */
EXPORT CUresult cuCtxSetCurrent(CUcontext ctx)
{
    __typeof__(&cuCtxSetCurrent) real = REAL(cuCtxSetCurrent);
    if (real == NULL)
        return vg_missing_real("cuCtxSetCurrent");
    vg_reached_driver();
    CUresult r = real(ctx);
    struct vg_tls_call *t = &vg_tls_call;
    if (r != CUDA_SUCCESS || ctx == NULL || ctx != t->context) {
        vg_process_thread_context_changed();
        t->context = r == CUDA_SUCCESS ? ctx : NULL;
    }
    return r;
}

EXPORT CUresult cuCtxPushCurrent_v2(CUcontext ctx)
{
    CONTEXT_CHANGE(cuCtxPushCurrent_v2, "cuCtxPushCurrent_v2", real(ctx));
}

EXPORT CUresult vg_cuCtxPushCurrent_v1(CUcontext ctx)
{
    CONTEXT_CHANGE(vg_cuCtxPushCurrent_v1, "cuCtxPushCurrent", real(ctx));
}

EXPORT CUresult cuCtxPopCurrent_v2(CUcontext *pctx)
{
    CONTEXT_CHANGE(cuCtxPopCurrent_v2, "cuCtxPopCurrent_v2", real(pctx));
}

EXPORT CUresult vg_cuCtxPopCurrent_v1(CUcontext *pctx)
{
    CONTEXT_CHANGE(vg_cuCtxPopCurrent_v1, "cuCtxPopCurrent", real(pctx));
}

/* A created context owns what is allocated while it is current: it gets
 * an owner index (contexts.h). */
#define CONTEXT_CREATE(wrapper, api, real_call)                                                   \
    __typeof__(&wrapper) real = REAL(wrapper);                                                    \
    if (real == NULL)                                                                             \
        return vg_missing_real(api);                                                              \
    vg_reached_driver();                                                                          \
    CUresult r = real_call;                                                                       \
    if (r == CUDA_SUCCESS && pctx)                                                                \
        vg_context_created(*pctx);                                                                \
    vg_process_thread_context_changed();                                                          \
    return r

EXPORT CUresult vg_cuCtxCreate_v1(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    CONTEXT_CREATE(vg_cuCtxCreate_v1, "cuCtxCreate", real(pctx, flags, dev));
}

EXPORT CUresult vg_cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    CONTEXT_CREATE(vg_cuCtxCreate_v2, "cuCtxCreate_v2", real(pctx, flags, dev));
}

EXPORT CUresult vg_cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *params, int numParams, unsigned int flags,
                                  CUdevice dev)
{
    CONTEXT_CREATE(vg_cuCtxCreate_v3, "cuCtxCreate_v3", real(pctx, params, numParams, flags, dev));
}

EXPORT CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *params, unsigned int flags, CUdevice dev)
{
    CONTEXT_CREATE(cuCtxCreate_v4, "cuCtxCreate_v4", real(pctx, params, flags, dev));
}

/* The primary context's handle (the same across resets): what a thread
 * allocates while it is current belongs to it. */
EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
    FORWARD_AND_LEARN(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", real(pctx, dev),
                      if (r == CUDA_SUCCESS && pctx) vg_context_primary_seen(*pctx, dev));
}

/* ---- contexts destroyed: what the driver freed with them ------------------- */

/* Context index `owner` is gone: the driver freed its allocations and
 * arrays (with the VMM handles mapped into those arrays), not its streams'
 * pool memory nor VMM memory (contexts.h). */
static void context_gone(uint8_t owner)
{
    if (owner == VG_CONTEXT_NONE)
        return;
    vg_vmm_context_gone(owner);
    vg_trace_context_gone(owner);
    vg_table_remove_owner(owner, NULL);
}

/* Did `dev`'s primary context just end (its last release, or a green
 * context's destruction that released it)? Asked of the driver. */
static bool primary_inactive(CUdevice dev)
{
    __typeof__(&cuDevicePrimaryCtxGetState) get_state = vg_helper_fn(VG_H_cuDevicePrimaryCtxGetState);
    unsigned int flags = 0;
    int active = 1;
    return get_state && get_state(dev, &flags, &active) == CUDA_SUCCESS && active == 0;
}

static void primary_maybe_gone(int dev)
{
    if (dev >= 0 && primary_inactive(dev))
        context_gone(vg_context_primary(dev));
}

/* Forward a destroying call, then drop what it freed (`gone`, a statement
 * using `r`) and make every thread re-learn its facts. */
#define CONTEXT_END(wrapper, api, real_call, gone)                                                \
    __typeof__(&wrapper) real = REAL(wrapper);                                                    \
    if (real == NULL)                                                                             \
        return vg_missing_real(api);                                                              \
    vg_reached_driver();                                                                          \
    CUresult r = real_call;                                                                       \
    if (r == CUDA_SUCCESS) {                                                                      \
        gone;                                                                                     \
    }                                                                                             \
    vg_process_facts_changed();                                                                   \
    return r

/* A created context: its own index. The driver refuses a primary or green
 * context's handle here (CUDA_ERROR_INVALID_CONTEXT on an H200); should one
 * succeed, its primary context is asked whether it ended. */
static void destroyed(CUcontext ctx)
{
    uint8_t owner = vg_context_destroyed(ctx);
    if (owner)
        context_gone(owner);
    else
        primary_maybe_gone(vg_context_device_of(ctx));
}

EXPORT CUresult cuCtxDestroy_v2(CUcontext ctx)
{
    CONTEXT_END(cuCtxDestroy_v2, "cuCtxDestroy_v2", real(ctx), destroyed(ctx));
}

EXPORT CUresult vg_cuCtxDestroy_v1(CUcontext ctx)
{
    CONTEXT_END(vg_cuCtxDestroy_v1, "cuCtxDestroy", real(ctx), destroyed(ctx));
}

/* A release ends the primary context when it was the last reference. */
EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
    CONTEXT_END(cuDevicePrimaryCtxRelease_v2, "cuDevicePrimaryCtxRelease_v2", real(dev), primary_maybe_gone(dev));
}

EXPORT CUresult vg_cuDevicePrimaryCtxRelease_v1(CUdevice dev)
{
    CONTEXT_END(vg_cuDevicePrimaryCtxRelease_v1, "cuDevicePrimaryCtxRelease", real(dev), primary_maybe_gone(dev));
}

/* A reset always ends it (cudaDeviceReset calls it); the handle stays. */
EXPORT CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev)
{
    CONTEXT_END(cuDevicePrimaryCtxReset_v2, "cuDevicePrimaryCtxReset_v2", real(dev),
                context_gone(vg_context_primary(dev)));
}

EXPORT CUresult vg_cuDevicePrimaryCtxReset_v1(CUdevice dev)
{
    CONTEXT_END(vg_cuDevicePrimaryCtxReset_v1, "cuDevicePrimaryCtxReset", real(dev),
                context_gone(vg_context_primary(dev)));
}

/* Green contexts: what is allocated in one belongs to its device's primary
 * context (measured on an H200); destroying one releases that primary
 * context, which ends with its last reference. */
EXPORT CUresult cuGreenCtxCreate(CUgreenCtx *phCtx, CUdevResourceDesc desc, CUdevice dev, unsigned int flags)
{
    FORWARD_AND_LEARN(cuGreenCtxCreate, "cuGreenCtxCreate", real(phCtx, desc, dev, flags),
                      if (r == CUDA_SUCCESS && phCtx) vg_context_green_seen(*phCtx, NULL, dev));
}

EXPORT CUresult cuCtxFromGreenCtx(CUcontext *pContext, CUgreenCtx hCtx)
{
    FORWARD_AND_LEARN(cuCtxFromGreenCtx, "cuCtxFromGreenCtx", real(pContext, hCtx),
                      if (r == CUDA_SUCCESS && pContext) vg_context_green_seen(hCtx, *pContext, -1));
}

EXPORT CUresult cuGreenCtxDestroy(CUgreenCtx hCtx)
{
    CONTEXT_END(cuGreenCtxDestroy, "cuGreenCtxDestroy", real(hCtx), primary_maybe_gone(vg_context_green_forget(hCtx)));
}

/* ---- streams ------------------------------------------------------------------ */

/* A destroyed stream's handle may come back for another device. */
#define FACTS_CHANGE(wrapper, api, real_call)                                                     \
    __typeof__(&wrapper) real = REAL(wrapper);                                                    \
    if (real == NULL)                                                                             \
        return vg_missing_real(api);                                                              \
    vg_reached_driver();                                                                          \
    CUresult r = real_call;                                                                       \
    vg_process_facts_changed();                                                                   \
    return r

EXPORT CUresult cuStreamDestroy_v2(CUstream stream)
{
    FACTS_CHANGE(cuStreamDestroy_v2, "cuStreamDestroy_v2", real(stream));
}

EXPORT CUresult vg_cuStreamDestroy_v1(CUstream stream)
{
    FACTS_CHANGE(vg_cuStreamDestroy_v1, "cuStreamDestroy", real(stream));
}

/* ---- stream capture --------------------------------------------------------- */

#define CAPTURE_BEGIN(wrapper, api, real_call)                                                    \
    __typeof__(&wrapper) real = REAL(wrapper);                                                    \
    if (real == NULL)                                                                             \
        return vg_missing_real(api);                                                              \
    vg_reached_driver();                                                                          \
    /* Counted before the call: an allocation racing with it asks the driver. */                 \
    atomic_fetch_add(&vg_process_captures, 1);                                                    \
    CUresult r = real_call;                                                                       \
    if (r != CUDA_SUCCESS)                                                                        \
        atomic_fetch_sub(&vg_process_captures, 1);                                                \
    return r

EXPORT CUresult cuStreamBeginCapture_v2(CUstream stream, CUstreamCaptureMode mode)
{
    CAPTURE_BEGIN(cuStreamBeginCapture_v2, "cuStreamBeginCapture_v2", real(stream, mode));
}

EXPORT CUresult cuStreamBeginCapture_v2_ptsz(CUstream stream, CUstreamCaptureMode mode)
{
    CAPTURE_BEGIN(cuStreamBeginCapture_v2_ptsz, "cuStreamBeginCapture_v2_ptsz", real(stream, mode));
}

EXPORT CUresult vg_cuStreamBeginCapture_v1(CUstream stream)
{
    CAPTURE_BEGIN(vg_cuStreamBeginCapture_v1, "cuStreamBeginCapture", real(stream));
}

EXPORT CUresult vg_cuStreamBeginCapture_v1_ptsz(CUstream stream)
{
    CAPTURE_BEGIN(vg_cuStreamBeginCapture_v1_ptsz, "cuStreamBeginCapture_ptsz", real(stream));
}

EXPORT CUresult cuStreamBeginCaptureToGraph(CUstream stream, CUgraph graph, const CUgraphNode *deps,
                                            const CUgraphEdgeData *edges, size_t n, CUstreamCaptureMode mode)
{
    CAPTURE_BEGIN(cuStreamBeginCaptureToGraph, "cuStreamBeginCaptureToGraph", real(stream, graph, deps, edges, n, mode));
}

EXPORT CUresult cuStreamBeginCaptureToGraph_ptsz(CUstream stream, CUgraph graph, const CUgraphNode *deps,
                                                 const CUgraphEdgeData *edges, size_t n, CUstreamCaptureMode mode)
{
    CAPTURE_BEGIN(cuStreamBeginCaptureToGraph_ptsz, "cuStreamBeginCaptureToGraph_ptsz",
                  real(stream, graph, deps, edges, n, mode));
}

/* A capture ends with cuStreamEndCapture, also when it failed (invalidated,
 * unjoined work): then the stream is asked whether it still captures. */
#define CAPTURE_END(wrapper, api, ptsz)                                                           \
    __typeof__(&wrapper) real = REAL(wrapper);                                                    \
    if (real == NULL)                                                                             \
        return vg_missing_real(api);                                                              \
    vg_reached_driver();                                                                          \
    /* Only a capture that was in progress ends: ending a stream that was not \
     * capturing fails and must not uncount another stream's capture. */      \
    bool was = vg_stream_capturing(stream, ptsz);                                                 \
    CUresult r = real(stream, graph);                                                             \
    if (was && (r == CUDA_SUCCESS || !vg_stream_capturing(stream, ptsz)))                         \
        atomic_fetch_sub(&vg_process_captures, 1);                                                \
    return r

EXPORT CUresult cuStreamEndCapture(CUstream stream, CUgraph *graph)
{
    CAPTURE_END(cuStreamEndCapture, "cuStreamEndCapture", false);
}

EXPORT CUresult cuStreamEndCapture_ptsz(CUstream stream, CUgraph *graph)
{
    CAPTURE_END(cuStreamEndCapture_ptsz, "cuStreamEndCapture_ptsz", true);
}
