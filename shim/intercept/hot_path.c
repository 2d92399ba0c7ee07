/* The hot path's rare cases (hot_path.h): the record and events the general
 * path would have made. */
#include "hot_path.h"

/* The record vg_call_enter would have built for the same call. */
static void hot_call(struct vg_call *c, const char *api, int kind, uint64_t size, void *ret, int device,
                     uint32_t meta)
{
    const struct vg_tls_call *t = &vg_tls_call;
    *c = (struct vg_call){
        .driver_api = api,
        .api = t->rt_depth ? t->rt_api : api,
        .caller = t->rt_depth ? t->rt_caller : ret,
        .kind = kind,
        .size = size,
        .device = device,
        .purpose = (uint8_t)(meta & 3),
        .label = (uint16_t)(meta >> 10 & 0xff),
        .stack = vg_table_meta_stack(meta), /* taken before the call, when it is large */
        .action = VG_ACTION_ALLOW,
        .allow_rule = -1,
    };
}

void vg_hot_failed(const char *api, int kind, uint64_t request, void *ret, int device, uint32_t meta, CUresult r)
{
    struct vg_call c;
    hot_call(&c, api, kind, request, ret, device, meta);
    vg_alloc_failed_or_warned(&c, r);
}

void vg_hot_untracked(const char *api, int kind, uint64_t size, void *ret, int device, uint32_t meta)
{
    struct vg_call c;
    hot_call(&c, api, kind, size, ret, device, meta);
    vg_event_untracked(&c);
}
