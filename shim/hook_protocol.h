/* The protocol every driver wrapper follows (see the TRACKED_* macros):
 * enter (nested calls only forward), decide by policy before the real call,
 * record a success after it, explain an out-of-memory failure; for frees,
 * remove the entry before the real free and put it back if that fails. */
#ifndef VG_HOOK_PROTOCOL_H
#define VG_HOOK_PROTOCOL_H

#include "entry_table.h"
#include "events.h"
#include "real.h"
#include "table.h"

#include <cuda.h>
#include <stdbool.h>

#define REAL(wrapper) ((__typeof__(&wrapper))vg_real_fn(VG_FN_##wrapper))
#define EXPORT __attribute__((visibility("default")))

enum { VG_DEVICE_CURRENT = -2 };

/* One warning per process, then CUDA_ERROR_NOT_INITIALIZED. */
CUresult vg_missing_real(const char *symbol);
/* Enter a driver wrapper. Returns false when nested inside another driver
 * wrapper: the caller then only forwards. vg_call_leave() must follow. */
bool vg_call_enter(struct vg_call *c, const char *api, int kind, uint64_t size, void *ret);
void vg_call_leave(void);
/* Before the real allocation: set the device (VG_DEVICE_CURRENT: the
 * calling thread's), apply the policy. True when refused; *refusal is then
 * the answer and the driver must not be called. */
bool vg_alloc_refused(struct vg_call *c, int device, CUresult *refusal);
/* After the real allocation: record a success (key `ptr`, `size` bytes, in
 * pool `pool` or 0), explain an OOM, log a let-through violation. */
void vg_alloc_done(struct vg_call *c, CUresult r, uintptr_t ptr, uint64_t size, uint16_t pool);

/* The body of an allocation wrapper whose kind is known before the call.
 * `wrapper` names the row of the interposition table; `real_call` is the
 * driver call (using `real`); `out_ptr` and `out_size` read its results
 * after a success. */
#define TRACKED_ALLOC_ON(wrapper, api, kind, device, request, real_call, out_ptr, out_size)         \
    __typeof__(&wrapper) real = REAL(wrapper);                                                    \
    if (real == NULL)                                                                             \
        return vg_missing_real(api);                                                              \
    struct vg_call c;                                                                             \
    CUresult r;                                                                                   \
    if (!vg_call_enter(&c, api, kind, request, __builtin_return_address(0))) {                    \
        r = real_call;                                                                            \
    } else if (!vg_alloc_refused(&c, device, &r)) {                                               \
        r = real_call;                                                                            \
        vg_alloc_done(&c, r, r == CUDA_SUCCESS ? (uintptr_t)(out_ptr) : 0,                        \
                      r == CUDA_SUCCESS ? (uint64_t)(out_size) : 0, 0);                           \
    }                                                                                             \
    vg_call_leave();                                                                              \
    return r

#define TRACKED_ALLOC(wrapper, api, kind, request, real_call, out_ptr, out_size)                  \
    TRACKED_ALLOC_ON(wrapper, api, kind, VG_DEVICE_CURRENT, request, real_call, out_ptr, out_size)

/* The body of a free wrapper: remove the entry for `key` before the real
 * free (the address may be reused the moment it returns), put it back if
 * the real free fails. */
#define TRACKED_FREE(wrapper, api, key, real_call)                                                \
    __typeof__(&wrapper) real = REAL(wrapper);                                                    \
    if (real == NULL)                                                                             \
        return vg_missing_real(api);                                                              \
    struct vg_call c;                                                                             \
    CUresult r;                                                                                   \
    if (!vg_call_enter(&c, api, VG_KIND_DEVICE, 0, __builtin_return_address(0))) {                \
        r = real_call;                                                                            \
    } else {                                                                                      \
        struct vg_alloc old;                                                                      \
        bool had = vg_table_remove((uintptr_t)(key), &old);                                       \
        r = real_call;                                                                            \
        if (had && r != CUDA_SUCCESS)                                                             \
            vg_table_restore(&old);                                                               \
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
