#include "budget.h"
#include "allow.h"
#include "forksafe.h"
#include "pools.h"
#include "table.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool vg_budgets_active;

static const char *const scope_names[VG_BUDGET_SCOPES] = {"total", "unknown", "weights", "kv_cache",
                                                          "intermediate"};

const char *vg_budget_scope_name(int scope)
{
    return scope >= 0 && scope < VG_BUDGET_SCOPES ? scope_names[scope] : "none";
}

/* ---- the grammar ------------------------------------------------------------- */

/* One ENTRY of `len` bytes at `s`: its device (-1 all), scope and size. */
static bool parse_entry(const char *s, size_t len, int *device, int *scope, uint64_t *size, const char **why)
{
    char text[96];
    if (len == 0) {
        *why = "an empty entry";
        return false;
    }
    if (len >= sizeof(text)) {
        *why = "the entry is too long";
        return false;
    }
    memcpy(text, s, len);
    text[len] = '\0';
    char *eq = strchr(text, '=');
    if (eq == NULL) {
        *why = "no =SIZE";
        return false;
    }
    *eq = '\0';
    char *name = text;
    *device = -1;
    char *colon = strchr(text, ':');
    if (colon) {
        *colon = '\0';
        char *end;
        if (text[0] < '0' || text[0] > '9') {
            *why = "the device is not an ordinal";
            return false;
        }
        long d = strtol(text, &end, 10);
        if (*end != '\0') {
            *why = "the device is not an ordinal";
            return false;
        }
        if (d >= VG_MAX_DEVICES) {
            *why = "the device ordinal is beyond 15";
            return false;
        }
        *device = (int)d;
        name = colon + 1;
    }
    *scope = -1;
    for (int i = 0; i < VG_BUDGET_SCOPES; i++)
        if (strcmp(name, scope_names[i]) == 0)
            *scope = i;
    if (*scope < 0) {
        *why = "unknown scope; accepted: total, weights, kv_cache, intermediate, unknown";
        return false;
    }
    if (!vg_parse_size(eq + 1, size)) {
        *why = "the size is not NUMBER[K|M|G|T]";
        return false;
    }
    return true;
}

int vg_budget_compile(const char *spec, struct vg_budgets *out, vg_budget_bad_fn bad, void *ctx)
{
    uint64_t general[VG_BUDGET_SCOPES];
    for (int s = 0; s < VG_BUDGET_SCOPES; s++)
        general[s] = VG_BUDGET_NONE;
    bool specific[VG_MAX_DEVICES][VG_BUDGET_SCOPES];
    memset(specific, 0, sizeof(specific));
    memset(out, 0, sizeof(*out));
    for (int d = 0; d < VG_MAX_DEVICES; d++)
        for (int s = 0; s < VG_BUDGET_SCOPES; s++)
            out->limit[d][s] = VG_BUDGET_NONE;
    if (spec == NULL || spec[0] == '\0' || strcmp(spec, "none") == 0)
        return 0;
    const char *p = spec;
    for (;;) {
        size_t len = strcspn(p, ",");
        int device, scope;
        uint64_t size;
        const char *why = NULL;
        if (!parse_entry(p, len, &device, &scope, &size, &why)) {
            char shown[96];
            snprintf(shown, sizeof(shown), "%.*s", (int)(len < sizeof(shown) - 1 ? len : sizeof(shown) - 1), p);
            if (bad)
                bad(shown, why, ctx);
        } else {
            out->entries++;
            if (device < 0) {
                general[scope] = size;
            } else {
                specific[device][scope] = true;
                out->limit[device][scope] = size;
            }
        }
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    for (int d = 0; d < VG_MAX_DEVICES; d++)
        for (int s = 0; s < VG_BUDGET_SCOPES; s++)
            if (!specific[d][s])
                out->limit[d][s] = general[s];
    return out->entries;
}

bool vg_budget_any(const struct vg_budgets *b)
{
    for (int d = 0; d < VG_MAX_DEVICES; d++)
        for (int s = 0; s < VG_BUDGET_SCOPES; s++)
            if (b->limit[d][s] != VG_BUDGET_NONE)
                return true;
    return false;
}

/* ---- the check ------------------------------------------------------------------ */

/* Would `used` + `adds` pass `limit`? Nothing added passes nothing. */
static bool passes(uint64_t limit, uint64_t used, uint64_t adds)
{
    return limit != VG_BUDGET_NONE && adds > 0 && (used > limit || adds > limit - used);
}

int vg_budget_exceeded(const struct vg_budgets *b, int device, int purpose, uint64_t charged, uint64_t new_vram,
                       uint64_t purpose_live, uint64_t size)
{
    if (device < 0 || device >= VG_MAX_DEVICES)
        return -1;
    if (passes(b->limit[device][VG_BUDGET_TOTAL], charged, new_vram))
        return VG_BUDGET_TOTAL;
    if (purpose >= 0 && purpose < VG_PURPOSE_COUNT && passes(b->limit[device][1 + purpose], purpose_live, size))
        return 1 + purpose;
    return -1;
}

/* The table's totals are too large for a program's thread stack: a static
 * scratch, guarded; no CUDA call is made while it is held. */
static pthread_mutex_t scratch_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vg_stats scratch;

pthread_mutex_t *vg_budget_fork_mutex(void)
{
    return &scratch_lock;
}

void vg_budget_usage(int device, int purpose, struct vg_budget_usage *out)
{
    memset(out, 0, sizeof(*out));
    if (device < 0 || device >= VG_MAX_DEVICES)
        return;
    struct vg_pool_totals totals; /* asks the driver: before the lock */
    vg_pool_totals(&totals, device + 1);
    pthread_mutex_lock(&scratch_lock);
    vg_table_stats(&scratch);
    struct vg_charge ch;
    vg_device_charge(&scratch, &totals, device, &ch);
    out->charged = ch.charged;
    out->pool_cache = ch.pool_cache;
    if (purpose >= 0 && purpose < VG_PURPOSE_SLOTS)
        for (int k = 0; k < VG_KIND_SLOTS; k++)
            if (vg_kind_is_vram(k))
                out->purpose_live += scratch.cell[device][k][purpose].live_bytes;
    pthread_mutex_unlock(&scratch_lock);
}
