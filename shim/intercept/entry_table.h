/* The interposition table (rows in entry_points.def) and the lookups the
 * three ways in use: by exported name (dlsym), by base name + returned
 * pointer (cuGetProcAddress). */
#ifndef VG_ENTRY_TABLE_H
#define VG_ENTRY_TABLE_H

#include <stdatomic.h>
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

/* The real function behind row `id` (looked up once in the real libcuda,
 * then read from an array: this is on every call). */
extern _Atomic(void *) vg_real_fns[VG_FN_COUNT];
void *vg_real_fn_lookup(int id);
static inline void *vg_real_fn(int id)
{
    void *f = atomic_load_explicit(&vg_real_fns[id], memory_order_acquire);
    return f ? f : vg_real_fn_lookup(id);
}

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

#endif
