#include "entry_table.h"
#include "driver_hooks.h"
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

/* Allocation-related entry points deliberately passed through, with why. */
static const struct {
    const char *name;
    const char *reason;
} passthrough[] = {
#define PASSTHROUGH(name, reason) {name, reason},
#include "passthrough_points.def"
#undef PASSTHROUGH
};
enum { N_PASSTHROUGH = sizeof(passthrough) / sizeof(passthrough[0]) };
static atomic_bool passthrough_seen[N_PASSTHROUGH];

/* Is `row` the name `symbol` or one of its variants (_v2, _ptsz, _ptds)? */
static bool same_entry(const char *row, const char *symbol)
{
    size_t n = strlen(symbol);
    if (strncmp(row, symbol, n) != 0)
        return false;
    return row[n] == '\0' || strcmp(row + n, "_v2") == 0 || strcmp(row + n, "_ptsz") == 0 ||
           strcmp(row + n, "_ptds") == 0 || strcmp(row + n, "_v2_ptsz") == 0 || strcmp(row + n, "_v2_ptds") == 0;
}

void vg_entry_note_lookup(const char *symbol)
{
    if (symbol == NULL || symbol[0] != 'c' || symbol[1] != 'u')
        return;
    static atomic_bool logged_one;
    for (int i = 0; i < N_PASSTHROUGH; i++)
        if (same_entry(passthrough[i].name, symbol)) {
            if (atomic_exchange_explicit(&passthrough_seen[i], true, memory_order_relaxed))
                return;
            /* The first one is logged as it happens; the rest are counted
             * in one exit line and listed in the report. */
            if (strncmp(passthrough[i].reason, "information only", 16) != 0 && !atomic_exchange(&logged_one, true))
                vg_log("%s was looked up; vramguard passes it through (%s); others like it are listed at exit",
                       passthrough[i].name, passthrough[i].reason);
            return;
        }
}

int vg_entry_passthrough_seen(const char **names, const char **reasons, int max)
{
    int n = 0;
    for (int i = 0; i < N_PASSTHROUGH && n < max; i++) {
        if (!atomic_load_explicit(&passthrough_seen[i], memory_order_relaxed))
            continue;
        if (strncmp(passthrough[i].reason, "information only", 16) == 0)
            continue;
        names[n] = passthrough[i].name;
        reasons[n] = passthrough[i].reason;
        n++;
    }
    return n;
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
