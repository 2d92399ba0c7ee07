/* The allocation table's storage (how an entry is packed, the shards) and
 * its two hot operations, inline: the insert of a VRAM allocation on the hot
 * path (intercept/hot_path.h) and the removal before a free. They are the
 * whole cost of tracking in the steady state, so they are compiled into the
 * wrappers themselves; every rare case (a contended lock, a shard that must
 * grow, an address already held, a slot to refill, a new peak, an allowance
 * to give back) is a call into table.c. table.h (which includes this) is the
 * rest of the table's interface. */
#ifndef VG_TABLE_HOT_H
#define VG_TABLE_HOT_H

#include "model.h"
#include "peaks.h"
#include "spinlock.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define VG_HIDDEN __attribute__((visibility("hidden")))

/* Inserts take the entry's fields as the table packs them (meta from
 * vg_table_meta), so that nothing is built twice. */
enum { VG_TABLE_NO_DEVICE = 1 << 9 };
/* Let through by a VRAMGUARD_ALLOW rule: the table gives its bytes back to
 * the rules' caps (allow.h) when it is removed. */
#define VG_TABLE_ALLOWED (UINT32_C(1) << 31)
/* The totals cell of a device x kind x purpose (devices outside
 * 0..VG_MAX_DEVICES-1 share the last slot). */
static inline uint32_t vg_table_cell(int device, int kind, int purpose)
{
    uint32_t slot = (unsigned)device < VG_MAX_DEVICES ? (uint32_t)device : VG_MAX_DEVICES - 1;
    return slot << 5 | (uint32_t)(kind & 7) << 2 | (uint32_t)(purpose & 3);
}
static inline uint32_t vg_table_purpose_meta(int purpose, uint16_t label)
{
    return (uint32_t)(purpose & 3) | (uint32_t)(label & 0xff) << 10;
}
static inline uint32_t vg_table_device_meta(int device)
{
    return vg_table_cell(device, 0, 0) | (device < 0 ? VG_TABLE_NO_DEVICE : 0);
}
static inline uint32_t vg_table_stack_meta(uint32_t stack)
{
    return (stack & 0x1fff) << 18;
}
static inline uint32_t vg_table_meta_stack(uint32_t meta)
{
    return meta >> 18 & 0x1fff;
}
static inline uint32_t vg_table_meta(int device, int kind, int purpose, uint16_t label, uint32_t stack)
{
    return vg_table_device_meta(device) | vg_table_cell(0, kind, 0) | vg_table_purpose_meta(purpose, label) |
           vg_table_stack_meta(stack);
}
/* An entry as stored (below). vg_table_take keeps the removed one in this
 * form; vg_table_put_back puts it back exactly if the real free fails. */
struct vg_table_saved {
    uintptr_t ptr;
    uint64_t size_pool;
    void *caller;
    int32_t api;
    uint32_t meta;
};
void vg_table_put_back(const struct vg_table_saved *saved);

/* The pool and owning context as an entry packs them (vg_table_add_vram). */
static inline uint64_t vg_table_place(uint16_t pool, uint8_t owner)
{
    return (uint64_t)(pool & 0xff) << 48 | (uint64_t)owner << 56;
}
/* An api name as an entry keeps it: its offset from an anchor in the shim's
 * read-only data, for a name that is a literal in the shim. */
extern const char vg_table_api_anchor[];
static inline int32_t vg_table_api_of(const char *literal)
{
    return (int32_t)(literal - vg_table_api_anchor);
}



/* One live allocation as stored (struct vg_table_saved in table.h): 32
 * bytes, where struct vg_alloc is 48.
 *   ptr        0: an empty slot
 *   size_pool  size (48 bits) | pool index (8) << 48 | owning context (8) << 56
 *   caller
 *   api        offset of the api name from vg_table_api_anchor (names are literals in the shim)
 *   meta       cell (9 bits: device slot << 5 | kind << 2 | purpose) | no-device flag (1)
 *              | label (8) | stack (13) | let through by an allowance rule (1)
 * The cell indexes the totals directly; the flag tells device -1 (no context)
 * from the last slot. */
_Static_assert(sizeof(struct vg_table_saved) == 32, "a table entry is 32 bytes");
_Static_assert(VG_PURPOSE_COUNT <= 4 && VG_KIND_COUNT <= 8 && VG_MAX_DEVICES <= 16, "a cell fits 9 bits");
enum { VG_TABLE_SHARD_BITS = 6, VG_TABLE_SHARDS = 1 << VG_TABLE_SHARD_BITS, VG_TABLE_CELLS = VG_PEAKS_CELLS };
enum { VG_TABLE_SIZE_BITS = 48 };
#define VG_TABLE_SIZE_MASK ((UINT64_C(1) << VG_TABLE_SIZE_BITS) - 1)

/* A shard: its own spin lock, an open-addressing array of entries, and the
 * per-cell counts of what it holds. Padded to a power of two, so that a
 * shard's address is a shift, not a multiply (the padding is never touched:
 * zero pages). */
enum { VG_TABLE_SHARD_SIZE = 16384 };
struct vg_table_shard {
    atomic_int lock;
    uint32_t cap;                  /* slots; 0 before the first insert */
    uint32_t live;
    uint32_t grow_at;              /* live count at which the shard grows (80% of cap) */
    struct vg_table_saved *slots;  /* ptr == 0: empty */
    uint64_t counts[VG_TABLE_CELLS][3] __attribute__((aligned(64))); /* per cell: allocations, frees, live bytes */
    char padding[VG_TABLE_SHARD_SIZE - 64 - VG_TABLE_CELLS * 3 * 8];
} __attribute__((aligned(64)));
_Static_assert(sizeof(struct vg_table_shard) == VG_TABLE_SHARD_SIZE, "a shard is a power of two bytes");
extern struct vg_table_shard vg_table_shards[VG_TABLE_SHARDS] VG_HIDDEN;

extern atomic_int vg_table_devices_seen VG_HIDDEN;

static inline uint64_t vg_table_hash(uintptr_t p)
{
    return (uint64_t)p * UINT64_C(0x9E3779B97F4A7C15);
}

static inline struct vg_table_shard *vg_table_shard_of(uint64_t h)
{
    struct vg_table_shard *s = &vg_table_shards[h >> (64 - VG_TABLE_SHARD_BITS)];
    /* One pointer from here on: GCC would otherwise keep the index and
     * recompute the address at each use, costing registers. */
    __asm__("" : "+r"(s));
    return s;
}

/* Multiply-shift onto 0..cap-1 from hash bits the shard choice did not use. */
static inline uint32_t vg_table_home(uint32_t cap, uint64_t h)
{
    return (uint32_t)(((h >> 16) & 0xffffffffu) * cap >> 32);
}

static inline uint32_t vg_table_next_slot(uint32_t i, uint32_t cap)
{
    return ++i == cap ? 0 : i;
}

static inline bool vg_table_try_lock(struct vg_table_shard *s)
{
    return vg_spin_try_lock(&s->lock);
}

static inline void vg_table_unlock(struct vg_table_shard *s)
{
    vg_spin_unlock(&s->lock);
}

/* The rare cases, in table.c. */
bool vg_table_insert_entry(uintptr_t ptr, uint64_t size_pool, void *caller, int32_t api, uint32_t meta, bool count)
    VG_HIDDEN;
bool vg_table_add_unlock_general(struct vg_table_shard *s, uintptr_t ptr, uint64_t size_pool, void *caller,
                                 int32_t api, uint32_t meta) VG_HIDDEN;
bool vg_table_added_rare(uint32_t cell, uint64_t size, bool taken) VG_HIDDEN;
bool vg_table_take_contended(struct vg_table_shard *s, uintptr_t ptr, uint64_t h, struct vg_table_saved *saved)
    VG_HIDDEN;
bool vg_table_take_vacate(struct vg_table_shard *s, uint32_t i, uint32_t meta, uint64_t size) VG_HIDDEN;
bool vg_table_take_gave_back(uint32_t meta, uint64_t size) VG_HIDDEN;

/* Insert `ptr` (not 0) of a VRAM kind (in meta) on a device: `place` from
 * vg_table_place, `api` from vg_table_api_of. The same as vg_table_add. */
static inline __attribute__((always_inline)) bool vg_table_add_vram(uintptr_t ptr, uint64_t size, uint64_t place,
                                                                    int32_t api, void *caller, uint32_t meta)
{
    if (__builtin_expect(size > VG_TABLE_SIZE_MASK, 0))
        size = VG_TABLE_SIZE_MASK;
    uint64_t size_pool = size | place;
    uint64_t h = vg_table_hash(ptr);
    struct vg_table_shard *s = vg_table_shard_of(h);
    if (__builtin_expect(!vg_table_try_lock(s), 0))
        return vg_table_insert_entry(ptr, size_pool, caller, api, meta, true); /* waits there */
    if (__builtin_expect(s->live >= s->grow_at, 0))
        return vg_table_add_unlock_general(s, ptr, size_pool, caller, api, meta);
    struct vg_table_saved *slots = s->slots;
    uint32_t cap = s->cap, i = vg_table_home(cap, h);
    for (;;) {
        uintptr_t k = slots[i].ptr;
        if (k == 0)
            break;
        if (__builtin_expect(k == ptr, 0))
            return vg_table_add_unlock_general(s, ptr, size_pool, caller, api, meta);
        i = vg_table_next_slot(i, cap);
    }
    slots[i] = (struct vg_table_saved){ptr, size_pool, caller, api, meta};
    s->live++;
    uint32_t cell = meta & 511;
    uint64_t *c = s->counts[cell];
    c[0]++;
    c[2] += size;
    vg_table_unlock(s);
    bool taken = vg_peaks_take_fast(cell, cell >> 5, size);
    if (__builtin_expect(!taken, 0) ||
        __builtin_expect((int)(cell >> 5) >= atomic_load_explicit(&vg_table_devices_seen, memory_order_relaxed), 0))
        return vg_table_added_rare(cell, size, taken);
    return true;
}

/* vg_table_take with the shard's lock held; it releases it. */
static inline __attribute__((always_inline)) bool vg_table_take_locked(struct vg_table_shard *s, uintptr_t ptr,
                                                                       uint64_t h, struct vg_table_saved *saved)
{
    uint32_t cap = s->cap;
    struct vg_table_saved *slots = s->slots;
    uint32_t i = vg_table_home(cap, h);
    if (__builtin_expect(cap == 0, 0))
        goto none;
    for (;;) {
        uintptr_t k = slots[i].ptr;
        if (k == 0) {
        none:
            vg_table_unlock(s);
            saved->ptr = 0;
            return false;
        }
        if (k == ptr)
            break;
        i = vg_table_next_slot(i, cap);
    }
    *saved = slots[i];
    uint32_t meta = saved->meta;
    uint64_t size = saved->size_pool & VG_TABLE_SIZE_MASK;
    uint64_t *c = s->counts[meta & 511];
    c[1]++;
    c[2] -= size;
    if (__builtin_expect(slots[vg_table_next_slot(i, cap)].ptr != 0, 0))
        return vg_table_take_vacate(s, i, meta, size);
    slots[i].ptr = 0;
    s->live--;
    vg_table_unlock(s);
    vg_peaks_give(meta & 511, size);
    if (__builtin_expect(meta & VG_TABLE_ALLOWED, 0))
        return vg_table_take_gave_back(meta, size);
    return true;
}

/* Remove `ptr` before the real free, keeping its entry as stored in *saved
 * (saved->ptr 0 and false when there is none): vg_table_put_back restores
 * it exactly if the free fails. Key 0 is never found. */
static inline __attribute__((always_inline)) bool vg_table_take(uintptr_t ptr, struct vg_table_saved *saved)
{
    uint64_t h = vg_table_hash(ptr);
    struct vg_table_shard *s = vg_table_shard_of(h);
    if (__builtin_expect(!vg_table_try_lock(s), 0))
        return vg_table_take_contended(s, ptr, h, saved);
    return vg_table_take_locked(s, ptr, h, saved);
}

#endif
