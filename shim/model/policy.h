/* Policy: the one place that decides what happens to an allocation of a
 * given kind. */
#ifndef VG_POLICY_H
#define VG_POLICY_H

#include "budget.h"
#include "config.h"
#include "model.h"
#include <cuda.h>
#include <stdbool.h>
#include <stdint.h>

enum vg_action {
    VG_ACTION_ALLOW,  /* call the driver; not a violation */
    VG_ACTION_WARN,   /* call the driver; a violation, logged and counted */
    VG_ACTION_REJECT, /* do not call the driver; return `refusal`; a violation */
};

struct vg_decision {
    enum vg_action action;
    CUresult refusal; /* CUDA_SUCCESS unless action == VG_ACTION_REJECT */
    int rule;         /* the VRAMGUARD_ALLOW rule that let it through, -1 none */
    bool capped;      /* a rule matched but a cap (total<=) was reached */
};

/* VRAM kinds (device, pool, vmm, array) and imported memory are always
 * allowed. Managed memory is refused with CUDA_ERROR_NOT_SUPPORTED; host
 * memory (pinned, registered, host pools, host cuMemCreate) and any unknown
 * kind with CUDA_ERROR_NOT_PERMITTED (VRAMGUARD_ALLOW=pinned allows pinned
 * and registered host memory) under `reject`; let through as a violation
 * under `warn`; let through silently (still tracked) under `off`. */
struct vg_decision vg_policy_decide(const struct vg_config *cfg, int kind);

/* The decision for one allocation of `kind` and `size` bytes made from code
 * at `caller`: host and managed memory that a VRAMGUARD_ALLOW rule (allow.h)
 * lets through is allowed and `rule` names the rule; its caps are taken
 * (vg_allow_give_back when the driver then refuses it; the table gives
 * them back when the memory is freed). Anything else as vg_policy_decide
 * without allowances decides. */
struct vg_decision vg_policy_decide_call(const struct vg_config *cfg, int kind, uint64_t size, void *caller);

/* VRAM budgets (VRAMGUARD_LIMIT, budget.h): would this allocation of VRAM
 * kind `kind`, `size` bytes of `purpose` on `device`, pass a budget? Then
 * true, and *hit says which. A stream-ordered allocation (VG_KIND_POOL)
 * adds to charged VRAM only what the device's pool cache cannot serve.
 * Asks the driver for pool reserves (probes): only call when budgets are
 * configured (vg_budgets_active), never with a lock held. */
bool vg_policy_over_budget(const struct vg_config *cfg, int kind, int device, int purpose, uint64_t size,
                           struct vg_budget_hit *hit);

/* VRAMGUARD_LIMIT_MEMINFO=1 with a `total` budget for `device`: what
 * cuMemGetInfo reports, total = the budget and free = min(real free,
 * budget - charged), never negative. False (leave the driver's answer)
 * without the option or the budget. Asks the driver (probes). */
bool vg_policy_meminfo(const struct vg_config *cfg, int device, uint64_t *free_bytes, uint64_t *total_bytes);

/* The kinds vg_policy_decide allows whatever the configuration says: the
 * hot path asks this first and skips the rest. */
static inline bool vg_policy_always_allows(int kind)
{
    return vg_kind_is_vram(kind) || kind == VG_KIND_IMPORTED;
}

#endif
