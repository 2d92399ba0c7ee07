/* The text breakdown: vramguard_report() and the full dump at the first
 * out-of-memory failure of a device. Each takes one pass over the table
 * (census.h) and resolves each distinct call site once; allocations are
 * named by their site (who.h); no heap (static scratch under one lock);
 * CUDA and NVML are asked before the lock. */
#ifndef VG_BREAKDOWN_H
#define VG_BREAKDOWN_H

#include "emit.h"
#include "incidents.h"

/* The breakdown of every device the process used, one line each, each line
 * starting with `prefix`. */
void vg_breakdown_text(struct vg_out *o, const char *prefix);
/* The full breakdown for the first OOM of a device, written to the log;
 * `stack`: where the failed request was made (stacks.h), 0 = not known. */
void vg_breakdown_oom(const struct vg_call *failed, uint32_t stack);
/* The same for a budget OOM: headed by the budget that was hit, its size and
 * what was charged against it. */
void vg_breakdown_budget_oom(const struct vg_call *failed, uint32_t stack, const struct vg_budget_hit *hit);

#endif
