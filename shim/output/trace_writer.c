/* VRAMGUARD_TRACE's file (trace.h; what the trace files share:
 * trace_internal.h): frames, the rings' records written as frames or folded
 * into coalesced intervals once the events' share of VRAMGUARD_TRACE_MAX is
 * used, pool samples, the writer thread that writes every FLUSH_MS, the
 * start and end frames. */
#include "trace.h"
#include "config.h"
#include "emit.h"
#include "files.h"
#include "log.h"
#include "pools.h"
#include "threads.h"
#include "trace_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

enum { FLUSH_MS = 100, MARKERS_KEPT = 16, END_ROOM = 1024 };
#define INTERVAL_NS UINT64_C(1000000000)

/* ---- state ----------------------------------------------------------------- */

/* Under vg_trace_lock: the file and what was written to it. */
pthread_mutex_t vg_trace_lock = PTHREAD_MUTEX_INITIALIZER;
static int trace_fd = -1;
static char trace_path[VG_PATH_MAX];
static bool started, ended, failed;
uint64_t vg_trace_start_ns;
static uint64_t max_bytes;
static uint64_t bytes_events, bytes_meta, bytes_coalesced;
/* Every event is written (events), kept in a coalesced frame (markers_kept),
 * folded (counted only) or lost; markers_folded are the refusals and OOMs
 * among the folded. */
static uint64_t events_written, events_folded, events_lost, rings_full, markers_kept, markers_folded;
enum { PHASE_FULL, PHASE_COALESCED, PHASE_CAPPED };
static int phase;
static uint64_t pool_written[VG_MAX_DEVICES][2];
static bool pool_any_written[VG_MAX_DEVICES];

/* Coalescing (under vg_trace_lock): the interval's folded events, the running
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
pthread_mutex_t vg_trace_writer_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t vg_trace_writer_wake;
static bool writer_running;
atomic_bool vg_trace_writer_started; /* vg_trace_writer_wake is initialised */

/* ---- writing frames (under vg_trace_lock) -------------------------------------- */

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
bool vg_trace_write_json(int type, const char *text, size_t len, bool always)
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
    vg_trace_write_json(FRAME_NOTE, text, (size_t)n, true);
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

/* ---- draining rings (under vg_trace_lock) ------------------------------------ */

void vg_trace_drain_locked(struct ring *b)
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

void vg_trace_drain_full(struct ring *b)
{
    pthread_mutex_lock(&vg_trace_lock);
    rings_full++;
    vg_trace_drain_locked(b);
    pthread_mutex_unlock(&vg_trace_lock);
}

void vg_trace_write_one(struct record *r)
{
    pthread_mutex_lock(&vg_trace_lock);
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
    pthread_mutex_unlock(&vg_trace_lock);
}

/* ---- pool samples ---------------------------------------------------------------- */

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
    pthread_mutex_lock(&vg_trace_lock);
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
    pthread_mutex_unlock(&vg_trace_lock);
}

/* ---- flushing ------------------------------------------------------------------- */

/* What the writer does every FLUSH_MS, and exit at the end. */
static void flush_all(bool final)
{
    vg_trace_drain_all();
    vg_trace_write_metadata();
    struct vg_pool_totals pool_totals = {.known = false};
    bool pools = atomic_load_explicit(&vg_trace_pools_seen, memory_order_relaxed);
    if (pools || final)
        sample_pools(&pool_totals);
    pthread_mutex_lock(&vg_trace_lock);
    if (phase == PHASE_COALESCED && (final || now() - interval_start >= interval_ns))
        emit_interval(pools || final ? &pool_totals : NULL);
    pthread_mutex_unlock(&vg_trace_lock);
}

static void *writer(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&vg_trace_writer_lock);
    while (writer_running) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += FLUSH_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&vg_trace_writer_wake, &vg_trace_writer_lock, &until);
        if (!writer_running)
            break;
        pthread_mutex_unlock(&vg_trace_writer_lock);
        if (vg_trace_enabled())
            flush_all(false);
        pthread_mutex_lock(&vg_trace_writer_lock);
    }
    pthread_mutex_unlock(&vg_trace_writer_lock);
    return NULL;
}

static void start_writer(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&vg_trace_writer_wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_t t;
    writer_running = true;
    atomic_store_explicit(&vg_trace_writer_started, true, memory_order_release);
    if (vg_thread_start(&t, 256 * 1024, writer, NULL) != 0) {
        writer_running = false;
        vg_log("cannot start the trace's writer thread; the trace is written when a thread's buffer fills, "
               "when a thread ends and at exit");
    }
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
        vg_trace_write_json(FRAME_START, text, o.total, true);
}

void vg_trace_start(void)
{
    const struct vg_config *cfg = vg_config();
    if (cfg->trace_path[0] == '\0')
        return;
    pthread_mutex_lock(&vg_trace_lock);
    if (started) {
        pthread_mutex_unlock(&vg_trace_lock);
        return;
    }
    started = true;
    if (!vg_expand_path(cfg->trace_path, (int)getpid(), trace_path, sizeof(trace_path))) {
        pthread_mutex_unlock(&vg_trace_lock);
        vg_log("VRAMGUARD_TRACE path is too long after expansion; no trace");
        return;
    }
    trace_fd = vg_file_open_append(trace_path);
    if (trace_fd < 0) {
        int error = errno;
        pthread_mutex_unlock(&vg_trace_lock);
        vg_log("cannot open the trace %s (%s); no trace", trace_path,
               error == ELOOP ? "a symbolic link is not followed" : strerror(error));
        return;
    }
    vg_trace_start_ns = mono_ns();
    max_bytes = cfg->trace_max;
    write_start();
    pthread_mutex_unlock(&vg_trace_lock);
    vg_trace_write_metadata();
    start_writer();
    atomic_store_explicit(&vg_trace_on, true, memory_order_release);
}

__attribute__((destructor)) static void trace_at_exit(void)
{
    if (!vg_trace_enabled())
        return;
    flush_all(true);
    char text[512];
    pthread_mutex_lock(&vg_trace_lock);
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
        vg_trace_write_json(FRAME_END, text, (size_t)n, true);
    }
    pthread_mutex_unlock(&vg_trace_lock);
}

/* ---- fork ----------------------------------------------------------------------- */

void vg_trace_writer_forget(void)
{
    if (trace_fd >= 0)
        close(trace_fd);
    trace_fd = -1;
    started = ended = failed = false;
    bytes_events = bytes_meta = bytes_coalesced = 0;
    events_written = events_folded = events_lost = rings_full = markers_kept = markers_folded = 0;
    phase = PHASE_FULL;
    memset(pool_written, 0, sizeof(pool_written));
    memset(pool_any_written, 0, sizeof(pool_any_written));
    memset(level_written, 0, sizeof(level_written));
    memset(level_any, 0, sizeof(level_any));
    folded_allocs = folded_frees = folded_markers = 0;
    n_markers = n_marker_events = 0;
    kept_last = false;
    writer_running = false;
    atomic_store(&vg_trace_writer_started, false);
}
