/* The allocation table. Sharded by address hash: each shard has its own
 * spin lock (spinlock.h) and an open-addressing array of 32-byte entries:
 * linear probing from a home slot computed by multiply-shift (so any capacity
 * works and a shard grows by half, keeping it between 53% and 80% full),
 * backward-shift deletion (no tombstones, so churn never forces a rebuild).
 * A shard grows on its own: the longest stall is one shard's rehash, a
 * sixty-fourth of the table.
 *
 * Totals: allocation and free counts and live bytes per cell are kept per
 * shard, under the shard lock, and summed shard by shard when read (so a
 * snapshot's bytes and counts always agree). Peaks, per cell and per device,
 * are budgets held by the threads (peaks.h): exact, with no shared counter.
 *
 * The hot path's insert and removal (vg_table_add_vram, vg_table_take) are
 * inline in table_hot.h, with the layout they share with this file; their
 * rare cases are here. */
#include "table.h"
#include "allow.h"
#include "contexts.h"
#include "forksafe.h"
#include "peaks.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>

/* Short names for what table_hot.h shares. */
#define entry vg_table_saved
#define shard vg_table_shard
#define shards vg_table_shards
#define devices_seen vg_table_devices_seen
#define hash_ptr vg_table_hash
#define shard_of vg_table_shard_of
#define home_in vg_table_home
#define next_slot vg_table_next_slot
#define shard_unlock vg_table_unlock
#define insert vg_table_insert_entry
enum { SHARDS = VG_TABLE_SHARDS, CELLS = VG_TABLE_CELLS, MIN_SLOTS = 16 };

struct shard shards[SHARDS];
atomic_int devices_seen;
static _Atomic uint64_t dropped;

const char vg_table_api_anchor[] = "(unknown)";
#define api_anchor vg_table_api_anchor

/* ---- packing --------------------------------------------------------------- */

enum { SIZE_BITS = VG_TABLE_SIZE_BITS, OWNER_SHIFT = 56, NO_DEVICE = VG_TABLE_NO_DEVICE };
#define SIZE_MASK VG_TABLE_SIZE_MASK
_Static_assert(VG_CONTEXT_SLOTS <= 256, "an owner index fits a byte (a pool index too: pools.c)");

#define cell_of vg_table_cell

static inline uint32_t cell_device(uint32_t cell) { return cell >> 5; }
static inline int cell_kind(uint32_t cell) { return (int)(cell >> 2 & 7); }

static inline uint64_t entry_size(const struct entry *e) { return e->size_pool & SIZE_MASK; }
static inline uint8_t entry_pool(const struct entry *e) { return (uint8_t)(e->size_pool >> SIZE_BITS); }
static inline uint8_t entry_owner(const struct entry *e) { return (uint8_t)(e->size_pool >> OWNER_SHIFT); }

static void unpack(const struct entry *e, struct vg_alloc *a)
{
    uint32_t cell = e->meta & 511;
    a->ptr = e->ptr;
    a->size = entry_size(e);
    a->pool = entry_pool(e);
    a->owner = entry_owner(e);
    a->caller = e->caller;
    /* integer arithmetic: api names are other objects than api_anchor */
    a->api = e->api == INT32_MIN ? api_anchor : (const char *)((uintptr_t)api_anchor + (uintptr_t)(intptr_t)e->api);
    a->device = (e->meta & NO_DEVICE) ? -1 : (int16_t)cell_device(cell);
    a->kind = (uint8_t)cell_kind(cell);
    a->purpose = (uint8_t)(cell & 3);
    a->label = (uint16_t)(e->meta >> 10 & 0xff);
    a->stack = vg_table_meta_stack(e->meta);
    a->allowed = (e->meta & VG_TABLE_ALLOWED) != 0;
}

void vg_table_unpack(const struct vg_table_saved *saved, struct vg_alloc *out)
{
    unpack(saved, out);
}

/* ---- locks ----------------------------------------------------------------- */

__attribute__((noinline, cold)) static void lock_slow(struct shard *s)
{
    vg_spin_wait(&s->lock);
}

static inline void shard_lock(struct shard *s)
{
    if (!vg_spin_try_lock(&s->lock))
        lock_slow(s);
}

void vg_table_fork_prepare(void)
{
    for (int i = 0; i < SHARDS; i++)
        shard_lock(&shards[i]);
    vg_peaks_fork_prepare();
}

void vg_table_fork_parent(void)
{
    vg_peaks_fork_parent();
    for (int i = SHARDS - 1; i >= 0; i--)
        shard_unlock(&shards[i]);
}

/* ---- hashing and the slots ---------------------------------------------------- */

/* Slot holding `ptr`, or the empty slot where it would go. */
static inline uint32_t probe(const struct shard *s, uintptr_t ptr, uint64_t h)
{
    uint32_t i = home_in(s->cap, h);
    while (s->slots[i].ptr != ptr && s->slots[i].ptr != 0)
        i = next_slot(i, s->cap);
    return i;
}

/* A large new slot array has its pages faulted in by one system call
 * (Linux 5.14+; elsewhere, or for memory calloc already zeroed, nothing
 * happens): one by one during the rehash they cost about as much as the
 * rehash itself, in the call that grows a shard (the slowest call while
 * building up to 1 M live, 8 runs each: 625-819 us -> 398-556 us). */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
enum { POPULATE_MIN = 256 * 1024 };
static void populate(void *p, size_t bytes)
{
    uintptr_t page = 4096, lo = ((uintptr_t)p + page - 1) & ~(page - 1), hi = ((uintptr_t)p + bytes) & ~(page - 1);
    if (bytes >= POPULATE_MIN && hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
}

/* Room for one more entry: grow (by half) at 80% full. False when the
 * shard is full and cannot grow (out of host memory). */
__attribute__((noinline, cold)) static bool room(struct shard *s)
{
    if (s->live < s->grow_at)
        return true;
    uint64_t cap = s->cap ? (uint64_t)s->cap + s->cap / 2 : MIN_SLOTS;
    struct entry *fresh = cap < UINT32_MAX ? calloc(cap, sizeof(*fresh)) : NULL;
    if (fresh == NULL)
        return s->live + 1 < s->cap;
    populate(fresh, cap * sizeof(*fresh));
    struct entry *old = s->slots;
    uint32_t old_cap = s->cap;
    s->slots = fresh;
    s->cap = (uint32_t)cap;
    s->grow_at = (uint32_t)(cap * 4 / 5);
    for (uint32_t i = 0; i < old_cap; i++)
        if (old[i].ptr)
            s->slots[probe(s, old[i].ptr, hash_ptr(old[i].ptr))] = old[i];
    free(old);
    return true;
}

/* Empty slot `i` (backward-shift deletion): later entries of the same run
 * move back unless their home lies cyclically in (i, j]. */
static void vacate(struct shard *s, uint32_t i)
{
    for (uint32_t j = next_slot(i, s->cap); s->slots[j].ptr != 0; j = next_slot(j, s->cap)) {
        uint32_t k = home_in(s->cap, hash_ptr(s->slots[j].ptr));
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            s->slots[i] = s->slots[j];
            i = j;
        }
    }
    s->slots[i].ptr = 0;
}

/* ---- totals ------------------------------------------------------------------- */

__attribute__((noinline)) static void count_device(uint32_t d)
{
    int n = atomic_load_explicit(&devices_seen, memory_order_relaxed);
    while ((int)d + 1 > n && !atomic_compare_exchange_weak(&devices_seen, &n, (int)d + 1))
        ;
}

static inline void totals_add(uint32_t cell, uint64_t size)
{
    vg_peaks_take(cell, size);
    if (__builtin_expect((int)cell_device(cell) >= atomic_load_explicit(&devices_seen, memory_order_relaxed), 0))
        count_device(cell_device(cell));
}

static inline void totals_sub(uint32_t cell, uint64_t size)
{
    vg_peaks_give(cell, size);
}

/* ---- insert / remove ------------------------------------------------------------ */

void vg_table_note_untracked(void)
{
    atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
}

/* Store an entry (count: a new allocation; else a failed free put back).
 * An address we still hold was freed behind our back (a path we do not
 * see): its entry is replaced and uncounted. False when it could not be
 * stored (out of host memory: counted in `dropped`). */
bool insert(uintptr_t ptr, uint64_t size_pool, void *caller, int32_t api, uint32_t meta, bool count)
{
    if (ptr == 0)
        return false;
    uint64_t h = hash_ptr(ptr);
    struct shard *s = shard_of(h);
    struct entry old = {0};
    shard_lock(s);
    if (__builtin_expect(s->live >= s->grow_at, 0) && !room(s)) {
        shard_unlock(s);
        atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
        return false;
    }
    struct entry *e = &s->slots[probe(s, ptr, h)];
    if (__builtin_expect(e->ptr != 0, 0)) {
        old = *e;
        s->counts[old.meta & 511][1]++;
        s->counts[old.meta & 511][2] -= entry_size(&old);
    } else {
        s->live++;
    }
    *e = (struct entry){ptr, size_pool, caller, api, meta};
    uint64_t *c = s->counts[meta & 511];
    if (count)
        c[0]++;
    else
        c[1]--;
    c[2] += size_pool & SIZE_MASK;
    shard_unlock(s);
    if (__builtin_expect(old.ptr != 0, 0)) {
        totals_sub(old.meta & 511, entry_size(&old));
        if (old.meta & VG_TABLE_ALLOWED)
            vg_allow_give_back(cell_kind(old.meta & 511), entry_size(&old));
    }
    if (!count && (meta & VG_TABLE_ALLOWED)) /* a failed free put back: its bytes count again */
        vg_allow_take(NULL, cell_kind(meta & 511), size_pool & SIZE_MASK);
    totals_add(meta & 511, size_pool & SIZE_MASK);
    return true;
}

static inline int32_t api_offset(const char *api)
{
    intptr_t off = (intptr_t)api - (intptr_t)api_anchor;
    return api && off >= INT32_MIN + 1 && off <= INT32_MAX ? (int32_t)off : INT32_MIN;
}

static inline uint64_t size_pool_of(uint64_t size, uint16_t pool, uint8_t owner)
{
    return (size > SIZE_MASK ? SIZE_MASK : size) | (uint64_t)(pool & 0xff) << SIZE_BITS | (uint64_t)owner << OWNER_SHIFT;
}

bool vg_table_insert(const struct vg_alloc *a)
{
    return insert(a->ptr, size_pool_of(a->size, a->pool, a->owner), a->caller, api_offset(a->api),
                  vg_table_meta(a->device, a->kind, a->purpose, a->label, a->stack) |
                      (a->allowed ? VG_TABLE_ALLOWED : 0),
                  true);
}

/* ---- the rare cases of table_hot.h ------------------------------------------------ */

/* A thread's slack too short (a new peak, or another thread's frees) and a
 * new device: rare in the steady state (vg_table_add_vram). */
bool vg_table_added_rare(uint32_t cell, uint64_t size, bool taken)
{
    if (!taken)
        vg_peaks_take_slow(cell, cell_device(cell), size);
    if ((int)cell_device(cell) >= atomic_load_explicit(&devices_seen, memory_order_relaxed))
        count_device(cell_device(cell));
    return true;
}

bool vg_table_add_unlock_general(struct shard *s, uintptr_t ptr, uint64_t size_pool, void *caller, int32_t api,
                                 uint32_t meta)
{
    shard_unlock(s);
    return insert(ptr, size_pool, caller, api, meta, true);
}

bool vg_table_take_contended(struct shard *s, uintptr_t ptr, uint64_t h, struct vg_table_saved *saved)
{
    lock_slow(s);
    return vg_table_take_locked(s, ptr, h, saved);
}

/* The end of a removal whose slot must be refilled from later ones, with
 * the lock held. */
bool vg_table_take_vacate(struct shard *s, uint32_t i, uint32_t meta, uint64_t size)
{
    vacate(s, i);
    s->live--;
    shard_unlock(s);
    totals_sub(meta & 511, size);
    if (meta & VG_TABLE_ALLOWED)
        vg_allow_give_back(cell_kind(meta & 511), size);
    return true;
}

bool vg_table_take_gave_back(uint32_t meta, uint64_t size)
{
    vg_allow_give_back(cell_kind(meta & 511), size);
    return true;
}

/* ---- insert / remove, general ----------------------------------------------------- */

bool vg_table_add(uintptr_t ptr, uint64_t size, uint16_t pool, uint8_t owner, const char *api, void *caller,
                  uint32_t meta)
{
    return insert(ptr, size_pool_of(size, pool, owner), caller, api_offset(api), meta, true);
}

void vg_table_restore(const struct vg_alloc *a)
{
    insert(a->ptr, size_pool_of(a->size, a->pool, a->owner), a->caller, api_offset(a->api),
           vg_table_meta(a->device, a->kind, a->purpose, a->label, a->stack) | (a->allowed ? VG_TABLE_ALLOWED : 0),
           false);
}

void vg_table_put_back(const struct vg_table_saved *saved)
{
    insert(saved->ptr, saved->size_pool, saved->caller, saved->api, saved->meta, false);
}

bool vg_table_remove(uintptr_t ptr, struct vg_alloc *out)
{
    struct entry saved;
    if (!vg_table_take(ptr, &saved))
        return false;
    if (out)
        unpack(&saved, out);
    return true;
}

bool vg_table_lookup(uintptr_t ptr, struct vg_alloc *out)
{
    uint64_t h = hash_ptr(ptr);
    struct shard *s = shard_of(h);
    bool found = false;
    shard_lock(s);
    if (s->cap) {
        uint32_t i = probe(s, ptr, h);
        found = ptr != 0 && s->slots[i].ptr == ptr;
        if (found && out)
            unpack(&s->slots[i], out);
    }
    shard_unlock(s);
    return found;
}

/* ---- readers ------------------------------------------------------------------------ */

void vg_table_stats(struct vg_stats *out)
{
    memset(out, 0, sizeof(*out));
    int devices = atomic_load_explicit(&devices_seen, memory_order_relaxed);
    for (int d = 0; d < devices; d++)
        for (int k = 0; k < VG_KIND_SLOTS; k++)
            for (int p = 0; p < VG_PURPOSE_COUNT; p++) {
                uint32_t c = cell_of(d, k, p);
                out->cell[d][k][p].peak_bytes = vg_peaks_cell(c);
            }
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &shards[i];
        shard_lock(s);
        for (int d = 0; d < devices; d++)
            for (int k = 0; k < VG_KIND_SLOTS; k++)
                for (int p = 0; p < VG_PURPOSE_COUNT; p++) {
                    uint32_t c = cell_of(d, k, p);
                    out->cell[d][k][p].allocations += s->counts[c][0];
                    out->cell[d][k][p].frees += s->counts[c][1];
                    out->cell[d][k][p].live_bytes += s->counts[c][2];
                }
        shard_unlock(s);
    }
    for (int d = 0; d < devices; d++) {
        for (int k = 0; k < VG_KIND_SLOTS; k++)
            for (int p = 0; p < VG_PURPOSE_COUNT; p++) {
                struct vg_cell *c = &out->cell[d][k][p];
                c->live_count = c->allocations - c->frees;
                if (c->peak_bytes < c->live_bytes) /* read a moment apart */
                    c->peak_bytes = c->live_bytes;
            }
        out->device_peak[d] = vg_peaks_device(d);
        uint64_t vram = vg_table_device_vram(out, d);
        if (out->device_peak[d] < vram)
            out->device_peak[d] = vram;
    }
    out->device_count = devices;
    out->dropped = atomic_load_explicit(&dropped, memory_order_relaxed);
}

uint64_t vg_table_live_count(void)
{
    uint64_t n = 0;
    for (int i = 0; i < SHARDS; i++) {
        shard_lock(&shards[i]);
        n += shards[i].live;
        shard_unlock(&shards[i]);
    }
    return n;
}

int vg_table_device_count(void)
{
    return atomic_load_explicit(&devices_seen, memory_order_relaxed);
}

/* Walk the live entries whose cell device is `slot` (any when slot < 0),
 * each shard under its lock: unpacked for `visit`, else glanced at for
 * `glance`. Inlined into its two callers, each with one of them NULL. */
static inline __attribute__((always_inline)) void walk_slot(int slot, vg_table_visitor visit,
                                                            vg_table_glancer glance, void *ctx)
{
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &shards[i];
        shard_lock(s);
        for (uint32_t n = 0; n < s->cap; n++) {
            const struct entry *e = &s->slots[n];
            uint32_t cell = e->meta & 511;
            if (e->ptr == 0 || (slot >= 0 && cell_device(cell) != (uint32_t)slot))
                continue;
            if (visit) {
                struct vg_alloc a;
                unpack(e, &a);
                visit(&a, ctx);
            } else {
                struct vg_table_glance g = {e->ptr, entry_size(e), e->caller,
                                            (e->meta & NO_DEVICE) ? -1 : (int)cell_device(cell),
                                            (uint8_t)cell_kind(cell), (uint8_t)(cell & 3), e};
                glance(&g, ctx);
            }
        }
        shard_unlock(s);
    }
}

/* The cell slot of `device`'s entries (< 0: every device). The last cell
 * slot is shared (devices past it, no device): visitors still filter on the
 * entry's own device. */
static int device_slot(int device)
{
    return device < 0 ? -1 : (int)vg_table_cell(device, 0, 0) >> 5;
}

void vg_table_visit(vg_table_visitor fn, void *ctx)
{
    walk_slot(-1, fn, NULL, ctx);
}

void vg_table_visit_device(int device, vg_table_visitor fn, void *ctx)
{
    walk_slot(device_slot(device), fn, NULL, ctx);
}

void vg_table_glance_device(int device, vg_table_glancer fn, void *ctx)
{
    walk_slot(device_slot(device), NULL, fn, ctx);
}

void vg_table_glance_unpack(const struct vg_table_glance *g, struct vg_alloc *out)
{
    unpack(g->raw, out);
}

struct largest {
    struct vg_alloc *out;
    int max, n, device;
};

static void keep_largest(const struct vg_alloc *a, void *ctx)
{
    struct largest *l = ctx;
    if (l->device >= 0 && a->device != l->device)
        return;
    /* Insertion into a small sorted array (descending by size). */
    int pos = l->n;
    while (pos > 0 && l->out[pos - 1].size < a->size)
        pos--;
    if (pos >= l->max)
        return;
    int last = l->n < l->max ? l->n : l->max - 1;
    memmove(&l->out[pos + 1], &l->out[pos], (size_t)(last - pos) * sizeof(*l->out));
    l->out[pos] = *a;
    if (l->n < l->max)
        l->n++;
}

int vg_table_largest(struct vg_alloc *out, int max, int device)
{
    if (max <= 0)
        return 0;
    struct largest l = {out, max, 0, device};
    vg_table_visit(keep_largest, &l);
    return l.n;
}

size_t vg_table_snapshot(struct vg_alloc **out)
{
    *out = NULL;
    size_t room = (size_t)vg_table_live_count() + 64, k = 0;
    struct vg_alloc *copy = malloc(room * sizeof(*copy));
    if (copy == NULL)
        return 0;
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &shards[i];
        shard_lock(s);
        for (uint32_t n = 0; n < s->cap && k < room; n++)
            if (s->slots[n].ptr != 0)
                unpack(&s->slots[n], &copy[k++]);
        shard_unlock(s);
    }
    if (k == 0) {
        free(copy);
        copy = NULL;
    }
    *out = copy;
    return k;
}

struct by_caller {
    struct vg_caller_bytes *out;
    int max, n, device;
};

static void add_untagged(const struct vg_alloc *a, void *ctx)
{
    struct by_caller *b = ctx;
    if (a->purpose != VG_PURPOSE_UNKNOWN || !vg_kind_is_vram(a->kind) || (b->device >= 0 && a->device != b->device))
        return;
    int k = 0;
    while (k < b->n && b->out[k].caller != a->caller)
        k++;
    if (k == b->n) {
        if (b->n < b->max - 1 || (b->n == b->max - 1 && b->max == 1))
            b->out[b->n++] = (struct vg_caller_bytes){a->caller, 0, 0};
        else {
            k = b->max - 1; /* the overflow slot */
            if (b->n < b->max)
                b->out[b->n++] = (struct vg_caller_bytes){NULL, 0, 0};
            b->out[k].caller = NULL;
        }
    }
    b->out[k].bytes += a->size;
    b->out[k].count++;
}

int vg_table_untagged_by_caller(struct vg_caller_bytes *out, int max, int device)
{
    if (max <= 0)
        return 0;
    struct by_caller b = {out, max, 0, device};
    vg_table_visit(add_untagged, &b);
    return b.n;
}

/* Remove every entry for which match(entry, key) holds, counted as freed.
 * Rare (a destroyed context, a forgotten pool): a pass over every shard. */
static int remove_where(bool (*match)(const struct entry *, unsigned), unsigned key, uint64_t *bytes)
{
    int removed = 0;
    uint64_t sum = 0;
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &shards[i];
        shard_lock(s);
        for (uint32_t n = 0; n < s->cap;) {
            struct entry *e = &s->slots[n];
            if (e->ptr == 0 || !match(e, key)) {
                n++;
                continue;
            }
            uint32_t cell = e->meta & 511;
            uint64_t size = entry_size(e);
            if (e->meta & VG_TABLE_ALLOWED)
                vg_allow_give_back(cell_kind(cell), size);
            s->counts[cell][1]++;
            s->counts[cell][2] -= size;
            vacate(s, n); /* may move a later entry into n: look at n again */
            s->live--;
            totals_sub(cell, size);
            removed++;
            sum += size;
        }
        shard_unlock(s);
    }
    if (bytes)
        *bytes = sum;
    return removed;
}

static bool owned_by(const struct entry *e, unsigned owner)
{
    return entry_owner(e) == owner;
}

int vg_table_remove_owner(uint8_t owner, uint64_t *bytes)
{
    if (bytes)
        *bytes = 0;
    return owner == 0 ? 0 : remove_where(owned_by, owner, bytes);
}

void vg_table_pools_in_use(uint64_t used[4])
{
    memset(used, 0, 4 * sizeof(used[0]));
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &shards[i];
        shard_lock(s);
        for (uint32_t n = 0; n < s->cap; n++) {
            uint8_t pool = entry_pool(&s->slots[n]);
            if (s->slots[n].ptr != 0 && pool != 0)
                used[pool / 64] |= UINT64_C(1) << (pool % 64);
        }
        shard_unlock(s);
    }
}

uint64_t vg_table_device_vram(const struct vg_stats *s, int device)
{
    uint64_t sum = 0;
    if (device < 0 || device >= VG_MAX_DEVICES)
        return 0;
    for (int k = 0; k < VG_KIND_SLOTS; k++)
        for (int p = 0; vg_kind_is_vram(k) && p < VG_PURPOSE_SLOTS; p++)
            sum += s->cell[device][k][p].live_bytes;
    return sum;
}

uint64_t vg_table_heap_bytes(void)
{
    uint64_t bytes = 0;
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &shards[i];
        shard_lock(s);
        bytes += (uint64_t)s->cap * sizeof(struct entry);
        shard_unlock(s);
    }
    return bytes;
}

/* After fork, in the child (one thread): forget everything, unlock. */
void vg_table_reset(void)
{
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &shards[i];
        free(s->slots);
        memset(s, 0, offsetof(struct shard, padding)); /* releases the lock, forgets the counts; the padding stays untouched */
    }
    vg_peaks_reset();
    atomic_store(&devices_seen, 0);
    atomic_store(&dropped, 0);
}
