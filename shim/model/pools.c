#include "pools.h"
#include "forksafe.h"
#include "devices.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

_Static_assert(VG_MAX_POOLS <= 255, "a table entry keeps its pool's index in a byte");

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

pthread_mutex_t *vg_pools_fork_mutex(void)
{
    return &lock;
}
static struct vg_pool pools[VG_MAX_POOLS + 1]; /* slot 0 unused: index 0 = none */
static uint64_t last_reserved[VG_MAX_POOLS + 1];
static int count;
/* Read without the lock on every stream-ordered allocation from a pool:
 * the handle of each registered pool while it lives (NULL once destroyed),
 * published after its slot is filled (a reused slot is filled again first). */
static _Atomic(CUmemoryPool) live_handle[VG_MAX_POOLS + 1];
static atomic_int published;
static struct vg_pool_totals last_totals;

int vg_pool_kind_of(CUmemAllocationType type, const CUmemLocation *location)
{
    if (type == CU_MEM_ALLOCATION_TYPE_MANAGED)
        return VG_KIND_MANAGED;
    if (type == CU_MEM_ALLOCATION_TYPE_PINNED && location && location->type == CU_MEM_LOCATION_TYPE_DEVICE)
        return VG_KIND_POOL;
    return VG_KIND_HOST_PINNED; /* host, host NUMA, or anything unknown: not VRAM */
}

static int find_locked(CUmemoryPool handle)
{
    for (int i = 1; i <= count; i++)
        if (pools[i].handle == handle && !pools[i].destroyed)
            return i;
    return 0;
}

static void fill_locked(int i, CUmemoryPool handle, int device, int kind)
{
    pools[i] = (struct vg_pool){handle, device, kind, false};
    last_reserved[i] = 0;
    atomic_store_explicit(&live_handle[i], handle, memory_order_release); /* after its slot is filled */
    if (i > atomic_load_explicit(&published, memory_order_relaxed))
        atomic_store_explicit(&published, i, memory_order_release);
}

uint16_t vg_pool_register(CUmemoryPool handle, int device, int kind)
{
    if (handle == NULL)
        return 0;
    pthread_mutex_lock(&lock);
    int i = find_locked(handle);
    bool full = i == 0 && count == VG_MAX_POOLS;
    if (i == 0 && !full)
        fill_locked(i = ++count, handle, device, kind);
    pthread_mutex_unlock(&lock);
    if (!full)
        return (uint16_t)i;
    /* Every slot was used once: reuse a destroyed pool's slot that no live
     * allocation refers to (entries keep their pool's index). The table is
     * walked without this lock (fork order: table before pools). */
    uint64_t used[4];
    vg_table_pools_in_use(used);
    pthread_mutex_lock(&lock);
    i = find_locked(handle); /* registered meanwhile */
    for (int k = 1; i == 0 && k <= count; k++)
        if (pools[k].destroyed && !(used[k / 64] >> (k % 64) & 1))
            fill_locked(i = k, handle, device, kind);
    pthread_mutex_unlock(&lock);
    return (uint16_t)i;
}

uint16_t vg_pool_find(CUmemoryPool handle, struct vg_pool *out)
{
    if (handle == NULL)
        return 0;
    int n = atomic_load_explicit(&published, memory_order_acquire);
    for (int i = 1; i <= n; i++)
        if (atomic_load_explicit(&live_handle[i], memory_order_acquire) == handle) {
            if (out) /* device and kind are written before the handle is published */
                *out = (struct vg_pool){handle, pools[i].device, pools[i].kind, false};
            return (uint16_t)i;
        }
    return 0;
}

void vg_pool_destroyed(CUmemoryPool handle)
{
    pthread_mutex_lock(&lock);
    int i = find_locked(handle);
    if (i) {
        pools[i].destroyed = true;
        last_reserved[i] = 0;
        atomic_store_explicit(&live_handle[i], NULL, memory_order_relaxed);
    }
    pthread_mutex_unlock(&lock);
}

void vg_pool_totals(struct vg_pool_totals *out, int device_count)
{
    const struct vg_driver_probes *probes = vg_driver_probes();
    struct vg_pool snapshot[VG_MAX_POOLS + 1];
    pthread_mutex_lock(&lock);
    int n = count;
    memcpy(snapshot, pools, sizeof(pools[0]) * (size_t)(n + 1));
    pthread_mutex_unlock(&lock);

    memset(out, 0, sizeof(*out));
    bool asked_all = probes != NULL;
    uint64_t answers[VG_MAX_POOLS + 1] = {0};
    for (int i = 1; i <= n; i++) {
        const struct vg_pool *p = &snapshot[i];
        if (p->destroyed || p->kind != VG_KIND_POOL || p->device < 0 || p->device >= VG_MAX_DEVICES)
            continue;
        uint64_t reserved = 0;
        if (probes && probes->pool_reserved(p->handle, &reserved)) {
            answers[i] = reserved;
        } else {
            asked_all = false;
            answers[i] = last_reserved[i];
        }
        out->reserved[p->device] += answers[i];
    }
    for (int d = 0; d < device_count && d < VG_MAX_DEVICES; d++) {
        uint64_t graph = 0;
        if (probes && probes->graph_reserved(d, &graph))
            out->graph_reserved[d] = graph;
        else {
            asked_all = false;
            out->graph_reserved[d] = last_totals.graph_reserved[d];
        }
    }
    out->known = asked_all;
    pthread_mutex_lock(&lock);
    for (int i = 1; i <= n; i++)
        last_reserved[i] = answers[i];
    last_totals = *out;
    pthread_mutex_unlock(&lock);
}

void vg_device_charge(const struct vg_stats *s, const struct vg_pool_totals *t, int d, struct vg_charge *c)
{
    memset(c, 0, sizeof(*c));
    if (d < 0 || d >= VG_MAX_DEVICES)
        return;
    c->live = vg_table_device_vram(s, d);
    for (int p = 0; p < VG_PURPOSE_SLOTS; p++)
        c->pool_live += s->cell[d][VG_KIND_POOL][p].live_bytes;
    c->pool_reserved = t->reserved[d] > c->pool_live ? t->reserved[d] : c->pool_live;
    c->pool_cache = c->pool_reserved - c->pool_live;
    c->graph_reserved = t->graph_reserved[d];
    c->charged = c->live - c->pool_live + c->pool_reserved + c->graph_reserved;
}

void vg_pools_reset_after_fork(void)
{
    /* Pools belong to the parent's context; the child starts with none. */
    count = 0;
    atomic_store(&published, 0);
    for (int i = 0; i <= VG_MAX_POOLS; i++)
        atomic_store(&live_handle[i], NULL);
    memset(&last_totals, 0, sizeof(last_totals));
}
