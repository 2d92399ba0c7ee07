#include "entry_table.h"
#include "holes.h"
#include "wrappers.h"
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
        void *h = vg_driver_handle();
        f = h ? vg_real_dlsym(h, vg_entries[id].symbol) : NULL;
        if (f == vg_entries[id].wrapper)
            f = NULL; /* never "find" ourselves */
        if (f != NULL)
            atomic_store_explicit(&vg_real_fns[id], f, memory_order_release);
    }
    return f;
}

/* A lookup of a name passed through on purpose: noted (holes.h); the first
 * is logged as it happens, the rest are counted at exit and listed. */
void vg_entry_note_lookup(const char *symbol)
{
    const char *name, *reason;
    if (vg_holes_note(symbol, &name, &reason))
        vg_log("%s was looked up; vramguard passes it through (%s); others like it are listed at exit", name, reason);
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

void *vg_entry_swap(const char *base, void *real, int version, uint64_t flags)
{
    if (base == NULL || real == NULL || base[0] != 'c' || base[1] != 'u')
        return real;
    int fallback = -1;
    bool any = false;
    bool want_ptsz = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0;
    for (int i = 0; i < VG_FN_COUNT; i++) {
        const struct vg_entry *e = &vg_entries[i];
        if (strcmp(e->base, base) != 0)
            continue;
        any = true;
        if (vg_real_fn(i) == real)
            return e->wrapper;
        if (e->min_version <= version && e->ptsz == want_ptsz &&
            (fallback < 0 || e->min_version > vg_entries[fallback].min_version))
            fallback = i;
    }
    if (!any) {
        vg_entry_note_lookup(base);
        return real;
    }
    static atomic_bool warned;
    if (!atomic_exchange(&warned, true))
        vg_log("cuGetProcAddress(\"%s\", %d) returned an address that is not an exported variant; "
               "wrapping it as %s",
               base, version, fallback >= 0 ? vg_entries[fallback].symbol : "(none: passed through)");
    return fallback >= 0 ? vg_entries[fallback].wrapper : real;
}
