#include "entry_table.h"
#include "holes.h"
#include "wrappers.h"
#include "events.h"
#include "log.h"
#include "real.h"

#include <cuda.h>
#include <stdatomic.h>
#include <string.h>

const struct vg_entry vg_entries[VG_FN_COUNT] = {
#define ENTRY(base, symbol, version, ptsz, wrapper) {base, symbol, version, ptsz, (void *)wrapper},
#include "entry_points.def"
#undef ENTRY
};

_Atomic(void *) vg_real_fns[VG_FN_COUNT];

void *vg_real_fn_lookup(int id)
{
    if (id < 0 || id >= VG_FN_COUNT)
        return NULL;
    void *f = atomic_load_explicit(&vg_real_fns[id], memory_order_acquire);
    if (f == NULL) {
        /* What dlsym(libcuda, name) answers the program (vg_next_dlsym): the
         * driver's function, or the hook of an interposer that replaces dlsym
         * after the shim, so that the wrapper forwards to exactly what it
         * stands in for (dlsym_hook.c). Never ourselves. */
        void *h = vg_driver_handle();
        f = h ? vg_next_dlsym(h, vg_entries[id].symbol) : NULL;
        if (f == vg_entries[id].wrapper)
            f = h ? vg_real_dlsym(h, vg_entries[id].symbol) : NULL;
        if (f == vg_entries[id].wrapper)
            f = NULL;
        if (f != NULL)
            atomic_store_explicit(&vg_real_fns[id], f, memory_order_release);
    }
    return f;
}

/* A lookup of a name passed through on purpose: noted (holes.h) for the
 * report; the first of each name is a debug line. */
void vg_entry_note_lookup(const char *symbol)
{
    const char *name, *reason;
    if (vg_holes_note(symbol, &name, &reason))
        vg_event_passthrough(name, reason);
}

int vg_entry_by_symbol(const char *symbol)
{
    if (symbol == NULL || symbol[0] != 'c' || symbol[1] != 'u')
        return -1;
    for (int i = 0; i < VG_FN_COUNT; i++)
        if (strcmp(vg_entries[i].symbol, symbol) == 0)
            return i;
    return -1;
}

/* Every variant that cuda.h of this version declares for a wrapped entry
 * point is a row (tests/python/test_entry_points.py checks it), so up to
 * this version the row a request selects is the ABI the driver chose. A
 * newer driver may add a variant above it (as cuGraphAddNode_v2 and
 * cuGetProcAddress_v2 were added): no row can be proved to fit that. */
#define VG_TABLE_CUDA_VERSION CUDA_VERSION
#define VG_STR2(x) #x
#define VG_STR(x) VG_STR2(x)

/* The row the driver itself would select for (base, version, flags): the
 * highest version not above the request, the _ptsz row when asked for and
 * there is one. -1 when none. */
static int row_by_version(const char *base, int version, uint64_t flags)
{
    int best = -1, best_ptsz = -1;
    for (int i = 0; i < VG_FN_COUNT; i++) {
        const struct vg_entry *e = &vg_entries[i];
        if (strcmp(e->base, base) != 0 || e->min_version > version)
            continue;
        int *slot = e->ptsz ? &best_ptsz : &best;
        if (*slot < 0 || e->min_version > vg_entries[*slot].min_version)
            *slot = i;
    }
    if ((flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) && best_ptsz >= 0)
        return best_ptsz;
    return best;
}

/* Strip _ptsz/_ptds, then _v<digits>: "cuMemAlloc_v9" -> "cuMemAlloc". */
static size_t base_length(const char *symbol)
{
    size_t n = strlen(symbol);
    if (n > 5 && (strcmp(symbol + n - 5, "_ptsz") == 0 || strcmp(symbol + n - 5, "_ptds") == 0))
        n -= 5;
    size_t d = n;
    while (d > 0 && symbol[d - 1] >= '0' && symbol[d - 1] <= '9')
        d--;
    if (d < n && d >= 2 && symbol[d - 1] == 'v' && symbol[d - 2] == '_')
        n = d - 2;
    return n;
}

bool vg_entry_is_unknown_variant(const char *symbol)
{
    if (symbol == NULL || symbol[0] != 'c' || symbol[1] != 'u' || vg_entry_by_symbol(symbol) >= 0)
        return false;
    size_t n = base_length(symbol);
    for (int i = 0; i < VG_FN_COUNT; i++)
        if (strncmp(vg_entries[i].base, symbol, n) == 0 && vg_entries[i].base[n] == '\0')
            return true;
    return false;
}

/* The driver answered `base` with an address that is none of the exported
 * variants the wrappers forward to. A wrapper stands in for a function only
 * when it provably has that function's argument list; anything else is
 * handed out unwrapped (and listed), since a wrapper of the wrong ABI would
 * corrupt the caller's call. dladdr takes the loader's lock: this runs at
 * lookup time, under no lock of ours. */
static void *unmatched(const char *base, void *real, int version, uint64_t flags)
{
    struct vg_symbol_info at;
    bool known = vg_symbol_at(real, &at);
    if (known && at.name != NULL) {
        /* A row's own name: its wrapper fits. The address may be another
         * base name's variant (an alias), or libcuda's own export while the
         * wrapper forwards to the hook an interposer after the shim answers
         * dlsym with (entry_table.h). */
        int id = vg_entry_by_symbol(at.name);
        if (id >= 0 && (vg_real_fn(id) == real || at.in_driver))
            return vg_entries[id].wrapper;
        if (id >= 0) {
            static atomic_bool warned;
            if (!atomic_exchange(&warned, true))
                vg_log("cuGetProcAddress(\"%s\", %d) returned %s of %s, not the driver's: handed out "
                       "unchanged (vramguard sees its calls only where it forwards them through dlsym or "
                       "cuGetProcAddress)",
                       base, version, at.name, at.module ? at.module : "an unnamed module");
            return real;
        }
        size_t n = strlen(base);
        if (strncmp(at.name, base, n) == 0 && base_length(at.name) == n) {
            if (vg_holes_note_unwrapped(at.name, "a variant vramguard does not know (newer driver): not wrapped"))
                vg_log("cuGetProcAddress(\"%s\", %d) returned %s, a variant vramguard does not know (a newer "
                       "driver?): handed out unwrapped, its calls are not seen",
                       base, version, at.name);
            return real;
        }
    }
    /* No name that says its ABI: the version does, inside the driver, up to
     * the version the table is complete for. */
    int row = row_by_version(base, version, flags);
    if (known && at.in_driver && version <= VG_TABLE_CUDA_VERSION && row >= 0)
        return vg_entries[row].wrapper;
    if (vg_holes_note_unwrapped(base, "the driver answered with an address no wrapper provably fits: not wrapped"))
        vg_log("cuGetProcAddress(\"%s\", %d) returned an address that is no exported variant%s: handed out "
               "unwrapped, its calls are not seen",
               base, version,
               !known || !at.in_driver ? " and lies outside libcuda"
                                       : ", and above CUDA " VG_STR(VG_TABLE_CUDA_VERSION)
                                         " a new variant may take other arguments");
    return real;
}

void *vg_entry_swap(const char *base, void *real, int version, uint64_t flags)
{
    if (base == NULL || real == NULL || base[0] != 'c' || base[1] != 'u')
        return real;
    bool any = false;
    for (int i = 0; i < VG_FN_COUNT; i++) {
        const struct vg_entry *e = &vg_entries[i];
        if (strcmp(e->base, base) != 0)
            continue;
        any = true;
        if (vg_real_fn(i) == real)
            return e->wrapper;
    }
    if (!any) {
        vg_entry_note_lookup(base);
        return real;
    }
    return unmatched(base, real, version, flags);
}
