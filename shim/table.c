#include "table.h"
#include "forksafe.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Slot states: ptr == 0 empty, ptr == TOMBSTONE removed. Address 0 and ~0 are
 * never valid allocations. */
#define TOMBSTONE ((uintptr_t)-1)
enum { INITIAL_CAPACITY = 1024 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

pthread_mutex_t *vg_table_fork_mutex(void)
{
    return &lock;
}
static struct vg_alloc *slots;
static size_t capacity;  /* power of two */
static size_t used;      /* live entries */
static size_t tombstones;
static struct vg_stats stats;

static size_t hash_ptr(uintptr_t p)
{
    uint64_t h = (uint64_t)p >> 4;
    h *= 0x9E3779B97F4A7C15ull;
    return (size_t)(h ^ (h >> 29));
}

static int device_slot(int device)
{
    if (device < 0 || device >= VG_MAX_DEVICES)
        return VG_MAX_DEVICES - 1;
    return device;
}

static struct vg_cell *cell_of(const struct vg_alloc *a)
{
    return &stats.cell[device_slot(a->device)][a->kind % VG_KIND_SLOTS][a->purpose % VG_PURPOSE_SLOTS];
}

static uint64_t device_vram_live(int d)
{
    uint64_t sum = 0;
    for (int k = 0; k < VG_KIND_SLOTS; k++)
        for (int p = 0; vg_kind_is_vram(k) && p < VG_PURPOSE_SLOTS; p++)
            sum += stats.cell[d][k][p].live_bytes;
    return sum;
}

static void account_insert(const struct vg_alloc *a, bool count_allocation)
{
    struct vg_cell *c = cell_of(a);
    c->live_bytes += a->size;
    c->live_count++;
    if (c->live_bytes > c->peak_bytes)
        c->peak_bytes = c->live_bytes;
    if (count_allocation)
        c->allocations++;
    int d = device_slot(a->device);
    if (d + 1 > stats.device_count)
        stats.device_count = d + 1;
    if (vg_kind_is_vram(a->kind)) {
        uint64_t live = device_vram_live(d);
        if (live > stats.device_peak[d])
            stats.device_peak[d] = live;
    }
}

static void account_remove(const struct vg_alloc *a, bool count_free)
{
    struct vg_cell *c = cell_of(a);
    c->live_bytes -= a->size;
    c->live_count--;
    if (count_free)
        c->frees++;
}

/* Index of `ptr`'s slot, or of the slot where it would go (first tombstone
 * or empty). Requires capacity > 0. */
static size_t probe(uintptr_t ptr, bool *found)
{
    size_t mask = capacity - 1;
    size_t i = hash_ptr(ptr) & mask;
    size_t first_free = (size_t)-1;
    for (;;) {
        uintptr_t k = slots[i].ptr;
        if (k == ptr) {
            *found = true;
            return i;
        }
        if (k == 0) {
            *found = false;
            return first_free != (size_t)-1 ? first_free : i;
        }
        if (k == TOMBSTONE && first_free == (size_t)-1)
            first_free = i;
        i = (i + 1) & mask;
    }
}

static bool grow(void)
{
    size_t new_capacity = capacity ? capacity * 2 : INITIAL_CAPACITY;
    /* Only rehash to the same size when tombstones dominate. */
    if (capacity && used * 4 < capacity)
        new_capacity = capacity;
    struct vg_alloc *fresh = calloc(new_capacity, sizeof(*fresh));
    if (fresh == NULL)
        return false;
    struct vg_alloc *old = slots;
    size_t old_capacity = capacity;
    slots = fresh;
    capacity = new_capacity;
    tombstones = 0;
    for (size_t i = 0; i < old_capacity; i++) {
        if (old[i].ptr != 0 && old[i].ptr != TOMBSTONE) {
            bool found;
            slots[probe(old[i].ptr, &found)] = old[i];
        }
    }
    free(old);
    return true;
}

static bool insert_locked(const struct vg_alloc *a, bool count_allocation)
{
    if ((used + tombstones + 1) * 10 > capacity * 7 && !grow()) {
        if (capacity == 0 || used + tombstones + 1 >= capacity) {
            stats.dropped++;
            return false;
        }
    }
    bool found;
    size_t i = probe(a->ptr, &found);
    if (found) {
        /* The driver reused an address we still hold: the old entry was freed
         * behind our back (e.g. by a path we do not see). Replace it. */
        account_remove(&slots[i], true);
    } else {
        if (slots[i].ptr == TOMBSTONE)
            tombstones--;
        used++;
    }
    slots[i] = *a;
    account_insert(a, count_allocation);
    return true;
}

bool vg_table_insert(const struct vg_alloc *a)
{
    if (a->ptr == 0 || a->ptr == TOMBSTONE)
        return false;
    pthread_mutex_lock(&lock);
    bool ok = insert_locked(a, true);
    pthread_mutex_unlock(&lock);
    return ok;
}

bool vg_table_remove(uintptr_t ptr, struct vg_alloc *out)
{
    bool found = false;
    if (ptr == 0 || ptr == TOMBSTONE)
        return false;
    pthread_mutex_lock(&lock);
    if (capacity) {
        size_t i = probe(ptr, &found);
        if (found) {
            if (out)
                *out = slots[i];
            account_remove(&slots[i], true);
            slots[i].ptr = TOMBSTONE;
            used--;
            tombstones++;
        }
    }
    pthread_mutex_unlock(&lock);
    return found;
}

void vg_table_restore(const struct vg_alloc *a)
{
    pthread_mutex_lock(&lock);
    if (insert_locked(a, false))
        cell_of(a)->frees--;
    pthread_mutex_unlock(&lock);
}

bool vg_table_lookup(uintptr_t ptr, struct vg_alloc *out)
{
    bool found = false;
    pthread_mutex_lock(&lock);
    if (capacity) {
        size_t i = probe(ptr, &found);
        if (found && out)
            *out = slots[i];
    }
    pthread_mutex_unlock(&lock);
    return found;
}

void vg_table_stats(struct vg_stats *out)
{
    pthread_mutex_lock(&lock);
    memcpy(out, &stats, sizeof(stats));
    pthread_mutex_unlock(&lock);
}

uint64_t vg_table_live_count(void)
{
    pthread_mutex_lock(&lock);
    uint64_t n = used;
    pthread_mutex_unlock(&lock);
    return n;
}

int vg_table_device_count(void)
{
    pthread_mutex_lock(&lock);
    int n = stats.device_count;
    pthread_mutex_unlock(&lock);
    return n;
}

int vg_table_largest(struct vg_alloc *out, int max, int device)
{
    int n = 0;
    if (max <= 0)
        return 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < capacity; i++) {
        const struct vg_alloc *a = &slots[i];
        if (a->ptr == 0 || a->ptr == TOMBSTONE)
            continue;
        if (device >= 0 && a->device != device)
            continue;
        /* Insertion into a small sorted array (descending by size). */
        int pos = n < max ? n : max;
        while (pos > 0 && out[pos - 1].size < a->size)
            pos--;
        if (pos >= max)
            continue;
        int last = n < max ? n : max - 1;
        memmove(&out[pos + 1], &out[pos], (size_t)(last - pos) * sizeof(*out));
        out[pos] = *a;
        if (n < max)
            n++;
    }
    pthread_mutex_unlock(&lock);
    return n;
}

size_t vg_table_snapshot(struct vg_alloc **out)
{
    *out = NULL;
    pthread_mutex_lock(&lock);
    size_t n = used;
    struct vg_alloc *copy = n ? malloc(n * sizeof(*copy)) : NULL;
    size_t k = 0;
    if (copy) {
        for (size_t i = 0; i < capacity && k < n; i++)
            if (slots[i].ptr != 0 && slots[i].ptr != TOMBSTONE)
                copy[k++] = slots[i];
    }
    pthread_mutex_unlock(&lock);
    *out = copy;
    return copy ? k : 0;
}

int vg_table_untagged_by_caller(struct vg_caller_bytes *out, int max, int device)
{
    int n = 0;
    if (max <= 0)
        return 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < capacity; i++) {
        const struct vg_alloc *a = &slots[i];
        if (a->ptr == 0 || a->ptr == TOMBSTONE || a->purpose != VG_PURPOSE_UNKNOWN || !vg_kind_is_vram(a->kind))
            continue;
        if (device >= 0 && a->device != device)
            continue;
        int k = 0;
        while (k < n && out[k].caller != a->caller)
            k++;
        if (k == n) {
            if (n < max - 1 || (n == max - 1 && max == 1))
                out[n++] = (struct vg_caller_bytes){a->caller, 0, 0};
            else {
                k = max - 1; /* the overflow slot */
                if (n < max)
                    out[n++] = (struct vg_caller_bytes){NULL, 0, 0};
                out[k].caller = NULL;
            }
        }
        out[k].bytes += a->size;
        out[k].count++;
    }
    pthread_mutex_unlock(&lock);
    return n;
}

void vg_table_visit(vg_table_visitor fn, void *ctx)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < capacity; i++)
        if (slots[i].ptr != 0 && slots[i].ptr != TOMBSTONE)
            fn(&slots[i], ctx);
    pthread_mutex_unlock(&lock);
}

int vg_table_remove_pool(uint16_t pool)
{
    int removed = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; pool && i < capacity; i++) {
        if (slots[i].ptr == 0 || slots[i].ptr == TOMBSTONE || slots[i].pool != pool)
            continue;
        account_remove(&slots[i], true);
        slots[i].ptr = TOMBSTONE;
        used--;
        tombstones++;
        removed++;
    }
    pthread_mutex_unlock(&lock);
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

void vg_table_reset(void)
{
    pthread_mutex_lock(&lock);
    free(slots);
    slots = NULL;
    capacity = used = tombstones = 0;
    memset(&stats, 0, sizeof(stats));
    pthread_mutex_unlock(&lock);
}

