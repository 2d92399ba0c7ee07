/* The interposition table (rows in entry_points.def) and the lookups the
 * three ways in use: by exported name (dlsym), by base name + returned
 * pointer (cuGetProcAddress). */
#ifndef VG_ENTRY_TABLE_H
#define VG_ENTRY_TABLE_H

#include <stdbool.h>
#include <stdint.h>

struct vg_entry {
    const char *base;    /* "cuMemAlloc" */
    const char *symbol;  /* "cuMemAlloc_v2" */
    int min_version;
    bool ptsz;
    void *wrapper;
};

enum vg_entry_id {
#define ENTRY(base, symbol, version, ptsz, wrapper) VG_FN_##wrapper,
#include "entry_points.def"
#undef ENTRY
    VG_FN_COUNT
};

extern const struct vg_entry vg_entries[VG_FN_COUNT];

/* Row of an exported symbol name ("cuMemAlloc_v2"), or -1. Exact match. */
int vg_entry_by_symbol(const char *symbol);

/* What cuGetProcAddress should hand out for `base` when the driver answered
 * `real`: the wrapper of the variant whose exported address equals `real`;
 * failing that (the driver returned an unexported address), the variant the
 * version and flags select; `real` itself when `base` is not wrapped. */
void *vg_entry_swap(const char *base, void *real, int version, uint64_t flags);

/* No silent holes: an allocation-related entry point in
 * passthrough_points.def was looked up (by cuGetProcAddress or dlsym). */
void vg_entry_note_lookup(const char *symbol);
/* The passthrough names looked up so far whose reason is not "information
 * only" (those are fetched by every cudart); returns how many. */
int vg_entry_passthrough_seen(const char **names, const char **reasons, int max);

#endif
