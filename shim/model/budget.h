/* VRAMGUARD_LIMIT: VRAM budgets per device, for charged VRAM as a whole and
 * per purpose. Plain data compiled once from the configuration, and the
 * check's arithmetic; the policy (policy.c) decides with them.
 *
 *   VRAMGUARD_LIMIT := ENTRY ("," ENTRY)*
 *   ENTRY := [DEVICE ":"] SCOPE "=" SIZE
 *   SCOPE := total | weights | kv_cache | intermediate | unknown
 *   SIZE  := NUMBER [K|M|G|T] [i] [B]      (powers of 1024)
 *
 * Without DEVICE (an ordinal) an entry applies to every device, each
 * separately; an entry with DEVICE overrides the general one for that
 * device and scope. A later entry for the same device and scope replaces an
 * earlier one. A malformed entry is dropped with one warning.
 *
 * How things count (per device):
 *   total    charged VRAM (pools.h, vg_device_charge): live VRAM outside
 *            pools + device pools' reserve + graph pool reserve + VMM
 *            physical memory. A synchronous allocation (cuMemAlloc*, pitch,
 *            arrays) or cuMemCreate of device memory adds its size; a
 *            stream-ordered allocation from a device pool adds only what
 *            the device's pool cache (reserve - live in pools) cannot serve:
 *            max(0, size - cache).
 *   PURPOSE  live bytes of the VRAM kinds tagged with that purpose; every
 *            VRAM allocation adds its size (a pool's cache is not a purpose's).
 * An allocation is refused when, after it, a budget would be passed
 * (charged + new > budget); one that reaches a budget exactly is allowed.
 * Host, managed and imported memory is not VRAM and is not budgeted. */
#ifndef VG_BUDGET_H
#define VG_BUDGET_H

#include "model.h"

#include <stdbool.h>
#include <stdint.h>

/* Scope 0 is the device total; scope 1 + p is purpose p. */
enum { VG_BUDGET_TOTAL = 0, VG_BUDGET_SCOPES = 1 + VG_PURPOSE_COUNT };
#define VG_BUDGET_NONE UINT64_MAX

struct vg_budgets {
    uint64_t limit[VG_MAX_DEVICES][VG_BUDGET_SCOPES]; /* VG_BUDGET_NONE: no budget */
    int entries;                                      /* entries kept */
};

/* Set by the process configuration when it holds a budget: the protocol's
 * one test before it asks the policy about VRAM. */
extern bool vg_budgets_active;

const char *vg_budget_scope_name(int scope);

/* Compile `spec` into `out`. Each malformed entry is reported through `bad`
 * (the entry's text and why) and dropped. Returns the number of entries kept. */
typedef void (*vg_budget_bad_fn)(const char *entry, const char *why, void *ctx);
int vg_budget_compile(const char *spec, struct vg_budgets *out, vg_budget_bad_fn bad, void *ctx);
bool vg_budget_any(const struct vg_budgets *b);

/* The check's arithmetic. `charged`: the device's charged VRAM now;
 * `new_vram`: what this allocation adds to it; `purpose_live`: live VRAM of
 * its purpose on the device; `size`: what it adds to that. Returns the
 * scope whose budget it would pass (total first), or -1. */
int vg_budget_exceeded(const struct vg_budgets *b, int device, int purpose, uint64_t charged, uint64_t new_vram,
                       uint64_t purpose_live, uint64_t size);

/* What a refused allocation ran into. */
struct vg_budget_hit {
    int scope;      /* VG_BUDGET_TOTAL or 1 + purpose */
    uint64_t limit; /* the budget */
    uint64_t used;  /* charged VRAM (total) or the purpose's live VRAM, before it */
    uint64_t adds;  /* what the allocation would have added */
};

/* The device's usage now, for the check and for cuMemGetInfo: charged VRAM,
 * its pool cache, and the live VRAM of `purpose` (< 0: not needed). Asks the
 * driver for pool reserves through the probes (devices.h): never call with
 * a lock held. No heap. */
struct vg_budget_usage {
    uint64_t charged;
    uint64_t pool_cache;
    uint64_t purpose_live;
};
void vg_budget_usage(int device, int purpose, struct vg_budget_usage *out);

/* fork: the scratch lock (forksafe.h). */

#endif
