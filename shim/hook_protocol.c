#include "hook_protocol.h"
#include "process.h"
#include "config.h"
#include "devices.h"
#include "driver_hooks.h"
#include "log.h"
#include "policy.h"
#include "purposes.h"
#include "rules.h"
#include "stacks.h"

#include <stdatomic.h>

CUresult vg_missing_real(const char *symbol)
{
    static atomic_bool warned;
    if (!atomic_exchange(&warned, true))
        vg_log("cannot find the real %s in libcuda.so.1; returning CUDA_ERROR_NOT_INITIALIZED", symbol);
    return CUDA_ERROR_NOT_INITIALIZED;
}

bool vg_call_enter(struct vg_call *c, const char *api, int kind, uint64_t size, void *ret)
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
    c->stack = vg_stack_capture(); /* 0 unless VRAMGUARD_BACKTRACE=1 */
    vg_purpose_current(&c->purpose, &c->label);
    if (vg_purpose_depth() == 0 && vg_rules_active()) {
        /* Nothing pushed on this thread: VRAMGUARD_PURPOSE_RULES may say. */
        int p = vg_rules_purpose(c->caller, size);
        if (p >= 0)
            c->purpose = (uint8_t)p;
    }
    return true;
}

void vg_call_leave(void)
{
    vg_tls_call.drv_depth--;
}

bool vg_alloc_refused(struct vg_call *c, int device, CUresult *refusal)
{
    c->device = device == VG_DEVICE_CURRENT ? vg_current_device() : device;
    vg_device_seen(c->device);
    struct vg_decision d = vg_policy_decide(vg_config(), c->kind);
    c->action = d.action;
    if (d.action != VG_ACTION_REJECT)
        return false;
    vg_event_violation(c, d.refusal);
    *refusal = d.refusal;
    return true;
}

void vg_alloc_done(struct vg_call *c, CUresult r, uintptr_t ptr, uint64_t size, uint16_t pool)
{
    if (r == CUDA_SUCCESS && ptr != 0) {
        c->size = size;
        struct vg_alloc a = {
            .ptr = ptr, .size = size, .api = c->api, .caller = c->caller,
            .device = (int16_t)c->device, .kind = (uint8_t)c->kind,
            .purpose = c->purpose, .label = c->label, .pool = pool, .stack = c->stack,
        };
        vg_table_insert(&a);
    } else if (r == CUDA_ERROR_OUT_OF_MEMORY) {
        vg_event_oom(c, r);
    }
    if (c->action == VG_ACTION_WARN)
        vg_event_violation(c, r);
}
