/* The protocol's slow paths: everything that is not a plain success. */
#include "hook_protocol.h"
#include "allow.h"
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
        vg_trace_start();
        vg_endpoint_start(); /* only now: CPU-only processes bind nothing */
        vg_process_slow_set(VG_SLOW_STARTING, false); /* the hot path may run */
    }
}

bool vg_call_decide(struct vg_call *c, int kind, CUresult *refusal)
{
    struct vg_decision d = vg_policy_decide_call(vg_config(), kind, c->size, c->caller);
    c->action = d.action;
    c->allow_rule = d.rule;
    c->capped = d.capped;
    if (d.action != VG_ACTION_REJECT)
        return false;
    vg_event_violation(c, d.refusal);
    *refusal = d.refusal;
    return true;
}

bool vg_call_over_budget(struct vg_call *c, int kind, CUresult *refusal)
{
    struct vg_budget_hit hit;
    if (!vg_policy_over_budget(vg_config(), kind, c->device, c->purpose, c->size, &hit))
        return false;
    vg_event_budget_oom(c, &hit);
    *refusal = CUDA_ERROR_OUT_OF_MEMORY;
    return true;
}

uint32_t vg_call_allowed(struct vg_call *c, int kind, uint64_t size)
{
    if (size != c->size) { /* the driver's size (pitch) differs from the request the caps took */
        vg_allow_give_back(kind, c->size);
        vg_allow_take(NULL, kind, size);
    }
    vg_allow_count(c->allow_rule, size);
    return VG_TABLE_ALLOWED;
}

void vg_alloc_failed_or_warned(struct vg_call *c, CUresult r)
{
    if (r != CUDA_SUCCESS && c->allow_rule >= 0) {
        vg_allow_give_back(c->kind, c->size);
        c->allow_rule = -1;
    }
    /* A device OOM is VRAM that could not be had: a host or managed
     * allocation's OOM is the host's memory running out, not the device's
     * (no breakdown of the device, not counted as an OOM). */
    if (r == CUDA_ERROR_OUT_OF_MEMORY && vg_kind_is_vram(c->kind))
        vg_event_oom(c, r);
    if (c->action == VG_ACTION_WARN)
        vg_event_violation(c, r);
}

