/* Stream-ordered memory pools. No driver API returns a pool's properties,
 * so each pool is classified where the program obtains it (created, asked
 * for, imported) or, failing that, from the first allocation's pointer
 * attributes. A device pool is charged by its reserve, not by what is live
 * in it: the difference is shown as pool cache. */
#ifndef VG_POOLS_H
#define VG_POOLS_H

#include "model.h"
#include "table.h"
#include <cuda.h>
#include <stdbool.h>

/* Pools known at once (a table entry keeps its pool's index in a byte). A
 * destroyed pool's slot is reused once no live allocation refers to it. */
enum { VG_MAX_POOLS = 255 };

struct vg_pool {
    CUmemoryPool handle;
    int device;     /* location id for device pools, -1 for host/managed */
    int kind;       /* kind of its allocations: pool (VRAM), host_pinned, managed, imported */
    bool destroyed;
};

/* Learn a pool (first classification wins). Returns its index (1..), or 0
 * when VG_MAX_POOLS pools are known and every destroyed one still has live
 * allocations. May walk the table (when every slot was used once): never
 * call with a lock held. */
uint16_t vg_pool_register(CUmemoryPool handle, int device, int kind);
/* Index and copy of a known, not destroyed pool; 0 if unknown. */
uint16_t vg_pool_find(CUmemoryPool handle, struct vg_pool *out);
void vg_pool_destroyed(CUmemoryPool handle);

/* The kind of memory a pool with these properties holds. */
int vg_pool_kind_of(CUmemAllocationType type, const CUmemLocation *location);

struct vg_pool_totals {
    uint64_t reserved[VG_MAX_DEVICES];       /* device pools' reserve (driver's answer) */
    uint64_t graph_reserved[VG_MAX_DEVICES]; /* graph-pool reserve per device */
    bool known;                              /* false: the driver could not be asked */
};
/* Ask the driver for every device pool's reserve and each used device's
 * graph-pool reserve. Makes CUDA calls: never call with a lock held. When the
 * driver no longer answers (at exit), the last answers are returned. */
void vg_pool_totals(struct vg_pool_totals *out, int device_count);

/* What a device's VRAM is charged with: live allocations outside pools +
 * each device pool's reserve (at least what is live in it) + the graph pool's
 * reserve. VMM physical memory and arrays are live allocations here. */
struct vg_charge {
    uint64_t live;           /* live VRAM allocations, pools by their live bytes */
    uint64_t pool_live;
    uint64_t pool_reserved;  /* as charged: max(driver's reserve, live in pools) */
    uint64_t pool_cache;     /* reserved but not live */
    uint64_t graph_reserved;
    uint64_t charged;
};
void vg_device_charge(const struct vg_stats *s, const struct vg_pool_totals *t, int d, struct vg_charge *c);

void vg_pools_reset_after_fork(void);

#endif
