/* The allocation table: live allocations keyed by address, and per device x
 * kind x purpose totals, counts and peaks. Sharded (table.c): O(1) per call,
 * no global lock, 32 bytes per entry, freed slots reused at once; no lock is
 * ever held across a CUDA call. Each entry keeps its pool index and the
 * context that owns it (one byte each: pools.h, contexts.h). */
#ifndef VG_TABLE_H
#define VG_TABLE_H

#include "model.h"
#include "table_hot.h"
#include <stdbool.h>

struct vg_cell {
    uint64_t live_bytes;
    uint64_t live_count;
    uint64_t peak_bytes;
    uint64_t allocations;
    uint64_t frees;
};

struct vg_stats {
    struct vg_cell cell[VG_MAX_DEVICES][VG_KIND_SLOTS][VG_PURPOSE_SLOTS];
    uint64_t device_peak[VG_MAX_DEVICES]; /* peak of live VRAM kinds per device */
    int device_count;                     /* highest device index seen + 1 */
    uint64_t dropped;                     /* allocations not tracked: table could not grow */
};

bool vg_table_add(uintptr_t ptr, uint64_t size, uint16_t pool, uint8_t owner, const char *api, void *caller,
                  uint32_t meta);
/* Record a successful allocation. Returns false when it could not be stored
 * (out of host memory); it is then counted in `dropped`. A device outside
 * 0..VG_MAX_DEVICES-1 is stored as the last slot. */
bool vg_table_insert(const struct vg_alloc *a);
/* Memory tracked elsewhere (VMM handles and mappings) that could not be
 * recorded, out of host memory: counted in `dropped` too. */
void vg_table_note_untracked(void);
/* Remove `ptr` (before the real free) and return its entry in `out`. */
bool vg_table_remove(uintptr_t ptr, struct vg_alloc *out);

/* The free path's pair (table_hot.h): vg_table_take removes `ptr` keeping its
 * entry as stored, vg_table_put_back puts it back exactly if the real free
 * fails. */
void vg_table_unpack(const struct vg_table_saved *saved, struct vg_alloc *out);
/* Put back an entry whose real free failed; totals are restored too. */
void vg_table_restore(const struct vg_alloc *a);
bool vg_table_lookup(uintptr_t ptr, struct vg_alloc *out);

void vg_table_stats(struct vg_stats *out);
uint64_t vg_table_live_count(void);
/* Highest device index seen + 1. */
int vg_table_device_count(void);

/* Copy up to `max` live entries, largest first, into `out` (caller's storage:
 * no heap). `device` < 0 means all devices. Returns how many were copied. */
int vg_table_largest(struct vg_alloc *out, int max, int device);
/* Copy every live entry into a malloc'd array (not for the OOM path). Returns
 * the count and sets *out (NULL when empty or out of memory). */
size_t vg_table_snapshot(struct vg_alloc **out);

/* Live VRAM without a purpose, summed per calling address (call site) on
 * `device` (< 0: all). No heap; the caller's storage. The last slot takes
 * what does not fit (caller NULL). Returns the number of slots used. */
struct vg_caller_bytes {
    void *caller;
    uint64_t bytes;
    uint64_t count;
};
int vg_table_untagged_by_caller(struct vg_caller_bytes *out, int max, int device);

/* Call `fn` once for every live entry (one pass, no copy). The table is
 * walked one part at a time, each under its own lock: `fn` must be quick,
 * must not call CUDA, log, or re-enter the table. Entries added or removed
 * during the walk may or may not be seen. */
typedef void (*vg_table_visitor)(const struct vg_alloc *a, void *ctx);
void vg_table_visit(vg_table_visitor fn, void *ctx);
/* The same for the entries of one device (cheaper: others are skipped
 * before they are unpacked); `fn` may still see another device's entry
 * when device >= VG_MAX_DEVICES - 1 and must filter on a->device. */
void vg_table_visit_device(int device, vg_table_visitor fn, void *ctx);
/* The same walk for the OOM breakdown, which runs inside the failing call
 * at any live count: each entry glanced at (size, caller, device, kind,
 * purpose: a few shifts), vg_table_glance_unpack for the few it keeps. */
struct vg_table_glance {
    uintptr_t ptr;
    uint64_t size;
    void *caller;
    int device; /* -1: none */
    uint8_t kind, purpose;
    const void *raw; /* the table's entry, valid during the call only */
};
typedef void (*vg_table_glancer)(const struct vg_table_glance *g, void *ctx);
void vg_table_glance_device(int device, vg_table_glancer fn, void *ctx);
void vg_table_glance_unpack(const struct vg_table_glance *g, struct vg_alloc *out);

/* Forget every entry owned by context index `owner` (contexts.h, not 0),
 * counted as freed: the driver freed them when it destroyed that context.
 * Returns how many were removed, *bytes (may be NULL) their size. */
int vg_table_remove_owner(uint8_t owner, uint64_t *bytes);
/* Pool indices that live entries refer to: bit i of used[i / 64]. */
void vg_table_pools_in_use(uint64_t used[4]);
/* Live bytes of the VRAM kinds on `device` in a stats snapshot (device pools
 * by what is live in them; their reserve is in pools.h). */
uint64_t vg_table_device_vram(const struct vg_stats *s, int device);

/* Host memory the table holds (entries and index), for make bench. */
uint64_t vg_table_heap_bytes(void);

/* fork: take every shard lock before, release them in the parent; in the
 * child vg_table_reset forgets everything (a fork child owns none of its
 * parent's allocations) and releases them. */
void vg_table_fork_prepare(void);
void vg_table_fork_parent(void);
void vg_table_reset(void);

#endif
