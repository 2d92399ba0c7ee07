/* Stress with exact totals: 16 threads, 1 000 000 allocation and free calls
 * in all (62 500 each), random sizes from 1 B to 1 MiB (log-uniform, a fixed
 * seed per thread), mixed paths:
 *   - cudaMalloc / cudaFree (static cudart: seen at the driver),
 *   - cuMemAlloc_v2 / cuMemFree_v2 through pointers from cuGetProcAddress and
 *     from cudaGetDriverEntryPointByVersion,
 *   - cudaMallocAsync / cudaFreeAsync (and cuMemFreeAsync, and the
 *     synchronous cuMemFree_v2) on a stream of each thread's own,
 * frees in random order, and about one allocation in eight handed to
 * another thread (a lock-free slot array) which frees it. Purposes: threads
 * 0-3 push nothing, 4-7 push one purpose for their whole run, 8-15 wrap each
 * allocation in a VRAMGUARD_PURPOSE scope of a random purpose. The odds of
 * allocating change per quarter (3/4, 1/2, 1/4, 1/2): the table grows to a
 * few thousand live entries, shrinks and churns.
 *
 * Before the threads, a single-threaded prelude pins what a peak is (the
 * most a cell held at once, not a sum over parts of the table). At each
 * checkpoint every worker is parked on a barrier; the main thread then
 * compares vramguard_usage() (live bytes and live counts per kind and
 * purpose on device 0, per-purpose and VRAM totals, peaks) and, when
 * VRAMGUARD_LISTEN is unix:PATH, the allocation and free counters of GET
 * /metrics, with the program's own sums: equal, not close. The last
 * checkpoint follows the full drain (nothing live). While the workers run,
 * an observer thread takes snapshots (vramguard_usage, GET /metrics) and
 * checks they are sane. The final counters are printed as
 * "EXPECT kind purpose allocations=N frees=N" lines for the Check test to
 * compare with the JSON report written at exit.
 *
 * About 0.2 s on a 2-core machine; PROG_STRESS_OPS=N runs N calls instead.
 * Needs FAKECUDA_VRAM_BYTES large enough for ~4000 live allocations of up
 * to 1 MiB plus the pools' reserve (the Check test gives 2^40). */
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "preload_common.h"

enum {
    THREADS = 16,
    TOTAL_OPS = 1000000,
    PHASES = 4,                /* a checkpoint after each quarter, one after the drain */
    MAX_OWN = 256,             /* live allocations a thread holds at most */
    SLOTS = 128,               /* handoff slots */
};

/* How an allocation was made: decides how it may be freed and its kind. */
enum how { HOW_RUNTIME, HOW_DRIVER, HOW_ASYNC, HOW_COUNT };
enum { K_DEVICE, K_POOL, K_COUNT }; /* index of our sums; kinds below */
static const int kind_of_slot[K_COUNT] = {VRAMGUARD_KIND_DEVICE, VRAMGUARD_KIND_POOL};
static const char *const kind_name[K_COUNT] = {"device", "pool"};
static const char *const purpose_name[4] = {"unknown", "weights", "kv_cache", "intermediate"};

struct rec {
    uintptr_t ptr;
    uint32_t size;
    uint8_t how;
    uint8_t purpose;
};

/* Sums kept by each thread for what it allocated and what it freed (an
 * allocation freed by another thread is in the freer's `freed`). */
struct sums {
    uint64_t alloc_n[K_COUNT][4], alloc_b[K_COUNT][4];
    uint64_t free_n[K_COUNT][4], free_b[K_COUNT][4];
};

struct worker {
    int id;
    uint64_t rng;
    cudaStream_t stream;
    struct rec own[MAX_OWN];
    int n_own;
    struct sums s;
    uint64_t ops, handed, taken, errors;
    char first_error[160];
} __attribute__((aligned(64)));

/* PROG_STRESS_OPS=N runs N calls instead (a longer soak by hand). */
static long total_ops = TOTAL_OPS;

static struct worker workers[THREADS];
static struct worker drainer = {.id = -1, .rng = 42}; /* the main thread, freeing what is left in the slots */
static pthread_barrier_t barrier;

/* Handoff: EMPTY -> BUSY (producer writes) -> FULL -> BUSY (consumer reads) -> EMPTY. */
enum { EMPTY, BUSY, FULL };
static struct {
    _Atomic int state;
    struct rec r;
} slots[SLOTS];

typedef CUresult (*mem_alloc_fn)(CUdeviceptr *, size_t);
typedef CUresult (*mem_free_fn)(CUdeviceptr);
typedef CUresult (*free_async_fn)(CUdeviceptr, CUstream);
static mem_alloc_fn alloc_gpa, alloc_rt; /* via cuGetProcAddress / cudaGetDriverEntryPointByVersion */
static mem_free_fn free_gpa, free_rt;
static free_async_fn free_async_gpa;

static uint64_t next(uint64_t *x)
{
    /* xorshift64* */
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545F4914F6CDD1Dull;
}

static void error(struct worker *w, const char *what, int code)
{
    if (w->errors++ == 0)
        snprintf(w->first_error, sizeof(w->first_error), "thread %d: %s returned %d", w->id, what, code);
}

static int slot_of(uint8_t how) { return how == HOW_ASYNC ? K_POOL : K_DEVICE; }

static int do_alloc(struct worker *w, struct rec *r)
{
    uint64_t x = next(&w->rng);
    int bits = (int)(x % 21);                        /* 2^0 .. 2^20 */
    r->size = (uint32_t)(1 + (next(&w->rng) % (1ull << bits))); /* 1 B .. 1 MiB */
    r->how = (uint8_t)(next(&w->rng) % HOW_COUNT);
    int res = 0;
    void *p = NULL;
    CUdeviceptr d = 0;
    switch (r->how) {
    case HOW_RUNTIME:
        res = cudaMalloc(&p, r->size);
        r->ptr = (uintptr_t)p;
        break;
    case HOW_DRIVER:
        res = (next(&w->rng) & 1 ? alloc_gpa : alloc_rt)(&d, r->size);
        r->ptr = (uintptr_t)d;
        break;
    default:
        res = cudaMallocAsync(&p, r->size, w->stream);
        r->ptr = (uintptr_t)p;
        break;
    }
    w->ops++;
    if (res != 0 || r->ptr == 0) {
        error(w, r->how == HOW_RUNTIME ? "cudaMalloc" : r->how == HOW_DRIVER ? "cuMemAlloc_v2" : "cudaMallocAsync",
              res);
        return -1;
    }
    int k = slot_of(r->how);
    w->s.alloc_n[k][r->purpose]++;
    w->s.alloc_b[k][r->purpose] += r->size;
    return 0;
}

/* Allocate with this thread's purpose rule: 0-3 none, 4-7 pushed once by
 * the caller, 8-15 a VRAMGUARD_PURPOSE scope per allocation. */
static int alloc_tagged(struct worker *w, struct rec *r)
{
    if (w->id < 4) {
        r->purpose = VRAMGUARD_UNKNOWN;
        return do_alloc(w, r);
    }
    if (w->id < 8) {
        r->purpose = (uint8_t)(w->id % 4);
        return do_alloc(w, r);
    }
    int p = (int)(next(&w->rng) % 4);
    r->purpose = (uint8_t)p;
    int res = -1;
    VRAMGUARD_PURPOSE(p) { res = do_alloc(w, r); }
    return res;
}

static void do_free(struct worker *w, const struct rec *r)
{
    int res;
    const char *what;
    uint64_t x = next(&w->rng);
    if (r->how == HOW_ASYNC) {
        if (x % 16 == 0) {
            what = "cuMemFree_v2 (pool memory)";
            res = (x & 16 ? free_gpa : free_rt)((CUdeviceptr)r->ptr);
        } else if (x & 1) {
            what = "cudaFreeAsync";
            res = cudaFreeAsync((void *)r->ptr, w->stream);
        } else {
            what = "cuMemFreeAsync";
            res = free_async_gpa((CUdeviceptr)r->ptr, (CUstream)w->stream);
        }
    } else if (x % 3 == 0) {
        what = "cudaFree";
        res = cudaFree((void *)r->ptr);
    } else {
        what = "cuMemFree_v2";
        res = (x & 1 ? free_gpa : free_rt)((CUdeviceptr)r->ptr);
    }
    w->ops++;
    if (res != 0) {
        error(w, what, res);
        return;
    }
    int k = slot_of(r->how);
    w->s.free_n[k][r->purpose]++;
    w->s.free_b[k][r->purpose] += r->size;
}

static int hand_off(const struct rec *r, uint64_t start)
{
    for (int i = 0; i < 8; i++) {
        int j = (int)((start + (uint64_t)i) % SLOTS);
        int e = EMPTY;
        if (atomic_compare_exchange_strong(&slots[j].state, &e, BUSY)) {
            slots[j].r = *r;
            atomic_store_explicit(&slots[j].state, FULL, memory_order_release);
            return 1;
        }
    }
    return 0;
}

static int take(struct rec *r, uint64_t start)
{
    for (int i = 0; i < 8; i++) {
        int j = (int)((start + (uint64_t)i) % SLOTS);
        int f = FULL;
        if (atomic_compare_exchange_strong_explicit(&slots[j].state, &f, BUSY, memory_order_acquire,
                                                    memory_order_relaxed)) {
            *r = slots[j].r;
            atomic_store_explicit(&slots[j].state, EMPTY, memory_order_release);
            return 1;
        }
    }
    return 0;
}

/* Allocation odds per phase, in 1/4: the table grows to several thousand
 * live entries, shrinks, and churns. */
static const int alloc_quarters[PHASES] = {3, 2, 1, 2};

static void step(struct worker *w, int phase)
{
    uint64_t x = next(&w->rng);
    int want_alloc = w->n_own == 0 || (w->n_own < MAX_OWN && (int)((x >> 8) % 4) < alloc_quarters[phase]);
    if (want_alloc) {
        struct rec r;
        if (alloc_tagged(w, &r) != 0)
            return;
        if (x % 8 == 1 && hand_off(&r, next(&w->rng))) {
            w->handed++;
            return;
        }
        w->own[w->n_own++] = r;
        return;
    }
    struct rec r;
    if (x % 4 == 2 && take(&r, next(&w->rng))) {
        w->taken++;
        do_free(w, &r);
        return;
    }
    int i = (int)(next(&w->rng) % (uint64_t)w->n_own);
    r = w->own[i];
    w->own[i] = w->own[--w->n_own];
    do_free(w, &r);
}

static void *work(void *arg)
{
    struct worker *w = arg;
    if (cudaStreamCreate(&w->stream) != cudaSuccess)
        error(w, "cudaStreamCreate", -1);
    if (w->id >= 4 && w->id < 8)
        vramguard_purpose_push(w->id % 4, "stress");
    for (int phase = 0; phase < PHASES; phase++) {
        long ops = total_ops / THREADS;
        long n = ops / PHASES + (phase == PHASES - 1 ? ops % PHASES : 0);
        for (long i = 0; i < n; i++)
            step(w, phase);
        pthread_barrier_wait(&barrier); /* checkpoint: main checks */
        pthread_barrier_wait(&barrier);
    }
    /* Drain what this thread holds (extra calls, beyond the 62 500). */
    while (w->n_own > 0) {
        struct rec r = w->own[--w->n_own];
        do_free(w, &r);
    }
    if (w->id >= 4 && w->id < 8)
        vramguard_purpose_pop();
    cudaStreamSynchronize(w->stream);
    pthread_barrier_wait(&barrier); /* drained */
    pthread_barrier_wait(&barrier); /* main drained the handoff slots and checked */
    cudaStreamDestroy(w->stream);
    return NULL;
}

/* ---- a reader while the workers run -------------------------------------------- */

/* Snapshots taken while allocations and frees are in flight cannot be
 * compared with sums, but they must be sane: no cell below zero (a wrapped
 * counter), no peak below the live bytes, no more live allocations than the
 * workers can hold. Whether a cell's bytes and count come from the same
 * moment (no more than 1 MiB per live allocation; the single-lock table
 * gave that, the sharded one keeps them together per shard) is counted as
 * "torn", and fails. */
static atomic_int observer_stop;
static unsigned long long observer_snapshots, observer_metrics, observer_torn;
static int observer_bad;
static char observer_first[200], observer_first_torn[200];
static const char *listen_path;
static char *metrics_get(const char *path);

static void *observe(void *arg)
{
    (void)arg;
    static struct vramguard_usage u;
    while (!atomic_load(&observer_stop)) {
        u.size = sizeof(u);
        if (vramguard_usage(&u) != 0) {
            if (observer_bad++ == 0)
                snprintf(observer_first, sizeof(observer_first), "vramguard_usage failed");
            break;
        }
        observer_snapshots++;
        unsigned long long count = 0;
        int torn = 0;
        for (int d = 0; d < VRAMGUARD_MAX_DEVICES; d++)
            for (int k = 0; k < VRAMGUARD_KIND_SLOTS; k++)
                for (int p = 0; p < VRAMGUARD_PURPOSE_SLOTS; p++) {
                    const struct vramguard_cell *c = &u.cell[d][k][p];
                    count += c->live_count;
                    if ((c->live_bytes >> 50 || c->live_count >> 32 || c->peak_bytes < c->live_bytes) &&
                        observer_bad++ == 0)
                        snprintf(observer_first, sizeof(observer_first),
                                 "device %d kind %d purpose %d: live %llu bytes in %llu allocations, peak %llu", d, k,
                                 p, (unsigned long long)c->live_bytes, (unsigned long long)c->live_count,
                                 (unsigned long long)c->peak_bytes);
                    if (c->live_bytes > c->live_count * MiB && torn++ == 0 && observer_torn == 0)
                        snprintf(observer_first_torn, sizeof(observer_first_torn),
                                 "device %d kind %d purpose %d: live %llu bytes in %llu allocations", d, k, p,
                                 (unsigned long long)c->live_bytes, (unsigned long long)c->live_count);
                }
        observer_torn += torn > 0;
        if (count > (unsigned long long)(THREADS * MAX_OWN + SLOTS) && observer_bad++ == 0)
            snprintf(observer_first, sizeof(observer_first), "%llu live allocations", count);
        if (listen_path && observer_snapshots % 8 == 0) {
            free(metrics_get(listen_path));
            observer_metrics++;
        }
        struct timespec ts = {0, 50 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* ---- GET /metrics over the endpoint's unix socket ---------------------------- */

static char *metrics_get(const char *path)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
            if (write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1)) {
                size_t cap = 65536, len = 0;
                char *buf = malloc(cap);
                ssize_t n;
                while (buf && (n = read(fd, buf + len, cap - len - 1)) > 0) {
                    len += (size_t)n;
                    if (cap - len < 1024) {
                        char *bigger = realloc(buf, cap *= 2);
                        if (!bigger) {
                            free(buf);
                            buf = NULL;
                        }
                        buf = bigger;
                    }
                }
                close(fd);
                if (buf) {
                    buf[len] = '\0';
                    if (strstr(buf, " 200 "))
                        return buf;
                    free(buf);
                }
                return NULL;
            }
        }
        if (fd >= 0)
            close(fd);
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL); /* the endpoint may still be starting */
    }
    return NULL;
}

/* The value of `family{device="0",...,kind=K,purpose=P}`; 0 when absent (a
 * cell never touched is not exported). */
static unsigned long long metric(const char *body, const char *family, const char *kind, const char *purpose)
{
    char k[64], p[64], f[96];
    snprintf(k, sizeof(k), "kind=\"%s\"", kind);
    snprintf(p, sizeof(p), "purpose=\"%s\"", purpose);
    snprintf(f, sizeof(f), "\n%s{", family);
    for (const char *at = strstr(body, f); at; at = strstr(at + 1, f)) {
        const char *close = strchr(at, '}');
        const char *eol = strchr(at + 1, '\n');
        if (!close || (eol && eol < close))
            continue;
        size_t n = (size_t)(close - at);
        char line[512];
        if (n >= sizeof(line))
            continue;
        memcpy(line, at, n);
        line[n] = '\0';
        if (strstr(line, "device=\"0\"") && strstr(line, k) && strstr(line, p))
            return strtoull(close + 1, NULL, 10);
    }
    return 0;
}

/* ---- checkpoints --------------------------------------------------------------- */

static void checkpoint(const char *name)
{
    struct sums t;
    memset(&t, 0, sizeof(t));
    for (int i = 0; i <= THREADS; i++) {
        const struct sums *s = i < THREADS ? &workers[i].s : &drainer.s;
        for (int k = 0; k < K_COUNT; k++)
            for (int p = 0; p < 4; p++) {
                t.alloc_n[k][p] += s->alloc_n[k][p];
                t.alloc_b[k][p] += s->alloc_b[k][p];
                t.free_n[k][p] += s->free_n[k][p];
                t.free_b[k][p] += s->free_b[k][p];
            }
    }
    const struct vramguard_usage *u = usage();
    char label[160];
    int bad_bytes = 0, bad_counts = 0, bad_purpose = 0, bad_other = 0;
    unsigned long long total = 0, purpose_total[4] = {0};
    for (int k = 0; k < K_COUNT; k++)
        for (int p = 0; p < 4; p++) {
            unsigned long long want_b = t.alloc_b[k][p] - t.free_b[k][p];
            unsigned long long want_n = t.alloc_n[k][p] - t.free_n[k][p];
            const struct vramguard_cell *c = &u->cell[0][kind_of_slot[k]][p];
            total += want_b;
            purpose_total[p] += want_b;
            if (c->live_bytes != want_b && bad_bytes++ < 8)
                printf("  %s: %s/%s live bytes %llu, the program's sum %llu\n", name, kind_name[k], purpose_name[p],
                       (unsigned long long)c->live_bytes, want_b);
            if (c->live_count != want_n && bad_counts++ < 8)
                printf("  %s: %s/%s live count %llu, the program's sum %llu\n", name, kind_name[k], purpose_name[p],
                       (unsigned long long)c->live_count, want_n);
        }
    for (int p = 0; p < 4; p++)
        if (u->purpose_bytes[p] != purpose_total[p] && bad_purpose++ < 8)
            printf("  %s: purpose %s %llu bytes, the program's sum %llu\n", name, purpose_name[p],
                   (unsigned long long)u->purpose_bytes[p], purpose_total[p]);
    /* Nothing anywhere else: no other device, kind or purpose slot. */
    for (int d = 0; d < VRAMGUARD_MAX_DEVICES; d++)
        for (int k = 0; k < VRAMGUARD_KIND_SLOTS; k++)
            for (int p = 0; p < VRAMGUARD_PURPOSE_SLOTS; p++) {
                int ours = d == 0 && (k == VRAMGUARD_KIND_DEVICE || k == VRAMGUARD_KIND_POOL) && p < 4;
                if (!ours && (u->cell[d][k][p].live_bytes || u->cell[d][k][p].live_count) && bad_other++ < 8)
                    printf("  %s: unexpected live memory at device %d kind %d purpose %d: %llu bytes\n", name, d, k, p,
                           (unsigned long long)u->cell[d][k][p].live_bytes);
            }
    snprintf(label, sizeof(label), "%s: live bytes per kind and purpose exact", name);
    CHECK(label, bad_bytes == 0, "%d cells differ", bad_bytes);
    snprintf(label, sizeof(label), "%s: live counts per kind and purpose exact", name);
    CHECK(label, bad_counts == 0, "%d cells differ", bad_counts);
    snprintf(label, sizeof(label), "%s: per-purpose and VRAM totals exact", name);
    CHECK(label, bad_purpose == 0 && u->vram_bytes == total, "%d purposes differ; vram %llu, the program's sum %llu",
          bad_purpose, (unsigned long long)u->vram_bytes, total);
    /* Peaks: at least the live bytes, never lower than at the last
     * checkpoint, at most everything ever allocated in the cell. */
    static unsigned long long last_peak[K_COUNT][4];
    int bad_peak = 0;
    for (int k = 0; k < K_COUNT; k++)
        for (int p = 0; p < 4; p++) {
            const struct vramguard_cell *c = &u->cell[0][kind_of_slot[k]][p];
            if ((c->peak_bytes < c->live_bytes || c->peak_bytes < last_peak[k][p] || c->peak_bytes > t.alloc_b[k][p]) &&
                bad_peak++ < 8)
                printf("  %s: %s/%s peak %llu (live %llu, last checkpoint's peak %llu, allocated in all %llu)\n", name,
                       kind_name[k], purpose_name[p], (unsigned long long)c->peak_bytes,
                       (unsigned long long)c->live_bytes, last_peak[k][p], (unsigned long long)t.alloc_b[k][p]);
            last_peak[k][p] = c->peak_bytes;
        }
    snprintf(label, sizeof(label), "%s: peaks consistent", name);
    CHECK(label, bad_peak == 0, "%d cells", bad_peak);
    snprintf(label, sizeof(label), "%s: nothing on another device, kind or purpose", name);
    CHECK(label, bad_other == 0, "%d cells", bad_other);
    snprintf(label, sizeof(label), "%s: no violation, no OOM", name);
    CHECK(label, u->violations == 0 && u->oom_events == 0, "violations %llu oom %llu",
          (unsigned long long)u->violations, (unsigned long long)u->oom_events);

    if (!listen_path) {
        printf("SKIP %s: allocation/free counters (VRAMGUARD_LISTEN is not unix:PATH)\n", name);
        return;
    }
    char *body = metrics_get(listen_path);
    snprintf(label, sizeof(label), "%s: GET /metrics", name);
    CHECK(label, body != NULL, "no answer from %s", listen_path);
    if (!body)
        return;
    int bad_counters = 0;
    for (int k = 0; k < K_COUNT; k++)
        for (int p = 0; p < 4; p++) {
            unsigned long long a = metric(body, "vramguard_allocations_total", kind_name[k], purpose_name[p]);
            unsigned long long f = metric(body, "vramguard_frees_total", kind_name[k], purpose_name[p]);
            if ((a != t.alloc_n[k][p] || f != t.free_n[k][p]) && bad_counters++ < 8)
                printf("  %s: %s/%s allocations %llu frees %llu, the program's %llu and %llu\n", name, kind_name[k],
                       purpose_name[p], a, f, (unsigned long long)t.alloc_n[k][p],
                       (unsigned long long)t.free_n[k][p]);
        }
    snprintf(label, sizeof(label), "%s: allocation and free counters exact", name);
    CHECK(label, bad_counters == 0, "%d cells differ", bad_counters);
    free(body);
}

/* Before the threads: a peak is the most a cell ever held at once, not a
 * sum over parts of the table. 64 allocate/free pairs of 1 MiB through each
 * path leave peaks of exactly 1 MiB; three live at once make it 3 MiB. */
static void peak_prelude(void)
{
    struct sums *s = &drainer.s;
    int errors = 0;
    for (int i = 0; i < 64; i++) {
        void *p = NULL;
        CUdeviceptr d = 0;
        errors += cudaMalloc(&p, MiB) != cudaSuccess || cudaFree(p) != cudaSuccess;
        errors += alloc_gpa(&d, MiB) != CUDA_SUCCESS || free_rt(d) != CUDA_SUCCESS;
        errors += alloc_rt(&d, MiB) != CUDA_SUCCESS || free_gpa(d) != CUDA_SUCCESS;
        errors += cudaMallocAsync(&p, MiB, 0) != cudaSuccess || cudaFreeAsync(p, 0) != cudaSuccess;
    }
    s->alloc_n[K_DEVICE][0] += 3 * 64;
    s->alloc_b[K_DEVICE][0] += 3 * 64 * MiB;
    s->alloc_n[K_POOL][0] += 64;
    s->alloc_b[K_POOL][0] += 64 * MiB;
    const struct vramguard_usage *u = usage();
    unsigned long long dp = u->cell[0][VRAMGUARD_KIND_DEVICE][0].peak_bytes;
    unsigned long long pp = u->cell[0][VRAMGUARD_KIND_POOL][0].peak_bytes;
    CHECK("peak after 192 sequential 1 MiB device pairs is 1 MiB", dp == MiB, "peak %llu", dp);
    CHECK("peak after 64 sequential 1 MiB pool pairs is 1 MiB", pp == MiB, "peak %llu", pp);
    void *three[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++)
        errors += cudaMalloc(&three[i], MiB) != cudaSuccess;
    for (int i = 0; i < 3; i++)
        errors += cudaFree(three[i]) != cudaSuccess;
    s->alloc_n[K_DEVICE][0] += 3;
    s->alloc_b[K_DEVICE][0] += 3 * MiB;
    memcpy(s->free_n, s->alloc_n, sizeof(s->free_n));
    memcpy(s->free_b, s->alloc_b, sizeof(s->free_b));
    dp = usage()->cell[0][VRAMGUARD_KIND_DEVICE][0].peak_bytes;
    CHECK("peak after three 1 MiB live at once is 3 MiB", dp == 3 * MiB, "peak %llu", dp);
    CHECK("peak prelude: no CUDA errors", errors == 0, "%d", errors);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
    start("prog_stress");
    const char *n_ops = getenv("PROG_STRESS_OPS");
    if (n_ops && atol(n_ops) >= THREADS)
        total_ops = atol(n_ops);
    const char *listen = getenv("VRAMGUARD_LISTEN");
    if (listen && strncmp(listen, "unix:", 5) == 0 && !strstr(listen, "%"))
        listen_path = listen + 5;
    CHECK("cudaFree(0)", cudaFree(0) == cudaSuccess, "failed");

    /* Driver entry points, two ways: cuGetProcAddress (itself found with
     * cudaGetDriverEntryPointByVersion) and cudaGetDriverEntryPointByVersion. */
    enum cudaDriverEntryPointQueryResult q;
    CUresult (*gpa)(const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *) = NULL;
    cudaGetDriverEntryPointByVersion("cuGetProcAddress", (void **)&gpa, 12000, cudaEnableDefault, &q);
    CHECK("cuGetProcAddress found", gpa != NULL, "NULL");
    if (!gpa)
        return finish("prog_stress");
    CUdriverProcAddressQueryResult st;
    gpa("cuMemAlloc", (void **)&alloc_gpa, 3020, 0, &st);
    gpa("cuMemFree", (void **)&free_gpa, 3020, 0, &st);
    gpa("cuMemFreeAsync", (void **)&free_async_gpa, 11020, 0, &st);
    cudaGetDriverEntryPointByVersion("cuMemAlloc", (void **)&alloc_rt, 3020, cudaEnableDefault, &q);
    cudaGetDriverEntryPointByVersion("cuMemFree", (void **)&free_rt, 3020, cudaEnableDefault, &q);
    CHECK("driver entry points found", alloc_gpa && free_gpa && free_async_gpa && alloc_rt && free_rt, "missing");
    if (!(alloc_gpa && free_gpa && free_async_gpa && alloc_rt && free_rt))
        return finish("prog_stress");

    const struct vramguard_usage *u0 = usage();
    CHECK("starts with nothing live", u0->vram_bytes == 0, "vram %llu", (unsigned long long)u0->vram_bytes);

    peak_prelude();

    pthread_t observer;
    pthread_create(&observer, NULL, observe, NULL);
    pthread_barrier_init(&barrier, NULL, THREADS + 1);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        workers[i].id = i;
        workers[i].rng = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1) ^ 0xD1B54A32D192ED03ull;
        pthread_create(&t[i], NULL, work, &workers[i]);
    }
    double t0 = now();
    for (int phase = 0; phase < PHASES; phase++) {
        pthread_barrier_wait(&barrier); /* every worker is idle */
        char name[64];
        snprintf(name, sizeof(name), "checkpoint %d/%d", phase + 1, PHASES + 1);
        checkpoint(name);
        pthread_barrier_wait(&barrier);
    }
    pthread_barrier_wait(&barrier); /* the workers drained their own */
    atomic_store(&observer_stop, 1);
    pthread_join(observer, NULL);
    /* Drain the handoff slots from this thread (device 0 is current here;
     * stream-ordered frees go to the legacy stream). */
    struct rec r;
    for (int j = 0; j < SLOTS; j++)
        while (take(&r, (uint64_t)j))
            do_free(&drainer, &r);
    cudaDeviceSynchronize();
    double elapsed = now() - t0;

    uint64_t ops = drainer.ops, handed = 0, taken = 0, errors = drainer.errors;
    for (int i = 0; i < THREADS; i++) {
        ops += workers[i].ops;
        handed += workers[i].handed;
        taken += workers[i].taken;
        errors += workers[i].errors;
    }
    checkpoint("checkpoint 5/5 (drained)");
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);

    printf("stress: %d threads, %llu calls (%ld in the timed loop), %llu handed to another thread (%llu taken "
           "before the drain), %.2f s\n",
           THREADS, (unsigned long long)ops, total_ops / THREADS * THREADS, (unsigned long long)handed,
           (unsigned long long)taken, elapsed);
    CHECK("at least 1 000 000 calls", ops >= TOTAL_OPS, "%llu", (unsigned long long)ops);
    printf("observer: %llu snapshots, %llu GET /metrics while the workers ran; %llu torn%s%s\n", observer_snapshots,
           observer_metrics, observer_torn, observer_torn ? ", first: " : "", observer_first_torn);
    CHECK("snapshots taken while the workers ran are sane", observer_bad == 0 && observer_snapshots > 0,
          "%d bad (first: %s), %llu snapshots", observer_bad, observer_first, observer_snapshots);
    /* The table keeps a cell's bytes and counts together per shard: a
     * snapshot never mixes moments (it did when bytes came from global
     * counters and counts from the shards). */
    CHECK("no snapshot had a cell's bytes and count from different moments", observer_torn == 0,
          "%llu torn, first: %s", observer_torn, observer_first_torn);
    CHECK("allocations crossed threads", handed > 1000 && taken > 1000, "handed %llu taken %llu",
          (unsigned long long)handed, (unsigned long long)taken);
    const char *why = drainer.errors ? drainer.first_error : "";
    for (int i = 0; i < THREADS && !*why; i++)
        why = workers[i].first_error;
    CHECK("no CUDA errors", errors == 0, "%llu errors, first: %s", (unsigned long long)errors, why);
    for (int k = 0; k < K_COUNT; k++)
        for (int p = 0; p < 4; p++) {
            uint64_t a = drainer.s.alloc_n[k][p], f = drainer.s.free_n[k][p];
            for (int i = 0; i < THREADS; i++) {
                a += workers[i].s.alloc_n[k][p];
                f += workers[i].s.free_n[k][p];
            }
            printf("EXPECT %s %s allocations=%llu frees=%llu\n", kind_name[k], purpose_name[p],
                   (unsigned long long)a, (unsigned long long)f);
        }
    return finish("prog_stress");
}
