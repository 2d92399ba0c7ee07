#include "census.h"
#include "table.h"

#include <stdio.h>
#include <string.h>

/* ---- the K largest: a min-heap, the smallest kept at e[0] ------------------ */

/* Larger first; equal sizes by key, so that a list is the same from one
 * render to the next whatever order the table is walked in. */
static inline bool before(const struct vg_alloc *a, const struct vg_alloc *b)
{
    return a->size > b->size || (a->size == b->size && a->ptr < b->ptr);
}

void vg_top_init(struct vg_top *t, struct vg_alloc *storage, int max)
{
    t->e = storage;
    t->n = 0;
    t->max = max;
}

/* Move the hole at `i` down to where `x` belongs (one copy per level). */
static void sift_down(struct vg_alloc *e, int n, int i, const struct vg_alloc *x)
{
    for (;;) {
        int l = 2 * i + 1;
        if (l >= n)
            break;
        int small = l + 1 < n && before(&e[l], &e[l + 1]) ? l + 1 : l;
        if (!before(x, &e[small]))
            break;
        e[i] = e[small];
        i = small;
    }
    e[i] = *x;
}

static inline void top_add(struct vg_top *t, const struct vg_alloc *a)
{
    if (t->n < t->max) {
        int i = t->n++;
        while (i > 0 && before(&t->e[(i - 1) / 2], a)) {
            t->e[i] = t->e[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        t->e[i] = *a;
    } else if (t->max > 0 && before(a, &t->e[0])) {
        sift_down(t->e, t->n, 0, a);
    }
}

void vg_top_sort(struct vg_top *t)
{
    /* Heapsort of the min-heap: popping the smallest to the end leaves the
     * array largest first. */
    for (int end = t->n - 1; end > 0; end--) {
        struct vg_alloc smallest = t->e[0], last = t->e[end];
        sift_down(t->e, end, 0, &last);
        t->e[end] = smallest;
    }
}

/* ---- untagged VRAM by call site ---------------------------------------------- */

void vg_sites_init(struct vg_sites *s, int devices)
{
    s->n = 0;
    s->last = NULL;
    memset(s->per_device, 0, sizeof(s->per_device));
    /* At most a quarter full: 4 slots per possible site. */
    unsigned slots = 4 * VG_SITES_PER_DEVICE;
    while (slots < VG_SITES_HASH && slots < 4u * VG_SITES_PER_DEVICE * (unsigned)(devices > 0 ? devices : 1))
        slots *= 2;
    s->mask = slots - 1;
    memset(s->index, 0, slots * sizeof(s->index[0]));
}

static unsigned site_hash(const struct vg_sites *s, int device, const void *caller)
{
    uint64_t h = ((uint64_t)(uintptr_t)caller ^ ((uint64_t)device << 56)) * 0x9E3779B97F4A7C15ull;
    return (unsigned)(h >> 40) & s->mask;
}

/* The site of (device, caller), created if needed; NULL if none can be. */
static struct vg_site *site_of(struct vg_sites *s, int device, void *caller)
{
    if (s->last && s->last->caller == caller && s->last->device == device)
        return s->last;
    unsigned i = site_hash(s, device, caller);
    for (;; i = (i + 1) & s->mask) {
        if (s->index[i].site == 0)
            break;
        if (s->index[i].caller == caller && s->index[i].device == device)
            return s->last = &s->site[s->index[i].site - 1];
    }
    /* New: the device's last place goes to "(other call sites)" (caller NULL). */
    if (caller != NULL && s->per_device[device] >= VG_SITES_PER_DEVICE - 1)
        return site_of(s, device, NULL);
    if (s->n == VG_SITES_MAX || s->per_device[device] >= VG_SITES_PER_DEVICE || (unsigned)s->n >= (s->mask + 1) / 2)
        return NULL; /* the last guard keeps a probe finding an empty slot */
    struct vg_site *x = &s->site[s->n++];
    *x = (struct vg_site){caller, 0, 0, device};
    s->per_device[device]++;
    s->index[i].caller = caller;
    s->index[i].device = device;
    s->index[i].site = s->n;
    return s->last = x;
}

/* ---- the pass ------------------------------------------------------------------ */

static inline void add_untagged(struct vg_sites *s, int device, int kind, int purpose, void *caller, uint64_t size)
{
    if (purpose == VG_PURPOSE_UNKNOWN && vg_kind_is_vram(kind)) {
        struct vg_site *x = site_of(s, device, caller);
        if (x) {
            x->bytes += size;
            x->count++;
        }
    }
}

/* The OOM breakdown's pass (one device, its largest, its call sites): the
 * one that runs inside the failing call, so it glances at each entry and
 * unpacks only one that may join the largest. */
static void glance_device(const struct vg_table_glance *g, void *ctx)
{
    struct vg_census *c = ctx;
    if (g->device != c->device)
        return;
    c->count++;
    c->bytes += g->size;
    struct vg_top *t = c->top;
    if (t->n < t->max ||
        (t->max > 0 && (g->size > t->e[0].size || (g->size == t->e[0].size && g->ptr < t->e[0].ptr)))) {
        struct vg_alloc a;
        vg_table_glance_unpack(g, &a);
        top_add(t, &a);
    }
    add_untagged(c->sites, g->device, g->kind, g->purpose, g->caller, g->size);
}

static void visit(const struct vg_alloc *a, void *ctx)
{
    struct vg_census *c = ctx;
    if (c->device >= 0 && a->device != c->device)
        return;
    c->count++;
    c->bytes += a->size;
    if (c->top)
        top_add(c->top, a);
    bool slot = a->device >= 0 && a->device < VG_MAX_DEVICES;
    if (c->top_by_device && slot)
        top_add(&c->top_by_device[a->device], a);
    if (c->sites && slot)
        add_untagged(c->sites, a->device, a->kind, a->purpose, a->caller, a->size);
}

void vg_census_take(struct vg_census *c)
{
    c->count = c->bytes = 0;
    bool one_device = c->device >= 0 && c->device < VG_MAX_DEVICES;
    if (one_device && c->top && c->sites && !c->top_by_device)
        vg_table_glance_device(c->device, glance_device, c);
    else if (one_device)
        vg_table_visit_device(c->device, visit, c);
    else
        vg_table_visit(visit, c);
    if (c->top)
        vg_top_sort(c->top);
    for (int d = 0; c->top_by_device && d < VG_MAX_DEVICES; d++)
        vg_top_sort(&c->top_by_device[d]);
}

/* ---- by module ------------------------------------------------------------------ */

int vg_census_by_module(const struct vg_sites *s, int device, struct vg_modules *modules,
                        struct vg_module_bytes *out, int max)
{
    int m = 0;
    for (int i = 0; i < s->n && max > 0; i++) {
        const struct vg_site *x = &s->site[i];
        if (x->device != device)
            continue;
        char name[64];
        int mod = x->caller ? vg_modules_find(modules, x->caller) : -1;
        if (mod >= 0)
            snprintf(name, sizeof(name), "%s", vg_modules_base_name(modules, mod));
        else if (x->caller)
            vg_modules_caller_text(modules, x->caller, false, name, sizeof(name));
        else
            snprintf(name, sizeof(name), "(other call sites)");
        int k = 0;
        while (k < m && strcmp(out[k].name, name) != 0)
            k++;
        if (k == m) {
            if (m == max)
                k = max - 1; /* fold the rest into the last row */
            else {
                snprintf(out[m].name, sizeof(out[m].name), "%s", name);
                out[m].bytes = out[m].count = 0;
                m++;
            }
        }
        out[k].bytes += x->bytes;
        out[k].count += x->count;
    }
    for (int i = 1; i < m; i++) /* largest first */
        for (int j = i; j > 0 && out[j].bytes > out[j - 1].bytes; j--) {
            struct vg_module_bytes t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return m;
}
