/* Device switching and stream capture stay exact: every allocation is
 * charged to the device the driver put it on, however the current device
 * changed just before, and stream-ordered allocations on a capturing stream
 * are graph nodes, not live memory, however the capture began and ended.
 * Pins what a shim that caches the current device per thread, remembers
 * what it learned about streams and device pools, and counts captures from
 * Begin to EndCapture must keep. Needs 3 devices (FAKECUDA_DEVICES=3).
 *
 * After each step the shim's live bytes and counts per device and kind must
 * equal the program's own sums, which are built from the driver's answer
 * for each new pointer (CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL); each pointer's
 * device is also compared with what the step expects, so a change in the
 * driver's (or the fake's) behaviour is told apart from a shim gone stale.
 *
 * Sections: A cudaSetDevice; B cuCtxSetCurrent and C push/pop nesting,
 * each through six ways in (exported symbol, cuGetProcAddress, its 4-argument
 * ABI, cudaGetDriverEntryPointByVersion, dlsym of libcuda, dlsym RTLD_DEFAULT);
 * D cuCtxCreate/Destroy (skipped: the fake has none) and
 * cuDevicePrimaryCtxRelease; E new threads allocating at once; F four
 * threads x 1000 switch/allocate iterations at once; G-I streams and pools
 * of other devices, current pools set and destroyed, handles reused for
 * another device; K what a long-lived thread learned, invalidated by the
 * main thread; J capture: refused begins/ends, every begin x allocation x
 * end variant, other threads, the per-thread stream, a destroyed capturing
 * stream.
 *
 * Not modeled by the fake driver, so not tested here: cuCtxCreate/Destroy,
 * cuDevicePrimaryCtxReset (and a release that destroys the context), events
 * (a second stream joining a capture through cuStreamWaitEvent), capture
 * invalidation (EndCapture failing with CAPTURE_INVALIDATED),
 * cuStreamBeginCaptureToGraph, capture of the per-thread stream (refused
 * with 900 by the fake), cudaDeviceSetMemPool (the fake cudart has none: the
 * driver's cuDeviceSetMemPool is used).
 *
 * Built twice: static cudart (prog_ctx_switch) and shared (…_shared). */
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>

#include "preload_common.h"

enum { NDEV = 3, K_DEV = 0, K_POOL = 1 };

static CUcontext prim[NDEV];
static int on_fake; /* the fake driver: device names "FakeCUDA Device N" */

/* ---- what the program expects to be live --------------------------------- */

struct live {
    CUdeviceptr p;
    size_t size;
    int dev, kind;
};
static pthread_mutex_t lives_lock = PTHREAD_MUTEX_INITIALIZER;
static struct live *lives;
static size_t n_lives, cap_lives;
static unsigned long long want_b[VRAMGUARD_MAX_DEVICES][2], want_n[VRAMGUARD_MAX_DEVICES][2];
static int step_errors; /* wrong device from the driver, failed calls: reported by the next step() */
static char step_first_error[256];

static void step_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void step_error(const char *fmt, ...)
{
    pthread_mutex_lock(&lives_lock);
    if (step_errors++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(step_first_error, sizeof(step_first_error), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&lives_lock);
}

static void keep(CUdeviceptr p, size_t size, int dev, int kind)
{
    pthread_mutex_lock(&lives_lock);
    if (n_lives == cap_lives) {
        cap_lives = cap_lives ? cap_lives * 2 : 1024;
        lives = realloc(lives, cap_lives * sizeof(*lives));
    }
    lives[n_lives++] = (struct live){p, size, dev, kind};
    want_b[dev][kind] += size;
    want_n[dev][kind]++;
    pthread_mutex_unlock(&lives_lock);
}

static int ordinal(CUdeviceptr p)
{
    int ord = -9;
    if (cuPointerGetAttribute(&ord, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, p) != CUDA_SUCCESS)
        return -9;
    return ord;
}

/* A new allocation: it must have succeeded, on `expect` (-1: any device). */
static void got(const char *what, CUresult r, CUdeviceptr p, size_t size, int kind, int expect)
{
    if (r != CUDA_SUCCESS || p == 0) {
        step_error("%s failed: %d (pointer %#llx)", what, (int)r, (unsigned long long)p);
        return;
    }
    int ord = ordinal(p);
    if (ord < 0 || ord >= NDEV) {
        step_error("%s: the driver does not know the new pointer's device (%d)", what, ord);
        return;
    }
    if (expect >= 0 && ord != expect)
        step_error("%s: the driver put it on device %d, the step expects %d", what, ord, expect);
    keep(p, size, ord, kind);
}

/* The call first, then its pointer: the order in which a function's
 * arguments are evaluated is unspecified. */
#define GOT(what, call, ptr, size, kind, expect)                                                   \
    do {                                                                                           \
        CUresult r_ = (CUresult)(call);                                                            \
        got(what, r_, (CUdeviceptr)(uintptr_t)(ptr), size, kind, expect);                          \
    } while (0)

/* An allocation that must fail (no current context): nothing recorded. */
static void refused(const char *what, CUresult r, CUresult want)
{
    if (r != want)
        step_error("%s answered %d, want %d", what, (int)r, (int)want);
}

static void release_where(int (*match)(const struct live *))
{
    pthread_mutex_lock(&lives_lock);
    size_t j = 0;
    for (size_t i = 0; i < n_lives; i++) {
        struct live *l = &lives[i];
        if (!match(l)) {
            lives[j++] = *l;
            continue;
        }
        CUresult r = l->kind == K_POOL ? cuMemFreeAsync(l->p, CU_STREAM_LEGACY) : cuMemFree(l->p);
        if (r != CUDA_SUCCESS && step_errors++ == 0)
            snprintf(step_first_error, sizeof(step_first_error), "free of %#llx: %d", (unsigned long long)l->p, r);
        want_b[l->dev][l->kind] -= l->size;
        want_n[l->dev][l->kind]--;
    }
    n_lives = j;
    pthread_mutex_unlock(&lives_lock);
}

static int any(const struct live *l) { return l != NULL; }

/* Differences between the shim's live bytes and counts per device and kind
 * and the program's sums, described in `detail`. */
static int mismatches(char *detail, size_t size)
{
    const struct vramguard_usage *u = usage();
    size_t off = 0;
    int bad = 0;
    detail[0] = '\0';
    for (int d = 0; d < VRAMGUARD_MAX_DEVICES; d++)
        for (int k = 0; k < VRAMGUARD_KIND_SLOTS; k++) {
            unsigned long long b = 0, n = 0;
            for (int p = 0; p < VRAMGUARD_PURPOSE_SLOTS; p++) {
                b += u->cell[d][k][p].live_bytes;
                n += u->cell[d][k][p].live_count;
            }
            int slot = k == VRAMGUARD_KIND_DEVICE ? K_DEV : k == VRAMGUARD_KIND_POOL ? K_POOL : -1;
            unsigned long long wb = slot >= 0 ? want_b[d][slot] : 0, wn = slot >= 0 ? want_n[d][slot] : 0;
            if (b != wb || n != wn) {
                bad++;
                if (off < size - 200)
                    off += (size_t)snprintf(detail + off, size - off,
                                            " [device %d kind %d: shim %llu bytes/%llu live, program %llu/%llu]", d, k,
                                            b, n, wb, wn);
            }
        }
    return bad;
}

/* A comparison in the middle of a step (before frees could hide a
 * difference): reported by the step's line. */
static void check_now(const char *what)
{
    char detail[1024];
    if (mismatches(detail, sizeof(detail)))
        step_error("%s:%s", what, detail);
}

/* Compare the shim with the program's sums. */
static void step(const char *name)
{
    char detail[1024];
    int bad = mismatches(detail, sizeof(detail));
    char label[300];
    snprintf(label, sizeof(label), "step: %s", name);
    CHECK(label, bad == 0 && step_errors == 0, "%s%s%s", step_errors ? step_first_error : "",
          step_errors && bad ? ";" : "", detail);
    step_errors = 0;
}

/* ---- the ways in to the context calls --------------------------------------- */

typedef CUresult (*set_fn)(CUcontext);
typedef CUresult (*push_fn)(CUcontext);
typedef CUresult (*pop_fn)(CUcontext *);
typedef CUresult (*alloc_fn)(CUdeviceptr *, size_t);
struct way {
    const char *name;
    set_fn set;
    push_fn push;
    pop_fn pop;
    alloc_fn alloc;
};
enum { NWAYS = 6 };
static struct way ways[NWAYS];

static void *rt_entry(const char *name, unsigned version)
{
    void *p = NULL;
    enum cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion(name, &p, version, cudaEnableDefault, &q) != cudaSuccess)
        return NULL;
    return p;
}

static void *gpa_entry(const char *name, int version)
{
    void *p = NULL;
    CUdriverProcAddressQueryResult st;
    if (cuGetProcAddress(name, &p, version, 0, &st) != CUDA_SUCCESS)
        return NULL;
    return p;
}

static int find_ways(void)
{
    ways[0] = (struct way){"exported symbols", cuCtxSetCurrent, cuCtxPushCurrent, cuCtxPopCurrent, cuMemAlloc};
    ways[1] = (struct way){"cuGetProcAddress", (set_fn)gpa_entry("cuCtxSetCurrent", 4000),
                           (push_fn)gpa_entry("cuCtxPushCurrent", 4000), (pop_fn)gpa_entry("cuCtxPopCurrent", 4000),
                           (alloc_fn)gpa_entry("cuMemAlloc", 3020)};
    ways[2] = (struct way){"cudaGetDriverEntryPointByVersion", (set_fn)rt_entry("cuCtxSetCurrent", 4000),
                           (push_fn)rt_entry("cuCtxPushCurrent", 4000), (pop_fn)rt_entry("cuCtxPopCurrent", 4000),
                           (alloc_fn)rt_entry("cuMemAlloc", 3020)};
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    ways[3] = (struct way){"dlsym(libcuda)", h ? (set_fn)dlsym(h, "cuCtxSetCurrent") : NULL,
                           h ? (push_fn)dlsym(h, "cuCtxPushCurrent_v2") : NULL,
                           h ? (pop_fn)dlsym(h, "cuCtxPopCurrent_v2") : NULL,
                           h ? (alloc_fn)dlsym(h, "cuMemAlloc_v2") : NULL};
    /* the 4-argument cuGetProcAddress (the ABI of CUDA 11.3-12.4) */
    CUresult (*gpa_v1)(const char *, void **, int, cuuint64_t) =
        (CUresult(*)(const char *, void **, int, cuuint64_t))gpa_entry("cuGetProcAddress", 11030);
    void *f[4] = {NULL, NULL, NULL, NULL};
    if (gpa_v1) {
        gpa_v1("cuCtxSetCurrent", &f[0], 4000, 0);
        gpa_v1("cuCtxPushCurrent", &f[1], 4000, 0);
        gpa_v1("cuCtxPopCurrent", &f[2], 4000, 0);
        gpa_v1("cuMemAlloc", &f[3], 3020, 0);
    }
    ways[4] = (struct way){"cuGetProcAddress (4-argument ABI)", (set_fn)f[0], (push_fn)f[1], (pop_fn)f[2],
                           (alloc_fn)f[3]};
    ways[5] = (struct way){"dlsym(RTLD_DEFAULT)", (set_fn)dlsym(RTLD_DEFAULT, "cuCtxSetCurrent"),
                           (push_fn)dlsym(RTLD_DEFAULT, "cuCtxPushCurrent_v2"),
                           (pop_fn)dlsym(RTLD_DEFAULT, "cuCtxPopCurrent_v2"),
                           (alloc_fn)dlsym(RTLD_DEFAULT, "cuMemAlloc_v2")};
    int ok = 1;
    for (int i = 0; i < NWAYS; i++)
        ok &= ways[i].set && ways[i].push && ways[i].pop && ways[i].alloc;
    return ok;
}

static void run_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    pthread_create(&t, NULL, fn, arg);
    pthread_join(t, NULL);
}

static size_t next_size = 1 * MiB;
static size_t fresh_size(void) /* distinct sizes: a swap of two allocations shows */
{
    return __atomic_add_fetch(&next_size, 4096 + 512, __ATOMIC_RELAXED);
}


/* The program freed `p` itself (successfully): no longer expected live. */
static void forget(CUdeviceptr p)
{
    pthread_mutex_lock(&lives_lock);
    size_t i = 0;
    while (i < n_lives && lives[i].p != p)
        i++;
    int found = i < n_lives;
    if (found) {
        want_b[lives[i].dev][lives[i].kind] -= lives[i].size;
        want_n[lives[i].dev][lives[i].kind]--;
        lives[i] = lives[--n_lives];
    }
    pthread_mutex_unlock(&lives_lock);
    if (!found)
        step_error("forget: %#llx was not kept", (unsigned long long)p);
}

static CUdeviceptr last_kept(void)
{
    pthread_mutex_lock(&lives_lock);
    CUdeviceptr p = n_lives ? lives[n_lives - 1].p : 0;
    pthread_mutex_unlock(&lives_lock);
    return p;
}

static void release_all(const char *name)
{
    cuCtxSynchronize();
    release_where(any);
    cuCtxSynchronize();
    char label[200];
    snprintf(label, sizeof(label), "%s: all freed", name);
    step(label);
}

/* One cuMemAlloc_v2 through `alloc` (NULL: the exported symbol), expected on `dev` (-1: no context, refused). */
static void drv_alloc(alloc_fn alloc, const char *what, int dev)
{
    CUdeviceptr p = 0;
    size_t sz = fresh_size();
    CUresult r = (alloc ? alloc : cuMemAlloc)(&p, sz);
    if (dev < 0)
        refused(what, r, CUDA_ERROR_INVALID_CONTEXT);
    else
        got(what, r, p, sz, K_DEV, dev);
}

static void rt_alloc(const char *what, int dev)
{
    void *p = NULL;
    size_t sz = fresh_size();
    cudaError_t e = cudaMalloc(&p, sz);
    got(what, (CUresult)e, (CUdeviceptr)(uintptr_t)p, sz, K_DEV, dev);
}

static void rt_async(const char *what, cudaStream_t s, int dev)
{
    void *p = NULL;
    size_t sz = fresh_size();
    cudaError_t e = cudaMallocAsync(&p, sz, s);
    got(what, (CUresult)e, (CUdeviceptr)(uintptr_t)p, sz, K_POOL, dev);
}

/* ---- A: cudaSetDevice ------------------------------------------------------- */

static void runtime_switching(void)
{
    const int seq[] = {0, 1, 2, 1, 0, 2, 2, 0, 1};
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        if (cudaSetDevice(seq[i]) != cudaSuccess)
            step_error("cudaSetDevice(%d) failed", seq[i]);
        rt_alloc("cudaMalloc after cudaSetDevice", seq[i]);
    }
    step("cudaSetDevice 0,1,2,1,0,2,2,0,1, each followed by cudaMalloc");

    cudaSetDevice(1);
    if (cudaSetDevice(NDEV + 4) == cudaSuccess)
        step_error("cudaSetDevice(%d) succeeded", NDEV + 4);
    rt_alloc("cudaMalloc after a refused cudaSetDevice", 1);
    step("a refused cudaSetDevice changes nothing");

    const int seq2[] = {2, 0, 1, 1, 2};
    for (size_t i = 0; i < sizeof(seq2) / sizeof(seq2[0]); i++) {
        cudaSetDevice(seq2[i]);
        rt_async("cudaMallocAsync on the legacy stream", 0, seq2[i]);
        rt_async("cudaMallocAsync on the per-thread stream", cudaStreamPerThread, seq2[i]);
        rt_alloc("cudaMalloc", seq2[i]);
    }
    step("stream-ordered allocations on the default streams follow cudaSetDevice");
    cudaSetDevice(0);
    release_all("cudaSetDevice");
}

/* ---- B: cuCtxSetCurrent, C: push/pop, through each way in ----------------------- */

static int way_index(const struct way *w) { return (int)(w - ways); }

static void *set_current_thread(void *arg)
{
    const struct way *w = arg;
    int me = way_index(w);
    const int seq[] = {2, 0, 1, 1, 2, 0, 2, 1};
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        if (w->set(prim[seq[i]]) != CUDA_SUCCESS)
            step_error("cuCtxSetCurrent(device %d) through %s failed", seq[i], w->name);
        /* allocate through each way in turn: the change and the allocation
         * need not come through the same door */
        drv_alloc(ways[(me + (int)i) % NWAYS].alloc, "cuMemAlloc_v2 after cuCtxSetCurrent", seq[i]);
    }
    /* NULL with one context on the stack: no current context. */
    w->set(NULL);
    drv_alloc(w->alloc, "cuMemAlloc_v2 after cuCtxSetCurrent(NULL)", -1);
    w->set(prim[2]);
    drv_alloc(w->alloc, "cuMemAlloc_v2 after cuCtxSetCurrent(NULL) then device 2", 2);
    if (on_fake) {
        /* A handle the driver refuses changes nothing (fake only: a real
         * driver may not survive a made-up handle). */
        if (w->set((CUcontext)(uintptr_t)0x1000) == CUDA_SUCCESS)
            step_error("cuCtxSetCurrent(bogus) through %s succeeded", w->name);
        drv_alloc(w->alloc, "cuMemAlloc_v2 after a refused cuCtxSetCurrent", 2);
    }
    return NULL;
}

static void *push_pop_thread(void *arg)
{
    const struct way *w = arg;
    CUcontext popped = NULL;
#define POP_EXPECT(d)                                                                              \
    do {                                                                                           \
        popped = NULL;                                                                             \
        if (w->pop(&popped) != CUDA_SUCCESS || popped != prim[d])                                   \
            step_error("cuCtxPopCurrent through %s did not pop device %d", w->name, d);             \
    } while (0)
    w->set(prim[0]);
    drv_alloc(w->alloc, "base device 0", 0);
    w->push(prim[1]);
    drv_alloc(w->alloc, "pushed device 1", 1);
    w->push(prim[2]);
    drv_alloc(w->alloc, "pushed device 2", 2);
    w->push(prim[1]);
    drv_alloc(w->alloc, "pushed device 1 again", 1);
    POP_EXPECT(1);
    drv_alloc(w->alloc, "popped back to device 2", 2);
    w->set(prim[0]); /* replaces the top of the stack: [0, 1, 0] */
    drv_alloc(w->alloc, "cuCtxSetCurrent replaced the top with device 0", 0);
    POP_EXPECT(0);
    drv_alloc(w->alloc, "popped back to device 1", 1);
    w->set(NULL); /* with a stack: pops it, [0] */
    drv_alloc(w->alloc, "cuCtxSetCurrent(NULL) popped back to device 0", 0);
    POP_EXPECT(0);
    drv_alloc(w->alloc, "empty stack", -1);
    if (w->pop(&popped) != CUDA_ERROR_INVALID_CONTEXT)
        step_error("cuCtxPopCurrent of an empty stack through %s did not answer 201", w->name);
    drv_alloc(w->alloc, "still an empty stack after a refused pop", -1);
    w->push(prim[2]);
    drv_alloc(w->alloc, "pushed device 2 on an empty stack", 2);
    if (on_fake) {
        if (w->push((CUcontext)(uintptr_t)0x1000) == CUDA_SUCCESS)
            step_error("cuCtxPushCurrent(bogus) through %s succeeded", w->name);
        drv_alloc(w->alloc, "after a refused push", 2);
    }
    /* 60 levels deep, allocating at every level on the way up and down. */
    for (int i = 0; i < 60; i++) {
        w->push(prim[i % 3]);
        drv_alloc(ways[i % NWAYS].alloc, "deep push", i % 3);
    }
    for (int i = 59; i >= 0; i--) {
        POP_EXPECT(i % 3);
        drv_alloc(ways[i % NWAYS].alloc, "deep pop", i > 0 ? (i - 1) % 3 : 2);
    }
    POP_EXPECT(2);
    drv_alloc(w->alloc, "empty again", -1);
#undef POP_EXPECT
    return NULL;
}

static void driver_switching(void)
{
    char name[200];
    for (int i = 0; i < NWAYS; i++) {
        run_thread(set_current_thread, &ways[i]);
        snprintf(name, sizeof(name), "cuCtxSetCurrent through %s", ways[i].name);
        step(name);
    }
    release_all("cuCtxSetCurrent");
    for (int i = 0; i < NWAYS; i++) {
        run_thread(push_pop_thread, &ways[i]);
        snprintf(name, sizeof(name), "cuCtxPushCurrent/cuCtxPopCurrent nesting through %s", ways[i].name);
        step(name);
    }
    release_all("push/pop");
}

/* ---- D: created contexts, primary context release ----------------------------- */

typedef CUresult (*ctx_create_v2_fn)(CUcontext *, unsigned int, CUdevice);
static int ctx_create_ran;
typedef CUresult (*ctx_destroy_fn)(CUcontext);

static void *created_ctx_thread(void *arg)
{
    (void)arg;
    ctx_create_v2_fn create = (ctx_create_v2_fn)gpa_entry("cuCtxCreate", 3020);
    ctx_destroy_fn destroy = (ctx_destroy_fn)gpa_entry("cuCtxDestroy", 4000);
    if (!create || !destroy) {
        printf("SKIP cuCtxCreate/cuCtxDestroy: this driver has none (the fake's case)\n");
        return NULL;
    }
    ctx_create_ran = 1;
    cuCtxSetCurrent(prim[0]);
    drv_alloc(NULL, "before cuCtxCreate", 0);
    CUcontext c = NULL;
    if (create(&c, 0, 1) != CUDA_SUCCESS) {
        step_error("cuCtxCreate(device 1) failed");
        return NULL;
    }
    drv_alloc(NULL, "in a created context of device 1", 1);
    CUdeviceptr in_created = last_kept();
    cuCtxPushCurrent(prim[2]);
    drv_alloc(NULL, "pushed device 2 over the created context", 2);
    cuCtxPopCurrent(NULL);
    drv_alloc(NULL, "popped back to the created context", 1);
    CUdeviceptr in_created2 = last_kept();
    /* Free what the context holds before destroying it (the driver would). */
    if (cuMemFree(in_created) == CUDA_SUCCESS)
        forget(in_created);
    if (cuMemFree(in_created2) == CUDA_SUCCESS)
        forget(in_created2);
    if (destroy(c) != CUDA_SUCCESS)
        step_error("cuCtxDestroy failed");
    drv_alloc(NULL, "cuCtxDestroy popped the created context: device 0", 0);
    return NULL;
}

static void *primary_release_thread(void *arg)
{
    (void)arg;
    CUcontext c = NULL;
    CUdevice d1;
    cuDeviceGet(&d1, 1);
    cuDevicePrimaryCtxRetain(&c, d1);
    cuCtxSetCurrent(c);
    drv_alloc(NULL, "retained primary context of device 1", 1);
    /* main still holds a reference: the context lives on and stays current */
    if (cuDevicePrimaryCtxRelease(d1) != CUDA_SUCCESS)
        step_error("cuDevicePrimaryCtxRelease failed");
    drv_alloc(NULL, "after cuDevicePrimaryCtxRelease (still referenced)", 1);
    CUresult (*release)(CUdevice) = (CUresult(*)(CUdevice))gpa_entry("cuDevicePrimaryCtxRelease", 11000);
    cuDevicePrimaryCtxRetain(&c, d1);
    cuCtxPushCurrent(prim[2]);
    drv_alloc(NULL, "pushed device 2", 2);
    if (!release || release(d1) != CUDA_SUCCESS)
        step_error("cuDevicePrimaryCtxRelease through cuGetProcAddress failed");
    drv_alloc(NULL, "release of another device's context changes nothing here", 2);
    cuCtxPopCurrent(NULL);
    drv_alloc(NULL, "popped back to device 1", 1);
    return NULL;
}

static void created_contexts(void)
{
    run_thread(created_ctx_thread, NULL);
    if (ctx_create_ran)
        step("cuCtxCreate / cuCtxDestroy");
    run_thread(primary_release_thread, NULL);
    step("cuDevicePrimaryCtxRelease");
    release_all("contexts");
}

/* ---- E: new threads allocate at once ------------------------------------------ */

static void *rt_new_thread(void *arg)
{
    int d = (int)(intptr_t)arg;
    if (d >= 0 && cudaSetDevice(d) != cudaSuccess)
        step_error("cudaSetDevice(%d) in a new thread failed", d);
    rt_alloc("cudaMalloc first thing in a new thread", d >= 0 ? d : 0);
    return NULL;
}

static void *drv_new_thread(void *arg)
{
    int d = (int)(intptr_t)arg;
    ways[d % NWAYS].set(prim[d]);
    drv_alloc(ways[(d + 1) % NWAYS].alloc, "cuMemAlloc_v2 first thing in a new thread", d);
    return NULL;
}

static void *no_ctx_thread(void *arg)
{
    (void)arg;
    drv_alloc(NULL, "cuMemAlloc_v2 in a thread with no context", -1);
    cuCtxPushCurrent(prim[1]);
    drv_alloc(NULL, "then pushed device 1", 1);
    return NULL;
}

static void new_threads(void)
{
    cudaSetDevice(2); /* the main thread's device must not leak into new threads */
    rt_alloc("main on device 2", 2);
    run_thread(rt_new_thread, (void *)(intptr_t)1);
    run_thread(rt_new_thread, (void *)(intptr_t)-1);
    run_thread(drv_new_thread, (void *)(intptr_t)2);
    run_thread(drv_new_thread, (void *)(intptr_t)0);
    run_thread(no_ctx_thread, NULL);
    step("a new thread allocates at once on its own device");
    enum { BATCH = 6, ROUNDS = 8 };
    for (int r = 0; r < ROUNDS; r++) {
        pthread_t t[BATCH];
        for (int i = 0; i < BATCH; i++)
            pthread_create(&t[i], NULL, i % 2 ? drv_new_thread : rt_new_thread, (void *)(intptr_t)((r + i) % 3));
        for (int i = 0; i < BATCH; i++)
            pthread_join(t[i], NULL);
    }
    rt_alloc("main still on device 2", 2);
    step("48 short-lived threads, 6 at a time, each on its own device");
    cudaSetDevice(0);
    release_all("new threads");
}

/* ---- F: many switches, several threads at once ---------------------------------- */

enum { ITERATIONS = 1000 };

static size_t small_size(unsigned i, int mode) { return 512u * (1u + (i * 7u + (unsigned)mode) % 64u) + (unsigned)mode; }

static void *interleave_thread(void *arg)
{
    int mode = (int)(intptr_t)arg;
    CUstream sd[NDEV] = {0};
    if (mode == 3)
        for (int d = 0; d < NDEV; d++) {
            cuCtxSetCurrent(prim[d]);
            cuStreamCreate(&sd[d], CU_STREAM_NON_BLOCKING);
        }
    for (unsigned i = 0; i < ITERATIONS; i++) {
        int a = (int)(i % 3), b = (int)((i + 1) % 3);
        const struct way *w = &ways[i % NWAYS];
        CUdeviceptr p = 0;
        void *q = NULL;
        size_t sz = small_size(i, mode);
        switch (mode) {
        case 0: /* runtime: allocate, switch, allocate, switch back, allocate */
            cudaSetDevice(a);
            GOT("interleaved cudaMalloc", (CUresult)cudaMalloc(&q, sz), (CUdeviceptr)(uintptr_t)q, sz, K_DEV, a);
            cudaSetDevice(b);
            GOT("interleaved cudaMalloc", (CUresult)cudaMalloc(&q, sz + 1), (CUdeviceptr)(uintptr_t)q, sz + 1, K_DEV, b);
            cudaSetDevice(a);
            GOT("interleaved cudaMalloc", (CUresult)cudaMalloc(&q, sz + 2), (CUdeviceptr)(uintptr_t)q, sz + 2, K_DEV, a);
            break;
        case 1: /* driver: cuCtxSetCurrent */
            w->set(prim[a]);
            GOT("interleaved cuMemAlloc", ways[(i + 1) % NWAYS].alloc(&p, sz), p, sz, K_DEV, a);
            w->set(prim[b]);
            GOT("interleaved cuMemAlloc", ways[(i + 2) % NWAYS].alloc(&p, sz + 1), p, sz + 1, K_DEV, b);
            w->set(prim[a]);
            GOT("interleaved cuMemAlloc", ways[(i + 3) % NWAYS].alloc(&p, sz + 2), p, sz + 2, K_DEV, a);
            break;
        case 2: /* driver: push/pop over a base */
            w->set(prim[a]);
            GOT("interleaved cuMemAlloc", cuMemAlloc(&p, sz), p, sz, K_DEV, a);
            w->push(prim[b]);
            GOT("interleaved cuMemAlloc", cuMemAlloc(&p, sz + 1), p, sz + 1, K_DEV, b);
            w->pop(NULL);
            GOT("interleaved cuMemAlloc", cuMemAlloc(&p, sz + 2), p, sz + 2, K_DEV, a);
            break;
        default: /* stream-ordered: the stream's device, whatever is current */
            w->set(prim[a]);
            GOT("interleaved cuMemAllocAsync, stream of another device", cuMemAllocAsync(&p, sz, sd[b]), p, sz,
                K_POOL, b);
            GOT("interleaved cuMemAllocAsync, per-thread stream", cuMemAllocAsync(&p, sz + 1, CU_STREAM_PER_THREAD),
                p, sz + 1, K_POOL, a);
            GOT("interleaved cuMemAllocAsync, own device's stream", cuMemAllocAsync(&p, sz + 2, sd[a]), p, sz + 2,
                K_POOL, a);
            break;
        }
    }
    if (mode == 3)
        for (int d = 0; d < NDEV; d++) {
            cuStreamSynchronize(sd[d]);
            cuStreamDestroy(sd[d]);
        }
    return NULL;
}

static void interleaving(void)
{
    pthread_t t[4];
    for (int m = 0; m < 4; m++)
        pthread_create(&t[m], NULL, interleave_thread, (void *)(intptr_t)m);
    for (int m = 0; m < 4; m++)
        pthread_join(t[m], NULL);
    step("4 threads at once, 1000 iterations each: allocate, switch, allocate, switch back, allocate");
    char label[200];
    snprintf(label, sizeof(label), "interleaving: %zu allocations checked", n_lives);
    CHECK(label, n_lives == 4 * 3 * ITERATIONS, "want %d", 4 * 3 * ITERATIONS);
    release_all("interleaving");
}

/* ---- G, H, I: streams and pools of other devices ---------------------------------- */

static cudaStream_t st[NDEV];

/* A stream of device `dev`, created without changing this thread's device. */
static CUstream new_stream(int dev)
{
    CUstream s = NULL;
    cuCtxPushCurrent(prim[dev]);
    if (cuStreamCreate(&s, CU_STREAM_NON_BLOCKING) != CUDA_SUCCESS)
        step_error("cuStreamCreate on device %d failed", dev);
    cuCtxPopCurrent(NULL);
    return s;
}


static CUmemoryPool pool_of(CUdeviceptr p)
{
    CUmemoryPool h = NULL;
    if (cuPointerGetAttribute(&h, CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE, p) != CUDA_SUCCESS)
        return NULL;
    return h;
}

static void expect_pool(const char *what, CUmemoryPool want)
{
    CUdeviceptr p = last_kept();
    if (pool_of(p) != want)
        step_error("%s: the driver took it from pool %p, the step expects %p", what, (void *)pool_of(p), (void *)want);
}

static void streams_and_pools(void)
{
    for (int d = 0; d < NDEV; d++) {
        cudaSetDevice(d);
        if (cudaStreamCreate(&st[d]) != cudaSuccess)
            step_error("cudaStreamCreate on device %d failed", d);
    }
    cudaSetDevice(0);
    rt_async("cudaMallocAsync, device-1 stream, device 0 current", st[1], 1);
    rt_async("cudaMallocAsync, device-2 stream, device 0 current", st[2], 2);
    rt_async("cudaMallocAsync, device-0 stream", st[0], 0);
    CUdeviceptr p = 0;
    size_t sz = fresh_size();
    GOT("cuMemAllocAsync, device-1 stream", cuMemAllocAsync(&p, sz, (CUstream)st[1]), p, sz, K_POOL, 1);
    CUresult (*ptsz)(CUdeviceptr *, size_t, CUstream) = NULL;
    CUdriverProcAddressQueryResult qr;
    cuGetProcAddress("cuMemAllocAsync", (void **)&ptsz, 11020, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &qr);
    if (!ptsz) {
        step_error("cuMemAllocAsync_ptsz not found");
    } else {
        sz = fresh_size();
        GOT("cuMemAllocAsync_ptsz, device-2 stream", ptsz(&p, sz, (CUstream)st[2]), p, sz, K_POOL, 2);
        sz = fresh_size();
        GOT("cuMemAllocAsync_ptsz, per-thread stream", ptsz(&p, sz, CU_STREAM_PER_THREAD), p, sz, K_POOL, 0);
    }
    step("stream-ordered allocations go to the stream's device, not the current one");

    /* Device-1 memory freed on a device-0 stream: uncharged from device 1. */
    void *q1 = NULL;
    sz = fresh_size();
    GOT("cudaMallocAsync, device-1 stream", (CUresult)cudaMallocAsync(&q1, sz, st[1]), (CUdeviceptr)(uintptr_t)q1, sz,
        K_POOL, 1);
    if (cudaFreeAsync(q1, st[0]) == cudaSuccess)
        forget((CUdeviceptr)(uintptr_t)q1);
    else
        step_error("cudaFreeAsync of device-1 memory on a device-0 stream failed");
    step("device-1 memory freed on a device-0 stream");

    /* H: explicit pools of another device. */
    cudaMemPool_t def1 = NULL, def0 = NULL;
    cudaDeviceGetDefaultMemPool(&def1, 1);
    cudaDeviceGetDefaultMemPool(&def0, 0);
    CUmemAccessDesc access = {{CU_MEM_LOCATION_TYPE_DEVICE, 0}, CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
    cuMemPoolSetAccess((CUmemoryPool)def1, &access, 1);
    void *q = NULL;
    sz = fresh_size();
    GOT("cudaMallocFromPoolAsync(device 1's default pool, device-0 stream)",
        (CUresult)cudaMallocFromPoolAsync(&q, sz, def1, st[0]), (CUdeviceptr)(uintptr_t)q, sz, K_POOL, 1);
    expect_pool("cudaMallocFromPoolAsync(default pool of device 1)", (CUmemoryPool)def1);
    struct cudaMemPoolProps props;
    memset(&props, 0, sizeof(props));
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = 1;
    cudaMemPool_t p1 = NULL;
    if (cudaMemPoolCreate(&p1, &props) != cudaSuccess)
        step_error("cudaMemPoolCreate(device 1) failed");
    cuMemPoolSetAccess((CUmemoryPool)p1, &access, 1);
    sz = fresh_size();
    GOT("cudaMallocFromPoolAsync(created pool of device 1, device-0 stream)",
        (CUresult)cudaMallocFromPoolAsync(&q, sz, p1, st[0]), (CUdeviceptr)(uintptr_t)q, sz, K_POOL, 1);
    expect_pool("cudaMallocFromPoolAsync(created pool)", (CUmemoryPool)p1);
    sz = fresh_size();
    GOT("cuMemAllocFromPoolAsync(created pool of device 1, device-2 stream)",
        cuMemAllocFromPoolAsync(&p, sz, (CUmemoryPool)p1, (CUstream)st[2]), p, sz, K_POOL, 1);
    CUmemPoolProps dprops = {0};
    dprops.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
    dprops.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    dprops.location.id = 2;
    CUmemoryPool p2 = NULL;
    if (cuMemPoolCreate(&p2, &dprops) != CUDA_SUCCESS)
        step_error("cuMemPoolCreate(device 2) failed");
    cuMemPoolSetAccess(p2, &access, 1);
    sz = fresh_size();
    GOT("cuMemAllocFromPoolAsync(created pool of device 2, legacy stream, device 0 current)",
        cuMemAllocFromPoolAsync(&p, sz, p2, CU_STREAM_LEGACY), p, sz, K_POOL, 2);
    step("explicit pools of other devices");

    /* I: the current pool of a device, set through the driver (the fake
     * cudart has no cudaDeviceSetMemPool). */
    if (cuDeviceSetMemPool(1, (CUmemoryPool)p1) != CUDA_SUCCESS)
        step_error("cuDeviceSetMemPool(1, created pool) failed");
    rt_async("cudaMallocAsync, device-1 stream, created pool current", st[1], 1);
    expect_pool("cudaMallocAsync after cuDeviceSetMemPool", (CUmemoryPool)p1);
    rt_async("cudaMallocAsync, device-0 stream (device 0's pool untouched)", st[0], 0);
    expect_pool("cudaMallocAsync on device 0", (CUmemoryPool)def0);
    if (cuDeviceSetMemPool(0, (CUmemoryPool)p1) == CUDA_SUCCESS)
        step_error("cuDeviceSetMemPool(0, a pool of device 1) succeeded");
    rt_async("cudaMallocAsync, device-0 stream after a refused cuDeviceSetMemPool", st[0], 0);
    expect_pool("cudaMallocAsync on device 0 after a refused cuDeviceSetMemPool", (CUmemoryPool)def0);
    CUresult (*set_pool)(CUmemLocation *, CUmemAllocationType, CUmemoryPool) =
        (CUresult(*)(CUmemLocation *, CUmemAllocationType, CUmemoryPool))gpa_entry("cuMemSetMemPool", 13000);
    CUresult (*default_pool)(CUmemoryPool *, CUmemLocation *, CUmemAllocationType) =
        (CUresult(*)(CUmemoryPool *, CUmemLocation *, CUmemAllocationType))gpa_entry("cuMemGetDefaultMemPool", 13000);
    if (set_pool && default_pool) {
        CUmemLocation l2 = {CU_MEM_LOCATION_TYPE_DEVICE, 2};
        if (set_pool(&l2, CU_MEM_ALLOCATION_TYPE_PINNED, p2) != CUDA_SUCCESS)
            step_error("cuMemSetMemPool(device 2, pinned, created pool) failed");
        sz = fresh_size();
        GOT("cuMemAllocAsync, device-2 stream, created pool current", cuMemAllocAsync(&p, sz, (CUstream)st[2]), p, sz,
            K_POOL, 2);
        expect_pool("cuMemAllocAsync after cuMemSetMemPool", p2);
        /* The (device 1, managed) slot is not what stream-ordered allocation
         * uses: still VRAM from the created pool, not refused. */
        CUmemLocation l1 = {CU_MEM_LOCATION_TYPE_DEVICE, 1};
        CUmemoryPool managed1 = NULL;
        if (default_pool(&managed1, &l1, CU_MEM_ALLOCATION_TYPE_MANAGED) == CUDA_SUCCESS && managed1) {
            if (set_pool(&l1, CU_MEM_ALLOCATION_TYPE_MANAGED, managed1) != CUDA_SUCCESS)
                step_error("cuMemSetMemPool(device 1, managed, its default) failed");
            rt_async("cudaMallocAsync, device-1 stream, after setting the managed pool", st[1], 1);
            expect_pool("cudaMallocAsync after cuMemSetMemPool(managed)", (CUmemoryPool)p1);
        } else {
            printf("SKIP cuMemSetMemPool(device, managed): no managed default pool\n");
        }
    } else {
        printf("SKIP cuMemSetMemPool: not in this driver\n");
    }
    step("current pools set with cuDeviceSetMemPool / cuMemSetMemPool");

    /* Back to the default pool, then destroy the created pool when it is
     * empty and current: the default becomes current again. */
    cuDeviceSetMemPool(1, (CUmemoryPool)def1);
    rt_async("cudaMallocAsync, device-1 stream, default pool current again", st[1], 1);
    expect_pool("cudaMallocAsync after resetting the default pool", (CUmemoryPool)def1);
    release_all("pools");
    cuDeviceSetMemPool(1, (CUmemoryPool)p1);
    if (cudaMemPoolDestroy(p1) != cudaSuccess)
        step_error("cudaMemPoolDestroy of the current pool failed");
    rt_async("cudaMallocAsync, device-1 stream, after the current pool was destroyed", st[1], 1);
    expect_pool("cudaMallocAsync after destroying the current pool", (CUmemoryPool)def1);
    cuDeviceSetMemPool(2, (CUmemoryPool)p2);
    cuMemPoolDestroy(p2);
    rt_async("cudaMallocAsync, device-2 stream, after the current pool was destroyed", st[2], 2);
    step("destroying the current pool makes the default current again");
    release_all("destroyed pools");

    /* A destroyed stream's or pool's handle may come back for another
     * device (the fake's calloc usually hands it back): what was learned
     * about the old one must not stick. */
    int stream_reused = 0, pool_reused = 0;
    CUstream prev_s = NULL;
    for (int i = 0; i < 12; i++) {
        int d = i % NDEV;
        CUstream s = new_stream(d);
        stream_reused += s == prev_s;
        sz = fresh_size();
        GOT("cuMemAllocAsync on a new stream", cuMemAllocAsync(&p, sz, s), p, sz, K_POOL, d);
        rt_async("cudaMallocAsync on a new stream", (cudaStream_t)s, d);
        cuStreamSynchronize(s);
        cuStreamDestroy(s);
        prev_s = s;
    }
    CUmemoryPool prev_p = NULL;
    for (int i = 0; i < 12; i++) {
        int d = i % NDEV;
        dprops.location.id = d;
        CUmemoryPool np = NULL;
        if (cuMemPoolCreate(&np, &dprops) != CUDA_SUCCESS) {
            step_error("cuMemPoolCreate(device %d) failed", d);
            continue;
        }
        pool_reused += np == prev_p;
        cuMemPoolSetAccess(np, &access, 1);
        sz = fresh_size();
        GOT("cuMemAllocFromPoolAsync from a new pool, device-0 stream",
            cuMemAllocFromPoolAsync(&p, sz, np, (CUstream)st[0]), p, sz, K_POOL, d);
        CUdeviceptr from_np = p;
        /* Again from the same pool: what this thread learned of it (the
         * shim's hot path) must not outlive it when its handle comes back on
         * another device. */
        sz = fresh_size();
        GOT("cuMemAllocFromPoolAsync from the same new pool again",
            cuMemAllocFromPoolAsync(&p, sz, np, (CUstream)st[0]), p, sz, K_POOL, d);
        CUdeviceptr from_np_again = p;
        if (cuDeviceSetMemPool(d, np) != CUDA_SUCCESS)
            step_error("cuDeviceSetMemPool(%d, new pool) failed", d);
        rt_async("cudaMallocAsync, the new pool current", st[d], d);
        expect_pool("cudaMallocAsync with a new pool current", np);
        CUdeviceptr from_np2 = last_kept();
        rt_async("cudaMallocAsync, next device's stream", st[(d + 1) % NDEV], (d + 1) % NDEV);
        check_now("a new pool current");
        /* empty it, then destroy it while current: the default is current again */
        if (cuMemFreeAsync(from_np, (CUstream)st[0]) == CUDA_SUCCESS)
            forget(from_np);
        if (cuMemFreeAsync(from_np2, (CUstream)st[0]) == CUDA_SUCCESS)
            forget(from_np2);
        if (cuMemFreeAsync(from_np_again, (CUstream)st[0]) == CUDA_SUCCESS)
            forget(from_np_again);
        cuStreamSynchronize((CUstream)st[0]);
        if (cuMemPoolDestroy(np) != CUDA_SUCCESS)
            step_error("cuMemPoolDestroy(new pool) failed");
        rt_async("cudaMallocAsync after the new pool was destroyed", st[d], d);
        check_now("the new pool destroyed");
        prev_p = np;
    }
    printf("note: stream handles reused %d times, pool handles %d times, of 11\n", stream_reused, pool_reused);
    step("stream and pool handles destroyed and created again on other devices");
    release_all("handles");
}

/* ---- K: what another thread learned ------------------------------------------------ */

/* A thread that stays alive and allocates on the streams the main thread
 * hands it: whatever it learned about a stream or a device's pool must not
 * outlive the stream, the pool setting or the pool. */
static struct {
    pthread_barrier_t go, done;
    CUstream s;
    int dev, quit, via_runtime;
} learner_cmd;

static void *learner_thread(void *arg)
{
    (void)arg;
    cudaSetDevice(0);
    for (;;) {
        pthread_barrier_wait(&learner_cmd.go);
        if (learner_cmd.quit)
            break;
        for (int i = 0; i < 2; i++) { /* the first may teach it, the second uses what it learned */
            if (learner_cmd.via_runtime)
                rt_async("cudaMallocAsync in the learning thread", (cudaStream_t)learner_cmd.s, learner_cmd.dev);
            else {
                CUdeviceptr p = 0;
                size_t sz = fresh_size();
                GOT("cuMemAllocAsync in the learning thread", cuMemAllocAsync(&p, sz, learner_cmd.s), p, sz, K_POOL,
                    learner_cmd.dev);
            }
        }
        pthread_barrier_wait(&learner_cmd.done);
    }
    return NULL;
}

static void learner_alloc(CUstream s, int dev, int via_runtime)
{
    learner_cmd.s = s;
    learner_cmd.dev = dev;
    learner_cmd.via_runtime = via_runtime;
    pthread_barrier_wait(&learner_cmd.go);
    pthread_barrier_wait(&learner_cmd.done);
}

static void learned_elsewhere(void)
{
    pthread_barrier_init(&learner_cmd.go, NULL, 2);
    pthread_barrier_init(&learner_cmd.done, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, learner_thread, NULL);

    /* K1: streams destroyed here, their handles handed out again for other
     * devices; the other thread allocated on the old ones. */
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    CUresult (*dl_stream_destroy)(CUstream) = h ? (CUresult(*)(CUstream))dlsym(h, "cuStreamDestroy") : NULL;
    CUstream seen[3 * 16];
    int n_seen = 0, reused = 0;
    for (int round = 0; round < 16; round++) {
        CUstream s[3];
        for (int j = 0; j < 3; j++) {
            int d = (j + round) % NDEV;
            s[j] = new_stream(d);
            for (int k = 0; k < n_seen; k++)
                if (seen[k] == s[j]) {
                    reused++;
                    break;
                }
            seen[n_seen++] = s[j];
            learner_alloc(s[j], d, (round + j) % 2);
        }
        check_now("another thread allocated on new streams");
        for (int j = 0; j < 3; j++) {
            cuStreamSynchronize(s[j]);
            /* one way per round, so that each must tell every thread on its own */
            int way = round % 3;
            CUresult r = (way == 0                         ? cuStreamDestroy
                          : way == 1 || !dl_stream_destroy ? (CUresult(*)(CUstream))cudaStreamDestroy
                                                           : dl_stream_destroy)(s[j]);
            if (r != CUDA_SUCCESS)
                step_error("destroying a stream failed: %d", (int)r);
        }
    }
    printf("note: %d of %d stream handles were handed out again\n", reused, n_seen);
    step("another thread's streams destroyed here and their handles reused on other devices");

    /* K2: the device's current pool changed here after the other thread
     * allocated from it; the old pool is then destroyed empty: what the
     * other thread allocated since must stay live. */
    CUmemPoolProps props = {0};
    props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
    props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    CUresult (*set_pool)(CUmemLocation *, CUmemAllocationType, CUmemoryPool) =
        (CUresult(*)(CUmemLocation *, CUmemAllocationType, CUmemoryPool))gpa_entry("cuMemSetMemPool", 13000);
    for (int round = 0; round < 6; round++) {
        int d = round % NDEV;
        CUstream s = new_stream(d);
        CUmemoryPool def = NULL, np = NULL;
        cuDeviceGetDefaultMemPool(&def, d);
        props.location.id = d;
        if (cuMemPoolCreate(&np, &props) != CUDA_SUCCESS || cuDeviceSetMemPool(d, np) != CUDA_SUCCESS)
            step_error("cuMemPoolCreate/cuDeviceSetMemPool(%d) failed", d);
        learner_alloc(s, d, round % 2);
        expect_pool("the learning thread's allocation from the new pool", np);
        cuStreamSynchronize(s);
        release_where(any); /* the new pool is empty again */
        /* back to the default pool: through cuDeviceSetMemPool, or cuMemSetMemPool */
        CUmemLocation loc = {CU_MEM_LOCATION_TYPE_DEVICE, d};
        CUresult r = round / NDEV == 0 || !set_pool ? cuDeviceSetMemPool(d, def)
                                                     : set_pool(&loc, CU_MEM_ALLOCATION_TYPE_PINNED, def);
        if (r != CUDA_SUCCESS)
            step_error("setting device %d's default pool again failed", d);
        learner_alloc(s, d, (round + 1) % 2);
        expect_pool("the learning thread's allocation after the default pool was set again", def);
        check_now("the default pool set again");
        cuStreamSynchronize(s);
        if (cuMemPoolDestroy(np) != CUDA_SUCCESS) /* empty: nothing of it is outstanding */
            step_error("cuMemPoolDestroy of an empty pool failed");
        check_now("after the empty pool was destroyed");
        cuStreamDestroy(s);
    }
    step("another thread's allocations after the current pool was set back and the old one destroyed empty");

    learner_cmd.quit = 1;
    pthread_barrier_wait(&learner_cmd.go);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&learner_cmd.go);
    pthread_barrier_destroy(&learner_cmd.done);
    release_all("learned elsewhere");
}

/* ---- J: stream capture ------------------------------------------------------------ */

/* A stream-ordered allocation on a capturing stream: it must succeed and is
 * not live (a graph node). Returns the address. */
static CUdeviceptr captured(const char *what, CUresult r, CUdeviceptr p)
{
    if (r != CUDA_SUCCESS || p == 0)
        step_error("%s (captured) failed: %d", what, (int)r);
    return p;
}

typedef CUresult (*begin_fn)(CUstream, CUstreamCaptureMode);
typedef CUresult (*begin_legacy_fn)(CUstream);
typedef CUresult (*end_fn)(CUstream, CUgraph *);
typedef CUresult (*async_fn)(CUdeviceptr *, size_t, CUstream);
typedef CUresult (*from_pool_fn)(CUdeviceptr *, size_t, CUmemoryPool, CUstream);

static begin_legacy_fn begin_legacy, begin_legacy_ptsz;
static begin_fn begin_v2, begin_v2_ptsz;
static end_fn end_plain, end_ptsz;
static async_fn async_plain, async_ptsz;
static from_pool_fn from_pool_plain, from_pool_ptsz;

static begin_legacy_fn dl_begin_legacy;
static begin_fn dl_begin_v2;
static end_fn dl_end_ptsz;

enum { BEGIN_VARIANTS = 7, END_VARIANTS = 4 };
static CUresult begin_variant(int v, CUstream s)
{
    switch (v) {
    case 0: return begin_legacy(s);
    case 1: return begin_v2(s, CU_STREAM_CAPTURE_MODE_RELAXED);
    case 2: return begin_v2_ptsz(s, CU_STREAM_CAPTURE_MODE_RELAXED);
    case 3: return begin_legacy_ptsz(s);
    case 4: return dl_begin_legacy(s);
    case 5: return dl_begin_v2(s, CU_STREAM_CAPTURE_MODE_RELAXED);
    default: return cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_RELAXED);
    }
}
static const char *const begin_name[BEGIN_VARIANTS] = {
    "cuStreamBeginCapture (legacy, cuGetProcAddress)", "cuStreamBeginCapture_v2 (cuGetProcAddress)",
    "cuStreamBeginCapture_v2_ptsz (cuGetProcAddress)", "cuStreamBeginCapture_ptsz (legacy, cuGetProcAddress)",
    "cuStreamBeginCapture (legacy, dlsym)",             "cuStreamBeginCapture_v2 (dlsym)",
    "cuStreamBeginCapture_v2 (exported symbol)"};

static CUresult end_variant(int v, CUstream s, CUgraph *g)
{
    switch (v) {
    case 0: return end_plain(s, g);
    case 1: return end_ptsz(s, g);
    case 2: return cuStreamEndCapture(s, g);
    default: return dl_end_ptsz(s, g);
    }
}
static const char *const end_name[END_VARIANTS] = {"cuStreamEndCapture (cuGetProcAddress)",
                                                   "cuStreamEndCapture_ptsz (cuGetProcAddress)",
                                                   "cuStreamEndCapture (exported symbol)",
                                                   "cuStreamEndCapture_ptsz (dlsym)"};

/* Allocation variant `v` on stream `s` of device `dev`; kept when `live`. */
static CUdeviceptr async_variant(int v, CUstream s, int dev, int live, const char *why)
{
    CUdeviceptr p = 0;
    size_t sz = fresh_size();
    CUresult r;
    CUmemoryPool pool = NULL;
    static const char *const names[4] = {"cuMemAllocAsync", "cuMemAllocAsync_ptsz", "cuMemAllocFromPoolAsync_ptsz",
                                         "cudaMallocAsync"};
    switch (v) {
    case 0: r = async_plain(&p, sz, s); break;
    case 1: r = async_ptsz(&p, sz, s); break;
    case 2:
        cuDeviceGetMemPool(&pool, dev);
        r = (dev % 2 ? from_pool_plain : from_pool_ptsz)(&p, sz, pool, s);
        break;
    default: {
        void *q = NULL;
        r = (CUresult)cudaMallocAsync(&q, sz, (cudaStream_t)s);
        p = (CUdeviceptr)(uintptr_t)q;
    }
    }
    char what[200];
    snprintf(what, sizeof(what), "%s %s", names[v], why);
    if (live)
        got(what, r, p, sz, K_POOL, dev);
    else
        captured(what, r, p);
    return p;
}

struct cross {
    CUstream capturing, other;
    int dev_capturing, dev_other;
    int live;
};

static void *cross_thread(void *arg)
{
    struct cross *c = arg;
    cudaSetDevice(0);
    async_variant(3, c->capturing, c->dev_capturing, c->live, "from another thread");
    async_variant(0, c->capturing, c->dev_capturing, c->live, "from another thread");
    async_variant(3, c->other, c->dev_other, 1, "from another thread, on a stream not capturing");
    return NULL;
}

struct ender {
    CUstream s;
    CUgraph g;
    CUresult r;
};

static void *end_thread(void *arg)
{
    struct ender *e = arg;
    e->r = end_ptsz(e->s, &e->g);
    return NULL;
}

static void capture(void)
{
    begin_legacy = (begin_legacy_fn)gpa_entry("cuStreamBeginCapture", 10000);
    begin_v2 = (begin_fn)gpa_entry("cuStreamBeginCapture", 10010);
    end_plain = (end_fn)gpa_entry("cuStreamEndCapture", 10000);
    async_plain = (async_fn)gpa_entry("cuMemAllocAsync", 11020);
    from_pool_plain = (from_pool_fn)gpa_entry("cuMemAllocFromPoolAsync", 11020);
    CUdriverProcAddressQueryResult q;
    const cuuint64_t PTSZ = CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
    cuGetProcAddress("cuStreamBeginCapture", (void **)&begin_legacy_ptsz, 10000, PTSZ, &q);
    cuGetProcAddress("cuStreamBeginCapture", (void **)&begin_v2_ptsz, 10010, PTSZ, &q);
    cuGetProcAddress("cuStreamEndCapture", (void **)&end_ptsz, 10000, PTSZ, &q);
    cuGetProcAddress("cuMemAllocAsync", (void **)&async_ptsz, 11020, PTSZ, &q);
    cuGetProcAddress("cuMemAllocFromPoolAsync", (void **)&from_pool_ptsz, 11020, PTSZ, &q);
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (h) {
        dl_begin_legacy = (begin_legacy_fn)dlsym(h, "cuStreamBeginCapture");
        dl_begin_v2 = (begin_fn)dlsym(h, "cuStreamBeginCapture_v2");
        dl_end_ptsz = (end_fn)dlsym(h, "cuStreamEndCapture_ptsz");
    }
    int found = begin_legacy && begin_v2 && end_plain && async_plain && from_pool_plain && begin_legacy_ptsz &&
                begin_v2_ptsz && end_ptsz && async_ptsz && from_pool_ptsz && dl_begin_legacy && dl_begin_v2 &&
                dl_end_ptsz;
    CHECK("capture entry points found", found, "missing");
    if (!found)
        return;
    cudaSetDevice(0);
    CUstream s1 = (CUstream)st[1], s0 = new_stream(0), s0b = new_stream(0), s2 = new_stream(2);
    CUgraph graph = NULL;

    /* J1: a capture on a device-1 stream while device 0 is current. */
    if (cudaStreamBeginCapture((cudaStream_t)s1, cudaStreamCaptureModeRelaxed) != cudaSuccess)
        step_error("cudaStreamBeginCapture failed");
    void *g1 = NULL, *g2 = NULL;
    CUresult r1 = (CUresult)cudaMallocAsync(&g1, 5 * MiB, (cudaStream_t)s1);
    captured("cudaMallocAsync", r1, (CUdeviceptr)(uintptr_t)g1);
    r1 = (CUresult)cudaMallocAsync(&g2, 3 * MiB, (cudaStream_t)s1);
    captured("cudaMallocAsync", r1, (CUdeviceptr)(uintptr_t)g2);
    if (cudaFreeAsync(g1, (cudaStream_t)s1) != cudaSuccess)
        step_error("captured cudaFreeAsync failed");
    rt_async("cudaMallocAsync on a device-0 stream during the capture", (cudaStream_t)s0, 0);
    step("inside a capture: graph nodes, nothing live; other streams unaffected");
    if (cudaStreamEndCapture((cudaStream_t)s1, (cudaGraph_t *)&graph) != cudaSuccess)
        step_error("cudaStreamEndCapture failed");
    rt_async("cudaMallocAsync after cudaStreamEndCapture", (cudaStream_t)s1, 1);
    step("after cudaStreamEndCapture: live again");
    CUgraphExec exec = NULL;
    if (cuGraphInstantiate(&exec, graph, 0) != CUDA_SUCCESS || cuGraphLaunch(exec, s1) != CUDA_SUCCESS)
        step_error("instantiating or launching the captured graph failed");
    cuStreamSynchronize(s1);
    const struct vramguard_usage *u = usage();
    CHECK("the launched graph's memory is in device 1's graph-pool reserve",
          u->graph_reserved_bytes[1] >= 3 * MiB && u->charged_bytes[1] >= u->graph_reserved_bytes[1],
          "graph reserve %llu charged %llu", (unsigned long long)u->graph_reserved_bytes[1],
          (unsigned long long)u->charged_bytes[1]);
    step("after the graph ran: its memory is not a live pool allocation");
    if (cudaFreeAsync(g2, (cudaStream_t)s1) != cudaSuccess) /* graph memory freed outside the graph */
        step_error("cudaFreeAsync of graph memory failed");
    cuStreamSynchronize(s1);
    cuGraphExecDestroy(exec);
    cuGraphDestroy(graph);
    cudaDeviceGraphMemTrim(1);
    step("graph memory freed outside the graph: nothing tracked changes");

    /* J2: begin twice (refused), the capture goes on. */
    if (begin_v2(s0, CU_STREAM_CAPTURE_MODE_RELAXED) != CUDA_SUCCESS)
        step_error("cuStreamBeginCapture_v2 failed");
    if (begin_v2(s0, CU_STREAM_CAPTURE_MODE_RELAXED) == CUDA_SUCCESS)
        step_error("a second cuStreamBeginCapture_v2 on a capturing stream succeeded");
    async_variant(0, s0, 0, 0, "after a refused second begin");
    /* J11: ending another stream's capture is refused; this one goes on. */
    if (end_plain(s0b, &graph) == CUDA_SUCCESS)
        step_error("cuStreamEndCapture of a stream that is not capturing succeeded");
    async_variant(3, s0, 0, 0, "after a refused end on another stream");
    async_variant(3, s0b, 0, 1, "on the other stream");
    step("a refused second begin or an end on the wrong stream does not end a capture");
    graph = NULL;
    if (end_plain(s0, &graph) != CUDA_SUCCESS)
        step_error("cuStreamEndCapture failed");
    cuGraphDestroy(graph);
    async_variant(0, s0, 0, 1, "after the capture ended");
    /* J3: end without a capture. */
    if (end_plain(s0, &graph) == CUDA_SUCCESS)
        step_error("cuStreamEndCapture without a capture succeeded");
    async_variant(3, s0, 0, 1, "after a refused end");
    /* J4: begin with an invalid mode. */
    if (begin_v2(s0, (CUstreamCaptureMode)7) == CUDA_SUCCESS)
        step_error("cuStreamBeginCapture_v2 with mode 7 succeeded");
    async_variant(0, s0, 0, 1, "after a refused begin (invalid mode)");
    /* J5: the legacy stream cannot be captured. */
    if (cudaStreamBeginCapture(0, cudaStreamCaptureModeRelaxed) == cudaSuccess) {
        step_error("cudaStreamBeginCapture of the legacy stream succeeded");
        cudaStreamEndCapture(0, (cudaGraph_t *)&graph);
    }
    rt_async("cudaMallocAsync on the legacy stream after a refused begin", 0, 0);
    step("refused begins and ends change nothing");

    /* J6: every begin variant x every allocation variant, ending through
     * every end variant, on a device-2 stream with device 0 current. */
    for (int b = 0; b < BEGIN_VARIANTS; b++)
        for (int a = 0; a < 4; a++) {
            char why[200];
            int e = (a + b) % END_VARIANTS;
            snprintf(why, sizeof(why), "inside a capture begun with %s", begin_name[b]);
            if (begin_variant(b, s2) != CUDA_SUCCESS)
                step_error("%s failed", begin_name[b]);
            async_variant(a, s2, 2, 0, why);
            async_variant((a + 1) % 4, s2, 2, 0, why);
            graph = NULL;
            if (end_variant(e, s2, &graph) != CUDA_SUCCESS)
                step_error("%s failed", end_name[e]);
            cuGraphDestroy(graph);
            snprintf(why, sizeof(why), "after a capture begun with %s ended with %s", begin_name[b], end_name[e]);
            async_variant(a, s2, 2, 1, why);
        }
    step("every begin x allocation x end variant");

    /* J7: a capture begun on one thread is seen from another. */
    struct cross c = {s2, s0, 2, 0, 0};
    begin_v2(s2, CU_STREAM_CAPTURE_MODE_RELAXED);
    run_thread(cross_thread, &c);
    step("another thread's allocations on a capturing stream are graph nodes");
    graph = NULL;
    end_plain(s2, &graph);
    cuGraphDestroy(graph);
    c.live = 1;
    run_thread(cross_thread, &c);
    step("another thread's allocations after the capture ended are live");
    /* and the reverse: another thread ends a capture begun here */
    begin_legacy(s2);
    async_variant(1, s2, 2, 0, "before another thread ends the capture");
    struct ender e = {s2, NULL, CUDA_ERROR_UNKNOWN};
    run_thread(end_thread, &e);
    if (e.r != CUDA_SUCCESS)
        step_error("cuStreamEndCapture from another thread failed: %d", (int)e.r);
    cuGraphDestroy(e.g);
    async_variant(1, s2, 2, 1, "after another thread ended the capture");
    step("a capture ended by another thread");

    /* J8: the per-thread default stream (the fake refuses to capture it,
     * the real driver allows it): whatever the driver answered holds. */
    CUresult r = begin_v2_ptsz(CU_STREAM_PER_THREAD, CU_STREAM_CAPTURE_MODE_RELAXED);
    async_variant(1, CU_STREAM_PER_THREAD, 0, r != CUDA_SUCCESS, "per-thread stream, begin answered");
    if (r == CUDA_SUCCESS) {
        graph = NULL;
        end_ptsz(CU_STREAM_PER_THREAD, &graph);
        cuGraphDestroy(graph);
    }
    async_variant(1, CU_STREAM_PER_THREAD, 0, 1, "per-thread stream, no capture");
    step("capture of the per-thread stream, as the driver answered");

    /* J9: a stream destroyed while capturing; a new stream (perhaps with the
     * same handle) is not capturing. */
    CUstream sx = new_stream(1);
    begin_v2(sx, CU_STREAM_CAPTURE_MODE_RELAXED);
    async_variant(0, sx, 1, 0, "on a stream about to be destroyed");
    if (cuStreamDestroy(sx) != CUDA_SUCCESS) { /* a driver that wants the capture ended first */
        graph = NULL;
        end_plain(sx, &graph);
        cuGraphDestroy(graph);
        cuStreamDestroy(sx);
    }
    CUstream sy = new_stream(1);
    printf("note: the new stream %s the destroyed capturing stream's handle\n", sy == sx ? "reuses" : "does not reuse");
    async_variant(0, sy, 1, 1, "on a new stream after a capturing one was destroyed");
    async_variant(3, sy, 1, 1, "on a new stream after a capturing one was destroyed");
    step("a capturing stream destroyed, a new stream created");

    cuStreamSynchronize(s0);
    cuStreamSynchronize(s2);
    cuStreamSynchronize(sy);
    release_all("capture");
    cuStreamDestroy(s0);
    cuStreamDestroy(s0b);
    cuStreamDestroy(s2);
    cuStreamDestroy(sy);
}

int main(void)
{
    start("prog_ctx_switch");
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n < NDEV) {
        printf("SKIP prog_ctx_switch: %d device(s), %d needed\n", n, NDEV);
        return 0;
    }
    char name[64] = "";
    cuDeviceGetName(name, sizeof(name), 0);
    on_fake = strncmp(name, "FakeCUDA", 8) == 0;
    for (int d = 0; d < NDEV; d++) {
        CUdevice dev;
        cuDeviceGet(&dev, d);
        if (cuDevicePrimaryCtxRetain(&prim[d], dev) != CUDA_SUCCESS)
            step_error("cuDevicePrimaryCtxRetain(%d) failed", d);
    }
    CHECK("context entry points found through every way in", find_ways(), "missing");
    step("start: nothing live");

    runtime_switching();
    driver_switching();
    created_contexts();
    new_threads();
    interleaving();
    streams_and_pools();
    learned_elsewhere();
    capture();

    for (int d = 0; d < NDEV; d++)
        cudaStreamDestroy(st[d]);
    const struct vramguard_usage *u = usage();
    CHECK("no violation, no OOM", u->violations == 0 && u->oom_events == 0, "violations %llu oom %llu",
          (unsigned long long)u->violations, (unsigned long long)u->oom_events);
    step("end: nothing live");
    return finish("prog_ctx_switch");
}
