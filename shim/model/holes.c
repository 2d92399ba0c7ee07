/* No silent holes: which allocation-related entry points deliberately
 * passed through (passthrough_points.def, each with its reason) this process
 * looked up. Plain data: the interception layer notes, outputs list. */
#include "holes.h"

#include <stdatomic.h>
#include <string.h>

static const struct {
    const char *name;
    const char *reason;
} passthrough[] = {
#define PASSTHROUGH(name, reason) {name, reason},
#include "passthrough_points.def"
#undef PASSTHROUGH
};
enum { N_PASSTHROUGH = sizeof(passthrough) / sizeof(passthrough[0]) };
static atomic_bool seen[N_PASSTHROUGH];
static atomic_bool reported_one;

/* Is `row` the name `symbol` or one of its variants (_v2, _ptsz, _ptds)? */
static bool same_entry(const char *row, const char *symbol)
{
    size_t n = strlen(symbol);
    if (strncmp(row, symbol, n) != 0)
        return false;
    return row[n] == '\0' || strcmp(row + n, "_v2") == 0 || strcmp(row + n, "_ptsz") == 0 ||
           strcmp(row + n, "_ptds") == 0 || strcmp(row + n, "_v2_ptsz") == 0 || strcmp(row + n, "_v2_ptds") == 0;
}

static bool information_only(int i)
{
    return strncmp(passthrough[i].reason, "information only", 16) == 0;
}

bool vg_holes_note(const char *symbol, const char **name, const char **reason)
{
    if (symbol == NULL || symbol[0] != 'c' || symbol[1] != 'u')
        return false;
    for (int i = 0; i < N_PASSTHROUGH; i++)
        if (same_entry(passthrough[i].name, symbol)) {
            if (atomic_exchange_explicit(&seen[i], true, memory_order_relaxed) || information_only(i) ||
                atomic_exchange(&reported_one, true))
                return false;
            *name = passthrough[i].name;
            *reason = passthrough[i].reason;
            return true;
        }
    return false;
}

int vg_holes_seen(const char **names, const char **reasons, int max)
{
    int n = 0;
    for (int i = 0; i < N_PASSTHROUGH && n < max; i++) {
        if (!atomic_load_explicit(&seen[i], memory_order_relaxed) || information_only(i))
            continue;
        names[n] = passthrough[i].name;
        reasons[n] = passthrough[i].reason;
        n++;
    }
    return n;
}
