/* Exact peaks of live bytes, per totals cell (device x kind x purpose, as
 * the table numbers them) and per device (its VRAM kinds), without a shared
 * counter on the allocation path.
 *
 * Each peak P is a budget: P = live + the unused budget ("slack") held by
 * the threads + a pool. An allocation takes its bytes from its thread's
 * slack, a free gives them back to the freeing thread's slack: both touch
 * only the thread's own block (one uncontended lock), so threads on several
 * cores share no cache line. Only when a thread's slack is short does it
 * take the global lock and move other blocks' slack for that cell and
 * device into the pool, one block at a time (first what each holds beyond
 * an allocation of its owner's); if all of it is not enough, every
 * block is locked at once (an exact cut) and the peak raised by what is
 * still missing: a new peak is exactly the live bytes at that moment, and
 * live bytes can never exceed a peak. What is left of the pool goes to the
 * thread that took it, so its next allocations are fast.
 *
 * The table calls vg_peaks_take after it stores an entry and vg_peaks_give
 * after it removes one (table_hot.h, table.c); both inline, their rare
 * cases in peaks.c. */
#ifndef VG_PEAKS_H
#define VG_PEAKS_H

#include "model.h"
#include "process.h"
#include "spinlock.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define VG_PEAKS_HIDDEN __attribute__((visibility("hidden")))

/* Cells as the table numbers them: device << 5 | kind << 2 | purpose. Slack
 * slot VG_MAX_DEVICES of a block is for kinds that are not VRAM (no device
 * peak): written, never read. */
enum { VG_PEAKS_CELLS = VG_MAX_DEVICES * 32, VG_PEAKS_NO_DEVICE = VG_MAX_DEVICES };

struct vg_peaks_block {
    atomic_int lock; /* the owner's, and a sweep's (which holds every block's at once) */
    int in_use;      /* owned by a live thread (under the global lock) */
    uint64_t keep;   /* what its owner last allocated through the slow path: a sweep leaves it that, if it can */
    uint64_t device[VG_MAX_DEVICES + 1];
    uint64_t cell[VG_PEAKS_CELLS];
} __attribute__((aligned(64)));

/* A thread's block (vg_tls_call.peaks) starts as vg_peaks_none (declared
 * in process.h, which sets every thread's starting value), always locked,
 * until its first take or give claims its own, and stays that for a thread
 * that found none free (it then works through the pool, under the lock):
 * the fast paths need no test of their own for it. */

/* cell -> its device's slack slot, VG_PEAKS_NO_DEVICE for kinds not VRAM. */
extern uint8_t vg_peaks_device_slot[VG_PEAKS_CELLS] VG_PEAKS_HIDDEN;

void vg_peaks_take_slow(uint32_t cell, uint32_t slot, uint64_t size) VG_PEAKS_HIDDEN;
void vg_peaks_give_slow(uint32_t cell, uint32_t slot, uint64_t size) VG_PEAKS_HIDDEN;

/* `size` bytes of `cell` (of device slot `slot`, for a VRAM kind) become
 * live: from this thread's slack; false when the slack is short or a sweep
 * holds the block (then vg_peaks_take_slow must be called). */
static inline __attribute__((always_inline)) bool vg_peaks_take_in(uint32_t cell, uint32_t slot, uint64_t size,
                                                                   bool vram)
{
    struct vg_peaks_block *b = vg_tls_call.peaks;
    if (__builtin_expect(!vg_spin_try_lock(&b->lock), 0))
        return false;
    uint64_t c = b->cell[cell], d = vram ? b->device[slot] : size;
    bool fits = c >= size && d >= size;
    if (__builtin_expect(fits, 1)) {
        b->cell[cell] = c - size;
        if (vram)
            b->device[slot] = d - size;
    }
    vg_spin_unlock(&b->lock);
    return fits;
}

/* The hot path's: a VRAM kind of device `slot`. */
static inline __attribute__((always_inline)) bool vg_peaks_take_fast(uint32_t cell, uint32_t slot, uint64_t size)
{
    return vg_peaks_take_in(cell, slot, size, true);
}

/* Any cell (kinds that are not VRAM have no device peak). */
static inline void vg_peaks_take(uint32_t cell, uint64_t size)
{
    uint32_t slot = vg_peaks_device_slot[cell];
    if (!vg_peaks_take_in(cell, slot, size, slot != VG_PEAKS_NO_DEVICE))
        vg_peaks_take_slow(cell, slot, size);
}

/* `size` bytes of `cell` are no longer live: to this thread's slack. */
static inline __attribute__((always_inline)) void vg_peaks_give(uint32_t cell, uint64_t size)
{
    uint32_t slot = vg_peaks_device_slot[cell];
    struct vg_peaks_block *b = vg_tls_call.peaks;
    if (__builtin_expect(!vg_spin_try_lock(&b->lock), 0)) {
        vg_peaks_give_slow(cell, slot, size);
        return;
    }
    b->cell[cell] += size;
    b->device[slot] += size;
    vg_spin_unlock(&b->lock);
}

/* The peaks, for readers (a moment's value; they only grow). */
uint64_t vg_peaks_cell(uint32_t cell);
uint64_t vg_peaks_device(int device);

/* Fork: the global lock and every block's, taken before fork and released
 * in the parent; in the child (one thread) everything is forgotten. */
void vg_peaks_fork_prepare(void);
void vg_peaks_fork_parent(void);
void vg_peaks_reset(void);

#endif
