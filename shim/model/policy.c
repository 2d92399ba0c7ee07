#include "policy.h"
#include "allow.h"
#include "model.h"
#include "modules.h"

/* Without the rules: `allowed` bits (1 << vg_allow_kind) are the kinds let
 * through as a whole. */
static struct vg_decision decide(enum vg_policy_mode policy, unsigned allowed, int kind)
{
    struct vg_decision allow = {VG_ACTION_ALLOW, CUDA_SUCCESS, -1, false};
    CUresult refusal;
    switch (kind) {
    case VG_KIND_DEVICE:
    case VG_KIND_POOL:
    case VG_KIND_VMM:
    case VG_KIND_ARRAY:
    case VG_KIND_IMPORTED: /* someone else's memory: shown, not charged */
        return allow;
    case VG_KIND_HOST_PINNED:
        if (allowed & (1u << VG_AK_PINNED))
            return allow;
        refusal = CUDA_ERROR_NOT_PERMITTED;
        break;
    case VG_KIND_HOST_REGISTERED: /* `pinned` has always allowed registrations */
        if (allowed & (1u << VG_AK_PINNED | 1u << VG_AK_REGISTERED))
            return allow;
        refusal = CUDA_ERROR_NOT_PERMITTED;
        break;
    case VG_KIND_MANAGED:
        if (allowed & (1u << VG_AK_MANAGED))
            return allow;
        refusal = CUDA_ERROR_NOT_SUPPORTED;
        break;
    default: /* an unknown location or type is never VRAM */
        refusal = CUDA_ERROR_NOT_PERMITTED;
        break;
    }
    switch (policy) {
    case VG_POLICY_OFF:
        return allow;
    case VG_POLICY_WARN:
        return (struct vg_decision){VG_ACTION_WARN, CUDA_SUCCESS, -1, false};
    case VG_POLICY_REJECT:
    default:
        return (struct vg_decision){VG_ACTION_REJECT, refusal, -1, false};
    }
}

struct vg_decision vg_policy_decide(const struct vg_config *cfg, int kind)
{
    return decide(cfg->policy, cfg->allow, kind);
}

struct vg_decision vg_policy_decide_call(const struct vg_config *cfg, int kind, uint64_t size, void *caller)
{
    const struct vg_allowances *a = &cfg->allowances;
    bool capped = false;
    if (vg_allow_kind_of(kind) >= 0 && a->n > 0) {
        char module[128];
        const char *name = NULL;
        if (vg_allow_needs_module(a, kind) && vg_module_name(caller, module, sizeof(module)))
            name = module;
        int rule = vg_allow_match(a, kind, size, name);
        if (rule >= 0) {
            if (vg_allow_take(a, kind, size))
                return (struct vg_decision){VG_ACTION_ALLOW, CUDA_SUCCESS, rule, false};
            capped = true; /* a rule matches but its kind's cap is reached */
        }
    }
    struct vg_decision d = decide(cfg->policy, 0, kind);
    d.capped = capped && d.action != VG_ACTION_ALLOW;
    return d;
}

bool vg_policy_over_budget(const struct vg_config *cfg, int kind, int device, int purpose, uint64_t size,
                           struct vg_budget_hit *hit)
{
    if (!vg_kind_is_vram(kind) || size == 0 || device < 0 || device >= VG_MAX_DEVICES)
        return false;
    const struct vg_budgets *b = &cfg->budgets;
    bool purpose_budget = purpose >= 0 && purpose < VG_PURPOSE_COUNT && b->limit[device][1 + purpose] != VG_BUDGET_NONE;
    if (b->limit[device][VG_BUDGET_TOTAL] == VG_BUDGET_NONE && !purpose_budget)
        return false;
    struct vg_budget_usage u;
    vg_budget_usage(device, purpose_budget ? purpose : -1, &u);
    uint64_t new_vram = size;
    if (kind == VG_KIND_POOL) /* served from the cache first: only the rest is new VRAM */
        new_vram = size > u.pool_cache ? size - u.pool_cache : 0;
    int scope = vg_budget_exceeded(b, device, purpose, u.charged, new_vram, u.purpose_live, size);
    if (scope < 0)
        return false;
    hit->scope = scope;
    hit->limit = b->limit[device][scope];
    hit->used = scope == VG_BUDGET_TOTAL ? u.charged : u.purpose_live;
    hit->adds = scope == VG_BUDGET_TOTAL ? new_vram : size;
    return true;
}

bool vg_policy_meminfo(const struct vg_config *cfg, int device, uint64_t *free_bytes, uint64_t *total_bytes)
{
    if (!cfg->limit_meminfo || device < 0 || device >= VG_MAX_DEVICES)
        return false;
    uint64_t limit = cfg->budgets.limit[device][VG_BUDGET_TOTAL];
    if (limit == VG_BUDGET_NONE)
        return false;
    struct vg_budget_usage u;
    vg_budget_usage(device, -1, &u);
    uint64_t left = u.charged < limit ? limit - u.charged : 0;
    *total_bytes = limit;
    if (*free_bytes > left)
        *free_bytes = left;
    return true;
}
