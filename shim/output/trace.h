/* VRAMGUARD_TRACE: a compact binary stream of what happened to VRAM and
 * when (docs/trace-format.md): allocations, frees, refusals, OOMs, budget
 * OOMs and pool reserves, each a 32-byte record with its time, size,
 * device, kind, purpose, label and caller; with the loaded modules' address
 * ranges, the labels' text and the devices, so that `vramguard timeline`
 * can draw it and name the callers.
 *
 * Off the hot path: an event is one record stored in the calling thread's
 * ring (no lock, no system call). A writer thread writes every ring to the
 * file each 100 ms; a thread whose ring is full writes it itself; every
 * ring is written at exit, before fork and when its thread ends. Tracing
 * off costs each hook one predictable branch on vg_trace_on.
 *
 * Bounded: a process writes at most VRAMGUARD_TRACE_MAX bytes. Events are
 * written one by one up to 5/8 of it; then they are coalesced: every
 * interval (1 s, doubling as the room shrinks) one record per cell with its
 * live bytes, one per device with its live VRAM, the most it held during
 * the interval and its pool reserve, the count of events folded, and up to
 * 16 refusals or OOMs as they were. Labels, modules and devices have 1/8;
 * the end frame says how many events were written, folded and lost. */
#ifndef VG_TRACE_H
#define VG_TRACE_H

#include "budget.h"
#include "incidents.h"
#include "table.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* On from the moment the process's trace file is open until fork (a child
 * opens its own when it reaches the driver). */
extern atomic_bool vg_trace_on __attribute__((visibility("hidden"))); /* hidden: one load, no GOT */
static inline bool vg_trace_enabled(void)
{
    return atomic_load_explicit(&vg_trace_on, memory_order_relaxed);
}

/* Record types (docs/trace-format.md). */
enum vg_trace_type {
    VG_TRACE_ALLOC = 1,
    VG_TRACE_FREE = 2,
    VG_TRACE_REFUSAL = 3,    /* a violation: detail bit 0 = refused (else let through under warn) */
    VG_TRACE_OOM = 4,        /* the driver answered CUDA_ERROR_OUT_OF_MEMORY for VRAM */
    VG_TRACE_BUDGET_OOM = 5, /* a VRAMGUARD_LIMIT budget refused it: detail = scope */
    VG_TRACE_POOL = 6,       /* a device's pool reserve, sampled */
    VG_TRACE_LEVEL = 7,      /* coalesced: a cell's live bytes */
    VG_TRACE_DEVICE = 8,     /* coalesced: a device's live VRAM, its most in the interval, pool reserve */
    VG_TRACE_FOLDED = 9,     /* coalesced: events folded into the interval */
    VG_TRACE_STACK = 10,     /* the call stack (stacks.h) of this thread's previous record: stacks frames name its site */
};
/* Why an allocation went without a free of its own (a free's detail). */
enum { VG_TRACE_FREED = 0, VG_TRACE_DROPPED_WITH_CONTEXT = 1, VG_TRACE_VMM_UNMAPPED = 2 };

/* The hooks: one call each where the table changed for good or an
 * incident was raised. */
void vg_trace_alloc_slow(uintptr_t ptr, uint64_t size, uint32_t meta, void *caller);
void vg_trace_free_slow(const struct vg_table_saved *old);
/* An allocation the table took: `meta` as vg_table_meta packed it for the
 * table (device, kind, purpose, label), `caller` as the table keeps it. */
static inline void vg_trace_alloc(uintptr_t ptr, uint64_t size, uint32_t meta, void *caller)
{
    if (__builtin_expect(vg_trace_enabled(), 0))
        vg_trace_alloc_slow(ptr, size, meta, caller);
}
/* A free the driver accepted, of the entry vg_table_take handed back
 * (old->ptr 0: it had none). */
static inline void vg_trace_free(const struct vg_table_saved *old)
{
    if (__builtin_expect(vg_trace_enabled(), 0))
        vg_trace_free_slow(old);
}
/* Word 1 of a record (and the label's bits of word 0 in *w0) from a size
 * and an entry's meta as the table packs them (vg_table_meta), read
 * directly: no unpacking on the allocation and free paths. */
uint64_t vg_trace_word_of_meta(uint64_t size, uint32_t meta, uint64_t *w0);
/* An entry removed for good by other means (VMM memory the driver freed at
 * its last release or unmapping: `why` VG_TRACE_VMM_UNMAPPED or FREED). */
void vg_trace_removed(const struct vg_alloc *a, int why);
/* Context index `owner` ended: its allocations are about to be dropped. */
void vg_trace_context_gone(uint8_t owner);
/* A violation, a device OOM, a budget OOM (`hit` for that one, else NULL),
 * with the event's `stack` (0: none). No heap: on the OOM path. */
void vg_trace_incident(int type, const struct vg_call *c, int result, const struct vg_budget_hit *hit,
                       uint32_t stack);

/* The first time the process reaches the driver: open the trace (when
 * VRAMGUARD_TRACE is set), write its start, start the writer. */
void vg_trace_start(void);

/* fork: write every ring and hold the trace's locks (prepare), release them
 * (parent); in the child drop the parent's rings and close its file: the
 * child traces to its own when it reaches the driver. */
void vg_trace_fork_prepare(void);
void vg_trace_fork_parent(void);
void vg_trace_fork_child(void);

#endif
