/* No silent holes: which allocation-related entry points deliberately
 * passed through (passthrough_points.def, each with its reason) this process
 * looked up, and which it was handed unwrapped because no wrapper provably
 * fits them (a newer driver's variant). Plain data: the interception layer
 * notes, outputs list. */
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
            if (atomic_exchange_explicit(&seen[i], true, memory_order_relaxed) || information_only(i))
                return false;
            *name = passthrough[i].name;
            *reason = passthrough[i].reason;
            return true;
        }
    return false;
}

/* Names found at run time. A slot is claimed once (EMPTY -> WRITING ->
 * READY) and never reused, so a READY name can be read without a lock. */
enum { UNWRAPPED_MAX = 15, UNWRAPPED_NAME = 64 };
enum { SLOT_EMPTY, SLOT_WRITING, SLOT_READY };
static struct {
    atomic_int state;
    const char *reason;
    char name[UNWRAPPED_NAME];
} unwrapped[UNWRAPPED_MAX];

bool vg_holes_note_unwrapped(const char *symbol, const char *reason)
{
    if (symbol == NULL || reason == NULL)
        return false;
    for (int i = 0; i < UNWRAPPED_MAX; i++) {
        int st = atomic_load_explicit(&unwrapped[i].state, memory_order_acquire);
        if (st == SLOT_EMPTY) {
            int expect = SLOT_EMPTY;
            if (atomic_compare_exchange_strong(&unwrapped[i].state, &expect, SLOT_WRITING)) {
                size_t n = strnlen(symbol, UNWRAPPED_NAME - 1);
                memcpy(unwrapped[i].name, symbol, n);
                unwrapped[i].name[n] = '\0';
                unwrapped[i].reason = reason;
                atomic_store_explicit(&unwrapped[i].state, SLOT_READY, memory_order_release);
                return true;
            }
            st = expect;
        }
        /* Another thread is copying a name (a few bytes). Bounded: a child
         * forked in the middle of it would wait forever. */
        for (int spin = 0; st == SLOT_WRITING && spin < 100000; spin++)
            st = atomic_load_explicit(&unwrapped[i].state, memory_order_acquire);
        if (st == SLOT_READY && strncmp(unwrapped[i].name, symbol, UNWRAPPED_NAME - 1) == 0)
            return false;
    }
    return false; /* full: the first 15 are listed */
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
    for (int i = 0; i < UNWRAPPED_MAX && n < max; i++) {
        if (atomic_load_explicit(&unwrapped[i].state, memory_order_acquire) != SLOT_READY)
            continue;
        names[n] = unwrapped[i].name;
        reasons[n] = unwrapped[i].reason;
        n++;
    }
    return n;
}
