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
 * `real`: the wrapper of the variant whose exported address equals `real`
 * (the function that wrapper forwards to). Failing that, only a wrapper of
 * provably the same ABI: the one of the exported name found at `real`, or,
 * for an unexported address inside libcuda and a version the table is
 * complete for, the variant the version and flags select. Anything else (a
 * variant the table does not know, another library's function) is handed
 * out as `real`, unwrapped, and a variant is listed as a hole. `real` itself
 * when `base` is not wrapped. Lookup time only (it may call dladdr). */
void *vg_entry_swap(const char *base, void *real, int version, uint64_t flags);

/* A name that is no row but a variant of a wrapped entry point
 * ("cuMemAlloc_v9"): dlsym hands it out unwrapped and lists it. */
bool vg_entry_is_unknown_variant(const char *symbol);

/* No silent holes: an allocation-related entry point in
 * passthrough_points.def was looked up (by cuGetProcAddress or dlsym). */
void vg_entry_note_lookup(const char *symbol);

#endif
