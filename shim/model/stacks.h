/* VRAMGUARD_BACKTRACE=1: a short call stack per allocation, deduplicated in
 * a fixed-size depot (an allocation holds a 32-bit id). Captured with
 * backtrace(3), which is primed once at configuration time (its first call
 * loads the unwinder); symbolised only when a report is written, never on
 * the OOM path. */
#ifndef VG_STACKS_H
#define VG_STACKS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum { VG_STACK_FRAMES = 8 };

void vg_stacks_enable(void);
extern atomic_bool vg_stacks_on;
static inline bool vg_stacks_enabled(void)
{
    return atomic_load_explicit(&vg_stacks_on, memory_order_relaxed);
}
/* Capture the caller's stack (skipping vramguard's own frames); 0 when
 * disabled or the depot is full. */
uint32_t vg_stack_capture(void);
/* The frames of stack `id`; returns how many (0 for id 0). */
int vg_stack_frames(uint32_t id, void **out, int max);

#endif
