#include "policy.h"
#include "model.h"

struct vg_decision vg_policy_decide(const struct vg_config *cfg, int kind)
{
    struct vg_decision allow = {VG_ACTION_ALLOW, CUDA_SUCCESS};
    CUresult refusal;
    switch (kind) {
    case VG_KIND_DEVICE:
    case VG_KIND_POOL:
    case VG_KIND_VMM:
    case VG_KIND_ARRAY:
    case VG_KIND_IMPORTED: /* someone else's memory: shown, not charged */
        return allow;
    case VG_KIND_HOST_PINNED:
    case VG_KIND_HOST_REGISTERED:
        if (cfg->allow & VG_ALLOW_PINNED)
            return allow;
        refusal = CUDA_ERROR_NOT_PERMITTED;
        break;
    case VG_KIND_MANAGED:
        refusal = CUDA_ERROR_NOT_SUPPORTED;
        break;
    default: /* an unknown location or type is never VRAM */
        refusal = CUDA_ERROR_NOT_PERMITTED;
        break;
    }
    switch (cfg->policy) {
    case VG_POLICY_OFF:
        return allow;
    case VG_POLICY_WARN:
        return (struct vg_decision){VG_ACTION_WARN, CUDA_SUCCESS};
    case VG_POLICY_REJECT:
    default:
        return (struct vg_decision){VG_ACTION_REJECT, refusal};
    }
}
