/* The allocation table. Sharded by address hash: each shard has its own
 * spin lock (held for a few dozen instructions, never across a CUDA call or
 * a log write), a dense array of 32-byte entries with a free list (freed
 * slots are reused at once), and an open-addressing index of 4-byte entry
 * numbers (linear probing, backward-shift deletion: no tombstones, so no
 * rebuilds under churn). A shard grows on its own, so the longest stall is
 * one shard's rehash, not the whole table's.
 *
 * Totals: live bytes and peaks per cell and per device are global atomics
 * (a peak is only exact against one global order); allocation and free
 * counts are per shard, under the shard lock, and summed when read. */
#include "table.h"
#include "forksafe.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum { SHARD_BITS = 6, SHARDS = 1 << SHARD_BITS, MIN_INDEX = 16, MIN_ENTRIES = 16 };

/* One live allocation as stored: 32 bytes (struct vg_alloc is 48). */
struct entry {
    uintptr_t ptr;      /* 0: a free slot, whose next free slot is in size_pool */
    uint64_t size_pool; /* size (48 bits) | pool index << 48 */
    void *caller;
    int32_t api;        /* offset of the api name from api_anchor (names are literals in the shim) */
    uint32_t meta;      /* device+1 (5) | kind (3) | purpose (2) | label (8) | stack (14) */
};
_Static_assert(sizeof(struct entry) == 32, "a table entry is 32 bytes");
_Static_assert(VG_PURPOSE_COUNT <= 4 && VG_KIND_COUNT <= 8, "purpose and kind fit their bits");

struct shard {
    atomic_int lock;
    uint32_t mask;    /* index capacity - 1; 0 before the first insert */
    uint32_t *index;  /* entry number + 1; 0 = empty */
    struct entry *entries;
    uint32_t cap;     /* entries allocated */
    uint32_t top;     /* entries ever used (the rest of `cap` is untouched) */
    uint32_t free_head; /* entry number + 1 of the first free slot; 0 = none */
    uint32_t live;
    uint64_t counts[VG_MAX_DEVICES][VG_KIND_SLOTS][VG_PURPOSE_COUNT][2]; /* allocations, frees */
} __attribute__((aligned(64)));

static struct shard shards[SHARDS];

struct live_peak {
    _Atomic uint64_t live, peak;
};
static struct live_peak cells[VG_MAX_DEVICES][VG_KIND_SLOTS][VG_PURPOSE_COUNT];
static struct live_peak device_vram[VG_MAX_DEVICES];
static atomic_int device_count;
static _Atomic uint64_t dropped;

static const char api_anchor[] = "(unknown)";

/* ---- packing --------------------------------------------------------------- */

enum { SIZE_BITS = 48 };
#define SIZE_MASK ((UINT64_C(1) << SIZE_BITS) - 1)

static uint32_t pack_meta(const struct vg_alloc *a)
{
    uint32_t dev = a->device < 0 ? 0 : (a->device > 30 ? 31 : (uint32_t)a->device + 1);
    return dev | (uint32_t)(a->kind & 7) << 5 | (uint32_t)(a->purpose & 3) << 8 | (uint32_t)(a->label & 0xff) << 10 |
           (a->stack & 0x3fff) << 18;
}

static void pack(struct entry *e, const struct vg_alloc *a)
{
    intptr_t off = a->api ? (intptr_t)a->api - (intptr_t)api_anchor : INT32_MIN;
    e->ptr = a->ptr;
    e->size_pool = (a->size > SIZE_MASK ? SIZE_MASK : a->size) | (uint64_t)a->pool << SIZE_BITS;
    e->caller = a->caller;
    e->api = (off > INT32_MIN && off <= INT32_MAX) || off == INT32_MIN ? (int32_t)off : 0;
    e->meta = pack_meta(a);
}

static void unpack(const struct entry *e, struct vg_alloc *a)
{
    a->ptr = e->ptr;
    a->size = e->size_pool & SIZE_MASK;
    a->pool = (uint16_t)(e->size_pool >> SIZE_BITS);
    a->caller = e->caller;
    a->api = e->api == INT32_MIN ? NULL : api_anchor + e->api;
    a->device = (int16_t)((e->meta & 31) - 1);
    a->kind = (uint8_t)(e->meta >> 5 & 7);
    a->purpose = (uint8_t)(e->meta >> 8 & 3);
    a->label = (uint16_t)(e->meta >> 10 & 0xff);
    a->stack = e->meta >> 18;
}

static int device_slot(int device)
{
    return device < 0 || device >= VG_MAX_DEVICES ? VG_MAX_DEVICES - 1 : device;
}

/* ---- locks ----------------------------------------------------------------- */

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("pause");
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static void lock_slow(struct shard *s)
{
    for (int spins = 0;; spins++) {
        if (atomic_load_explicit(&s->lock, memory_order_relaxed) == 0 &&
            !atomic_exchange_explicit(&s->lock, 1, memory_order_acquire))
            return;
        if (spins < 100)
            cpu_relax();
        else
            sched_yield(); /* the holder may be preempted: more threads than cores */
    }
}

static inline void shard_lock(struct shard *s)
{
    if (atomic_exchange_explicit(&s->lock, 1, memory_order_acquire))
        lock_slow(s);
}

static inline void shard_unlock(struct shard *s)
{
    atomic_store_explicit(&s->lock, 0, memory_order_release);
}

void vg_table_fork_prepare(void)
{
    for (int i = 0; i < SHARDS; i++)
        shard_lock(&shards[i]);
}

void vg_table_fork_parent(void)
{
    for (int i = SHARDS - 1; i >= 0; i--)
        shard_unlock(&shards[i]);
}

/* ---- hashing and the index --------------------------------------------------- */

static inline uint64_t hash_ptr(uintptr_t p)
{
    return (uint64_t)p * UINT64_C(0x9E3779B97F4A7C15);
}

static inline struct shard *shard_of(uint64_t h)
{
    return &shards[h >> (64 - SHARD_BITS)];
}

static inline uint32_t home_of(const struct shard *s, uint64_t h)
{
    return (uint32_t)(h >> 20) & s->mask;
}

/* Index position holding `ptr`, or -1. */
static inline int64_t find_locked(const struct shard *s, uintptr_t ptr, uint64_t h)
{
    if (s->index == NULL)
        return -1;
    for (uint32_t i = home_of(s, h);; i = (i + 1) & s->mask) {
        uint32_t n = s->index[i];
        if (n == 0)
            return -1;
        if (s->entries[n - 1].ptr == ptr)
            return i;
    }
}

static void place(struct shard *s, uint32_t number, uint64_t h)
{
    uint32_t i = home_of(s, h);
    while (s->index[i] != 0)
        i = (i + 1) & s->mask;
    s->index[i] = number;
}

/* Keep the index at most 3/4 full. False when it is full and cannot grow. */
static bool index_room(struct shard *s)
{
    uint64_t capacity = s->index ? (uint64_t)s->mask + 1 : 0;
    if ((uint64_t)(s->live + 1) * 4 <= capacity * 3)
        return true;
    uint64_t next = capacity ? capacity * 2 : MIN_INDEX;
    uint32_t *fresh = next <= UINT32_MAX ? calloc(next, sizeof(*fresh)) : NULL;
    if (fresh == NULL)
        return s->live + 1 < capacity;
    uint32_t *old = s->index;
    s->index = fresh;
    s->mask = (uint32_t)(next - 1);
    for (uint64_t i = 0; i < capacity; i++)
        if (old[i])
            place(s, old[i], hash_ptr(s->entries[old[i] - 1].ptr));
    free(old);
    return true;
}

/* A free entry number (+1), or 0 when out of memory. */
static uint32_t take_entry(struct shard *s)
{
    uint32_t n = s->free_head;
    if (n) {
        s->free_head = (uint32_t)s->entries[n - 1].size_pool;
        return n;
    }
    if (s->top == s->cap) {
        uint64_t next = s->cap ? (uint64_t)s->cap + s->cap / 2 : MIN_ENTRIES;
        struct entry *grown = next < UINT32_MAX ? realloc(s->entries, next * sizeof(*grown)) : NULL;
        if (grown == NULL)
            return 0;
        s->entries = grown;
        s->cap = (uint32_t)next;
    }
    return ++s->top;
}

static void give_entry(struct shard *s, uint32_t n)
{
    s->entries[n - 1].ptr = 0;
    s->entries[n - 1].size_pool = s->free_head;
    s->free_head = n;
}

/* Remove index position `i` (backward-shift deletion). */
static void unindex(struct shard *s, uint32_t i)
{
    for (uint32_t j = (i + 1) & s->mask;; j = (j + 1) & s->mask) {
        uint32_t n = s->index[j];
        if (n == 0)
            break;
        uint32_t k = home_of(s, hash_ptr(s->entries[n - 1].ptr));
        /* Move j back to i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            s->index[i] = n;
            i = j;
        }
    }
    s->index[i] = 0;
}

/* ---- totals ------------------------------------------------------------------- */

static inline void raise_peak(_Atomic uint64_t *peak, uint64_t value)
{
    uint64_t p = atomic_load_explicit(peak, memory_order_relaxed);
    while (value > p && !atomic_compare_exchange_weak_explicit(peak, &p, value, memory_order_relaxed,
                                                               memory_order_relaxed))
        ;
}

static inline void totals_add(int d, int kind, int purpose, uint64_t size)
{
    struct live_peak *c = &cells[d][kind][purpose];
    raise_peak(&c->peak, atomic_fetch_add_explicit(&c->live, size, memory_order_relaxed) + size);
    if (vg_kind_is_vram(kind)) {
        struct live_peak *v = &device_vram[d];
        raise_peak(&v->peak, atomic_fetch_add_explicit(&v->live, size, memory_order_relaxed) + size);
    }
    if (d >= atomic_load_explicit(&device_count, memory_order_relaxed)) {
        int n = atomic_load_explicit(&device_count, memory_order_relaxed);
        while (d + 1 > n && !atomic_compare_exchange_weak(&device_count, &n, d + 1))
            ;
    }
}

static inline void totals_sub(int d, int kind, int purpose, uint64_t size)
{
    atomic_fetch_sub_explicit(&cells[d][kind][purpose].live, size, memory_order_relaxed);
    if (vg_kind_is_vram(kind))
        atomic_fetch_sub_explicit(&device_vram[d].live, size, memory_order_relaxed);
}

struct where {
    int device, kind, purpose;
    uint64_t size;
};

static inline struct where where_of(const struct entry *e)
{
    return (struct where){device_slot((int)(e->meta & 31) - 1), (int)(e->meta >> 5 & 7), (int)(e->meta >> 8 & 3),
                          e->size_pool & SIZE_MASK};
}

/* ---- insert / remove ------------------------------------------------------------ */

/* Under the shard lock. Returns false when it could not be stored. `count`:
 * a new allocation (false: a failed free put back). `replaced` gets the
 * entry an address reuse displaced (freed behind our back). */
static bool insert_locked(struct shard *s, const struct vg_alloc *a, uint64_t h, bool count, struct where *replaced)
{
    int64_t i = find_locked(s, a->ptr, h);
    struct entry *e;
    if (i >= 0) {
        e = &s->entries[s->index[i] - 1];
        *replaced = where_of(e);
        s->counts[replaced->device][replaced->kind][replaced->purpose][1]++;
    } else {
        replaced->size = UINT64_MAX;
        if (!index_room(s))
            return false;
        uint32_t n = take_entry(s);
        if (n == 0)
            return false;
        place(s, n, h);
        s->live++;
        e = &s->entries[n - 1];
    }
    pack(e, a);
    struct where w = where_of(e);
    if (count)
        s->counts[w.device][w.kind][w.purpose][0]++;
    else
        s->counts[w.device][w.kind][w.purpose][1]--;
    return true;
}

static bool insert(const struct vg_alloc *a, bool count)
{
    if (a->ptr == 0)
        return false;
    uint64_t h = hash_ptr(a->ptr);
    struct shard *s = shard_of(h);
    struct where replaced;
    shard_lock(s);
    bool ok = insert_locked(s, a, h, count, &replaced);
    shard_unlock(s);
    if (!ok) {
        atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
        return false;
    }
    if (replaced.size != UINT64_MAX)
        totals_sub(replaced.device, replaced.kind, replaced.purpose, replaced.size);
    totals_add(device_slot(a->device), a->kind & 7, a->purpose & 3, a->size > SIZE_MASK ? SIZE_MASK : a->size);
    return true;
}

bool vg_table_insert(const struct vg_alloc *a)
{
    return insert(a, true);
}

void vg_table_restore(const struct vg_alloc *a)
{
    insert(a, false);
}

bool vg_table_remove(uintptr_t ptr, struct vg_alloc *out)
{
    if (ptr == 0)
        return false;
    uint64_t h = hash_ptr(ptr);
    struct shard *s = shard_of(h);
    shard_lock(s);
    int64_t i = find_locked(s, ptr, h);
    if (i < 0) {
        shard_unlock(s);
        return false;
    }
    uint32_t n = s->index[i];
    struct entry *e = &s->entries[n - 1];
    struct where w = where_of(e);
    if (out)
        unpack(e, out);
    s->counts[w.device][w.kind][w.purpose][1]++;
    unindex(s, (uint32_t)i);
    give_entry(s, n);
    s->live--;
    shard_unlock(s);
    totals_sub(w.device, w.kind, w.purpose, w.size);
    return true;
}

bool vg_table_lookup(uintptr_t ptr, struct vg_alloc *out)
{
    uint64_t h = hash_ptr(ptr);
    struct shard *s = shard_of(h);
    shard_lock(s);
    int64_t i = find_locked(s, ptr, h);
    if (i >= 0 && out)
        unpack(&s->entries[s->index[i] - 1], out);
    shard_unlock(s);
    return i >= 0;
}

/* ---- readers ------------------------------------------------------------------------ */

void vg_table_stats(struct vg_stats *out)
{
    memset(out, 0, sizeof(*out));
    int devices = atomic_load_explicit(&device_count, memory_order_relaxed);
    for (int d = 0; d < devices; d++)
        for (int k = 0; k < VG_KIND_SLOTS; k++)
            for (int p = 0; p < VG_PURPOSE_COUNT; p++) {
                out->cell[d][k][p].live_bytes = atomic_load_explicit(&cells[d][k][p].live, memory_order_relaxed);
                out->cell[d][k][p].peak_bytes = atomic_load_explicit(&cells[d][k][p].peak, memory_order_relaxed);
            }
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &shards[i];
        shard_lock(s);
        for (int d = 0; d < devices; d++)
            for (int k = 0; k < VG_KIND_SLOTS; k++)
                for (int p = 0; p < VG_PURPOSE_COUNT; p++) {
                    out->cell[d][k][p].allocations += s->counts[d][k][p][0];
                    out->cell[d][k][p].frees += s->counts[d][k][p][1];
                }
        shard_unlock(s);
    }
    for (int d = 0; d < devices; d++) {
        for (int k = 0; k < VG_KIND_SLOTS; k++)
            for (int p = 0; p < VG_PURPOSE_COUNT; p++) {
                struct vg_cell *c = &out->cell[d][k][p];
                c->live_count = c->allocations - c->frees;
            }
        out->device_peak[d] = atomic_load_explicit(&device_vram[d].peak, memory_order_relaxed);
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
    return atomic_load_explicit(&device_count, memory_order_relaxed);
}

void vg_table_visit(vg_table_visitor fn, void *ctx)
{
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &shards[i];
        shard_lock(s);
        for (uint32_t n = 0; n < s->top; n++) {
            if (s->entries[n].ptr == 0)
                continue;
            struct vg_alloc a;
            unpack(&s->entries[n], &a);
            fn(&a, ctx);
        }
        shard_unlock(s);
    }
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
        for (uint32_t n = 0; n < s->top && k < room; n++)
            if (s->entries[n].ptr != 0)
                unpack(&s->entries[n], &copy[k++]);
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

int vg_table_remove_pool(uint16_t pool)
{
    int removed = 0;
    if (pool == 0)
        return 0;
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &shards[i];
        shard_lock(s);
        for (uint32_t n = 1; n <= s->top; n++) {
            struct entry *e = &s->entries[n - 1];
            if (e->ptr == 0 || (uint16_t)(e->size_pool >> SIZE_BITS) != pool)
                continue;
            struct where w = where_of(e);
            int64_t at = find_locked(s, e->ptr, hash_ptr(e->ptr));
            if (at >= 0)
                unindex(s, (uint32_t)at);
            s->counts[w.device][w.kind][w.purpose][1]++;
            give_entry(s, n);
            s->live--;
            totals_sub(w.device, w.kind, w.purpose, w.size);
            removed++;
        }
        shard_unlock(s);
    }
    return removed;
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
        bytes += (uint64_t)s->cap * sizeof(struct entry) + (s->index ? ((uint64_t)s->mask + 1) * sizeof(uint32_t) : 0);
        shard_unlock(s);
    }
    return bytes;
}

/* After fork, in the child (one thread): forget everything, unlock. */
void vg_table_reset(void)
{
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &shards[i];
        free(s->index);
        free(s->entries);
        memset(s, 0, sizeof(*s)); /* also releases the lock */
    }
    memset(cells, 0, sizeof(cells));
    memset(device_vram, 0, sizeof(device_vram));
    atomic_store(&device_count, 0);
    atomic_store(&dropped, 0);
}
