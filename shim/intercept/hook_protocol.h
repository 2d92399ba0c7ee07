/* The protocol every driver wrapper follows (see the TRACKED_* macros):
 * enter (nested calls only forward), decide by policy before the real call,
 * record a success after it, explain an out-of-memory failure; for frees,
 * remove the entry before the real free and put it back if that fails.
 *
 * This runs inside someone else's program: the steps are inline, no lock is
 * taken but the table shard's, and nothing asks the driver unless a fact it
 * learned may have changed (process.h). The steady state of the commonest
 * wrappers takes a shorter path still, with the same outcome (hot_path.h). */
#ifndef VG_HOOK_PROTOCOL_H
#define VG_HOOK_PROTOCOL_H

#include "contexts.h"
#include "devices.h"
#include "entry_table.h"
#include "events.h"
#include "policy.h"
#include "process.h"
#include "purposes.h"
#include "real.h"
#include "rules.h"
#include "stacks.h"
#include "table.h"
#include "trace.h"

#include <cuda.h>
#include <stdbool.h>

#define REAL(wrapper) ((__typeof__(&wrapper))vg_real_fn(VG_FN_##wrapper))
#define EXPORT __attribute__((visibility("default")))

enum { VG_DEVICE_CURRENT = -2 };

/* One warning per process, then CUDA_ERROR_NOT_INITIALIZED. */
CUresult vg_missing_real(const char *symbol);

/* Marks that the process reached the driver, the first time loads the
 * configuration and starts the outputs (hook_protocol.c). */
void vg_reached_driver_first(void);
static inline void vg_reached_driver(void)
{
    if (__builtin_expect(!vg_process_reached_driver(), 0))
        vg_reached_driver_first();
}

/* Purpose from VRAMGUARD_PURPOSE_RULES, when nothing is pushed. */
static inline void vg_call_apply_rules(struct vg_call *c)
{
    int p = vg_rules_purpose(c->caller, c->size);
    if (p >= 0)
        c->purpose = (uint8_t)p;
}

/* Is a wrapper of `kind` entered inside another driver wrapper (the driver
 * calling back into the process on this thread: a CUPTI callback, another
 * interposer) an allocation of its own? Yes inside a wrapper that allocates
 * nothing (a free), and when it is the only one of the two that the policy
 * decides on (host or managed memory inside a VRAM or imported one): it must
 * be decided and tracked like any other. No when both are VRAM or both are
 * not: it is then most likely the outer call's own implementation, which the
 * outer wrapper decides and tracks once. */
static inline bool vg_nested_is_own(int outer_kind, int kind)
{
    return outer_kind == VG_OUTER_NONE || (vg_policy_always_allows(outer_kind) && !vg_policy_always_allows(kind));
}

/* Enter a driver wrapper. Returns false when nested inside another driver
 * wrapper and not an allocation of its own: the caller then only forwards.
 * vg_call_leave() must follow. */
static inline __attribute__((always_inline)) bool vg_call_enter(struct vg_call *c, const char *api, int kind,
                                                                 uint64_t size, void *ret)
{
    struct vg_tls_call *t = &vg_tls_call;
    bool nested = t->drv_depth++ > 0;
    if (__builtin_expect(nested, 0) && !vg_nested_is_own(t->outer_kind, kind))
        return false;
    if (!nested)
        t->outer_kind = (int8_t)kind;
    vg_reached_driver();
    bool runtime = t->rt_depth != 0 && !nested; /* a nested call is not the runtime call's */
    c->driver_api = api;
    c->api = runtime ? t->rt_api : api;
    c->caller = runtime ? t->rt_caller : ret;
    c->kind = kind;
    c->size = size;
    c->device = -1;
    c->action = VG_ACTION_ALLOW;
    c->allow_rule = -1;
    c->capped = false; /* set where the call is decided (vg_call_decide; a managed global's lookup) */
    c->stack = vg_stack_for(size, kind == VG_KIND_POOL); /* folds: `kind` is each wrapper's constant */
    vg_purpose_current(&c->purpose, &c->label);
    if (__builtin_expect(vg_rules_active(), 0) && vg_purpose_depth() == 0)
        vg_call_apply_rules(c);
    return true;
}

/* Enter a free wrapper: it needs no name, caller or purpose. Returns false
 * when nested inside another driver wrapper. A nested free is still taken
 * out of the table: what it frees is gone whoever asked (inside a free of
 * the same address the outer wrapper already took the entry out, and the
 * nested one finds nothing). */
static inline bool vg_free_enter(void)
{
    struct vg_tls_call *t = &vg_tls_call;
    if (t->drv_depth++ > 0)
        return false;
    t->outer_kind = VG_OUTER_NONE;
    vg_reached_driver();
    return true;
}

static inline void vg_call_leave(void)
{
    vg_tls_call.drv_depth--;
}

/* Host or managed memory: the policy decides (and the allowance rules);
 * a refusal is logged, counted, journaled. True when refused. */
bool vg_call_decide(struct vg_call *c, int kind, CUresult *refusal);
/* VRAM budgets (VRAMGUARD_LIMIT): asked only when vg_budgets_active. True
 * when the allocation would pass a budget: a budget OOM was raised and
 * *refusal is CUDA_ERROR_OUT_OF_MEMORY. */
bool vg_call_over_budget(struct vg_call *c, int kind, CUresult *refusal);

/* Before the real allocation: set the device (VG_DEVICE_CURRENT: the
 * calling thread's), apply the policy to `kind` (c->kind; passed apart so
 * that a wrapper's constant kind folds). True when refused; *refusal is then
 * the answer and the driver must not be called. */
static inline bool vg_alloc_refused_as(struct vg_call *c, int kind, int device, CUresult *refusal)
{
    if (device == VG_DEVICE_CURRENT) {
        device = vg_current_device();
    } else {
        vg_device_seen(device);
    }
    c->device = device;
    if (vg_policy_always_allows(kind)) {
        if (__builtin_expect(vg_budgets_active, 0))
            return vg_call_over_budget(c, kind, refusal);
        return false;
    }
    return vg_call_decide(c, kind, refusal);
}

static inline bool vg_alloc_refused(struct vg_call *c, int device, CUresult *refusal)
{
    return vg_alloc_refused_as(c, c->kind, device, refusal);
}

/* A driver answer that is not a success: explain an OOM, log a violation
 * let through, give back what an allowance rule's caps held for it. */
void vg_alloc_failed_or_warned(struct vg_call *c, CUresult r);
/* Memory an allowance rule let through was granted `size` bytes: counted
 * for the rule, its caps hold exactly `size`. Returns VG_TABLE_ALLOWED. */
uint32_t vg_call_allowed(struct vg_call *c, int kind, uint64_t size);

/* After the real allocation: record a success (key `ptr`, `size` bytes, in
 * pool `pool` or 0, owned by context index `owner` or 0: contexts.h),
 * explain an OOM, log a let-through violation. */
static inline void vg_alloc_done_owned(struct vg_call *c, int kind, CUresult r, uintptr_t ptr, uint64_t size,
                                       uint16_t pool, uint8_t owner)
{
    if (__builtin_expect(r == CUDA_SUCCESS && ptr != 0, 1)) {
        uint32_t allowed = 0;
        /* The device lookup failed, yet the driver granted VRAM: there is a
         * context now, ask again (else the bytes would be charged nowhere). */
        if (__builtin_expect(c->device < 0, 0) && vg_kind_is_vram(kind))
            c->device = vg_current_device();
        if (__builtin_expect(c->allow_rule >= 0, 0))
            allowed = vg_call_allowed(c, kind, size);
        c->size = size;
        uint32_t meta = vg_table_meta(c->device, kind, c->purpose, c->label, c->stack) | allowed;
        if (__builtin_expect(!vg_table_add(ptr, size, pool, owner, c->api, c->caller, meta), 0))
            vg_event_untracked(c); /* out of host memory: the report says its figures are unknown */
        else
            vg_trace_alloc(ptr, size, meta, c->caller); /* VRAMGUARD_TRACE: one branch when off */
        if (__builtin_expect(c->action == VG_ACTION_WARN, 0))
            vg_alloc_failed_or_warned(c, r);
    } else {
        vg_alloc_failed_or_warned(c, r);
    }
}

/* Memory no context owns (stream-ordered, VMM, imported handles). */
static inline void vg_alloc_done_as(struct vg_call *c, int kind, CUresult r, uintptr_t ptr, uint64_t size,
                                    uint16_t pool)
{
    vg_alloc_done_owned(c, kind, r, ptr, size, pool, VG_CONTEXT_NONE);
}

static inline void vg_alloc_done(struct vg_call *c, CUresult r, uintptr_t ptr, uint64_t size, uint16_t pool)
{
    vg_alloc_done_as(c, c->kind, r, ptr, size, pool);
}

/* The body of an allocation wrapper whose kind is known before the call,
 * for memory the current context owns (cuMemAlloc*, host-pinned, managed,
 * registrations, arrays, IPC and external mappings: the driver frees them
 * with the context). `wrapper` names the row of the interposition table;
 * `real_call` is the driver call (using `real`); `out_ptr` and `out_size`
 * read its results after a success. The owner is the calling thread's
 * context, learned with its device (vg_current_device). `ret` is the
 * program's return address (the caller when no runtime call names one). */
#define TRACKED_ALLOC_ON(wrapper, api, kind, device, request, real_call, out_ptr, out_size, ret)    \
    __typeof__(&wrapper) real = REAL(wrapper);                                                    \
    if (real == NULL)                                                                             \
        return vg_missing_real(api);                                                              \
    struct vg_call c;                                                                             \
    CUresult r;                                                                                   \
    if (!vg_call_enter(&c, api, kind, request, ret)) {                                            \
        r = real_call;                                                                            \
    } else if (!vg_alloc_refused_as(&c, kind, device, &r)) {                                       \
        uint8_t owner = (device) == VG_DEVICE_CURRENT ? vg_tls_call.owner : VG_CONTEXT_NONE;       \
        r = real_call;                                                                            \
        vg_alloc_done_owned(&c, kind, r, r == CUDA_SUCCESS ? (uintptr_t)(out_ptr) : 0,            \
                            r == CUDA_SUCCESS ? (uint64_t)(out_size) : 0, 0, owner);              \
    }                                                                                             \
    vg_call_leave();                                                                              \
    return r

#define TRACKED_ALLOC(wrapper, api, kind, request, real_call, out_ptr, out_size)                  \
    TRACKED_ALLOC_ON(wrapper, api, kind, VG_DEVICE_CURRENT, request, real_call, out_ptr, out_size,    \
                     __builtin_return_address(0))

/* The body of a free wrapper: remove the entry for `key` before the real
 * free (the address may be reused the moment it returns), put it back if
 * the real free fails, else run `on_success`. Nested or not (vg_free_enter). */
#define TRACKED_FREE(wrapper, api, key, real_call) TRACKED_FREE_AND(wrapper, api, key, real_call, (void)0)
#define TRACKED_FREE_AND(wrapper, api, key, real_call, on_success)                                \
    if (__builtin_expect(REAL(wrapper) == NULL, 0))                                               \
        return vg_missing_real(api);                                                              \
    CUresult r;                                                                                   \
    {                                                                                             \
        (void)vg_free_enter();                                                                    \
        struct vg_table_saved old; /* old.ptr 0: nothing taken */                                 \
        vg_table_take((uintptr_t)(key), &old);                                                    \
        __typeof__(&wrapper) real = REAL(wrapper); /* loaded again: one register fewer */         \
        r = real_call;                                                                            \
        if (__builtin_expect(r != CUDA_SUCCESS, 0) && old.ptr != 0)                               \
            vg_table_put_back(&old);                                                              \
        if (r == CUDA_SUCCESS) {                                                                  \
            vg_trace_free(&old);                                                                  \
            on_success;                                                                           \
        }                                                                                         \
    }                                                                                             \
    vg_call_leave();                                                                              \
    return r

/* A wrapper that only forwards, marking that the process reached the
 * driver (entry points the table must see for lookups, with no accounting). */
#define FORWARD(wrapper, api, real_call)                                                          \
    __typeof__(&wrapper) real = REAL(wrapper);                                                    \
    if (real == NULL)                                                                             \
        return vg_missing_real(api);                                                              \
    vg_reached_driver();                                                                          \
    return real_call

/* Forward, then record what the driver answered with `learn` (a statement
 * that may use `r`): for calls that name or classify memory without
 * allocating it. */
#define FORWARD_AND_LEARN(wrapper, api, real_call, learn)                                          \
    __typeof__(&wrapper) real = REAL(wrapper);                                                    \
    if (real == NULL)                                                                             \
        return vg_missing_real(api);                                                              \
    vg_reached_driver();                                                                          \
    CUresult r = real_call;                                                                       \
    learn;                                                                                        \
    return r

#endif
