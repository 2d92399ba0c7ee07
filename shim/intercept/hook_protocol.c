/* The protocol's slow paths: everything that is not a plain success. */
#include "hook_protocol.h"
#include "endpoint.h"
#include "log.h"

#include <stdatomic.h>

CUresult vg_missing_real(const char *symbol)
{
    static atomic_bool warned;
    if (!atomic_exchange(&warned, true))
        vg_log("cannot find the real %s in libcuda.so.1; returning CUDA_ERROR_NOT_INITIALIZED", symbol);
    return CUDA_ERROR_NOT_INITIALIZED;
}

void vg_reached_driver_first(void)
{
    if (vg_process_mark_reached()) {
        vg_config();
        vg_events_process_start();
        vg_endpoint_start(); /* only now: CPU-only processes bind nothing */
    }
}

void vg_call_refuse(struct vg_call *c, struct vg_decision d, CUresult *refusal)
{
    vg_event_violation(c, d.refusal);
    *refusal = d.refusal;
}

void vg_alloc_failed_or_warned(struct vg_call *c, CUresult r)
{
    if (r == CUDA_ERROR_OUT_OF_MEMORY)
        vg_event_oom(c, r);
    if (c->action == VG_ACTION_WARN)
        vg_event_violation(c, r);
}
