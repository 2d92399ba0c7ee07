/* Which CUDA context owns an allocation, as a one-byte index stored in each
 * table entry (table.h): when the driver destroys a context it frees what
 * the context owns (cuMemAlloc*, host-pinned, managed, registrations,
 * arrays, IPC and external mappings), so the table drops those entries.
 * Stream-ordered and VMM memory belong to no context (cuda.h, cuCtxDestroy:
 * "not associated with any CUDA context"; measured on an H200: they survive
 * cuCtxDestroy, cuDevicePrimaryCtxReset and the last release) and keep
 * index 0.
 *
 *   0                                 no context known: never dropped
 *   1 .. VG_MAX_DEVICES               the primary context of device index-1
 *                                     (and the green contexts made from it:
 *                                     the driver gives their allocations to it)
 *   VG_CONTEXT_FIRST_CREATED .. 255   a context made with cuCtxCreate
 *
 * Contexts are learned where the program obtains them (cuCtxCreate,
 * cuDevicePrimaryCtxRetain, cuCtxFromGreenCtx), handles are plain pointers
 * here (no CUDA types). Guarded by one mutex, never held across a CUDA call;
 * the hot path reads only the calling thread's remembered index (process.h). */
#ifndef VG_CONTEXTS_H
#define VG_CONTEXTS_H

#include "model.h"
#include <stdbool.h>
#include <stdint.h>

enum { VG_CONTEXT_NONE = 0, VG_CONTEXT_FIRST_CREATED = VG_MAX_DEVICES + 1, VG_CONTEXT_SLOTS = 256 };

/* The index of device `device`'s primary context (0 for a device past the
 * table's devices). */
static inline uint8_t vg_context_primary(int device)
{
    return device >= 0 && device < VG_MAX_DEVICES ? (uint8_t)(device + 1) : VG_CONTEXT_NONE;
}

/* The device whose primary context `index` is, or -1. */
static inline int vg_context_primary_device(uint8_t index)
{
    return index >= 1 && index < VG_CONTEXT_FIRST_CREATED ? index - 1 : -1;
}

/* A context made with cuCtxCreate: its index (0 when all are taken). */
uint8_t vg_context_created(void *ctx);
/* The handle cuDevicePrimaryCtxRetain answered for `device` (it stays the
 * same across resets). */
void vg_context_primary_seen(void *ctx, int device);
/* A green context `green` of `device`, and the context handle
 * cuCtxFromGreenCtx made of it (NULL when not yet known). */
void vg_context_green_seen(void *green, void *ctx, int device);
/* Forget green context `green`; returns its device, -1 when unknown. */
int vg_context_green_forget(void *green);

/* The owner index for allocations made while `ctx` is current: its own for
 * a created context, its device's primary one for a primary or green
 * context, 0 for one never seen. */
uint8_t vg_context_owner_of(void *ctx);
/* A created context was destroyed: its index (now free for reuse), 0 when
 * `ctx` is no created context the registry knows. */
uint8_t vg_context_destroyed(void *ctx);
/* The device of a known primary or green context handle, else -1 (for
 * cuCtxDestroy of a handle that is not a created context). */
int vg_context_device_of(void *ctx);

void vg_contexts_reset_after_fork(void);

#endif
