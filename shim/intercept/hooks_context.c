/* Where the facts the hot path remembers change (process.h). The shim asks
 * the driver for the current device, a stream's device and pool, or whether
 * a stream is capturing only when one of these may have changed since it
 * last asked:
 *   - this thread's current context: set, push, pop, create;
 *   - every thread's: a context destroyed, a primary context released or
 *     reset, a stream destroyed (its handle may come back for another
 *     device);
 *   - captures: counted from begin to end, so that while none is in progress
 *     no stream needs to be asked (a stream joining a capture through an
 *     event wait joins one that was begun here).
 * Each wrapper forwards unchanged and only records that the fact changed. */
#include "hooks_pools.h"
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

EXPORT CUresult vg_cuCtxCreate_v1(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    CONTEXT_CHANGE(vg_cuCtxCreate_v1, "cuCtxCreate", real(pctx, flags, dev));
}

EXPORT CUresult vg_cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    CONTEXT_CHANGE(vg_cuCtxCreate_v2, "cuCtxCreate_v2", real(pctx, flags, dev));
}

EXPORT CUresult vg_cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *params, int numParams, unsigned int flags,
                                  CUdevice dev)
{
    CONTEXT_CHANGE(vg_cuCtxCreate_v3, "cuCtxCreate_v3", real(pctx, params, numParams, flags, dev));
}

EXPORT CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *params, unsigned int flags, CUdevice dev)
{
    CONTEXT_CHANGE(cuCtxCreate_v4, "cuCtxCreate_v4", real(pctx, params, flags, dev));
}

/* ---- every thread's facts ------------------------------------------------- */

#define FACTS_CHANGE(wrapper, api, real_call)                                                     \
    __typeof__(&wrapper) real = REAL(wrapper);                                                    \
    if (real == NULL)                                                                             \
        return vg_missing_real(api);                                                              \
    vg_reached_driver();                                                                          \
    CUresult r = real_call;                                                                       \
    vg_process_facts_changed();                                                                   \
    return r

EXPORT CUresult cuCtxDestroy_v2(CUcontext ctx)
{
    FACTS_CHANGE(cuCtxDestroy_v2, "cuCtxDestroy_v2", real(ctx));
}

EXPORT CUresult vg_cuCtxDestroy_v1(CUcontext ctx)
{
    FACTS_CHANGE(vg_cuCtxDestroy_v1, "cuCtxDestroy", real(ctx));
}

EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
    FACTS_CHANGE(cuDevicePrimaryCtxRelease_v2, "cuDevicePrimaryCtxRelease_v2", real(dev));
}

EXPORT CUresult vg_cuDevicePrimaryCtxRelease_v1(CUdevice dev)
{
    FACTS_CHANGE(vg_cuDevicePrimaryCtxRelease_v1, "cuDevicePrimaryCtxRelease", real(dev));
}

EXPORT CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev)
{
    FACTS_CHANGE(cuDevicePrimaryCtxReset_v2, "cuDevicePrimaryCtxReset_v2", real(dev));
}

EXPORT CUresult vg_cuDevicePrimaryCtxReset_v1(CUdevice dev)
{
    FACTS_CHANGE(vg_cuDevicePrimaryCtxReset_v1, "cuDevicePrimaryCtxReset", real(dev));
}

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
