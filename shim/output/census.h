/* One pass over the live allocations for the outputs (vg_table_visit): the
 * K largest (a bounded min-heap: nothing else is sorted), how many are live
 * and their bytes, and untagged VRAM per device and call site, grouped by
 * calling module afterwards. No heap and no lock of its own: the storage is
 * the caller's (static under a lock on the OOM path, malloc'd elsewhere). */
#ifndef VG_CENSUS_H
#define VG_CENSUS_H

#include "callers.h"
#include "model.h"
#include <stdbool.h>
#include <stdint.h>

/* The largest allocations seen: a min-heap of at most `max` entries while
 * the pass runs, largest first after vg_top_sort. */
struct vg_top {
    struct vg_alloc *e;
    int n, max;
};
void vg_top_init(struct vg_top *t, struct vg_alloc *storage, int max);
void vg_top_sort(struct vg_top *t);

/* Untagged VRAM per device and call site. Each device keeps its first
 * VG_SITES_PER_DEVICE - 1 call sites; the rest add up under caller NULL
 * ("(other call sites)"). */
enum { VG_SITES_PER_DEVICE = 256, VG_SITES_MAX = VG_MAX_DEVICES * VG_SITES_PER_DEVICE, VG_SITES_HASH = 8192 };
struct vg_site {
    void *caller;
    uint64_t bytes, count;
    int device;
};
struct vg_sites {
    int n;                          /* in the order they were first seen */
    int per_device[VG_MAX_DEVICES];
    unsigned mask;                  /* of the part of index[] in use */
    struct vg_site *last;           /* the last one found: runs of one caller are common */
    struct vg_site site[VG_SITES_MAX];
    struct {                        /* open addressing on (device, caller) */
        const void *caller;
        int32_t device;
        int32_t site;               /* 1 + position in site[], 0 = empty */
    } index[VG_SITES_HASH];
};
/* `devices`: how many devices the census can meet (1 when it is limited
 * to one): a smaller index stays in the CPU's first-level cache. */
void vg_sites_init(struct vg_sites *s, int devices);

struct vg_census {
    /* what to gather */
    int device;                 /* only this device's allocations; -1 = all */
    struct vg_top *top;         /* the largest of all seen, or NULL */
    struct vg_top *top_by_device; /* [VG_MAX_DEVICES]: the largest per device, or NULL */
    struct vg_sites *sites;     /* untagged VRAM by call site, or NULL */
    /* what was seen */
    uint64_t count, bytes;
};
/* Walk the table once. The tops come out sorted, largest first. */
void vg_census_take(struct vg_census *c);

/* Untagged VRAM of `device` by calling module (base name), largest first:
 * up to `max` rows, what does not fit added to the last row. Each call site
 * is looked up once, in `modules`. */
struct vg_module_bytes {
    char name[64];
    uint64_t bytes, count;
};
enum { VG_MODULES_SHOWN = 16 };
int vg_census_by_module(const struct vg_sites *s, int device, struct vg_modules *modules,
                        struct vg_module_bytes *out, int max);

#endif
