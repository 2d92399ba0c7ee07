/* VRAMGUARD_TRACE's producers (trace.h): each thread's ring, the hooks
 * that store records in it, fork. The file they are written to is
 * trace_writer.c's, the metadata frames trace_meta.c's; what the three
 * share, with the order of their locks, is in trace_internal.h.
 *
 * Each thread that raises an event gets a ring of RING records (128 KiB),
 * registered in `rings`. The thread is its ring's only producer: it stores a
 * record, then publishes `head` (release). Consumers (the writer thread, the
 * thread itself when its ring is full, exit, fork, thread exit) take
 * vg_trace_lock, read up to `head` (acquire), write the records as one frame
 * (one writev: an O_APPEND write lands whole, so processes may share a
 * file), then publish `tail`. */
#include "trace.h"
#include "trace_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Its thread wakes the writer each time WAKE_EVERY more records are stored
 * in a ring, so the writer, not the thread, writes them, unless it falls a
 * whole ring behind. */
enum { WAKE_EVERY = RING / 4 };

/* ---- state ----------------------------------------------------------------- */

atomic_bool vg_trace_on;
static __thread struct ring *my_ring __attribute__((tls_model("initial-exec")));
static pthread_mutex_t rings_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ring *rings;
static pthread_key_t ring_key;
static pthread_once_t ring_key_once = PTHREAD_ONCE_INIT;
static bool ring_key_made;
_Atomic uint64_t vg_trace_stacks_seen[STACK_WORDS];
atomic_bool vg_trace_pools_seen;

/* ---- rings ---------------------------------------------------------------------- */

/* A ring has WAKE_EVERY more records: the writer writes them now rather
 * than at its next round (one futex wake, no lock of the writer's). Here,
 * beside emit, not in trace_writer.c: a static function is a plain call
 * (no endbr64, no call across files) on the producer's path. */
__attribute__((noinline)) static void wake_writer(void)
{
    if (atomic_load_explicit(&vg_trace_writer_started, memory_order_acquire))
        pthread_cond_signal(&vg_trace_writer_wake);
}

static void ring_gone(void *arg)
{
    struct ring *b = arg;
    pthread_mutex_lock(&rings_lock);
    pthread_mutex_lock(&vg_trace_lock);
    vg_trace_drain_locked(b);
    pthread_mutex_unlock(&vg_trace_lock);
    for (struct ring **p = &rings; *p; p = &(*p)->next)
        if (*p == b) {
            *p = b->next;
            break;
        }
    pthread_mutex_unlock(&rings_lock);
    if (my_ring == b)
        my_ring = NULL;
    free(b);
}

static void make_ring_key(void)
{
    ring_key_made = pthread_key_create(&ring_key, ring_gone) == 0;
}

/* This thread's ring, made on its first event (heap: not on the OOM path). */
static struct ring *ring_new(void)
{
    pthread_once(&ring_key_once, make_ring_key);
    struct ring *b = malloc(sizeof(*b));
    if (b == NULL)
        return NULL;
    atomic_init(&b->head, 0);
    atomic_init(&b->tail, 0);
    b->tid = (uint32_t)syscall(SYS_gettid);
    pthread_mutex_lock(&rings_lock);
    b->next = rings;
    rings = b;
    pthread_mutex_unlock(&rings_lock);
    if (ring_key_made)
        pthread_setspecific(ring_key, b); /* flushed and freed when the thread ends */
    my_ring = b;
    return b;
}

void vg_trace_drain_all(void)
{
    pthread_mutex_lock(&rings_lock);
    pthread_mutex_lock(&vg_trace_lock);
    for (struct ring *b = rings; b; b = b->next)
        vg_trace_drain_locked(b);
    pthread_mutex_unlock(&vg_trace_lock);
    pthread_mutex_unlock(&rings_lock);
}

/* What emit cannot do in place: make this thread's ring (`heap`: not on
 * the OOM path), write a full ring first, or write the record at once. */
__attribute__((noinline, cold)) static void emit_slow(struct record *r, bool heap)
{
    struct ring *b = my_ring;
    if (b == NULL && (!heap || (b = ring_new()) == NULL)) {
        vg_trace_write_one(r);
        return;
    }
    uint32_t head = atomic_load_explicit(&b->head, memory_order_relaxed);
    if (head - atomic_load_explicit(&b->tail, memory_order_acquire) >= RING)
        vg_trace_drain_full(b);
    b->rec[head % RING] = *r;
    atomic_store_explicit(&b->head, head + 1, memory_order_release);
}

/* Store one record (its time now) in this thread's ring: the producer's
 * whole cost when the ring has room, no lock, no system call. */
static inline __attribute__((always_inline)) void emit(uint64_t w0, uint64_t w1, uint64_t w2, uint64_t w3, bool heap)
{
    w0 |= now() & TIME_MASK;
    struct ring *b = my_ring;
    if (__builtin_expect(b != NULL, 1)) {
        uint32_t head = atomic_load_explicit(&b->head, memory_order_relaxed);
        if (__builtin_expect(head - atomic_load_explicit(&b->tail, memory_order_acquire) < RING, 1)) {
            struct record *r = &b->rec[head % RING];
            r->w[0] = w0;
            r->w[1] = w1;
            r->w[2] = w2;
            r->w[3] = w3;
            atomic_store_explicit(&b->head, head + 1, memory_order_release);
            if (__builtin_expect((head + 1) % WAKE_EVERY == 0, 0))
                wake_writer();
            return;
        }
    }
    struct record r = {{w0, w1, w2, w3}};
    emit_slow(&r, heap);
}

static inline uint64_t word0(int type, uint16_t label)
{
    return (uint64_t)type << 52 | (uint64_t)(label & 0xff) << 56;
}

/* ---- the hooks ------------------------------------------------------------------ */

uint64_t vg_trace_word_of_meta(uint64_t size, uint32_t meta, uint64_t *w0)
{
    /* vg_table_meta (table.h): cell = device slot << 5 | kind << 2 | purpose,
     * VG_TABLE_NO_DEVICE, label << 10. check_trace.c's unit test holds this
     * to vg_table_unpack. */
    uint64_t dev = (meta & VG_TABLE_NO_DEVICE) ? 0 : (uint64_t)(meta >> 5 & 15) + 1;
    *w0 = (uint64_t)(meta >> 10 & 0xff) << 56;
    return (size & SIZE_MASK) | dev << 48 | (uint64_t)(meta & 31) << 53;
}

/* The stack of the record just stored, as a record of its own (only for
 * what has one: large allocations, refusals, OOMs); the writer names its
 * site once per stack. */
static void emit_stack(uint32_t stack, uint64_t address, void *caller, bool heap)
{
    stack &= STACK_IDS - 1;
    _Atomic uint64_t *word = &vg_trace_stacks_seen[stack / 64];
    uint64_t bit = UINT64_C(1) << (stack % 64);
    if (!(atomic_load_explicit(word, memory_order_relaxed) & bit))
        atomic_fetch_or_explicit(word, bit, memory_order_relaxed);
    emit((uint64_t)VG_TRACE_STACK << 52, stack, address, (uint64_t)(uintptr_t)caller, heap);
}

void vg_trace_alloc_slow(uintptr_t ptr, uint64_t size, uint32_t meta, void *caller)
{
    if (__builtin_expect((meta >> 2 & 7) == VG_KIND_POOL, 0))
        atomic_store_explicit(&vg_trace_pools_seen, true, memory_order_relaxed); /* the writer samples reserves */
    uint64_t w0;
    uint64_t w1 = vg_trace_word_of_meta(size, meta, &w0);
    emit(w0 | (uint64_t)VG_TRACE_ALLOC << 52, w1, ptr, (uint64_t)(uintptr_t)caller, true);
    uint32_t stack = vg_table_meta_stack(meta);
    if (__builtin_expect(stack != 0, 0))
        emit_stack(stack, ptr, caller, true);
}

void vg_trace_free_slow(const struct vg_table_saved *old)
{
    if (old->ptr == 0)
        return; /* vg_table_take found none: nothing tracked, nothing traced */
    uint64_t w0;
    uint64_t w1 = vg_trace_word_of_meta(old->size_pool, old->meta, &w0); /* size: size_pool's low 48 bits */
    emit(w0 | (uint64_t)VG_TRACE_FREE << 52, w1, old->ptr, (uint64_t)(uintptr_t)old->caller, true);
}

static void removed(const struct vg_alloc *a, int why)
{
    emit(word0(VG_TRACE_FREE, a->label), pack_cell(a->size, a->device, a->kind, a->purpose, why), a->ptr,
         (uint64_t)(uintptr_t)a->caller, true);
}

void vg_trace_removed(const struct vg_alloc *a, int why)
{
    if (vg_trace_enabled())
        removed(a, why);
}

void vg_trace_context_gone(uint8_t owner)
{
    if (!vg_trace_enabled())
        return;
    struct vg_alloc *live = NULL;
    size_t n = vg_table_snapshot(&live); /* not visited in place: the table's locks stay out of ours */
    for (size_t i = 0; i < n; i++)
        if (live[i].owner == owner)
            removed(&live[i], VG_TRACE_DROPPED_WITH_CONTEXT);
    free(live);
}

void vg_trace_incident(int type, const struct vg_call *c, int result, const struct vg_budget_hit *hit,
                       uint32_t stack)
{
    if (!vg_trace_enabled())
        return;
    int detail = type == VG_TRACE_REFUSAL ? (c->action == VG_ACTION_REJECT) : hit ? hit->scope : 0;
    uint64_t extra = hit ? hit->limit : (uint64_t)(uint32_t)result;
    emit(word0(type, c->label), pack_cell(c->size, c->device, c->kind, c->purpose, detail), extra,
         (uint64_t)(uintptr_t)c->caller, false);
    if (stack != 0)
        emit_stack(stack, 0, c->caller, false);
}

/* ---- fork ----------------------------------------------------------------------- */

void vg_trace_fork_prepare(void)
{
    if (vg_trace_enabled())
        vg_trace_drain_all(); /* the parent's events are in its file before the child exists */
    pthread_mutex_lock(&vg_trace_writer_lock);
    pthread_mutex_lock(&vg_trace_meta_lock);
    pthread_mutex_lock(&rings_lock);
    pthread_mutex_lock(&vg_trace_lock);
}

void vg_trace_fork_parent(void)
{
    pthread_mutex_unlock(&vg_trace_lock);
    pthread_mutex_unlock(&rings_lock);
    pthread_mutex_unlock(&vg_trace_meta_lock);
    pthread_mutex_unlock(&vg_trace_writer_lock);
}

void vg_trace_fork_child(void)
{
    atomic_store_explicit(&vg_trace_on, false, memory_order_relaxed);
    /* Only this thread goes on: the other rings are its parent's threads'. */
    struct ring *mine = my_ring;
    for (struct ring *b = rings, *next; b; b = next) {
        next = b->next;
        if (b != mine)
            free(b);
    }
    rings = mine;
    if (mine) {
        mine->next = NULL;
        atomic_store(&mine->head, 0);
        atomic_store(&mine->tail, 0);
        mine->tid = (uint32_t)syscall(SYS_gettid);
    }
    atomic_store(&vg_trace_pools_seen, false);
    memset(vg_trace_stacks_seen, 0, sizeof(vg_trace_stacks_seen));
    vg_trace_writer_forget();
    vg_trace_meta_forget();
    pthread_mutex_unlock(&vg_trace_lock);
    pthread_mutex_unlock(&rings_lock);
    pthread_mutex_unlock(&vg_trace_meta_lock);
    pthread_mutex_unlock(&vg_trace_writer_lock);
}
