/* VRAMGUARD_TRACE (trace.h; the file's format: docs/trace-format.md).
 *
 * Each thread that raises an event gets a ring of RING records (128 KiB),
 * registered in `rings`. The thread is its ring's only producer: it stores a
 * record, then publishes `head` (release). Consumers (the writer thread, the
 * thread itself when its ring is full, exit, fork, thread exit) take
 * trace_lock, read up to `head` (acquire), write the records as one frame
 * (one writev: an O_APPEND write lands whole, so processes may share a
 * file), then publish `tail`. Lock order: writer_lock, meta_lock,
 * rings_lock, trace_lock (the fork handlers take them all in it); the
 * table's locks may be taken under trace_lock, never the other way round,
 * and no other lock of the shim is held when any of these is taken. */
#include "trace.h"
#include "config.h"
#include "devices.h"
#include "emit.h"
#include "files.h"
#include "log.h"
#include "pools.h"
#include "purposes.h"
#include "stacks.h"
#include "who.h"

#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the trace format is little-endian");

/* ---- the format ------------------------------------------------------------ */

struct record {
    uint64_t w[4];
};
_Static_assert(sizeof(struct record) == 32, "a trace record is 32 bytes");

struct frame_header {
    uint32_t magic;
    uint8_t type;
    uint8_t version;
    uint16_t reserved;
    uint32_t pid;
    uint32_t tid;
    uint64_t time;    /* ns since this process's trace began */
    uint32_t payload; /* bytes that follow, a multiple of 32 */
    uint32_t count;   /* records, or the JSON text's length */
};
_Static_assert(sizeof(struct frame_header) == 32, "a frame header is 32 bytes");

#define TRACE_MAGIC 0x52544756u /* "VGTR" */
enum { TRACE_VERSION = 1 };
enum {
    FRAME_START = 1,
    FRAME_EVENTS = 2,
    FRAME_MODULES = 3,
    FRAME_LABELS = 4,
    FRAME_DEVICES = 5,
    FRAME_COALESCED = 6,
    FRAME_NOTE = 7,
    FRAME_END = 8,
    FRAME_STACKS = 9,
};
#define TIME_MASK ((UINT64_C(1) << 52) - 1)
#define SIZE_MASK ((UINT64_C(1) << 48) - 1)

/* A ring holds RING records (128 KiB); its thread wakes the writer each
 * time WAKE_EVERY more are stored, so the writer, not the thread, writes
 * them, unless it falls a whole ring behind. */
enum { RING = 4096, WAKE_EVERY = RING / 4, FLUSH_MS = 100, MARKERS_KEPT = 16, END_ROOM = 1024 };
#define INTERVAL_NS UINT64_C(1000000000)

/* Word 1 of a record: size | device + 1 (0: none) << 48 | purpose << 53 |
 * kind << 55 | detail << 58. Purpose and kind sit as the table packs them
 * (kind << 2 | purpose: vg_table_cell), so an entry's meta converts in one
 * step (vg_trace_word_of_meta). */
static inline uint64_t pack_cell(uint64_t size, int device, int kind, int purpose, int detail)
{
    uint64_t dev = device < 0 ? 0 : device < 31 ? (uint64_t)device + 1 : 31;
    return (size & SIZE_MASK) | dev << 48 | (uint64_t)(purpose & 3) << 53 | (uint64_t)(kind & 7) << 55 |
           (uint64_t)(detail & 63) << 58;
}

static inline int record_kind(const struct record *r)
{
    return (int)(r->w[1] >> 55 & 7);
}

static inline int record_device(const struct record *r)
{
    return (int)(r->w[1] >> 48 & 31) - 1;
}

static inline int record_type(const struct record *r)
{
    return (int)(r->w[0] >> 52 & 15);
}

/* ---- state ----------------------------------------------------------------- */

struct ring {
    _Atomic uint32_t head; /* written by the owner thread only */
    _Atomic uint32_t tail; /* written under trace_lock only */
    uint32_t tid;
    struct ring *next; /* under rings_lock */
    struct record rec[RING];
};

atomic_bool vg_trace_on;
static __thread struct ring *my_ring __attribute__((tls_model("initial-exec")));
static pthread_mutex_t rings_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ring *rings;
static pthread_key_t ring_key;
static pthread_once_t ring_key_once = PTHREAD_ONCE_INIT;
static bool ring_key_made;

/* Under trace_lock: the file and what was written to it. */
static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;
static int trace_fd = -1;
static char trace_path[VG_PATH_MAX];
static bool started, ended, failed;
static uint64_t start_ns; /* CLOCK_MONOTONIC at the start */
static uint64_t max_bytes;
static uint64_t bytes_events, bytes_meta, bytes_coalesced;
/* Every event is written (events), kept in a coalesced frame (markers_kept),
 * folded (counted only) or lost; markers_folded are the refusals and OOMs
 * among the folded. */
static uint64_t events_written, events_folded, events_lost, rings_full, markers_kept, markers_folded;
enum { PHASE_FULL, PHASE_COALESCED, PHASE_CAPPED };
static int phase;
static atomic_bool pools_seen; /* a pool allocation was traced: the writer samples reserves */
static unsigned long long modules_adds = ~0ULL, modules_subs = ~0ULL;
static int labels_written = 1; /* labels below this were written */
static bool last_label_written;
static uint32_t devices_written; /* bit d: device d's info was written */
/* Stacks a record names (set by the producers, rarely: the first time an
 * id is seen) and those whose site a stacks frame has given. */
enum { STACK_IDS = 1 << 13, STACK_WORDS = STACK_IDS / 64 };
static _Atomic uint64_t stacks_seen[STACK_WORDS];
static uint64_t stacks_written[STACK_WORDS];
static uint64_t pool_written[VG_MAX_DEVICES][2];
static bool pool_any_written[VG_MAX_DEVICES];

/* Coalescing (under trace_lock): the interval's folded events, the running
 * VRAM per device from the last exact level, the most it reached. */
static uint64_t interval_start, interval_ns;
static uint64_t folded_allocs, folded_frees, folded_markers;
static struct record markers[2 * MARKERS_KEPT]; /* the refusals and OOMs kept, with their stacks */
static int n_markers, n_marker_events;
static bool kept_last; /* the last record folded was a marker kept: its stack is kept too */
static uint64_t running_vram[VG_MAX_DEVICES], interval_max[VG_MAX_DEVICES], known_peak[VG_MAX_DEVICES];
static uint64_t level_written[VG_MAX_DEVICES][VG_KIND_SLOTS][VG_PURPOSE_COUNT];
static bool level_any[VG_MAX_DEVICES][VG_KIND_SLOTS][VG_PURPOSE_COUNT];
static struct vg_stats stats; /* scratch of vg_table_stats */

/* The writer thread. */
static pthread_mutex_t writer_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t writer_wake;
static bool writer_running;
static atomic_bool writer_started; /* writer_wake is initialised */

/* A ring has WAKE_EVERY more records: the writer writes them now rather
 * than at its next round (one futex wake, no lock of the writer's). */
__attribute__((noinline)) static void wake_writer(void)
{
    if (atomic_load_explicit(&writer_started, memory_order_acquire))
        pthread_cond_signal(&writer_wake);
}

static uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static inline uint64_t now(void)
{
    return mono_ns() - start_ns;
}

/* ---- writing frames (under trace_lock) -------------------------------------- */

static void trace_failed(int error)
{
    if (failed)
        return;
    failed = true;
    atomic_store_explicit(&vg_trace_on, false, memory_order_relaxed);
    vg_log("cannot write the trace %s (%s); tracing stops", trace_path, strerror(error));
}

/* One frame: the header, then `iov` (n pieces), padded to 32 bytes. */
static bool write_frame(int type, uint32_t tid, uint32_t count, const struct iovec *iov, int n, uint64_t *account)
{
    static const char zeros[32];
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += iov[i].iov_len;
    size_t pad = (32 - len % 32) % 32;
    struct frame_header h = {TRACE_MAGIC, (uint8_t)type, TRACE_VERSION, 0, (uint32_t)getpid(), tid, now(),
                             (uint32_t)(len + pad), count};
    struct iovec all[4];
    all[0] = (struct iovec){&h, sizeof(h)};
    for (int i = 0; i < n; i++)
        all[1 + i] = iov[i];
    all[1 + n] = (struct iovec){(void *)zeros, pad};
    size_t total = sizeof(h) + len + pad;
    if (trace_fd < 0 || failed)
        return false;
    ssize_t w;
    do
        w = writev(trace_fd, all, n + 2);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)total) {
        trace_failed(w < 0 ? errno : ENOSPC);
        return false;
    }
    *account += total;
    return true;
}

/* JSON metadata, under its share of VRAMGUARD_TRACE_MAX (the end frame's
 * room kept). */
static bool write_json(int type, const char *text, size_t len, bool always)
{
    uint64_t frame = sizeof(struct frame_header) + (len + 31) / 32 * 32;
    if (!always && max_bytes && bytes_meta + frame + END_ROOM > max_bytes / 8)
        return false;
    struct iovec iov = {(void *)text, len};
    return write_frame(type, 0, (uint32_t)len, &iov, 1, &bytes_meta);
}

static void note(const char *what)
{
    char text[200];
    int n = snprintf(text, sizeof(text), "{\"note\":\"%s\",\"bytes\":%llu,\"interval_ns\":%llu}", what,
                     (unsigned long long)(bytes_events + bytes_meta + bytes_coalesced),
                     (unsigned long long)interval_ns);
    write_json(FRAME_NOTE, text, (size_t)n, true);
}

/* ---- coalescing -------------------------------------------------------------- */

static bool vram_record(const struct record *r, int *device, uint64_t *size)
{
    int kind = record_kind(r);
    int dev = record_device(r);
    if (!vg_kind_is_vram(kind) || dev < 0 || dev >= VG_MAX_DEVICES)
        return false;
    *device = dev;
    *size = r->w[1] & SIZE_MASK;
    return true;
}

/* The running VRAM of every device from the table, exact. */
static void levels_from_table(void)
{
    vg_table_stats(&stats);
    for (int d = 0; d < VG_MAX_DEVICES; d++) {
        running_vram[d] = d < stats.device_count ? vg_table_device_vram(&stats, d) : 0;
        interval_max[d] = running_vram[d];
    }
}

static void start_coalescing(void)
{
    phase = PHASE_COALESCED;
    interval_ns = INTERVAL_NS;
    interval_start = now();
    levels_from_table();
    for (int d = 0; d < VG_MAX_DEVICES; d++)
        known_peak[d] = d < stats.device_count ? stats.device_peak[d] : 0;
    note("coalesced");
}

static void fold(const struct record *r)
{
    int type = record_type(r), device;
    uint64_t size;
    if (type == VG_TRACE_STACK) { /* not an event: the previous record's stack */
        if (kept_last && n_markers < 2 * MARKERS_KEPT)
            markers[n_markers++] = *r;
        kept_last = false;
        return;
    }
    kept_last = false;
    events_folded++;
    if (type == VG_TRACE_ALLOC || type == VG_TRACE_FREE) {
        if (type == VG_TRACE_ALLOC)
            folded_allocs++;
        else
            folded_frees++;
        if (vram_record(r, &device, &size)) {
            if (type == VG_TRACE_ALLOC)
                running_vram[device] += size;
            else
                running_vram[device] -= running_vram[device] < size ? running_vram[device] : size;
            if (running_vram[device] > interval_max[device])
                interval_max[device] = running_vram[device];
        }
    } else if (phase == PHASE_COALESCED && n_marker_events < MARKERS_KEPT) {
        markers[n_markers++] = *r; /* written as it is with the interval */
        n_marker_events++;
        kept_last = true;
        events_folded--;
        markers_kept++;
    } else {
        folded_markers++;
        markers_folded++;
    }
}

static void add_record(struct record *out, int *n, int max, uint64_t t, int type, uint64_t w1, uint64_t w2,
                       uint64_t w3)
{
    if (*n < max)
        out[(*n)++] = (struct record){{(t & TIME_MASK) | (uint64_t)type << 52, w1, w2, w3}};
}

/* The interval's frame: levels that changed, each device, the count
 * folded, the markers kept. The interval doubles for each sixteenth of the
 * coalesced room used; past the room nothing more is written. */
static void emit_interval(const struct vg_pool_totals *pools)
{
    enum { MAX_RECORDS = VG_MAX_DEVICES * VG_KIND_SLOTS * VG_PURPOSE_COUNT + VG_MAX_DEVICES * 2 + 1 + 2 * MARKERS_KEPT };
    static struct record out[MAX_RECORDS];
    int n = 0;
    uint64_t t = now();
    vg_table_stats(&stats);
    for (int d = 0; d < stats.device_count && d < VG_MAX_DEVICES; d++) {
        for (int k = 0; k < VG_KIND_SLOTS; k++)
            for (int p = 0; p < VG_PURPOSE_COUNT; p++) {
                uint64_t live = stats.cell[d][k][p].live_bytes;
                /* The first level of every cell that ever held anything (a
                 * reader's replay may end on an allocation whose free was
                 * folded), then only changes. */
                if (level_any[d][k][p] ? level_written[d][k][p] == live
                                       : live == 0 && stats.cell[d][k][p].allocations == 0)
                    continue;
                level_written[d][k][p] = live;
                level_any[d][k][p] = true;
                add_record(out, &n, MAX_RECORDS, t, VG_TRACE_LEVEL, pack_cell(live, d, k, p, 0),
                           stats.cell[d][k][p].live_count, 0);
            }
        uint64_t vram = vg_table_device_vram(&stats, d);
        uint64_t most = interval_max[d] > vram ? interval_max[d] : vram;
        if (stats.device_peak[d] > known_peak[d]) /* a new peak was reached in the interval: that is its most */
            most = stats.device_peak[d];
        known_peak[d] = stats.device_peak[d];
        add_record(out, &n, MAX_RECORDS, t, VG_TRACE_DEVICE, pack_cell(vram, d, VG_KIND_DEVICE, 0, 0), most, 0);
        if (pools && pools->known)
            add_record(out, &n, MAX_RECORDS, t, VG_TRACE_POOL, pack_cell(pools->reserved[d], d, VG_KIND_POOL, 0, 0),
                       pools->graph_reserved[d], 0);
        running_vram[d] = interval_max[d] = vram;
    }
    add_record(out, &n, MAX_RECORDS, t, VG_TRACE_FOLDED, folded_allocs, folded_frees, folded_markers);
    for (int i = 0; i < n_markers; i++)
        if (n < MAX_RECORDS)
            out[n++] = markers[i];
    uint64_t frame = sizeof(struct frame_header) + (uint64_t)n * sizeof(struct record);
    uint64_t room = max_bytes / 4;
    if (max_bytes && bytes_coalesced + frame > room) {
        phase = PHASE_CAPPED;
        note("capped");
        events_folded += (uint64_t)n_marker_events; /* the markers kept for it are only counted now */
        markers_kept -= (uint64_t)n_marker_events;
        markers_folded += (uint64_t)n_marker_events;
    } else {
        struct iovec iov = {out, (size_t)n * sizeof(struct record)};
        write_frame(FRAME_COALESCED, 0, (uint32_t)n, &iov, 1, &bytes_coalesced);
    }
    folded_allocs = folded_frees = folded_markers = 0;
    n_markers = n_marker_events = 0;
    interval_start = t;
    unsigned shift = max_bytes ? (unsigned)(bytes_coalesced / (room / 16 + 1)) : 0;
    interval_ns = INTERVAL_NS << (shift < 30 ? shift : 30);
}

/* ---- rings ---------------------------------------------------------------------- */

/* Write what `b` holds (under trace_lock): one frame, or folded once the
 * events' share is used. */
static void drain_locked(struct ring *b)
{
    uint32_t head = atomic_load_explicit(&b->head, memory_order_acquire);
    uint32_t tail = atomic_load_explicit(&b->tail, memory_order_relaxed);
    uint32_t n = head - tail;
    if (n == 0)
        return;
    uint64_t frame = sizeof(struct frame_header) + (uint64_t)n * sizeof(struct record);
    if (phase == PHASE_FULL && max_bytes && bytes_events + frame > max_bytes / 8 * 5)
        start_coalescing();
    if (phase == PHASE_FULL) {
        uint32_t first = tail % RING, run = RING - first < n ? RING - first : n;
        struct iovec iov[2] = {{&b->rec[first], run * sizeof(struct record)},
                               {&b->rec[0], (n - run) * sizeof(struct record)}};
        if (write_frame(FRAME_EVENTS, b->tid, n, iov, n > run ? 2 : 1, &bytes_events))
            events_written += n;
        else
            events_lost += n;
    } else {
        for (uint32_t i = tail; i != head; i++)
            fold(&b->rec[i % RING]);
    }
    atomic_store_explicit(&b->tail, head, memory_order_release);
}

static void ring_gone(void *arg)
{
    struct ring *b = arg;
    pthread_mutex_lock(&rings_lock);
    pthread_mutex_lock(&trace_lock);
    drain_locked(b);
    pthread_mutex_unlock(&trace_lock);
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

/* One record written at once, for a thread without a ring (no heap). */
static void write_one(struct record *r)
{
    pthread_mutex_lock(&trace_lock);
    if (phase == PHASE_FULL && max_bytes && bytes_events + 64 > max_bytes / 8 * 5)
        start_coalescing();
    if (phase == PHASE_FULL) {
        struct iovec iov = {r, sizeof(*r)};
        if (write_frame(FRAME_EVENTS, (uint32_t)syscall(SYS_gettid), 1, &iov, 1, &bytes_events))
            events_written++;
        else
            events_lost++;
    } else {
        fold(r);
    }
    pthread_mutex_unlock(&trace_lock);
}

/* What emit cannot do in place: make this thread's ring (`heap`: not on
 * the OOM path), write a full ring first, or write the record at once. */
__attribute__((noinline, cold)) static void emit_slow(struct record *r, bool heap)
{
    struct ring *b = my_ring;
    if (b == NULL && (!heap || (b = ring_new()) == NULL)) {
        write_one(r);
        return;
    }
    uint32_t head = atomic_load_explicit(&b->head, memory_order_relaxed);
    if (head - atomic_load_explicit(&b->tail, memory_order_acquire) >= RING) {
        pthread_mutex_lock(&trace_lock); /* full: the writer is behind, write it now */
        rings_full++;
        drain_locked(b);
        pthread_mutex_unlock(&trace_lock);
    }
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
    _Atomic uint64_t *word = &stacks_seen[stack / 64];
    uint64_t bit = UINT64_C(1) << (stack % 64);
    if (!(atomic_load_explicit(word, memory_order_relaxed) & bit))
        atomic_fetch_or_explicit(word, bit, memory_order_relaxed);
    emit((uint64_t)VG_TRACE_STACK << 52, stack, address, (uint64_t)(uintptr_t)caller, heap);
}

void vg_trace_alloc_slow(uintptr_t ptr, uint64_t size, uint32_t meta, void *caller)
{
    if (__builtin_expect((meta >> 2 & 7) == VG_KIND_POOL, 0))
        atomic_store_explicit(&pools_seen, true, memory_order_relaxed); /* the writer samples reserves */
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

/* ---- metadata ------------------------------------------------------------------- */

struct module_walk {
    struct vg_out *o;
    int n;
    unsigned long long adds, subs;
};

static int module_one(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct module_walk *w = arg;
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
        w->adds = info->dlpi_adds;
        w->subs = info->dlpi_subs;
    }
    if (w->o == NULL)
        return 1; /* the counters only */
    bool main_program = w->n == 0;
    uintptr_t lowest = UINTPTR_MAX;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_LOAD && info->dlpi_phdr[i].p_vaddr < lowest)
            lowest = info->dlpi_phdr[i].p_vaddr;
    if (lowest == UINTPTR_MAX)
        return 0;
    char exe[VG_PATH_MAX];
    const char *path = info->dlpi_name;
    if (main_program || path == NULL || path[0] == '\0') {
        ssize_t n = main_program ? readlink("/proc/self/exe", exe, sizeof(exe) - 1) : -1;
        exe[n > 0 ? n : 0] = '\0';
        path = exe;
    }
    /* base: what dladdr calls the module's base (the offsets every output
     * prints are from it); bias: address - bias is the ELF virtual address. */
    vg_out_printf(w->o, "%s{\"path\":", w->n ? "," : "");
    vg_out_json_string(w->o, path);
    vg_out_printf(w->o, ",\"main\":%s,\"base\":%llu,\"bias\":%llu,\"ranges\":[", main_program ? "true" : "false",
                  (unsigned long long)(info->dlpi_addr + lowest), (unsigned long long)info->dlpi_addr);
    int k = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD)
            vg_out_printf(w->o, "%s[%llu,%llu]", k++ ? "," : "", (unsigned long long)(info->dlpi_addr + ph->p_vaddr),
                          (unsigned long long)(info->dlpi_addr + ph->p_vaddr + ph->p_memsz));
    }
    vg_out_str(w->o, "]}");
    w->n++;
    return 0;
}

/* The sites of the stacks records named since the last stacks frame
 * (who.h: the first frame in the program's own code, past the shim's and
 * the CUDA runtime's), named from the modules' symbol tables here, off the
 * allocation path. Under meta_lock. */
static void write_stacks(void)
{
    uint64_t fresh[STACK_WORDS];
    bool any = false;
    for (int i = 0; i < STACK_WORDS; i++) {
        fresh[i] = atomic_load_explicit(&stacks_seen[i], memory_order_relaxed) & ~stacks_written[i];
        any = any || fresh[i];
    }
    if (!any)
        return;
    struct vg_symbols *symbols = malloc(sizeof(*symbols));
    struct vg_out o;
    if (symbols == NULL || !vg_out_growable(&o, 4096, 4u << 20)) {
        free(symbols);
        return;
    }
    vg_symbols_init(symbols);
    vg_out_str(&o, "{\"stacks\":[");
    int k = 0;
    for (int i = 0; i < STACK_WORDS; i++)
        for (uint64_t bits = fresh[i]; bits; bits &= bits - 1) {
            uint32_t id = (uint32_t)(i * 64 + __builtin_ctzll(bits));
            vg_out_printf(&o, "%s{\"id\":%u", k++ ? "," : "", id);
            vg_who_json(&o, symbols, id, NULL, false);
            vg_out_str(&o, "}");
        }
    vg_out_str(&o, "]}");
    vg_symbols_done(symbols);
    free(symbols);
    pthread_mutex_lock(&trace_lock);
    if (o.error == 0 && write_json(FRAME_STACKS, o.buf, o.len, false))
        for (int i = 0; i < STACK_WORDS; i++)
            stacks_written[i] |= fresh[i];
    pthread_mutex_unlock(&trace_lock);
    free(o.buf);
}

/* Frames of metadata that changed since they were last written: modules
 * (dl_iterate_phdr's load and unload counts moved), labels, devices. Built
 * outside trace_lock (the loader's lock is not taken under ours), one
 * caller at a time (the writer, exit, the start). */
static pthread_mutex_t meta_lock = PTHREAD_MUTEX_INITIALIZER;
static void write_metadata(void)
{
    pthread_mutex_lock(&meta_lock);
    struct module_walk counts = {0};
    dl_iterate_phdr(module_one, &counts);
    struct vg_out o;
    if (counts.adds != modules_adds || counts.subs != modules_subs) {
        if (vg_out_growable(&o, 16384, 8u << 20)) {
            struct module_walk w = {&o, 0, 0, 0};
            vg_out_str(&o, "{\"modules\":[");
            dl_iterate_phdr(module_one, &w);
            vg_out_str(&o, "]}");
            pthread_mutex_lock(&trace_lock);
            if (o.error == 0 && write_json(FRAME_MODULES, o.buf, o.len, false)) {
                modules_adds = w.adds;
                modules_subs = w.subs;
            }
            pthread_mutex_unlock(&trace_lock);
            free(o.buf);
        }
    }
    int count = vg_label_count();
    const char *last = vg_label_text(VG_LABEL_POOL - 1);
    bool last_new = !last_label_written && last && last[0];
    if ((count > labels_written || last_new) && vg_out_growable(&o, 4096, 1u << 20)) {
        vg_out_printf(&o, "{\"labels\":{");
        int k = 0;
        for (int i = labels_written; i < count; i++) {
            vg_out_printf(&o, "%s\"%d\":", k++ ? "," : "", i);
            vg_out_json_string(&o, vg_label_text((uint16_t)i));
        }
        if (last_new) {
            vg_out_printf(&o, "%s\"%d\":", k++ ? "," : "", VG_LABEL_POOL - 1);
            vg_out_json_string(&o, last);
        }
        vg_out_str(&o, "}}");
        pthread_mutex_lock(&trace_lock);
        if (o.error == 0 && write_json(FRAME_LABELS, o.buf, o.len, false)) {
            labels_written = count;
            last_label_written = last_label_written || last_new;
        }
        pthread_mutex_unlock(&trace_lock);
        free(o.buf);
    }
    uint32_t known = 0;
    struct vg_device_info info;
    for (int d = 0; d < vg_table_device_count() && d < VG_MAX_DEVICES; d++)
        if (vg_device_info(d, &info) && info.known)
            known |= 1u << d;
    if ((known & ~devices_written) && vg_out_growable(&o, 1024, 64u << 10)) {
        vg_out_str(&o, "{\"devices\":[");
        int k = 0;
        for (int d = 0; d < VG_MAX_DEVICES; d++) {
            if (!(known & (1u << d)) || !vg_device_info(d, &info))
                continue;
            vg_out_printf(&o, "%s{\"device\":%d,\"name\":", k++ ? "," : "", d);
            vg_out_json_string(&o, info.name);
            vg_out_printf(&o, ",\"total_bytes\":%llu,\"uuid\":", (unsigned long long)info.total_bytes);
            vg_out_json_string(&o, info.uuid);
            vg_out_str(&o, "}");
        }
        vg_out_str(&o, "]}");
        pthread_mutex_lock(&trace_lock);
        if (o.error == 0 && write_json(FRAME_DEVICES, o.buf, o.len, false))
            devices_written |= known;
        pthread_mutex_unlock(&trace_lock);
        free(o.buf);
    }
    write_stacks();
    pthread_mutex_unlock(&meta_lock);
}

/* Device pools' and graph pools' reserve, asked of the driver (no lock
 * held), written where it changed (or kept for the interval). */
static void sample_pools(struct vg_pool_totals *t)
{
    vg_pool_totals(t, vg_table_device_count());
    if (!t->known)
        return;
    enum { MAX = VG_MAX_DEVICES };
    struct record out[MAX];
    int n = 0;
    pthread_mutex_lock(&trace_lock);
    uint64_t at = now();
    for (int d = 0; d < vg_table_device_count() && d < MAX; d++) {
        if (pool_any_written[d] && pool_written[d][0] == t->reserved[d] && pool_written[d][1] == t->graph_reserved[d])
            continue;
        if (!pool_any_written[d] && t->reserved[d] == 0 && t->graph_reserved[d] == 0)
            continue;
        pool_any_written[d] = true;
        pool_written[d][0] = t->reserved[d];
        pool_written[d][1] = t->graph_reserved[d];
        add_record(out, &n, MAX, at, VG_TRACE_POOL, pack_cell(t->reserved[d], d, VG_KIND_POOL, 0, 0),
                   t->graph_reserved[d], 0);
    }
    if (n > 0 && phase == PHASE_FULL) {
        struct iovec iov = {out, (size_t)n * sizeof(struct record)};
        if (write_frame(FRAME_EVENTS, 0, (uint32_t)n, &iov, 1, &bytes_events))
            events_written += (uint64_t)n;
    }
    pthread_mutex_unlock(&trace_lock);
}

/* ---- flushing ------------------------------------------------------------------- */

static void drain_all(void)
{
    pthread_mutex_lock(&rings_lock);
    pthread_mutex_lock(&trace_lock);
    for (struct ring *b = rings; b; b = b->next)
        drain_locked(b);
    pthread_mutex_unlock(&trace_lock);
    pthread_mutex_unlock(&rings_lock);
}

/* What the writer does every FLUSH_MS, and exit at the end. */
static void flush_all(bool final)
{
    drain_all();
    write_metadata();
    struct vg_pool_totals pool_totals = {.known = false};
    bool pools = atomic_load_explicit(&pools_seen, memory_order_relaxed);
    if (pools || final)
        sample_pools(&pool_totals);
    pthread_mutex_lock(&trace_lock);
    if (phase == PHASE_COALESCED && (final || now() - interval_start >= interval_ns))
        emit_interval(pools || final ? &pool_totals : NULL);
    pthread_mutex_unlock(&trace_lock);
}

static void *writer(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&writer_lock);
    while (writer_running) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += FLUSH_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&writer_wake, &writer_lock, &until);
        if (!writer_running)
            break;
        pthread_mutex_unlock(&writer_lock);
        if (vg_trace_enabled())
            flush_all(false);
        pthread_mutex_lock(&writer_lock);
    }
    pthread_mutex_unlock(&writer_lock);
    return NULL;
}

static void start_writer(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&writer_wake, &ca);
    pthread_condattr_destroy(&ca);
    /* The writer blocks every signal: the program's handlers never run on it. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t t;
    writer_running = true;
    atomic_store_explicit(&writer_started, true, memory_order_release);
    if (pthread_create(&t, &attr, writer, NULL) != 0) {
        writer_running = false;
        vg_log("cannot start the trace's writer thread; the trace is written when a thread's buffer fills, "
               "when a thread ends and at exit");
    }
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* ---- start and end ------------------------------------------------------------ */

static void write_start(void)
{
    char text[VG_PATH_MAX + 2048], exe[VG_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = '\0';
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    const struct vg_config *cfg = vg_config();
    struct vg_out o;
    vg_out_buffer(&o, text, sizeof(text));
    vg_out_printf(&o, "{\"pid\":%d,\"ppid\":%d,\"exe\":", (int)getpid(), (int)getppid());
    vg_out_json_string(&o, exe);
    vg_out_printf(&o,
                  ",\"start_unix_ns\":%llu,\"version\":\"%s\",\"format\":%d,\"record_bytes\":32,"
                  "\"max_bytes\":%llu,\"flush_ms\":%d,\"policy\":\"%s\",\"budgets\":[",
                  (unsigned long long)wall.tv_sec * 1000000000ull + (unsigned long long)wall.tv_nsec, VG_VERSION,
                  TRACE_VERSION, (unsigned long long)max_bytes, FLUSH_MS, vg_policy_name(cfg->policy));
    int k = 0;
    for (int d = 0; d < VG_MAX_DEVICES; d++)
        for (int s = 0; s < VG_BUDGET_SCOPES; s++)
            if (cfg->budgets.limit[d][s] != VG_BUDGET_NONE)
                vg_out_printf(&o, "%s{\"device\":%d,\"scope\":\"%s\",\"bytes\":%llu}", k++ ? "," : "", d,
                              vg_budget_scope_name(s), (unsigned long long)cfg->budgets.limit[d][s]);
    vg_out_str(&o, "]}");
    if (o.total < sizeof(text))
        write_json(FRAME_START, text, o.total, true);
}

void vg_trace_start(void)
{
    const struct vg_config *cfg = vg_config();
    if (cfg->trace_path[0] == '\0')
        return;
    pthread_mutex_lock(&trace_lock);
    if (started) {
        pthread_mutex_unlock(&trace_lock);
        return;
    }
    started = true;
    if (!vg_expand_path(cfg->trace_path, (int)getpid(), trace_path, sizeof(trace_path))) {
        pthread_mutex_unlock(&trace_lock);
        vg_log("VRAMGUARD_TRACE path is too long after expansion; no trace");
        return;
    }
    trace_fd = vg_file_open_append(trace_path);
    if (trace_fd < 0) {
        int error = errno;
        pthread_mutex_unlock(&trace_lock);
        vg_log("cannot open the trace %s (%s); no trace", trace_path,
               error == ELOOP ? "a symbolic link is not followed" : strerror(error));
        return;
    }
    start_ns = mono_ns();
    max_bytes = cfg->trace_max;
    write_start();
    pthread_mutex_unlock(&trace_lock);
    write_metadata();
    start_writer();
    atomic_store_explicit(&vg_trace_on, true, memory_order_release);
}

__attribute__((destructor)) static void trace_at_exit(void)
{
    if (!vg_trace_enabled())
        return;
    flush_all(true);
    char text[512];
    pthread_mutex_lock(&trace_lock);
    if (!ended) {
        ended = true;
        int n = snprintf(text, sizeof(text),
                         "{\"events\":%llu,\"markers_kept\":%llu,\"folded\":%llu,\"lost\":%llu,"
                         "\"markers_folded\":%llu,\"rings_full\":%llu,\"phase\":\"%s\",\"bytes\":%llu,"
                         "\"max_bytes\":%llu}",
                         (unsigned long long)events_written, (unsigned long long)markers_kept,
                         (unsigned long long)events_folded, (unsigned long long)events_lost,
                         (unsigned long long)markers_folded, (unsigned long long)rings_full,
                         phase == PHASE_FULL ? "full" : phase == PHASE_COALESCED ? "coalesced" : "capped",
                         (unsigned long long)(bytes_events + bytes_meta + bytes_coalesced),
                         (unsigned long long)max_bytes);
        write_json(FRAME_END, text, (size_t)n, true);
    }
    pthread_mutex_unlock(&trace_lock);
}

/* ---- fork ----------------------------------------------------------------------- */

void vg_trace_fork_prepare(void)
{
    if (vg_trace_enabled())
        drain_all(); /* the parent's events are in its file before the child exists */
    pthread_mutex_lock(&writer_lock);
    pthread_mutex_lock(&meta_lock);
    pthread_mutex_lock(&rings_lock);
    pthread_mutex_lock(&trace_lock);
}

void vg_trace_fork_parent(void)
{
    pthread_mutex_unlock(&trace_lock);
    pthread_mutex_unlock(&rings_lock);
    pthread_mutex_unlock(&meta_lock);
    pthread_mutex_unlock(&writer_lock);
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
    if (trace_fd >= 0)
        close(trace_fd);
    trace_fd = -1;
    started = ended = failed = false;
    bytes_events = bytes_meta = bytes_coalesced = 0;
    events_written = events_folded = events_lost = rings_full = markers_kept = markers_folded = 0;
    phase = PHASE_FULL;
    atomic_store(&pools_seen, false);
    modules_adds = modules_subs = ~0ULL;
    labels_written = 1;
    last_label_written = false;
    devices_written = 0;
    memset(pool_written, 0, sizeof(pool_written));
    memset(pool_any_written, 0, sizeof(pool_any_written));
    memset(level_written, 0, sizeof(level_written));
    memset(level_any, 0, sizeof(level_any));
    folded_allocs = folded_frees = folded_markers = 0;
    n_markers = n_marker_events = 0;
    kept_last = false;
    memset(stacks_seen, 0, sizeof(stacks_seen));
    memset(stacks_written, 0, sizeof(stacks_written));
    writer_running = false;
    atomic_store(&writer_started, false);
    pthread_mutex_unlock(&trace_lock);
    pthread_mutex_unlock(&rings_lock);
    pthread_mutex_unlock(&meta_lock);
    pthread_mutex_unlock(&writer_lock);
}
