/* The hot path: an allocation of VRAM where the calling thread already knows
 * everything the general protocol (hook_protocol.h) would look up, and its
 * free. It applies when no process-wide reason says otherwise (process.h:
 * vg_process_slow, one load), the wrapper is not nested in another one, and
 * the thread's facts are current (its device; for a stream-ordered call, the
 * stream's device pool or the pool it last allocated from). It then does
 * exactly what the general path would do in that state: the same entry, the
 * same totals, the same events on failure, with the entry packed from facts
 * the thread learned earlier and one insert into the table. Anything else
 * takes the general path, unchanged.
 *
 * Why it is cheaper: no per-call record (struct vg_call) is built unless an
 * event needs one, policy and budgets cost nothing for VRAM when no budget
 * is configured, purpose rules are asked only when configured (and then
 * answer from the thread's last call site: rules.h), and the table's insert
 * is compiled in (table_hot.h). */
#ifndef VG_HOT_PATH_H
#define VG_HOT_PATH_H

#include "hook_protocol.h"

/* May an allocation take the hot path? `t` is this thread's call state;
 * `ignore` the process-wide reasons the caller handles itself. */
static inline __attribute__((always_inline)) bool vg_hot_ready(const struct vg_tls_call *t, uint32_t slow,
                                                               uint32_t ignore)
{
    return ((slow & ~ignore) | (uint32_t)t->drv_depth) == 0 &&
           t->epoch == atomic_load_explicit(&vg_process_epoch, memory_order_relaxed);
}

/* The same for facts learned at `epoch` rather than with the thread's
 * device. */
static inline __attribute__((always_inline)) bool vg_hot_ready_at(const struct vg_tls_call *t, uint32_t slow,
                                                                  uint32_t ignore, uint32_t epoch)
{
    return ((slow & ~ignore) | (uint32_t)t->drv_depth) == 0 &&
           epoch == atomic_load_explicit(&vg_process_epoch, memory_order_relaxed);
}

/* The driver did not allocate (or allocated and the table could not keep it:
 * untracked): the events the general path raises, from a record built the
 * way it builds one. `meta` as packed before the call. */
void vg_hot_failed(const char *api, int kind, uint64_t request, void *ret, int device, uint32_t meta,
                   CUresult r);
void vg_hot_untracked(const char *api, int kind, uint64_t size, void *ret, int device, uint32_t meta);

/* Record a success: the api and caller are the runtime call's when this is
 * the driver call underneath one (as vg_call_enter names them). */
static inline __attribute__((always_inline)) void vg_hot_record(const struct vg_tls_call *t, const char *api,
                                                                int kind, uintptr_t ptr, uint64_t size,
                                                                uint64_t place, void *ret, int device,
                                                                uint32_t meta)
{
    const char *name = t->rt_depth ? t->rt_api : api;
    void *caller = t->rt_depth ? t->rt_caller : ret;
    if (__builtin_expect(!vg_table_add_vram(ptr, size, place, vg_table_api_of(name), caller, meta), 0))
        vg_hot_untracked(api, kind, size, ret, device, meta);
    else
        vg_trace_alloc(ptr, size, meta, caller); /* VRAMGUARD_TRACE: one branch when off */
}

/* The hot path's body, once the allocation is known to take it: VRAM of
 * `kind` on `device` (its cell bits `device_meta`), `place` from
 * vg_table_place. Packs the entry before the driver call, as the general
 * path decides before it; records a success, raises the general path's
 * events on a failure. Returns from the wrapper. */
#define VG_HOT_BODY(t, slow, api, kind, request, device, device_meta, place, real_call, out_ptr, out_size)  \
    _Static_assert((kind) == VG_KIND_DEVICE || (kind) == VG_KIND_POOL, "the hot path is for VRAM"); \
    void *ret = __builtin_return_address(0);                                                      \
    int hot_device = (device);                                                                    \
    uint64_t hot_place = (place);                                                                 \
    uint32_t meta = (device_meta) | vg_table_cell(0, kind, 0) | (t)->purpose_meta;                \
    if (__builtin_expect((slow) & VG_SLOW_RULES, 0) && vg_purpose_depth() == 0)                   \
        meta = vg_rules_meta(meta, (t)->rt_depth ? (t)->rt_caller : ret, request);                \
    /* Who asked (stacks.h): here only under VRAMGUARD_BACKTRACE=large (`1`                    \
     * takes the general path), only large, not stream-ordered, allocations. */                  \
    if ((kind) != VG_KIND_POOL && __builtin_expect((request) >= VG_STACK_LARGE, 0))               \
        meta |= vg_table_stack_meta(vg_stack_capture());                                          \
    (t)->drv_depth = 1;                                                                           \
    (t)->outer_kind = (int8_t)(kind);                                                             \
    CUresult r = real_call;                                                                       \
    uintptr_t ptr = r == CUDA_SUCCESS ? (uintptr_t)(out_ptr) : 0;                                 \
    if (__builtin_expect(ptr != 0, 1))                                                            \
        vg_hot_record(t, api, kind, ptr, (uint64_t)(out_size), hot_place, ret, hot_device, meta); \
    else if (r != CUDA_SUCCESS)                                                                   \
        vg_hot_failed(api, kind, request, ret, hot_device, meta, r);                              \
    (t)->drv_depth = 0;                                                                           \
    return r

/* The body of an allocation wrapper for VRAM on the calling thread's current
 * device (cuMemAlloc*): the hot path, else `general` (an expression: the
 * general path, TRACKED_ALLOC in a function of its own). Arguments as
 * TRACKED_ALLOC's. */
#define HOT_ALLOC(wrapper, api, kind, request, real_call, out_ptr, out_size, general)               \
    __typeof__(&wrapper) real = REAL(wrapper);                                                    \
    struct vg_tls_call *t = &vg_tls_call;                                                         \
    uint32_t slow = vg_process_slow_reasons();                                                    \
    if (__builtin_expect(real == NULL || !vg_hot_ready(t, slow, VG_SLOW_RULES), 0))               \
        return general;                                                                           \
    VG_HOT_BODY(t, slow, api, kind, request, t->device, t->device_meta, vg_table_place(0, t->owner), \
                real_call, out_ptr, out_size)

/* An allocation wrapper `wrapper` with parameters `params` (its arguments
 * `args`) taking the hot path (HOT_ALLOC), and its general path in a
 * function of its own (TRACKED_ALLOC, given the program's return address),
 * so that the hot path pays for none of it. */
#define VG_WITH_RET(...) (__VA_ARGS__, void *vg_ret) /* the general path's parameters */
#define VG_WITH_RET_ARG(...) (__VA_ARGS__, __builtin_return_address(0))
#define HOT_ALLOC_WRAPPER(wrapper, params, args, api, kind, request, real_call, out_ptr, out_size)      \
    __attribute__((noinline)) static CUresult wrapper##_general VG_WITH_RET params                  \
    {                                                                                             \
        TRACKED_ALLOC_ON(wrapper, api, kind, VG_DEVICE_CURRENT, request, real_call, out_ptr, out_size, \
                         vg_ret);                                                                 \
    }                                                                                             \
    EXPORT CUresult wrapper params                                                                \
    {                                                                                             \
        HOT_ALLOC(wrapper, api, kind, request, real_call, out_ptr, out_size,                      \
                  wrapper##_general VG_WITH_RET_ARG args);                                        \
    }

#endif
