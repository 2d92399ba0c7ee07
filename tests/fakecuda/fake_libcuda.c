/*
 * fake_libcuda.c - a GPU-less stand-in for libcuda.so.1 (the CUDA driver API)
 * used by vramguard's tests.  See tests/fakecuda/README.md.
 *
 * Built as build/fakecuda/libcuda.so.1 and linked with -Wl,-Bsymbolic, so that
 * every address this library takes of its own exported functions (the
 * cuGetProcAddress table) is its own definition, never a preloaded wrapper of
 * the same name: the pointer cuGetProcAddress returns for a variant equals
 * dlsym(handle_of_this_library, "<exported variant name>").
 *
 * Exported: the CUDA entry points below (default visibility).  Everything
 * else is static.
 */
#include <cuda.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* cuda.h only declares CUdeviceptr_v1 under __CUDA_API_VERSION_INTERNAL. */
typedef unsigned int fake_deviceptr_v1;

#define FAKE_API __attribute__((visibility("default")))

/* ------------------------------------------------------------------------ */
/* Prototypes of exported symbols that cuda.h does not declare under these
 * names (legacy ABIs renamed by cuda.h's #defines, and the _ptsz variants).  */

FAKE_API CUresult CUDAAPI legacy_cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion,
                                                  cuuint64_t flags) __asm__("cuGetProcAddress");
FAKE_API CUresult CUDAAPI legacy_cuMemAlloc(fake_deviceptr_v1 *dptr, unsigned int bytesize)
    __asm__("cuMemAlloc");
FAKE_API CUresult CUDAAPI legacy_cuMemAllocPitch(fake_deviceptr_v1 *dptr, unsigned int *pPitch,
                                                 unsigned int WidthInBytes, unsigned int Height,
                                                 unsigned int ElementSizeBytes)
    __asm__("cuMemAllocPitch");
FAKE_API CUresult CUDAAPI legacy_cuMemFree(fake_deviceptr_v1 dptr) __asm__("cuMemFree");
FAKE_API CUresult CUDAAPI legacy_cuMemAllocHost(void **pp, unsigned int bytesize)
    __asm__("cuMemAllocHost");
FAKE_API CUresult CUDAAPI legacy_cuMemHostRegister(void *p, size_t bytesize, unsigned int Flags)
    __asm__("cuMemHostRegister");
FAKE_API CUresult CUDAAPI legacy_cuDevicePrimaryCtxRelease(CUdevice dev)
    __asm__("cuDevicePrimaryCtxRelease");
FAKE_API CUresult CUDAAPI legacy_cuDeviceGetUuid(CUuuid *uuid, CUdevice dev)
    __asm__("cuDeviceGetUuid");
FAKE_API CUresult CUDAAPI legacy_cuDevicePrimaryCtxReset(CUdevice dev) __asm__("cuDevicePrimaryCtxReset");
FAKE_API CUresult CUDAAPI legacy_cuCtxCreate(CUcontext *pctx, unsigned int flags, CUdevice dev) __asm__("cuCtxCreate");
FAKE_API CUresult CUDAAPI cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev);
FAKE_API CUresult CUDAAPI cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *paramsArray, int numParams,
                                         unsigned int flags, CUdevice dev);
FAKE_API CUresult CUDAAPI legacy_cuCtxDestroy(CUcontext ctx) __asm__("cuCtxDestroy");
FAKE_API CUresult CUDAAPI cuMemMapArrayAsync_ptsz(CUarrayMapInfo *mapInfoList, unsigned int count, CUstream hStream);
FAKE_API CUresult CUDAAPI cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream);
FAKE_API CUresult CUDAAPI cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream);
FAKE_API CUresult CUDAAPI cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                                                       CUstream hStream);
FAKE_API CUresult CUDAAPI legacy_cuStreamDestroy(CUstream hStream) __asm__("cuStreamDestroy");
FAKE_API CUresult CUDAAPI cuStreamSynchronize_ptsz(CUstream hStream);
FAKE_API CUresult CUDAAPI legacy_cuStreamBeginCapture(CUstream hStream) __asm__("cuStreamBeginCapture");
FAKE_API CUresult CUDAAPI legacy_cuStreamBeginCapture_ptsz(CUstream hStream) __asm__("cuStreamBeginCapture_ptsz");
FAKE_API CUresult CUDAAPI cuStreamBeginCapture_v2_ptsz(CUstream hStream, CUstreamCaptureMode mode);
FAKE_API CUresult CUDAAPI cuStreamEndCapture_ptsz(CUstream hStream, CUgraph *phGraph);
FAKE_API CUresult CUDAAPI cuStreamIsCapturing_ptsz(CUstream hStream, CUstreamCaptureStatus *captureStatus);
FAKE_API CUresult CUDAAPI cuStreamGetCtx_ptsz(CUstream hStream, CUcontext *pctx);
FAKE_API CUresult CUDAAPI cuGraphLaunch_ptsz(CUgraphExec hGraphExec, CUstream hStream);
FAKE_API CUresult CUDAAPI legacy_cuGraphInstantiate(CUgraphExec *phGraphExec, CUgraph hGraph, CUgraphNode *phErrorNode,
                                                    char *logBuffer, size_t bufferSize) __asm__("cuGraphInstantiate");
FAKE_API CUresult CUDAAPI cuGraphInstantiate_v2(CUgraphExec *phGraphExec, CUgraph hGraph, CUgraphNode *phErrorNode,
                                                char *logBuffer, size_t bufferSize);
FAKE_API CUresult CUDAAPI legacy_cuIpcOpenMemHandle(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int Flags)
    __asm__("cuIpcOpenMemHandle");
FAKE_API CUresult CUDAAPI legacy_cuModuleGetGlobal(fake_deviceptr_v1 *dptr, unsigned int *bytes, CUmodule hmod,
                                                   const char *name) __asm__("cuModuleGetGlobal");

/* ------------------------------------------------------------------------ */
/* Call counter: every exported CUresult entry point starts with FAKE_ENTRY(),
 * so fakecuda_driver_calls() is the number of calls made into this driver by
 * anyone (the program, cudart, a preloaded shim).  The two entry points that
 * are implemented by calling another exported one (cuStreamCreateWithPriority,
 * cuGraphInstantiate_v2) leave the count to it: one call counts once.       */

static unsigned long long g_driver_calls;
/* ... and fails the call FAKECUDA_FAIL names (fault injection, below). */
static int g_fault_specs;
static int fault_hit(const char *fn, CUresult *rc);
#define FAKE_ENTRY()                                                                                                   \
    do {                                                                                                               \
        __atomic_fetch_add(&g_driver_calls, 1, __ATOMIC_RELAXED);                                                      \
        CUresult fault_rc_;                                                                                            \
        if (g_fault_specs && fault_hit(__func__, &fault_rc_))                                                          \
            return fault_rc_;                                                                                          \
    } while (0)

FAKE_API unsigned long long fakecuda_driver_calls(void);
FAKE_API unsigned long long fakecuda_driver_calls(void) { return __atomic_load_n(&g_driver_calls, __ATOMIC_RELAXED); }

/* ------------------------------------------------------------------------ */
/* Configuration (environment, read once)                                    */

#define FAKE_MAX_DEVICES 8
#define FAKE_DEV_BASE 0x7e0000000000ULL
#define FAKE_DEV_STRIDE 0x10000000000ULL /* 1 TiB of synthetic address space per device */
#define FAKE_LEGACY_LO 0x10000000ULL     /* legacy (32-bit) device addresses */
#define FAKE_LEGACY_HI 0x100000000ULL
#define FAKE_ALIGN 512u
#define FAKE_DRIVER_VERSION 13000
#define FAKE_FUTURE_DRIVER_VERSION 14000 /* FAKECUDA_FUTURE_VARIANTS=1 */

static struct {
    int devices;
    unsigned long long vram;
    int pageable_access;
    int legacy_alloc;
    int trace_fd; /* -1: off */
    int future_variants; /* answer cuGetProcAddress like a newer driver (future_rows) */
    int thread_arenas;   /* cuMemAlloc_v2 / cuMemFree_v2 from per-thread arenas (benchmarks) */
} g_cfg = {1, 1073741824ULL, 0, 0, -1, 0, 0};

static pthread_once_t g_cfg_once = PTHREAD_ONCE_INIT;

static void warn_env(const char *var, const char *val, const char *accepted)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf, "fakecuda: ignoring %s=%s (accepted: %s)\n", var, val, accepted);
    if (n > 0)
        (void)!write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* Plain decimal integers only: no sign, no suffix, no spaces. */
static int parse_ull(const char *s, unsigned long long *out)
{
    if (!s || !*s)
        return -1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !end || *end)
        return -1;
    *out = v;
    return 0;
}

static void cfg_init(void)
{
    const char *s;
    unsigned long long v;

    if ((s = getenv("FAKECUDA_DEVICES"))) {
        if (parse_ull(s, &v) == 0 && v <= FAKE_MAX_DEVICES)
            g_cfg.devices = (int)v;
        else
            warn_env("FAKECUDA_DEVICES", s, "0..8");
    }
    if ((s = getenv("FAKECUDA_VRAM_BYTES"))) {
        if (parse_ull(s, &v) == 0 && v > 0 && v <= FAKE_DEV_STRIDE)
            g_cfg.vram = v;
        else
            warn_env("FAKECUDA_VRAM_BYTES", s, "a plain decimal byte count, 1..2^40");
    }
    if ((s = getenv("FAKECUDA_PAGEABLE_ACCESS"))) {
        if (parse_ull(s, &v) == 0 && v <= 1)
            g_cfg.pageable_access = (int)v;
        else
            warn_env("FAKECUDA_PAGEABLE_ACCESS", s, "0, 1");
    }
    if ((s = getenv("FAKECUDA_LEGACY_ALLOC"))) {
        if (parse_ull(s, &v) == 0 && v <= 1)
            g_cfg.legacy_alloc = (int)v;
        else
            warn_env("FAKECUDA_LEGACY_ALLOC", s, "0, 1");
    }
    if ((s = getenv("FAKECUDA_FUTURE_VARIANTS"))) {
        if (parse_ull(s, &v) == 0 && v <= 1)
            g_cfg.future_variants = (int)v;
        else
            warn_env("FAKECUDA_FUTURE_VARIANTS", s, "0, 1");
    }
    if ((s = getenv("FAKECUDA_THREAD_ARENAS"))) {
        if (parse_ull(s, &v) == 0 && v <= 1)
            g_cfg.thread_arenas = (int)v;
        else
            warn_env("FAKECUDA_THREAD_ARENAS", s, "0, 1");
    }
    if ((s = getenv("FAKECUDA_TRACE")) && *s) {
        if (strcmp(s, "stderr") == 0) {
            g_cfg.trace_fd = 2;
        } else {
            int fd = open(s, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (fd >= 0)
                g_cfg.trace_fd = fd;
            else
                warn_env("FAKECUDA_TRACE", s, "stderr or a writable file path");
        }
    }
}

static inline void cfg(void) { pthread_once(&g_cfg_once, cfg_init); }

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...)
{
    if (g_cfg.trace_fd < 0)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof buf - 2)
        n = (int)(sizeof buf - 2);
    buf[n++] = '\n';
    (void)!write(g_cfg.trace_fd, buf, (size_t)n); /* one write: lines stay whole under O_APPEND */
}

/* ------------------------------------------------------------------------ */
/* Fault injection: FAKECUDA_FAIL=NAME:N[:CODE][,...] makes the Nth call (from
 * 1) of entry point NAME return CODE (default 2, CUDA_ERROR_OUT_OF_MEMORY)
 * without doing anything; N = 0 only counts the calls
 * (fakecuda_fault_calls). NAME is the exported symbol (cuMemAlloc_v2,
 * cuMemAllocAsync_ptsz, cuMemAlloc for the legacy one). Read at load.       */

#define FAKE_FAULT_SPECS 32
static struct fault_spec {
    char name[64];
    unsigned long long at;
    unsigned long long calls; /* atomic */
    CUresult code;
} g_faults[FAKE_FAULT_SPECS];

/* The exported name of the entry point whose C name is fn. */
static const char *export_name(const char *fn) { return strncmp(fn, "legacy_", 7) == 0 ? fn + 7 : fn; }

static int fault_hit(const char *fn, CUresult *rc)
{
    const char *name = export_name(fn);
    for (int i = 0; i < g_fault_specs; i++) {
        struct fault_spec *f = &g_faults[i];
        if (strcmp(f->name, name) != 0)
            continue;
        unsigned long long n = __atomic_add_fetch(&f->calls, 1, __ATOMIC_RELAXED);
        if (n == f->at) {
            *rc = f->code;
            trace("fault %s call %llu -> %d", name, n, (int)f->code);
            return 1;
        }
    }
    return 0;
}

__attribute__((constructor)) static void faults_init(void)
{
    const char *s = getenv("FAKECUDA_FAIL");
    char spec[128];
    while (s && *s) {
        size_t n = strcspn(s, ",");
        unsigned long long at, code = CUDA_ERROR_OUT_OF_MEMORY;
        char name[64], *colon, *colon2;
        int ok = n < sizeof spec && g_fault_specs < FAKE_FAULT_SPECS;
        if (ok) {
            memcpy(spec, s, n);
            spec[n] = '\0';
            colon = strchr(spec, ':');
            ok = colon && colon != spec && (size_t)(colon - spec) < sizeof name;
        }
        if (ok) {
            *colon = '\0';
            memcpy(name, spec, (size_t)(colon - spec) + 1);
            if ((colon2 = strchr(colon + 1, ':')))
                *colon2 = '\0';
            ok = parse_ull(colon + 1, &at) == 0 && (!colon2 || (parse_ull(colon2 + 1, &code) == 0 && code <= 999));
        }
        if (ok) {
            struct fault_spec *f = &g_faults[g_fault_specs++];
            snprintf(f->name, sizeof f->name, "%s", name);
            f->at = at;
            f->code = (CUresult)code;
        } else {
            warn_env("FAKECUDA_FAIL", s, "NAME:N[:CODE] entries, comma-separated, at most 32");
            return;
        }
        s += n + (s[n] == ',');
    }
}

/* Calls of NAME seen since load, when FAKECUDA_FAIL names it (else 0). */
FAKE_API unsigned long long fakecuda_fault_calls(const char *name);
FAKE_API unsigned long long fakecuda_fault_calls(const char *name)
{
    for (int i = 0; i < g_fault_specs; i++)
        if (strcmp(g_faults[i].name, name) == 0)
            return __atomic_load_n(&g_faults[i].calls, __ATOMIC_RELAXED);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Driver state: initialisation, primary contexts, per-thread context stack   */

static volatile int g_inited; /* set by cuInit(0), under g_lock */

/* A context: a device's primary context (g_ctx, shared with the runtime,
 * retained and released), one made with cuCtxCreate (g_created), or the
 * CUcontext of a green context (g_green). What is allocated while a context
 * is current belongs to it (a green context's allocations to its device's
 * primary context, as on an H200), and goes when the context ends: a
 * created one destroyed, a primary one reset or released for the last time
 * (a green context holds one reference). A context that ended answers
 * CUDA_ERROR_CONTEXT_IS_DESTROYED to a thread that still has it current; a
 * primary one lives again at its next retain. */
enum { CTX_PRIMARY = 0, CTX_CREATED, CTX_GREEN };
struct fake_ctx {
    unsigned magic;
    int device;
    int refcount;          /* primary: retains not yet released */
    int kind;              /* CTX_* */
    int dead;              /* ended: destroyed, or (primary) reset / released to 0 until retained again */
    struct fake_ctx *owner; /* what owns its allocations: itself, or (green) its device's primary context */
};
#define FAKE_CTX_MAGIC 0xFACEC7u
#define FAKE_MAX_CTX 64 /* created contexts, green contexts */
static struct fake_ctx g_ctx[FAKE_MAX_DEVICES];
static struct fake_ctx g_created[FAKE_MAX_CTX];
static struct fake_ctx g_green[FAKE_MAX_CTX];
static char g_green_handle[FAKE_MAX_CTX]; /* CUgreenCtx handles: &g_green_handle[i] (its CUcontext: &g_green[i]) */

#define FAKE_CTX_STACK 64
static _Thread_local struct fake_ctx *tl_stack[FAKE_CTX_STACK];
static _Thread_local int tl_depth;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

/* fork() while another thread holds g_lock would leave the child's copy
 * locked forever: hold it across fork, so the map is consistent in both
 * processes, then release it in the parent and start the child afresh. */
static void fork_prepare(void) { pthread_mutex_lock(&g_lock); }
static void fork_parent(void) { pthread_mutex_unlock(&g_lock); }
static void fork_child(void) { pthread_mutex_init(&g_lock, NULL); }
__attribute__((constructor)) static void fork_handlers(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

static inline int inited(void)
{
    cfg();
    return __atomic_load_n(&g_inited, __ATOMIC_ACQUIRE);
}

static inline struct fake_ctx *cur_ctx(void) { return tl_depth > 0 ? tl_stack[tl_depth - 1] : NULL; }

static int in_array(const struct fake_ctx *c, const struct fake_ctx *arr, size_t n)
{
    return c >= arr && c < arr + n && ((uintptr_t)c - (uintptr_t)arr) % sizeof(*arr) == 0;
}

static struct fake_ctx *ctx_from_handle(CUcontext h)
{
    struct fake_ctx *c = (struct fake_ctx *)(void *)h;
    if (!in_array(c, g_ctx, FAKE_MAX_DEVICES) && !in_array(c, g_created, FAKE_MAX_CTX) &&
        !in_array(c, g_green, FAKE_MAX_CTX))
        return NULL;
    return c->magic == FAKE_CTX_MAGIC ? c : NULL;
}

static inline int valid_dev(CUdevice d) { return d >= 0 && d < g_cfg.devices; }

/* Common preamble: driver initialised and a current context that has not
 * ended.  *dev gets its device. */
static CUresult need_ctx(int *dev)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    struct fake_ctx *c = cur_ctx();
    if (!c)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (__atomic_load_n(&c->dead, __ATOMIC_ACQUIRE))
        return CUDA_ERROR_CONTEXT_IS_DESTROYED;
    if (dev)
        *dev = c->device;
    return CUDA_SUCCESS;
}

/* The context that owns what the calling thread allocates now (need_ctx passed). */
static inline struct fake_ctx *owner_ctx(void) { return cur_ctx()->owner; }

/* ------------------------------------------------------------------------ */
/* Allocation map: ordered by start address (skip list + hash), one mutex    */

enum fake_kind {
    K_DEVICE = 1, /* cuMemAlloc / cuMemAllocPitch */
    K_PINNED,     /* cuMemAllocHost / cuMemHostAlloc */
    K_REGISTERED, /* cuMemHostRegister */
    K_MANAGED,    /* cuMemAllocManaged */
    K_POOL,       /* stream-ordered allocation from a pool (obj: struct fake_pool), or an imported pool pointer */
    K_GRAPH,      /* address of a graph memory node (obj: struct fake_galloc) */
    K_VMM,        /* one cuMemMap mapping (obj: struct fake_phys) */
    K_IPC,        /* cuIpcOpenMemHandle mapping (src: the exporter's buffer id, refs: opens) */
    K_EXTMEM,     /* cuExternalMemoryGetMappedBuffer (obj: struct fake_extmem) */
    K_GLOBAL,     /* a __device__ or __managed__ global of a loaded module or library (obj: struct fake_module) */
};

struct fake_alloc {
    uintptr_t start;
    size_t size;     /* requested size (range size) */
    size_t charged;  /* VRAM charged to the device by this entry itself (cuMemAlloc*) */
    int device;      /* DEVICE_ORDINAL; -1 (CU_DEVICE_CPU) for host-located VMM memory */
    int kind;
    unsigned long long id;
    unsigned char host;    /* MEMORY_TYPE HOST (else DEVICE) */
    unsigned char managed; /* IS_MANAGED */
    unsigned flags;        /* K_REGISTERED: the cuMemHostRegister flags; K_IPC: open count */
    unsigned handle_types; /* ALLOWED_HANDLE_TYPES */
    void *obj;             /* see enum fake_kind */
    unsigned long long src; /* K_POOL: the 512-rounded size counted in the pool's used; K_IPC: buffer id */
    int src_pid;            /* K_IPC: the exporting process */
    unsigned char acc[FAKE_MAX_DEVICES + 1]; /* K_VMM: CUmemAccess_flags per device, [FAKE_MAX_DEVICES] host */
    struct fake_ctx *ctx; /* the context that owns it (freed with it); NULL for pool, graph, VMM memory */
};

static unsigned long long g_next_id = 1;
static unsigned long long g_charged[FAKE_MAX_DEVICES];
static unsigned long long g_bump[FAKE_MAX_DEVICES]; /* next offset from the device base */
static unsigned long long g_legacy_bump = FAKE_LEGACY_LO;

/*
 * The map holds every live entry ordered by start address (entries never
 * overlap, except that a start may in principle repeat: a new entry goes
 * after the existing ones with the same start).  It must stay fast, with no
 * pause, with a million live entries (make bench's live-set and churn
 * cases), so:
 *
 *  - a skip list of nodes, doubly linked and circular at every level around
 *    a sentinel: removing a known node is O(its level), appending past the
 *    current last start (the bump allocator's usual case) is O(1), any other
 *    insertion and the predecessor queries are O(log n) expected;
 *  - a hash index start -> node (chained; one node per distinct start, the
 *    last one in order) for the exact-start lookups of every free and of
 *    most pointer queries: O(1).  It grows incrementally (a few buckets move
 *    to the doubled table at each insertion or removal), so no single call
 *    pays for rehashing a million entries.
 *
 * Levels are drawn from a fixed-seed generator, so runs are reproducible.
 * An entry's address is stable while it is live (struct fake_alloc is the
 * node's first member); every function below needs g_lock.
 */
#define MAP_LEVELS 16 /* p = 1/4 per level: plenty for 2^32 entries */

struct map_node {
    struct fake_alloc a;    /* first: a node and its entry share their address */
    struct map_node *hnext; /* hash chain */
    int level;              /* number of levels this node is linked at, 1..MAP_LEVELS */
    struct { struct map_node *prev, *next; } link[];
};

static struct {
    struct map_node node;
    struct { struct map_node *prev, *next; } link[MAP_LEVELS];
} g_map_head; /* sentinel: its links are the lists' heads and tails */
#define MAP_HEAD (&g_map_head.node)
static int g_map_level;          /* levels in use, 0 when empty */
static size_t g_map_n;           /* live entries */
static unsigned long long g_map_rng = 0x9E3779B97F4A7C15ULL;

struct map_hash {
    struct map_node **b; /* bucket heads */
    size_t cap;          /* power of two; 0: no table */
};
static struct map_hash g_hash;     /* the table insertions go to */
static struct map_hash g_hash_old; /* the table being emptied into g_hash while it grows */
static size_t g_hash_moved;        /* buckets of g_hash_old already moved */
static size_t g_hash_n;            /* distinct starts indexed */
#define HASH_STEP 16               /* old buckets moved per insertion or removal */

static inline struct map_node *node_of(struct fake_alloc *a) { return (struct map_node *)(void *)a; }

static inline struct map_node **hash_bucket(const struct map_hash *t, uintptr_t start)
{
    unsigned long long h = (unsigned long long)start * 0x9E3779B97F4A7C15ULL;
    return &t->b[(size_t)(h >> 24) & (t->cap - 1)];
}

/* the link that points at start's node in table t, or NULL */
static struct map_node **hash_link(const struct map_hash *t, uintptr_t start)
{
    if (!t->cap)
        return NULL;
    for (struct map_node **l = hash_bucket(t, start); *l; l = &(*l)->hnext)
        if ((*l)->a.start == start)
            return l;
    return NULL;
}

static struct map_node **hash_find(uintptr_t start)
{
    struct map_node **l = hash_link(&g_hash, start);
    return l ? l : hash_link(&g_hash_old, start);
}

/* move a few buckets of the old table; free it once empty */
static void hash_step(void)
{
    for (int k = 0; k < HASH_STEP && g_hash_moved < g_hash_old.cap; k++, g_hash_moved++) {
        struct map_node *n = g_hash_old.b[g_hash_moved], *next;
        g_hash_old.b[g_hash_moved] = NULL;
        for (; n; n = next) {
            next = n->hnext;
            struct map_node **b = hash_bucket(&g_hash, n->a.start);
            n->hnext = *b;
            *b = n;
        }
    }
    if (g_hash_old.cap && g_hash_moved == g_hash_old.cap) {
        free(g_hash_old.b);
        g_hash_old = (struct map_hash){0};
    }
}

/* room for one more start: a table twice as large when full (calloc of a
 * large table maps zero pages: no cost proportional to its size) */
static int hash_reserve(void)
{
    if (g_hash_n < g_hash.cap || g_hash_old.cap)
        return 0;
    size_t ncap = g_hash.cap ? g_hash.cap * 2 : 1024;
    struct map_node **b = calloc(ncap, sizeof *b);
    if (!b)
        return -1;
    g_hash_old = g_hash;
    g_hash_moved = 0;
    g_hash = (struct map_hash){b, ncap};
    return 0;
}

static inline struct fake_alloc *map_first(void)
{
    if (g_map_level == 0)
        return NULL;
    struct map_node *n = MAP_HEAD->link[0].next;
    return n == MAP_HEAD ? NULL : &n->a;
}

static inline struct fake_alloc *map_next(struct fake_alloc *a)
{
    struct map_node *n = node_of(a)->link[0].next;
    return n == MAP_HEAD ? NULL : &n->a;
}

/* last entry with start <= p (or < p when strict), or NULL */
static struct fake_alloc *map_pred(uintptr_t p, int strict)
{
    struct map_node *x = MAP_HEAD;
    for (int l = g_map_level - 1; l >= 0; l--)
        for (struct map_node *y = x->link[l].next; y != MAP_HEAD && (strict ? y->a.start < p : y->a.start <= p);
             y = y->link[l].next)
            x = y;
    return x == MAP_HEAD ? NULL : &x->a;
}

/* exact start match (the last entry with that start), or NULL */
static struct fake_alloc *map_exact(uintptr_t p)
{
    struct map_node **l = hash_find(p);
    return l ? &(*l)->a : NULL;
}

/* entry containing p (interior pointers too), or NULL */
static struct fake_alloc *map_find(uintptr_t p)
{
    struct fake_alloc *a = map_exact(p);
    if (a)
        return a; /* an entry starts at p: it contains p */
    if (!(a = map_pred(p, 0)))
        return NULL;
    size_t len = a->size ? a->size : 1;
    return p - a->start < len ? a : NULL;
}

static int map_insert(const struct fake_alloc *a)
{
    if (hash_reserve())
        return -1;
    hash_step();
    int level = 1;
    while (level < MAP_LEVELS) { /* xorshift64: one more level with probability 1/4 */
        g_map_rng ^= g_map_rng << 13;
        g_map_rng ^= g_map_rng >> 7;
        g_map_rng ^= g_map_rng << 17;
        if (g_map_rng & 3)
            break;
        level++;
    }
    struct map_node *n = malloc(sizeof *n + (size_t)level * sizeof n->link[0]);
    if (!n)
        return -1;
    n->a = *a;
    n->a.id = g_next_id++;
    n->level = level;
    for (; g_map_level < level; g_map_level++)
        MAP_HEAD->link[g_map_level].prev = MAP_HEAD->link[g_map_level].next = MAP_HEAD;
    struct map_node *last = MAP_HEAD->link[0].prev;
    int append = last == MAP_HEAD || last->a.start <= a->start;
    struct map_node *x = MAP_HEAD;
    for (int l = g_map_level - 1; l >= 0; l--) {
        if (append) {
            x = MAP_HEAD->link[l].prev; /* the tail of level l */
        } else {
            for (struct map_node *y = x->link[l].next; y != MAP_HEAD && y->a.start <= a->start; y = y->link[l].next)
                x = y;
        }
        if (l < level) { /* link n after x at level l */
            n->link[l].prev = x;
            n->link[l].next = x->link[l].next;
            x->link[l].next->link[l].prev = n;
            x->link[l].next = n;
        }
    }
    struct map_node **l = hash_find(a->start);
    if (l) { /* n is now the last node with its start: it takes the older one's place */
        n->hnext = (*l)->hnext;
        *l = n;
    } else {
        struct map_node **b = hash_bucket(&g_hash, a->start);
        n->hnext = *b;
        *b = n;
        g_hash_n++;
    }
    g_map_n++;
    return 0;
}

static void map_remove(struct fake_alloc *a)
{
    struct map_node *n = node_of(a), *p = n->link[0].prev;
    struct map_node **l = hash_find(a->start);
    if (l && *l == n) {
        if (p != MAP_HEAD && p->a.start == a->start) { /* an earlier entry with the same start is the last now */
            p->hnext = n->hnext;
            *l = p;
        } else {
            *l = n->hnext;
            g_hash_n--;
        }
    }
    for (int k = 0; k < n->level; k++) {
        n->link[k].prev->link[k].next = n->link[k].next;
        n->link[k].next->link[k].prev = n->link[k].prev;
    }
    while (g_map_level > 0 && MAP_HEAD->link[g_map_level - 1].next == MAP_HEAD)
        g_map_level--;
    g_map_n--;
    free(n);
    hash_step();
}

/* lowest gap of r bytes in [lo, hi) between live entries (caller holds g_lock); 0 if none */
static uintptr_t find_gap(uintptr_t lo, uintptr_t hi, size_t r)
{
    uintptr_t cand = lo;
    struct fake_alloc *a = lo > 0 ? map_pred(lo, 1) : NULL; /* the last entry before lo */
    for (a = a ? map_next(a) : map_first(); a && a->start < hi; a = map_next(a)) {
        uintptr_t end = a->start + ((a->charged ? a->charged : a->size) + FAKE_ALIGN - 1) / FAKE_ALIGN * FAKE_ALIGN;
        if (a->start >= cand + r)
            break;
        if (end > cand)
            cand = end;
    }
    return cand + r <= hi ? cand : 0;
}

static inline int round_up_512(size_t size, size_t *out)
{
    if (size > SIZE_MAX - (FAKE_ALIGN - 1))
        return -1;
    *out = (size + FAKE_ALIGN - 1) / FAKE_ALIGN * FAKE_ALIGN;
    return 0;
}

static int va_dev_locked(int dev, size_t r, uintptr_t *out);
static CUresult dev_free(uintptr_t p);

/* Allocate device memory on dev; legacy: below 4 GiB.  Writes *out only on success. */
static CUresult dev_alloc(int dev, size_t size, int legacy, uintptr_t *out)
{
    size_t r;
    if (round_up_512(size, &r))
        return CUDA_ERROR_OUT_OF_MEMORY;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    if (r > g_cfg.vram - g_charged[dev]) {
        res = CUDA_ERROR_OUT_OF_MEMORY;
        goto out;
    }
    uintptr_t addr;
    if (legacy) {
        if (r <= FAKE_LEGACY_HI - g_legacy_bump) {
            addr = (uintptr_t)g_legacy_bump;
            g_legacy_bump += r;
        } else if (!(addr = find_gap(FAKE_LEGACY_LO, FAKE_LEGACY_HI, r))) {
            res = CUDA_ERROR_OUT_OF_MEMORY;
            goto out;
        }
    } else if (va_dev_locked(dev, r, &addr)) {
        res = CUDA_ERROR_OUT_OF_MEMORY;
        goto out;
    }
    struct fake_alloc a = {.start = addr, .size = size, .charged = r, .device = dev, .kind = K_DEVICE, .ctx = owner_ctx()};
    if (map_insert(&a)) {
        res = CUDA_ERROR_OUT_OF_MEMORY;
        goto out;
    }
    g_charged[dev] += r;
    *out = addr;
out:
    pthread_mutex_unlock(&g_lock);
    return res;
}

/* ------------------------------------------------------------------------ */
/* Thread arenas (FAKECUDA_THREAD_ARENAS=1, for benchmarks only)             */

/* Device memory that cuMemAlloc_v2 hands out from the calling thread's own
 * arena: a lock, an address range, a set of live addresses and a stack of
 * freed blocks that no other thread touches unless it frees an address of
 * this arena. No global mutex, no call counter, no charge to the device, and
 * not in the allocation map (no other entry point knows these addresses):
 * what `make bench` uses to measure the shim's scaling across threads
 * without this fake driver's own serialization. A thread that finds no free
 * arena (64 threads hold one), or an arena whose range is used up, gets the
 * ordinary path. */
#define FAKE_ARENA_BASE 0x600000000000ULL
#define FAKE_ARENA_SPAN (1ULL << 36) /* 64 GiB of addresses per thread */
#define FAKE_ARENAS 64

struct fake_block {
    uintptr_t addr;
    size_t r; /* 512-rounded size */
};

struct fake_arena {
    int lock;
    unsigned long long bump;   /* next unused offset in the range */
    struct fake_block *live;   /* open addressing, addr 0: empty; cap a power of two */
    unsigned cap, count;
    struct fake_block *freed;  /* reused last in, first out */
    unsigned nfreed, freed_cap;
} __attribute__((aligned(64)));

static struct fake_arena g_arenas[FAKE_ARENAS];
static unsigned long long g_arenas_taken; /* bit i: arena i belongs to a live thread */
static __thread int tl_arena = -1;
static pthread_key_t g_arena_key;
static pthread_once_t g_arena_once = PTHREAD_ONCE_INIT;
_Static_assert(FAKE_ARENAS == 64, "one bit per arena in g_arenas_taken");

/* A thread's arena goes back when the thread ends (its blocks stay valid and
 * can be freed from any thread); the next new thread takes it over. */
static void arena_release(void *slot)
{
    int i = (int)(intptr_t)slot - 1;
    __atomic_fetch_and(&g_arenas_taken, ~(1ULL << i), __ATOMIC_RELEASE);
}

static void arena_key_init(void)
{
    if (pthread_key_create(&g_arena_key, arena_release))
        __atomic_store_n(&g_arenas_taken, ~0ULL, __ATOMIC_RELAXED); /* no arenas: the ordinary path */
}

/* The calling thread's arena, taken on its first allocation: -1 when none is free. */
static int arena_take(void)
{
    pthread_once(&g_arena_once, arena_key_init);
    unsigned long long taken = __atomic_load_n(&g_arenas_taken, __ATOMIC_ACQUIRE);
    while (taken != ~0ULL) {
        int i = __builtin_ctzll(~taken);
        if (__atomic_compare_exchange_n(&g_arenas_taken, &taken, taken | 1ULL << i, 0, __ATOMIC_ACQUIRE,
                                        __ATOMIC_ACQUIRE)) {
            if (pthread_setspecific(g_arena_key, (void *)(intptr_t)(i + 1))) {
                arena_release((void *)(intptr_t)(i + 1));
                return -1;
            }
            return i;
        }
    }
    return -1;
}

static void arena_lock(struct fake_arena *a)
{
    for (int spins = 0; __atomic_exchange_n(&a->lock, 1, __ATOMIC_ACQUIRE); spins++)
        if (spins > 100)
            sched_yield();
}

static void arena_unlock(struct fake_arena *a) { __atomic_store_n(&a->lock, 0, __ATOMIC_RELEASE); }

static unsigned arena_home(const struct fake_arena *a, uintptr_t p)
{
    return (unsigned)((p * 0x9E3779B97F4A7C15ULL) >> 32) & (a->cap - 1);
}

/* Adds a block to the live set; -1 when it cannot grow. */
static int arena_insert(struct fake_arena *a, struct fake_block b)
{
    if ((a->count + 1) * 4 > a->cap * 3) {
        unsigned ncap = a->cap ? a->cap * 2 : 64;
        struct fake_block *n = calloc(ncap, sizeof *n), *old = a->live;
        if (!n)
            return -1;
        unsigned ocap = a->cap;
        a->live = n;
        a->cap = ncap;
        for (unsigned i = 0; i < ocap; i++)
            if (old[i].addr) {
                unsigned j = arena_home(a, old[i].addr);
                while (n[j].addr)
                    j = (j + 1) & (ncap - 1);
                n[j] = old[i];
            }
        free(old);
    }
    unsigned j = arena_home(a, b.addr);
    while (a->live[j].addr)
        j = (j + 1) & (a->cap - 1);
    a->live[j] = b;
    a->count++;
    return 0;
}

/* Removes p from the live set (backward-shift deletion); its size in *r. */
static int arena_remove(struct fake_arena *a, uintptr_t p, size_t *r)
{
    if (!a->cap)
        return -1;
    unsigned mask = a->cap - 1, i = arena_home(a, p);
    while (a->live[i].addr != p) {
        if (!a->live[i].addr)
            return -1;
        i = (i + 1) & mask;
    }
    *r = a->live[i].r;
    for (unsigned j = (i + 1) & mask; a->live[j].addr; j = (j + 1) & mask) {
        unsigned h = arena_home(a, a->live[j].addr);
        if (((j - h) & mask) >= ((j - i) & mask)) { /* its home is not between i and j: it may move to i */
            a->live[i] = a->live[j];
            i = j;
        }
    }
    a->live[i].addr = 0;
    a->count--;
    return 0;
}

/* cuMemAlloc_v2 from the calling thread's arena: 1 when this path does not
 * serve it (no arena left, range used up), else 0 with *out set, or -1 when
 * the live set cannot grow (the caller answers out of memory). */
static int arena_alloc(size_t size, uintptr_t *out)
{
    size_t r;
    if (round_up_512(size, &r) || r > FAKE_ARENA_SPAN)
        return 1;
    if (tl_arena < 0 && (tl_arena = arena_take()) < 0)
        return 1; /* tried again on the thread's next allocation */
    struct fake_arena *a = &g_arenas[tl_arena];
    struct fake_block b = {0, r};
    arena_lock(a);
    if (a->nfreed && a->freed[a->nfreed - 1].r == r) {
        b.addr = a->freed[--a->nfreed].addr;
    } else if (r <= FAKE_ARENA_SPAN - a->bump) {
        b.addr = FAKE_ARENA_BASE + (uintptr_t)tl_arena * FAKE_ARENA_SPAN + a->bump;
        a->bump += r;
    } else {
        arena_unlock(a);
        return 1;
    }
    int rc = arena_insert(a, b);
    arena_unlock(a);
    if (rc)
        return -1;
    *out = b.addr;
    return 0;
}

/* cuMemFree_v2 of an arena address (the caller checked the range). */
static CUresult arena_free(uintptr_t p)
{
    struct fake_arena *a = &g_arenas[(p - FAKE_ARENA_BASE) / FAKE_ARENA_SPAN];
    size_t r;
    arena_lock(a);
    if (arena_remove(a, p, &r)) {
        arena_unlock(a);
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (a->nfreed == a->freed_cap) {
        unsigned ncap = a->freed_cap ? a->freed_cap * 2 : 64;
        struct fake_block *n = realloc(a->freed, ncap * sizeof *n);
        if (n) {
            a->freed = n;
            a->freed_cap = ncap;
        }
    }
    if (a->nfreed < a->freed_cap) /* else the block's addresses are not reused */
        a->freed[a->nfreed++] = (struct fake_block){p, r};
    arena_unlock(a);
    return CUDA_SUCCESS;
}

static inline int in_arenas(uintptr_t p)
{
    return p >= FAKE_ARENA_BASE && p - FAKE_ARENA_BASE < (uintptr_t)FAKE_ARENAS * FAKE_ARENA_SPAN;
}

/* Real, dereferenceable host memory, page aligned. */
static void *host_mem(size_t size, int zero)
{
    if (size > SIZE_MAX - 4095)
        return NULL;
    size_t r = (size + 4095) / 4096 * 4096;
    void *p = aligned_alloc(4096, r);
    if (p && zero)
        memset(p, 0, r);
    return p;
}

static CUresult host_record(void *p, size_t size, int dev, int kind)
{
    struct fake_alloc a = {.start = (uintptr_t)p,
                           .size = size,
                           .device = dev,
                           .kind = kind,
                           .host = kind != K_MANAGED,
                           .managed = kind == K_MANAGED,
                           .ctx = owner_ctx()};
    pthread_mutex_lock(&g_lock);
    int rc = map_insert(&a);
    pthread_mutex_unlock(&g_lock);
    return rc ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Shared helpers for streams, pools, graphs, VMM, arrays, IPC                */

#define FAKE_GRAN (2ULL << 20)          /* VMM granularity; pool and graph reserve unit */
#define FAKE_VA_BASE 0x7c0000000000ULL  /* VMM reservations and imported host-pool pointers */
#define FAKE_VA_SIZE 0x20000000000ULL   /* 2 TiB, bump only */
#define FAKE_SHARE_MAGIC 0xFA4E5A7Eu

static unsigned long long g_va_bump; /* next offset from FAKE_VA_BASE */

/* round up to 2 MiB, saturating (a saturated value never shrinks anything) */
static inline unsigned long long round_up_gran(unsigned long long v)
{
    if (v > ~0ULL - (FAKE_GRAN - 1))
        return ~0ULL & ~(FAKE_GRAN - 1);
    return (v + FAKE_GRAN - 1) / FAKE_GRAN * FAKE_GRAN;
}

static inline unsigned long long max_ull(unsigned long long a, unsigned long long b) { return a > b ? a : b; }

/* device capacity (g_lock held) */
static inline int charge_locked(int dev, unsigned long long n)
{
    if (n > g_cfg.vram - g_charged[dev])
        return -1;
    g_charged[dev] += n;
    return 0;
}

static inline void uncharge_locked(int dev, unsigned long long n) { g_charged[dev] -= n; }

/* synthetic address of r bytes in dev's window, nothing charged (g_lock held) */
static int va_dev_locked(int dev, size_t r, uintptr_t *out)
{
    uintptr_t base = FAKE_DEV_BASE + (uintptr_t)dev * FAKE_DEV_STRIDE;
    if (r <= FAKE_DEV_STRIDE - g_bump[dev]) {
        *out = base + g_bump[dev];
        g_bump[dev] += r;
        return 0;
    }
    return (*out = find_gap(base, base + FAKE_DEV_STRIDE, r)) ? 0 : -1;
}

/* synthetic address in the device-agnostic VMM window (g_lock held) */
static int va_vmm_locked(size_t size, unsigned long long align, uintptr_t *out)
{
    unsigned long long start = (g_va_bump + align - 1) / align * align;
    unsigned long long len = round_up_gran(size);
    if (start > FAKE_VA_SIZE || len > FAKE_VA_SIZE - start)
        return -1;
    g_va_bump = start + len;
    *out = (uintptr_t)(FAKE_VA_BASE + start);
    return 0;
}

/* does any map entry overlap [lo, hi)? (g_lock held) */
static int map_overlaps(uintptr_t lo, uintptr_t hi)
{
    struct fake_alloc *a = map_pred(lo, 0);
    if (a && a->start + (a->size ? a->size : 1) > lo)
        return 1;
    a = a ? map_next(a) : map_first(); /* the first entry starting after lo */
    return a && a->start < hi;
}

/* A record behind a shareable handle (memfd) or inside opaque export data. */
struct fake_share_rec {
    uint32_t magic;
    uint32_t what; /* SHARE_PHYS, SHARE_POOL, SHARE_PTR, SHARE_IPC */
    uint64_t size;
    int32_t loc_type, loc_id, alloc_type, device;
    uint64_t serial; /* pool serial / buffer id */
    int32_t pid;
    int32_t pad;
};
enum { SHARE_PHYS = 1, SHARE_POOL, SHARE_PTR, SHARE_IPC };
_Static_assert(sizeof(struct fake_share_rec) <= 64, "fits CUipcMemHandle / CUmemPoolPtrExportData");

/* A real file descriptor carrying rec (memfd: readable by any process that receives the fd). */
static int share_fd_create(const struct fake_share_rec *rec)
{
    int fd = memfd_create("fakecuda-share", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    if (pwrite(fd, rec, sizeof *rec, 0) != (ssize_t)sizeof *rec) {
        close(fd);
        return -1;
    }
    return fd;
}

static int share_fd_read(int fd, uint32_t what, struct fake_share_rec *rec)
{
    if (fd < 0 || pread(fd, rec, sizeof *rec, 0) != (ssize_t)sizeof *rec)
        return -1;
    return rec->magic == FAKE_SHARE_MAGIC && rec->what == what ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* Streams                                                                    */

struct fake_graph;

struct fake_stream {
    int device;
    unsigned flags;
    int capturing;
    struct fake_graph *cap;
    struct fake_stream *next;
};
static struct fake_stream *g_streams;

static struct fake_stream *stream_find_locked(CUstream h)
{
    for (struct fake_stream *s = g_streams; s; s = s->next)
        if ((void *)s == (void *)h)
            return s;
    return NULL;
}

/* The device a stream belongs to; *ps = the stream object, NULL for the
 * default streams (0, CU_STREAM_LEGACY, CU_STREAM_PER_THREAD: the current
 * context's device).  g_lock held. */
static CUresult stream_dev_locked(CUstream h, int *dev, struct fake_stream **ps)
{
    if (ps)
        *ps = NULL;
    if (h == NULL || h == CU_STREAM_LEGACY || h == CU_STREAM_PER_THREAD) {
        struct fake_ctx *c = cur_ctx();
        if (!c)
            return CUDA_ERROR_INVALID_CONTEXT;
        if (__atomic_load_n(&c->dead, __ATOMIC_ACQUIRE))
            return CUDA_ERROR_CONTEXT_IS_DESTROYED; /* a null stream of an ended context (H200: cudaMallocAsync fails) */
        *dev = c->device;
        return CUDA_SUCCESS;
    }
    struct fake_stream *s = stream_find_locked(h);
    if (!s)
        return CUDA_ERROR_INVALID_HANDLE;
    *dev = s->device;
    if (ps)
        *ps = s;
    return CUDA_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Stream-ordered memory pools                                                */

/* Slots of default/current pools: per allocation type, devices 0..7, HOST, HOST_NUMA 0, NONE (managed only). */
#define SLOT_HOST FAKE_MAX_DEVICES
#define SLOT_NUMA (FAKE_MAX_DEVICES + 1)
#define SLOT_NONE (FAKE_MAX_DEVICES + 2)
#define SLOTS_PER_TYPE (FAKE_MAX_DEVICES + 3)
#define FAKE_NSLOTS (2 * SLOTS_PER_TYPE)

struct fake_pool {
    int slot; /* the (location, type) slot this pool belongs to */
    int loc_type, loc_id, alloc_type;
    int charge_dev; /* PINNED on a DEVICE: reserved memory is charged to this device; else -1 */
    int is_default, imported, destroyed;
    unsigned handle_types;
    unsigned long long max_size;
    unsigned long long reserved, used, reserved_high, used_high, threshold;
    int reuse[3];
    unsigned char access[FAKE_MAX_DEVICES];
    unsigned long long live; /* outstanding pointers (allocations or imports) */
    unsigned long long serial, src_serial;
    struct fake_pool *next;
};
static struct fake_pool *g_pools;
static struct fake_pool *g_defpool[FAKE_NSLOTS], *g_curpool[FAKE_NSLOTS];
static unsigned long long g_pool_serial;

static CUresult slot_of(const CUmemLocation *loc, CUmemAllocationType type, int *slot)
{
    if (!loc)
        return CUDA_ERROR_INVALID_VALUE;
    int base;
    if (type == CU_MEM_ALLOCATION_TYPE_PINNED)
        base = 0;
    else if (type == CU_MEM_ALLOCATION_TYPE_MANAGED)
        base = SLOTS_PER_TYPE;
    else
        return CUDA_ERROR_INVALID_VALUE;
    switch ((int)loc->type) {
    case CU_MEM_LOCATION_TYPE_DEVICE:
        if (!valid_dev(loc->id))
            return CUDA_ERROR_INVALID_DEVICE;
        *slot = base + loc->id;
        return CUDA_SUCCESS;
    case CU_MEM_LOCATION_TYPE_HOST:
        *slot = base + SLOT_HOST;
        return CUDA_SUCCESS;
    case CU_MEM_LOCATION_TYPE_HOST_NUMA: /* one NUMA node, id 0 */
        if (loc->id != 0)
            return CUDA_ERROR_INVALID_VALUE;
        *slot = base + SLOT_NUMA;
        return CUDA_SUCCESS;
    case CU_MEM_LOCATION_TYPE_NONE:
        if (type != CU_MEM_ALLOCATION_TYPE_MANAGED)
            return CUDA_ERROR_INVALID_VALUE;
        *slot = base + SLOT_NONE;
        return CUDA_SUCCESS;
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

static struct fake_pool *pool_new_locked(int slot, unsigned handle_types, unsigned long long max_size)
{
    struct fake_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    int s = slot % SLOTS_PER_TYPE;
    p->slot = slot;
    p->alloc_type = slot < SLOTS_PER_TYPE ? CU_MEM_ALLOCATION_TYPE_PINNED : CU_MEM_ALLOCATION_TYPE_MANAGED;
    p->loc_type = s < FAKE_MAX_DEVICES ? CU_MEM_LOCATION_TYPE_DEVICE
                  : s == SLOT_HOST     ? CU_MEM_LOCATION_TYPE_HOST
                  : s == SLOT_NUMA     ? CU_MEM_LOCATION_TYPE_HOST_NUMA
                                       : CU_MEM_LOCATION_TYPE_NONE;
    p->loc_id = s < FAKE_MAX_DEVICES ? s : 0;
    p->charge_dev =
        (p->alloc_type == CU_MEM_ALLOCATION_TYPE_PINNED && p->loc_type == CU_MEM_LOCATION_TYPE_DEVICE) ? s : -1;
    p->handle_types = handle_types;
    p->max_size = max_size;
    p->reuse[0] = p->reuse[1] = p->reuse[2] = 1;
    if (p->loc_type == CU_MEM_LOCATION_TYPE_DEVICE)
        p->access[p->loc_id] = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    p->serial = ++g_pool_serial;
    p->next = g_pools;
    g_pools = p;
    return p;
}

static struct fake_pool *pool_find_locked(CUmemoryPool h)
{
    for (struct fake_pool *p = g_pools; p; p = p->next)
        if ((void *)p == (void *)h)
            return p->destroyed ? NULL : p;
    return NULL;
}

static struct fake_pool *pool_default_locked(int slot)
{
    if (!g_defpool[slot]) {
        g_defpool[slot] = pool_new_locked(slot, CU_MEM_HANDLE_TYPE_NONE, 0);
        if (g_defpool[slot])
            g_defpool[slot]->is_default = 1;
    }
    return g_defpool[slot];
}

static struct fake_pool *pool_current_locked(int slot)
{
    return g_curpool[slot] ? g_curpool[slot] : pool_default_locked(slot);
}

static void pool_trim_locked(struct fake_pool *p, unsigned long long keep)
{
    unsigned long long target = round_up_gran(max_ull(p->used, keep));
    if (target < p->reserved) {
        if (p->charge_dev >= 0)
            uncharge_locked(p->charge_dev, p->reserved - target);
        p->reserved = target;
    }
}

/* Last pointer of a destroyed pool gone: release its memory and the object. */
static void pool_maybe_release_locked(struct fake_pool *p)
{
    if (!p->destroyed || p->live)
        return;
    if (p->charge_dev >= 0)
        uncharge_locked(p->charge_dev, p->reserved);
    for (struct fake_pool **pp = &g_pools; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    free(p);
}

/* A synchronisation on dev releases pool memory above max(used, release threshold). */
static void sync_trim_locked(int dev)
{
    for (struct fake_pool *p = g_pools; p; p = p->next)
        if (!p->imported && (p->charge_dev == dev || p->charge_dev < 0))
            pool_trim_locked(p, p->threshold);
}

/* Stream-ordered allocation from p (g_lock held).  stream_dev: the ordinal
 * recorded for host/managed pool memory. */
static CUresult pool_alloc_locked(struct fake_pool *p, size_t size, int stream_dev, uintptr_t *out)
{
    size_t r;
    if (round_up_512(size, &r))
        return CUDA_ERROR_OUT_OF_MEMORY;
    unsigned long long grow = 0;
    if (r > p->reserved - p->used) {
        grow = round_up_gran(p->used + r - p->reserved);
        if (p->max_size && grow > p->max_size - p->reserved)
            return CUDA_ERROR_OUT_OF_MEMORY;
        if (p->charge_dev >= 0 && grow > g_cfg.vram - g_charged[p->charge_dev])
            return CUDA_ERROR_OUT_OF_MEMORY;
    }
    int managed = p->alloc_type == CU_MEM_ALLOCATION_TYPE_MANAGED;
    int on_dev = p->loc_type == CU_MEM_LOCATION_TYPE_DEVICE;
    uintptr_t addr;
    void *host = NULL;
    if (on_dev && !managed) {
        if (va_dev_locked(p->loc_id, r, &addr))
            return CUDA_ERROR_OUT_OF_MEMORY;
    } else { /* host-located or managed pools: real host memory */
        if (!(host = host_mem(size, managed)))
            return CUDA_ERROR_OUT_OF_MEMORY;
        addr = (uintptr_t)host;
    }
    struct fake_alloc a = {.start = addr,
                           .size = size,
                           .device = on_dev ? p->loc_id : stream_dev,
                           .kind = K_POOL,
                           .host = !managed && !on_dev,
                           .managed = managed,
                           .handle_types = p->handle_types,
                           .obj = p,
                           .src = r};
    if (map_insert(&a)) {
        free(host);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (grow) {
        if (p->charge_dev >= 0)
            (void)charge_locked(p->charge_dev, grow);
        p->reserved += grow;
    }
    p->used += r;
    p->live++;
    if (p->used > p->used_high)
        p->used_high = p->used;
    if (p->reserved > p->reserved_high)
        p->reserved_high = p->reserved;
    *out = addr;
    return CUDA_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Graphs (memory nodes only; other node kinds are not modelled)              */

struct fake_galloc { /* one allocation node's memory */
    uintptr_t addr;
    size_t size, r;
    int dev;
    int live;     /* allocated by a launch and not freed yet */
    int refs;     /* graphs and execs holding a node for it */
    int now_live; /* scratch, during cuGraphLaunch */
};

enum { N_ALLOC = 1, N_FREE };

struct fake_node {
    int type;
    struct fake_galloc *ga;
};

struct fake_graph {
    struct fake_node **nodes;
    size_t n, cap;
    struct fake_graph *next;
};

struct fake_exec {
    int *types;
    struct fake_galloc **gas;
    size_t n;
    unsigned long long flags;
    struct fake_exec *next;
};

static struct fake_graph *g_graphs;
static struct fake_exec *g_execs;
static unsigned long long g_gused[FAKE_MAX_DEVICES], g_gused_high[FAKE_MAX_DEVICES];
static unsigned long long g_gres[FAKE_MAX_DEVICES], g_gres_high[FAKE_MAX_DEVICES];

static struct fake_graph *graph_find_locked(CUgraph h)
{
    for (struct fake_graph *g = g_graphs; g; g = g->next)
        if ((void *)g == (void *)h)
            return g;
    return NULL;
}

static struct fake_exec *exec_find_locked(CUgraphExec h)
{
    for (struct fake_exec *e = g_execs; e; e = e->next)
        if ((void *)e == (void *)h)
            return e;
    return NULL;
}

static struct fake_graph *graph_new_locked(void)
{
    struct fake_graph *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->next = g_graphs;
    g_graphs = g;
    return g;
}

/* The address of a graph allocation stays reserved while a graph or exec
 * holds its node or while it is allocated. */
static void ga_maybe_release_locked(struct fake_galloc *ga)
{
    if (ga->refs > 0 || ga->live)
        return;
    struct fake_alloc *a = map_exact(ga->addr);
    if (a && a->kind == K_GRAPH && a->obj == ga)
        map_remove(a);
    free(ga);
}

static struct fake_node *graph_add_locked(struct fake_graph *g, int type, struct fake_galloc *ga)
{
    if (g->n == g->cap) {
        size_t ncap = g->cap ? g->cap * 2 : 8;
        struct fake_node **nn = realloc(g->nodes, ncap * sizeof *nn);
        if (!nn)
            return NULL;
        g->nodes = nn;
        g->cap = ncap;
    }
    struct fake_node *node = calloc(1, sizeof *node);
    if (!node)
        return NULL;
    node->type = type;
    node->ga = ga;
    ga->refs++;
    g->nodes[g->n++] = node;
    return node;
}

static void graph_free_locked(struct fake_graph *g)
{
    for (struct fake_graph **pp = &g_graphs; *pp; pp = &(*pp)->next)
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    for (size_t i = 0; i < g->n; i++) {
        struct fake_galloc *ga = g->nodes[i]->ga;
        free(g->nodes[i]);
        ga->refs--;
        ga_maybe_release_locked(ga);
    }
    free(g->nodes);
    free(g);
}

/* An allocation node on dev: a fresh address, nothing allocated yet. */
static CUresult graph_alloc_node_locked(struct fake_graph *g, int dev, size_t size, uintptr_t *out,
                                        struct fake_node **pnode)
{
    size_t r;
    if (round_up_512(size, &r))
        return CUDA_ERROR_OUT_OF_MEMORY;
    struct fake_galloc *ga = calloc(1, sizeof *ga);
    if (!ga)
        return CUDA_ERROR_OUT_OF_MEMORY;
    uintptr_t addr;
    if (va_dev_locked(dev, r, &addr)) {
        free(ga);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *ga = (struct fake_galloc){.addr = addr, .size = size, .r = r, .dev = dev};
    struct fake_alloc a = {.start = addr, .size = size, .device = dev, .kind = K_GRAPH, .obj = ga};
    if (map_insert(&a)) {
        free(ga);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    struct fake_node *node = graph_add_locked(g, N_ALLOC, ga);
    if (!node) {
        ga_maybe_release_locked(ga);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *out = addr;
    if (pnode)
        *pnode = node;
    return CUDA_SUCCESS;
}

/* A free node: dptr must be a graph allocation not already freed in g. */
static CUresult graph_free_node_locked(struct fake_graph *g, uintptr_t dptr, struct fake_node **pnode)
{
    struct fake_alloc *a = map_exact(dptr);
    if (!a || a->kind != K_GRAPH)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_galloc *ga = a->obj;
    for (size_t i = 0; i < g->n; i++)
        if (g->nodes[i]->type == N_FREE && g->nodes[i]->ga == ga)
            return CUDA_ERROR_INVALID_VALUE;
    struct fake_node *node = graph_add_locked(g, N_FREE, ga);
    if (!node)
        return CUDA_ERROR_OUT_OF_MEMORY;
    if (pnode)
        *pnode = node;
    return CUDA_SUCCESS;
}

/* Graph memory freed outside a graph (cuMemFreeAsync / cuMemFree) */
static CUresult ga_free_locked(struct fake_galloc *ga)
{
    if (!ga->live)
        return CUDA_ERROR_INVALID_VALUE;
    ga->live = 0;
    g_gused[ga->dev] -= ga->r;
    ga_maybe_release_locked(ga);
    return CUDA_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Virtual memory management                                                  */

struct fake_phys {
    size_t size;
    CUmemAllocationProp prop;
    int charge_dev; /* device charged with size, or -1 (host-located, imported) */
    int refs;       /* handle references: cuMemCreate/Import + cuMemRetainAllocationHandle */
    int maps;       /* live cuMemMap mappings */
    int imported;
    struct fake_phys *next;
};
static struct fake_phys *g_phys;

struct fake_resv {
    uintptr_t start;
    size_t size;
    struct fake_resv *next;
};
static struct fake_resv *g_resv;

/* a handle usable by the API: created/imported and not fully released */
static struct fake_phys *phys_find_locked(CUmemGenericAllocationHandle h)
{
    for (struct fake_phys *ph = g_phys; ph; ph = ph->next)
        if ((uintptr_t)ph == (uintptr_t)h)
            return ph->refs > 0 ? ph : NULL;
    return NULL;
}

/* Physical memory goes when every handle reference is released and no mapping is left. */
static void phys_maybe_free_locked(struct fake_phys *ph)
{
    if (ph->refs > 0 || ph->maps > 0)
        return;
    if (ph->charge_dev >= 0)
        uncharge_locked(ph->charge_dev, ph->size);
    for (struct fake_phys **pp = &g_phys; *pp; pp = &(*pp)->next)
        if (*pp == ph) {
            *pp = ph->next;
            break;
        }
    free(ph);
}

static struct fake_phys *phys_new_locked(size_t size, const CUmemAllocationProp *prop, int charge_dev, int imported)
{
    struct fake_phys *ph = calloc(1, sizeof *ph);
    if (!ph)
        return NULL;
    ph->size = size;
    ph->prop = *prop;
    ph->charge_dev = charge_dev;
    ph->refs = 1;
    ph->imported = imported;
    ph->next = g_phys;
    g_phys = ph;
    return ph;
}

static CUresult vmm_prop_check(const CUmemAllocationProp *prop)
{
    if (!prop)
        return CUDA_ERROR_INVALID_VALUE;
    /* cuMemCreate documents PINNED only (cuda.h 13.0); MANAGED is not an option for it */
    if (prop->type != CU_MEM_ALLOCATION_TYPE_PINNED)
        return CUDA_ERROR_INVALID_VALUE;
    if (prop->requestedHandleTypes & ~(unsigned)(CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR | CU_MEM_HANDLE_TYPE_FABRIC))
        return CUDA_ERROR_INVALID_VALUE;
    switch ((int)prop->location.type) {
    case CU_MEM_LOCATION_TYPE_DEVICE:
        return valid_dev(prop->location.id) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
    case CU_MEM_LOCATION_TYPE_HOST: /* not IPC capable: requestedHandleTypes must be 0 */
        return prop->requestedHandleTypes ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
    case CU_MEM_LOCATION_TYPE_HOST_NUMA:
        return prop->location.id == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
    default: /* HOST_NUMA_CURRENT included, as documented */
        return CUDA_ERROR_INVALID_VALUE;
    }
}

/* ------------------------------------------------------------------------ */
/* External memory                                                            */

struct fake_extmem {
    unsigned long long size;
    int dev;
    struct fake_ctx *ctx; /* the importing context: its buffers go with it */
    int bufs; /* mapped buffers not yet freed */
    int destroyed;
    struct fake_extmem *next;
};
static struct fake_extmem *g_extmem;

static void extmem_maybe_free_locked(struct fake_extmem *x)
{
    if (!x->destroyed || x->bufs)
        return;
    for (struct fake_extmem **pp = &g_extmem; *pp; pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            break;
        }
    free(x);
}

/* ------------------------------------------------------------------------ */
/* Freeing any kind of stream-orderable / cuMemFree-able memory               */

/* Free the entry a (g_lock held).  *host_out: host memory to free() after unlocking. */
static CUresult free_entry_locked(struct fake_alloc *a, void **host_out)
{
    *host_out = NULL;
    if (!a)
        return CUDA_ERROR_INVALID_VALUE;
    switch (a->kind) {
    case K_DEVICE:
        uncharge_locked(a->device, a->charged);
        map_remove(a);
        return CUDA_SUCCESS;
    case K_MANAGED:
        *host_out = (void *)a->start;
        map_remove(a);
        return CUDA_SUCCESS;
    case K_POOL: {
        struct fake_pool *p = a->obj;
        if (!p->imported) {
            p->used -= a->src;
            if (p->alloc_type == CU_MEM_ALLOCATION_TYPE_MANAGED || p->loc_type != CU_MEM_LOCATION_TYPE_DEVICE)
                *host_out = (void *)a->start;
        }
        map_remove(a);
        p->live--;
        pool_maybe_release_locked(p);
        return CUDA_SUCCESS;
    }
    case K_GRAPH:
        return ga_free_locked(a->obj);
    case K_EXTMEM: {
        struct fake_extmem *x = a->obj;
        map_remove(a);
        x->bufs--;
        extmem_maybe_free_locked(x);
        return CUDA_SUCCESS;
    }
    default: /* pinned (cuMemFreeHost), registered, VMM (cuMemUnmap), IPC (cuIpcCloseMemHandle) */
        return CUDA_ERROR_INVALID_VALUE;
    }
}

/* cuMemFree_v2: device, managed, pool, graph and external-memory buffers at exactly p. */
static CUresult dev_free(uintptr_t p)
{
    void *host = NULL;
    pthread_mutex_lock(&g_lock);
    CUresult res = free_entry_locked(map_exact(p), &host);
    pthread_mutex_unlock(&g_lock);
    free(host);
    return res;
}

/* ------------------------------------------------------------------------ */
/* Initialisation, version, devices                                           */

CUresult CUDAAPI cuInit(unsigned int Flags)
{
    FAKE_ENTRY();
    cfg();
    trace("fakecuda: cuInit");
    if (Flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    if (g_cfg.devices == 0)
        return CUDA_ERROR_NO_DEVICE;
    pthread_mutex_lock(&g_lock);
    if (!g_inited) {
        for (int i = 0; i < FAKE_MAX_DEVICES; i++) {
            g_ctx[i].magic = FAKE_CTX_MAGIC;
            g_ctx[i].device = i;
            g_ctx[i].kind = CTX_PRIMARY;
            g_ctx[i].owner = &g_ctx[i];
        }
        __atomic_store_n(&g_inited, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&g_lock);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDriverGetVersion(int *driverVersion)
{
    FAKE_ENTRY();
    if (!driverVersion)
        return CUDA_ERROR_INVALID_VALUE;
    cfg();
    *driverVersion = g_cfg.future_variants ? FAKE_FUTURE_DRIVER_VERSION : FAKE_DRIVER_VERSION;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetCount(int *count)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!count)
        return CUDA_ERROR_INVALID_VALUE;
    *count = g_cfg.devices;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGet(CUdevice *device, int ordinal)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!device)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_dev(ordinal))
        return CUDA_ERROR_INVALID_DEVICE;
    *device = ordinal;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetName(char *name, int len, CUdevice dev)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!name || len <= 0)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_dev(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    snprintf(name, (size_t)len, "FakeCUDA Device %d", dev);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceTotalMem(size_t *bytes, CUdevice dev) /* = cuDeviceTotalMem_v2 */
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!bytes)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_dev(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    *bytes = (size_t)g_cfg.vram;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!pi || (int)attrib < 1 || attrib >= CU_DEVICE_ATTRIBUTE_MAX)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_dev(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    int v = 0;
    switch (attrib) {
    case CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS: v = g_cfg.pageable_access; break;
    case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING: v = 1; break;
    case CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS: v = 1; break;
    case CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY: v = 1; break;
    case CU_DEVICE_ATTRIBUTE_PCI_BUS_ID: v = 0x10 + dev; break;
    case CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID: v = 0; break;
    case CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID: v = 0; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: v = 9; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: v = 0; break;
    /* what the memory APIs below implement, as on an H100 */
    case CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED: v = 1; break;
    case CU_DEVICE_ATTRIBUTE_MEMPOOL_SUPPORTED_HANDLE_TYPES: v = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR; break;
    case CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED: v = 1; break;
    case CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED: v = 1; break;
    case CU_DEVICE_ATTRIBUTE_IPC_EVENT_SUPPORTED: v = 1; break;
    case CU_DEVICE_ATTRIBUTE_READ_ONLY_HOST_REGISTER_SUPPORTED: v = 1; break;
    case CU_DEVICE_ATTRIBUTE_HOST_REGISTER_SUPPORTED: v = 1; break;
    default: v = 0; break;
    }
    *pi = v;
    return CUDA_SUCCESS;
}

static CUresult get_uuid(CUuuid *uuid, CUdevice dev)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!uuid)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_dev(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    static const unsigned char tmpl[16] = {0xfa, 0x6e, 0xc0, 0xda, 0x00, 0x00, 0x40, 0x00,
                                           0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    for (int i = 0; i < 16; i++)
        uuid->bytes[i] = (char)tmpl[i];
    uuid->bytes[15] = (char)(unsigned char)dev;
    uuid->bytes[4] = (char)(unsigned char)(0x10 + dev);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetUuid(CUuuid *uuid, CUdevice dev) /* = cuDeviceGetUuid_v2 */
{
    FAKE_ENTRY();
    return get_uuid(uuid, dev);
}

CUresult CUDAAPI legacy_cuDeviceGetUuid(CUuuid *uuid, CUdevice dev) { FAKE_ENTRY(); return get_uuid(uuid, dev); }

CUresult CUDAAPI cuDeviceGetPCIBusId(char *pciBusId, int len, CUdevice dev)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!pciBusId || len <= 0)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_dev(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    snprintf(pciBusId, (size_t)len, "0000:%02x:00.0", 0x10 + dev);
    return CUDA_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Contexts                                                                   */

static void ctx_end_locked(struct fake_ctx *c); /* after the arrays: frees what c owns */

CUresult CUDAAPI cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!pctx)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_dev(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    pthread_mutex_lock(&g_lock);
    g_ctx[dev].refcount++;
    __atomic_store_n(&g_ctx[dev].dead, 0, __ATOMIC_RELEASE); /* the same handle, alive again */
    pthread_mutex_unlock(&g_lock);
    *pctx = (CUcontext)(void *)&g_ctx[dev];
    return CUDA_SUCCESS;
}

/* One reference less (g_lock held); the last one ends the context. */
static CUresult primary_release_locked(int dev)
{
    if (g_ctx[dev].refcount <= 0)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (--g_ctx[dev].refcount == 0)
        ctx_end_locked(&g_ctx[dev]);
    return CUDA_SUCCESS;
}

static CUresult primary_release(CUdevice dev)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!valid_dev(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    pthread_mutex_lock(&g_lock);
    CUresult res = primary_release_locked(dev);
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuDevicePrimaryCtxRelease(CUdevice dev) /* = cuDevicePrimaryCtxRelease_v2 */
{
    FAKE_ENTRY();
    return primary_release(dev);
}

CUresult CUDAAPI legacy_cuDevicePrimaryCtxRelease(CUdevice dev) { FAKE_ENTRY(); return primary_release(dev); }

/* Ends the primary context whatever its references (they stay). */
static CUresult primary_reset(CUdevice dev)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!valid_dev(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    pthread_mutex_lock(&g_lock);
    ctx_end_locked(&g_ctx[dev]);
    pthread_mutex_unlock(&g_lock);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDevicePrimaryCtxReset(CUdevice dev) /* = cuDevicePrimaryCtxReset_v2 */
{
    FAKE_ENTRY();
    return primary_reset(dev);
}

CUresult CUDAAPI legacy_cuDevicePrimaryCtxReset(CUdevice dev) { FAKE_ENTRY(); return primary_reset(dev); }

CUresult CUDAAPI cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int *flags, int *active)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!flags || !active)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_dev(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    pthread_mutex_lock(&g_lock);
    *flags = 0;
    *active = g_ctx[dev].refcount > 0 && !g_ctx[dev].dead;
    pthread_mutex_unlock(&g_lock);
    return CUDA_SUCCESS;
}

/* cuCtxCreate, all versions: a new context of dev, pushed on the calling
 * thread's stack. Slots of destroyed contexts are reused once all were used. */
static CUresult ctx_create(CUcontext *pctx, CUdevice dev)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!pctx)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_dev(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    if (tl_depth >= FAKE_CTX_STACK)
        return CUDA_ERROR_OUT_OF_MEMORY;
    struct fake_ctx *c = NULL;
    pthread_mutex_lock(&g_lock);
    for (int i = 0; !c && i < FAKE_MAX_CTX; i++)
        if (g_created[i].magic != FAKE_CTX_MAGIC)
            c = &g_created[i];
    for (int i = 0; !c && i < FAKE_MAX_CTX; i++)
        if (g_created[i].dead)
            c = &g_created[i];
    if (c)
        *c = (struct fake_ctx){.magic = FAKE_CTX_MAGIC, .device = dev, .kind = CTX_CREATED, .owner = c};
    pthread_mutex_unlock(&g_lock);
    if (!c)
        return CUDA_ERROR_OUT_OF_MEMORY;
    tl_stack[tl_depth++] = c;
    *pctx = (CUcontext)(void *)c;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI legacy_cuCtxCreate(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    FAKE_ENTRY();
    (void)flags;
    return ctx_create(pctx, dev);
}

CUresult CUDAAPI cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    FAKE_ENTRY();
    (void)flags;
    return ctx_create(pctx, dev);
}

CUresult CUDAAPI cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *paramsArray, int numParams, unsigned int flags,
                                CUdevice dev)
{
    FAKE_ENTRY();
    (void)paramsArray, (void)numParams, (void)flags;
    return ctx_create(pctx, dev);
}

CUresult CUDAAPI cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *ctxCreateParams, unsigned int flags, CUdevice dev)
{
    FAKE_ENTRY();
    (void)ctxCreateParams, (void)flags;
    return ctx_create(pctx, dev);
}

/* Only a created context: a primary or green one's handle is refused with
 * CUDA_ERROR_INVALID_CONTEXT, as on an H200. Popped when current here;
 * other threads keep it current and get CUDA_ERROR_CONTEXT_IS_DESTROYED. */
static CUresult ctx_destroy(CUcontext ctx)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    struct fake_ctx *c = ctx_from_handle(ctx);
    if (!c || c->kind != CTX_CREATED)
        return CUDA_ERROR_INVALID_CONTEXT;
    pthread_mutex_lock(&g_lock);
    CUresult res = c->dead ? CUDA_ERROR_CONTEXT_IS_DESTROYED : CUDA_SUCCESS;
    if (res == CUDA_SUCCESS)
        ctx_end_locked(c);
    pthread_mutex_unlock(&g_lock);
    if (res == CUDA_SUCCESS && cur_ctx() == c)
        tl_depth--;
    return res;
}

CUresult CUDAAPI cuCtxDestroy(CUcontext ctx) /* = cuCtxDestroy_v2 */
{
    FAKE_ENTRY();
    return ctx_destroy(ctx);
}

CUresult CUDAAPI legacy_cuCtxDestroy(CUcontext ctx) { FAKE_ENTRY(); return ctx_destroy(ctx); }

CUresult CUDAAPI cuCtxSetCurrent(CUcontext ctx)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!ctx) { /* pops the top of the stack, or no-op */
        if (tl_depth > 0)
            tl_depth--;
        return CUDA_SUCCESS;
    }
    struct fake_ctx *c = ctx_from_handle(ctx);
    if (!c || !valid_dev(c->device))
        return CUDA_ERROR_INVALID_CONTEXT;
    if (tl_depth == 0)
        tl_depth = 1;
    tl_stack[tl_depth - 1] = c;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxGetCurrent(CUcontext *pctx)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!pctx)
        return CUDA_ERROR_INVALID_VALUE;
    *pctx = (CUcontext)(void *)cur_ctx();
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxGetDevice(CUdevice *device)
{
    FAKE_ENTRY();
    if (!device)
        return inited() ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_NOT_INITIALIZED;
    int dev;
    CUresult res = need_ctx(&dev);
    if (res == CUDA_SUCCESS)
        *device = dev;
    return res;
}

CUresult CUDAAPI cuCtxPushCurrent(CUcontext ctx) /* = cuCtxPushCurrent_v2 */
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    struct fake_ctx *c = ctx_from_handle(ctx);
    if (!c || !valid_dev(c->device))
        return CUDA_ERROR_INVALID_CONTEXT;
    if (tl_depth >= FAKE_CTX_STACK)
        return CUDA_ERROR_OUT_OF_MEMORY;
    tl_stack[tl_depth++] = c;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxPopCurrent(CUcontext *pctx) /* = cuCtxPopCurrent_v2 */
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (tl_depth == 0)
        return CUDA_ERROR_INVALID_CONTEXT;
    struct fake_ctx *c = tl_stack[--tl_depth];
    if (pctx)
        *pctx = (CUcontext)(void *)c;
    return CUDA_SUCCESS;
}

/* ---- green contexts: a share of the SMs; allocations belong to the primary
 * context, which each green context holds one reference to ---------------- */

#define FAKE_SM_COUNT 132 /* an H100 SXM's */

CUresult CUDAAPI cuDeviceGetDevResource(CUdevice device, CUdevResource *resource, CUdevResourceType type)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!resource || type != CU_DEV_RESOURCE_TYPE_SM)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_dev(device))
        return CUDA_ERROR_INVALID_DEVICE;
    memset(resource, 0, sizeof *resource);
    resource->type = CU_DEV_RESOURCE_TYPE_SM;
    resource->sm.smCount = FAKE_SM_COUNT;
    resource->sm.minSmPartitionSize = 2;
    resource->sm.smCoscheduledAlignment = 2;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDevSmResourceSplitByCount(CUdevResource *result, unsigned int *nbGroups, const CUdevResource *input,
                                             CUdevResource *remaining, unsigned int useFlags, unsigned int minCount)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!nbGroups || !input || input->type != CU_DEV_RESOURCE_TYPE_SM || useFlags)
        return CUDA_ERROR_INVALID_VALUE;
    unsigned per = minCount < 2 ? 2 : (minCount + 1) / 2 * 2;
    unsigned n = input->sm.smCount / per;
    if (result && *nbGroups < n)
        n = *nbGroups;
    for (unsigned i = 0; result && i < n; i++) {
        result[i] = *input;
        result[i].sm.smCount = per;
    }
    if (remaining) {
        *remaining = *input;
        remaining->sm.smCount = input->sm.smCount - n * per;
    }
    *nbGroups = n;
    return CUDA_SUCCESS;
}

static char g_desc_token; /* the one resource descriptor (its contents are not modelled) */

CUresult CUDAAPI cuDevResourceGenerateDesc(CUdevResourceDesc *phDesc, CUdevResource *resources,
                                           unsigned int nbResources)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!phDesc || !resources || nbResources == 0)
        return CUDA_ERROR_INVALID_VALUE;
    *phDesc = (CUdevResourceDesc)(void *)&g_desc_token;
    return CUDA_SUCCESS;
}

static int green_index(CUgreenCtx h)
{
    char *p = (char *)(void *)h;
    if (p < g_green_handle || p >= g_green_handle + FAKE_MAX_CTX)
        return -1;
    int i = (int)(p - g_green_handle);
    return g_green[i].magic == FAKE_CTX_MAGIC && !g_green[i].dead ? i : -1;
}

CUresult CUDAAPI cuGreenCtxCreate(CUgreenCtx *phCtx, CUdevResourceDesc desc, CUdevice dev, unsigned int flags)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!phCtx || desc != (CUdevResourceDesc)(void *)&g_desc_token || !(flags & CU_GREEN_CTX_DEFAULT_STREAM))
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_dev(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    int i;
    pthread_mutex_lock(&g_lock);
    for (i = 0; i < FAKE_MAX_CTX; i++)
        if (g_green[i].magic != FAKE_CTX_MAGIC || g_green[i].dead)
            break;
    if (i < FAKE_MAX_CTX) {
        g_green[i] = (struct fake_ctx){.magic = FAKE_CTX_MAGIC, .device = dev, .kind = CTX_GREEN, .owner = &g_ctx[dev]};
        g_ctx[dev].refcount++; /* it retains the primary context */
        __atomic_store_n(&g_ctx[dev].dead, 0, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&g_lock);
    if (i == FAKE_MAX_CTX)
        return CUDA_ERROR_OUT_OF_MEMORY;
    *phCtx = (CUgreenCtx)(void *)&g_green_handle[i];
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxFromGreenCtx(CUcontext *pContext, CUgreenCtx hCtx)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!pContext)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    int i = green_index(hCtx);
    pthread_mutex_unlock(&g_lock);
    if (i < 0)
        return CUDA_ERROR_INVALID_CONTEXT;
    *pContext = (CUcontext)(void *)&g_green[i]; /* the same one each time */
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGreenCtxDestroy(CUgreenCtx hCtx)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    pthread_mutex_lock(&g_lock);
    int i = green_index(hCtx);
    if (i >= 0) {
        __atomic_store_n(&g_green[i].dead, 1, __ATOMIC_RELEASE);
        (void)primary_release_locked(g_green[i].device);
    }
    pthread_mutex_unlock(&g_lock);
    return i < 0 ? CUDA_ERROR_INVALID_CONTEXT : CUDA_SUCCESS;
}

static void sync_trim_locked(int dev);

/* A synchronisation releases pool memory above the pools' release thresholds. */
CUresult CUDAAPI cuCtxSynchronize(void)
{
    FAKE_ENTRY();
    int dev;
    CUresult res = need_ctx(&dev);
    if (res)
        return res;
    pthread_mutex_lock(&g_lock);
    sync_trim_locked(dev);
    pthread_mutex_unlock(&g_lock);
    return CUDA_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                     */

static const struct {
    int code;
    const char *name;
    const char *str;
} g_errors[] = {
    {0, "CUDA_SUCCESS", "no error"},
    {1, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {3, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {4, "CUDA_ERROR_DEINITIALIZED", "driver shutting down"},
    {34, "CUDA_ERROR_STUB_LIBRARY", "CUDA driver is a stub library"},
    {46, "CUDA_ERROR_DEVICE_UNAVAILABLE", "CUDA-capable device(s) is/are busy or unavailable"},
    {100, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {101, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {200, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {201, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {400, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {401, "CUDA_ERROR_ILLEGAL_STATE", "the operation cannot be performed in the present state"},
    {500, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {712, "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED", "part or all of the requested memory range is already mapped"},
    {713, "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED", "pointer does not correspond to a registered memory region"},
    {704, "CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED", "peer access is already enabled"},
    {705, "CUDA_ERROR_PEER_ACCESS_NOT_ENABLED", "peer access has not been enabled"},
    {800, "CUDA_ERROR_NOT_PERMITTED", "operation not permitted"},
    {801, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
    {900, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", "operation not permitted when stream is capturing"},
    {999, "CUDA_ERROR_UNKNOWN", "unknown error"},
};

static CUresult error_lookup(CUresult error, const char **pStr, int want_name)
{
    if (!pStr)
        return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < sizeof g_errors / sizeof g_errors[0]; i++)
        if (g_errors[i].code == (int)error) {
            *pStr = want_name ? g_errors[i].name : g_errors[i].str;
            return CUDA_SUCCESS;
        }
    *pStr = NULL;
    return CUDA_ERROR_INVALID_VALUE;
}

CUresult CUDAAPI cuGetErrorName(CUresult error, const char **pStr) { FAKE_ENTRY(); return error_lookup(error, pStr, 1); }
CUresult CUDAAPI cuGetErrorString(CUresult error, const char **pStr) { FAKE_ENTRY(); return error_lookup(error, pStr, 0); }

/* ------------------------------------------------------------------------ */
/* Device memory                                                              */

/* Test hook: a function run on the calling thread inside every
 * cuMemAlloc_v2, before it allocates, as a CUPTI driver-API callback (or a
 * tool's hook) runs inside the call it reports. NULL: none. */
static void (*volatile g_alloc_callback)(void *);
static void *volatile g_alloc_callback_arg;
FAKE_API void fakecuda_set_alloc_callback(void (*cb)(void *), void *arg);
FAKE_API void fakecuda_set_alloc_callback(void (*cb)(void *), void *arg)
{
    g_alloc_callback_arg = arg;
    g_alloc_callback = cb;
}

CUresult CUDAAPI cuMemAlloc(CUdeviceptr *dptr, size_t bytesize) /* = cuMemAlloc_v2 */
{
    if (g_cfg.thread_arenas && dptr && bytesize && !g_alloc_callback && !g_fault_specs && need_ctx(NULL) == 0) {
        uintptr_t p;
        int rc = arena_alloc(bytesize, &p);
        if (rc == 0)
            *dptr = (CUdeviceptr)p;
        if (rc <= 0)
            return rc ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
    }
    FAKE_ENTRY();
    void (*cb)(void *) = g_alloc_callback;
    if (cb)
        cb(g_alloc_callback_arg);
    int dev;
    CUresult res = need_ctx(&dev);
    if (res)
        return res;
    if (!dptr || bytesize == 0)
        return CUDA_ERROR_INVALID_VALUE;
    uintptr_t p;
    res = dev_alloc(dev, bytesize, 0, &p);
    if (res == CUDA_SUCCESS)
        *dptr = (CUdeviceptr)p;
    return res;
}

static CUresult pitch_of(size_t width, size_t height, unsigned elem, size_t *pitch, size_t *size)
{
    if (width == 0 || height == 0 || (elem != 4 && elem != 8 && elem != 16))
        return CUDA_ERROR_INVALID_VALUE;
    if (round_up_512(width, pitch))
        return CUDA_ERROR_INVALID_VALUE;
    if (*pitch > SIZE_MAX / height)
        return CUDA_ERROR_OUT_OF_MEMORY;
    *size = *pitch * height;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemAllocPitch(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes, size_t Height,
                                 unsigned int ElementSizeBytes) /* = cuMemAllocPitch_v2 */
{
    FAKE_ENTRY();
    int dev;
    CUresult res = need_ctx(&dev);
    if (res)
        return res;
    if (!dptr || !pPitch)
        return CUDA_ERROR_INVALID_VALUE;
    size_t pitch, size;
    if ((res = pitch_of(WidthInBytes, Height, ElementSizeBytes, &pitch, &size)))
        return res;
    uintptr_t p;
    res = dev_alloc(dev, size, 0, &p);
    if (res == CUDA_SUCCESS) {
        *dptr = (CUdeviceptr)p;
        *pPitch = pitch;
    }
    return res;
}

CUresult CUDAAPI cuMemFree(CUdeviceptr dptr) /* = cuMemFree_v2 */
{
    if (g_cfg.thread_arenas && in_arenas((uintptr_t)dptr) && inited() && !g_fault_specs)
        return arena_free((uintptr_t)dptr); /* not counted: the arenas share nothing */
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (dptr == 0)
        return CUDA_SUCCESS;
    return dev_free((uintptr_t)dptr);
}

CUresult CUDAAPI cuMemGetInfo(size_t *free_bytes, size_t *total) /* = cuMemGetInfo_v2 */
{
    FAKE_ENTRY();
    int dev;
    CUresult res = need_ctx(&dev);
    if (res)
        return res;
    if (!free_bytes || !total)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    unsigned long long charged = g_charged[dev];
    pthread_mutex_unlock(&g_lock);
    *free_bytes = (size_t)(g_cfg.vram - charged);
    *total = (size_t)g_cfg.vram;
    return CUDA_SUCCESS;
}

/* Legacy 32-bit entry points (version 2000).  The real 580 driver answers
 * CUDA_ERROR_INVALID_CONTEXT in a 64-bit process and writes nothing. */

CUresult CUDAAPI legacy_cuMemAlloc(fake_deviceptr_v1 *dptr, unsigned int bytesize)
{
    FAKE_ENTRY();
    int dev;
    CUresult res = need_ctx(&dev);
    if (res == CUDA_ERROR_NOT_INITIALIZED)
        return res;
    if (!g_cfg.legacy_alloc)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (res)
        return res;
    if (!dptr || bytesize == 0)
        return CUDA_ERROR_INVALID_VALUE;
    uintptr_t p;
    res = dev_alloc(dev, bytesize, 1, &p);
    if (res == CUDA_SUCCESS)
        *dptr = (fake_deviceptr_v1)p; /* exactly 4 bytes */
    return res;
}

CUresult CUDAAPI legacy_cuMemAllocPitch(fake_deviceptr_v1 *dptr, unsigned int *pPitch, unsigned int WidthInBytes,
                                        unsigned int Height, unsigned int ElementSizeBytes)
{
    FAKE_ENTRY();
    int dev;
    CUresult res = need_ctx(&dev);
    if (res == CUDA_ERROR_NOT_INITIALIZED)
        return res;
    if (!g_cfg.legacy_alloc)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (res)
        return res;
    if (!dptr || !pPitch)
        return CUDA_ERROR_INVALID_VALUE;
    size_t pitch, size;
    if ((res = pitch_of(WidthInBytes, Height, ElementSizeBytes, &pitch, &size)))
        return res;
    if (pitch > 0xffffffffu)
        return CUDA_ERROR_INVALID_VALUE;
    uintptr_t p;
    res = dev_alloc(dev, size, 1, &p);
    if (res == CUDA_SUCCESS) {
        *dptr = (fake_deviceptr_v1)p;
        *pPitch = (unsigned int)pitch;
    }
    return res;
}

CUresult CUDAAPI legacy_cuMemFree(fake_deviceptr_v1 dptr)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!g_cfg.legacy_alloc)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (dptr == 0)
        return CUDA_SUCCESS;
    if (in_arenas((uintptr_t)dptr))
        return arena_free((uintptr_t)dptr);
    return dev_free((uintptr_t)dptr);
}

/* ------------------------------------------------------------------------ */
/* Host memory: pinned, registered, managed                                   */

static CUresult pinned_alloc(void **pp, size_t size, unsigned flags)
{
    int dev;
    CUresult res = need_ctx(&dev);
    if (res)
        return res;
    if (!pp || size == 0 || (flags & ~(unsigned)(CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP |
                                                 CU_MEMHOSTALLOC_WRITECOMBINED)))
        return CUDA_ERROR_INVALID_VALUE;
    void *p = host_mem(size, 0);
    if (!p)
        return CUDA_ERROR_OUT_OF_MEMORY;
    if ((res = host_record(p, size, dev, K_PINNED))) {
        free(p);
        return res;
    }
    *pp = p;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemAllocHost(void **pp, size_t bytesize) /* = cuMemAllocHost_v2 */
{
    FAKE_ENTRY();
    return pinned_alloc(pp, bytesize, 0);
}

CUresult CUDAAPI legacy_cuMemAllocHost(void **pp, unsigned int bytesize) { FAKE_ENTRY(); return pinned_alloc(pp, bytesize, 0); }

CUresult CUDAAPI cuMemHostAlloc(void **pp, size_t bytesize, unsigned int Flags)
{
    FAKE_ENTRY();
    return pinned_alloc(pp, bytesize, Flags);
}

CUresult CUDAAPI cuMemFreeHost(void *p)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_alloc *a = p ? map_exact((uintptr_t)p) : NULL;
    if (!a || a->kind != K_PINNED)
        res = CUDA_ERROR_INVALID_VALUE;
    else
        map_remove(a);
    pthread_mutex_unlock(&g_lock);
    if (res == CUDA_SUCCESS)
        free(p);
    return res;
}

static CUresult host_register(void *p, size_t size, unsigned flags)
{
    int dev;
    CUresult res = need_ctx(&dev);
    if (res)
        return res;
    if (!p || size == 0 || (uintptr_t)p > UINTPTR_MAX - size ||
        (flags & ~(unsigned)(CU_MEMHOSTREGISTER_PORTABLE | CU_MEMHOSTREGISTER_DEVICEMAP |
                             CU_MEMHOSTREGISTER_IOMEMORY | CU_MEMHOSTREGISTER_READ_ONLY)))
        return CUDA_ERROR_INVALID_VALUE;
    uintptr_t lo = (uintptr_t)p, hi = lo + size;
    pthread_mutex_lock(&g_lock);
    struct fake_alloc *a = map_pred(lo, 0);
    for (a = a ? a : map_first(); a && a->start < hi; a = map_next(a)) {
        if ((a->kind == K_PINNED || a->kind == K_REGISTERED) && a->start + a->size > lo) {
            res = CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
            break;
        }
    }
    if (res == CUDA_SUCCESS) {
        /* IOMEMORY (third-party PCIe BAR) is recorded like any registration: HOST, flags kept */
        struct fake_alloc r = {
            .start = lo, .size = size, .device = dev, .kind = K_REGISTERED, .host = 1, .flags = flags, .ctx = owner_ctx()};
        if (map_insert(&r))
            res = CUDA_ERROR_OUT_OF_MEMORY;
    }
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuMemHostRegister(void *p, size_t bytesize, unsigned int Flags) /* = cuMemHostRegister_v2 */
{
    FAKE_ENTRY();
    return host_register(p, bytesize, Flags);
}

CUresult CUDAAPI legacy_cuMemHostRegister(void *p, size_t bytesize, unsigned int Flags)
{
    FAKE_ENTRY();
    return host_register(p, bytesize, Flags);
}

CUresult CUDAAPI cuMemHostUnregister(void *p)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!p)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_alloc *a = map_exact((uintptr_t)p);
    if (!a || a->kind != K_REGISTERED)
        res = CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
    else
        map_remove(a);
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
    FAKE_ENTRY();
    int dev;
    CUresult res = need_ctx(&dev);
    if (res)
        return res;
    if (!dptr || bytesize == 0 || (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST))
        return CUDA_ERROR_INVALID_VALUE;
    void *p = host_mem(bytesize, 1);
    if (!p)
        return CUDA_ERROR_OUT_OF_MEMORY;
    if ((res = host_record(p, bytesize, dev, K_MANAGED))) {
        free(p);
        return res;
    }
    *dptr = (CUdeviceptr)(uintptr_t)p;
    return CUDA_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Pointer attributes                                                         */

/* Answer one attribute for a known allocation a (a copy).  strict: the
 * singular form's errors; otherwise the plural form's NULL defaults. */
static CUresult ptr_attr(const struct fake_alloc *a, CUdeviceptr ptr, CUpointer_attribute attr, void *data,
                         int strict)
{
    int is_dev = !a->host && !a->managed;
    switch (attr) {
    case CU_POINTER_ATTRIBUTE_CONTEXT:
        *(CUcontext *)data = (CUcontext)(void *)a->ctx; /* NULL for pool, graph and VMM memory, as on an H200 */
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
        *(unsigned int *)data = a->host ? CU_MEMORYTYPE_HOST : CU_MEMORYTYPE_DEVICE;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_DEVICE_POINTER:
        *(CUdeviceptr *)data = ptr;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_HOST_POINTER:
        if (is_dev) {
            if (strict)
                return CUDA_ERROR_INVALID_VALUE;
            *(void **)data = NULL;
            return CUDA_SUCCESS;
        }
        *(void **)data = (void *)(uintptr_t)ptr;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS:
        *(unsigned int *)data = 0;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_BUFFER_ID:
        *(unsigned long long *)data = a->id;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_IS_MANAGED:
        *(unsigned int *)data = a->managed;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL:
        *(int *)data = a->device;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE:
        *(unsigned int *)data = a->kind == K_DEVICE;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
        *(CUdeviceptr *)data = (CUdeviceptr)a->start;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_RANGE_SIZE:
        *(size_t *)data = a->size;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_MAPPED:
        *(unsigned int *)data = 1;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES:
        *(unsigned long long *)data = a->handle_types;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE:
        *(void **)data = a->kind == K_POOL ? a->obj : NULL;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_IS_HW_DECOMPRESS_CAPABLE:
        *(unsigned int *)data = 0;
        return CUDA_SUCCESS;
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

/* Default ("not a CUDA pointer") value for the plural form. */
static CUresult ptr_attr_default(CUpointer_attribute attr, void *data)
{
    switch (attr) {
    case CU_POINTER_ATTRIBUTE_CONTEXT: *(CUcontext *)data = NULL; return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_MEMORY_TYPE: *(unsigned int *)data = 0; return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_DEVICE_POINTER: *(CUdeviceptr *)data = 0; return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_HOST_POINTER: *(void **)data = NULL; return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS: *(unsigned int *)data = 0; return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_BUFFER_ID: *(unsigned long long *)data = 0; return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_IS_MANAGED: *(unsigned int *)data = 0; return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL: *(int *)data = -2; return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE: *(unsigned int *)data = 0; return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR: *(CUdeviceptr *)data = 0; return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_RANGE_SIZE: *(size_t *)data = 0; return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_MAPPED: *(unsigned int *)data = 0; return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES: *(unsigned long long *)data = 0; return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE: *(void **)data = NULL; return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_IS_HW_DECOMPRESS_CAPABLE: *(unsigned int *)data = 0; return CUDA_SUCCESS;
    default: return CUDA_ERROR_INVALID_VALUE;
    }
}

static int lookup_copy(CUdeviceptr ptr, struct fake_alloc *out)
{
    pthread_mutex_lock(&g_lock);
    struct fake_alloc *a = map_find((uintptr_t)ptr);
    if (a)
        *out = *a;
    pthread_mutex_unlock(&g_lock);
    return a != NULL;
}

CUresult CUDAAPI cuPointerGetAttribute(void *data, CUpointer_attribute attribute, CUdeviceptr ptr)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!data)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_alloc a;
    if (!lookup_copy(ptr, &a))
        return CUDA_ERROR_INVALID_VALUE;
    return ptr_attr(&a, ptr, attribute, data, 1);
}

/* The allocation containing dptr (device, pool, mapped or imported memory);
 * CUDA_ERROR_NOT_FOUND for host memory and unknown pointers, as the real one. */
CUresult CUDAAPI cuMemGetAddressRange_v2(CUdeviceptr *pbase, size_t *psize, CUdeviceptr dptr)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    struct fake_alloc a;
    if (!lookup_copy(dptr, &a) || a.host)
        return CUDA_ERROR_NOT_FOUND;
    if (pbase)
        *pbase = (CUdeviceptr)a.start;
    if (psize)
        *psize = a.size;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuPointerGetAttributes(unsigned int numAttributes, CUpointer_attribute *attributes, void **data,
                                        CUdeviceptr ptr)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (numAttributes == 0 || !attributes || !data)
        return CUDA_ERROR_INVALID_VALUE;
    for (unsigned i = 0; i < numAttributes; i++)
        if (!data[i])
            return CUDA_ERROR_INVALID_VALUE;
    struct fake_alloc a;
    int known = lookup_copy(ptr, &a);
    for (unsigned i = 0; i < numAttributes; i++) {
        CUresult res = known ? ptr_attr(&a, ptr, attributes[i], data[i], 0) : ptr_attr_default(attributes[i], data[i]);
        if (res)
            return res;
    }
    return CUDA_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Streams and capture                                                        */

CUresult CUDAAPI cuStreamCreate(CUstream *phStream, unsigned int Flags)
{
    FAKE_ENTRY();
    int dev;
    CUresult res = need_ctx(&dev);
    if (res)
        return res;
    if (!phStream || (Flags & ~(unsigned)CU_STREAM_NON_BLOCKING))
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_stream *s = calloc(1, sizeof *s);
    if (!s)
        return CUDA_ERROR_OUT_OF_MEMORY;
    s->device = dev;
    s->flags = Flags;
    pthread_mutex_lock(&g_lock);
    s->next = g_streams;
    g_streams = s;
    pthread_mutex_unlock(&g_lock);
    *phStream = (CUstream)(void *)s;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamCreateWithPriority(CUstream *phStream, unsigned int flags, int priority)
{
    (void)priority; /* no FAKE_ENTRY(): cuStreamCreate counts this call */
    return cuStreamCreate(phStream, flags);
}

static CUresult stream_destroy(CUstream h)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    CUresult res = CUDA_ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&g_lock);
    for (struct fake_stream **pp = &g_streams; *pp; pp = &(*pp)->next)
        if ((void *)*pp == (void *)h) {
            struct fake_stream *s = *pp;
            *pp = s->next;
            if (s->capturing && s->cap) /* capture abandoned: its graph goes too */
                graph_free_locked(s->cap);
            free(s);
            res = CUDA_SUCCESS;
            break;
        }
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuStreamDestroy(CUstream hStream) /* = cuStreamDestroy_v2 */ { FAKE_ENTRY(); return stream_destroy(hStream); }
CUresult CUDAAPI legacy_cuStreamDestroy(CUstream hStream) { FAKE_ENTRY(); return stream_destroy(hStream); }

static CUresult stream_sync(CUstream h)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    int dev;
    struct fake_stream *s;
    pthread_mutex_lock(&g_lock);
    CUresult res = stream_dev_locked(h, &dev, &s);
    if (res == CUDA_SUCCESS && s && s->capturing)
        res = CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    if (res == CUDA_SUCCESS)
        sync_trim_locked(dev);
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuStreamSynchronize(CUstream hStream) { FAKE_ENTRY(); return stream_sync(hStream); }
CUresult CUDAAPI cuStreamSynchronize_ptsz(CUstream hStream) { FAKE_ENTRY(); return stream_sync(hStream); }

static CUresult begin_capture(CUstream h, int mode)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (mode < CU_STREAM_CAPTURE_MODE_GLOBAL || mode > CU_STREAM_CAPTURE_MODE_RELAXED)
        return CUDA_ERROR_INVALID_VALUE;
    int dev;
    struct fake_stream *s;
    pthread_mutex_lock(&g_lock);
    CUresult res = stream_dev_locked(h, &dev, &s);
    if (res == CUDA_SUCCESS && !s) /* legacy stream (documented) and, in the fake, the per-thread stream */
        res = CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    else if (res == CUDA_SUCCESS && s->capturing)
        res = CUDA_ERROR_ILLEGAL_STATE;
    else if (res == CUDA_SUCCESS && !(s->cap = graph_new_locked()))
        res = CUDA_ERROR_OUT_OF_MEMORY;
    if (res == CUDA_SUCCESS)
        s->capturing = 1;
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuStreamBeginCapture(CUstream hStream, CUstreamCaptureMode mode) /* = cuStreamBeginCapture_v2 */
{
    FAKE_ENTRY();
    return begin_capture(hStream, (int)mode);
}
CUresult CUDAAPI cuStreamBeginCapture_v2_ptsz(CUstream hStream, CUstreamCaptureMode mode)
{
    FAKE_ENTRY();
    return begin_capture(hStream == NULL ? CU_STREAM_PER_THREAD : hStream, (int)mode);
}
CUresult CUDAAPI legacy_cuStreamBeginCapture(CUstream hStream)
{
    FAKE_ENTRY();
    return begin_capture(hStream, CU_STREAM_CAPTURE_MODE_GLOBAL);
}
CUresult CUDAAPI legacy_cuStreamBeginCapture_ptsz(CUstream hStream)
{
    FAKE_ENTRY();
    return begin_capture(hStream == NULL ? CU_STREAM_PER_THREAD : hStream, CU_STREAM_CAPTURE_MODE_GLOBAL);
}

static CUresult end_capture(CUstream h, CUgraph *phGraph)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!phGraph)
        return CUDA_ERROR_INVALID_VALUE;
    int dev;
    struct fake_stream *s;
    pthread_mutex_lock(&g_lock);
    CUresult res = stream_dev_locked(h, &dev, &s);
    if (res == CUDA_SUCCESS && (!s || !s->capturing))
        res = CUDA_ERROR_ILLEGAL_STATE;
    if (res == CUDA_SUCCESS) {
        *phGraph = (CUgraph)(void *)s->cap;
        s->cap = NULL;
        s->capturing = 0;
    }
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuStreamEndCapture(CUstream hStream, CUgraph *phGraph) { FAKE_ENTRY(); return end_capture(hStream, phGraph); }
CUresult CUDAAPI cuStreamEndCapture_ptsz(CUstream hStream, CUgraph *phGraph) { FAKE_ENTRY(); return end_capture(hStream, phGraph); }

static CUresult is_capturing(CUstream h, CUstreamCaptureStatus *st)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!st)
        return CUDA_ERROR_INVALID_VALUE;
    int dev;
    struct fake_stream *s;
    pthread_mutex_lock(&g_lock);
    CUresult res = stream_dev_locked(h, &dev, &s);
    if (res == CUDA_SUCCESS)
        *st = s && s->capturing ? CU_STREAM_CAPTURE_STATUS_ACTIVE : CU_STREAM_CAPTURE_STATUS_NONE;
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuStreamIsCapturing(CUstream hStream, CUstreamCaptureStatus *captureStatus)
{
    FAKE_ENTRY();
    return is_capturing(hStream, captureStatus);
}
CUresult CUDAAPI cuStreamIsCapturing_ptsz(CUstream hStream, CUstreamCaptureStatus *captureStatus)
{
    FAKE_ENTRY();
    return is_capturing(hStream, captureStatus);
}

static CUresult stream_get_ctx(CUstream h, CUcontext *pctx)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!pctx)
        return CUDA_ERROR_INVALID_VALUE;
    int dev;
    pthread_mutex_lock(&g_lock);
    CUresult res = stream_dev_locked(h, &dev, NULL);
    pthread_mutex_unlock(&g_lock);
    if (res == CUDA_SUCCESS)
        *pctx = (CUcontext)(void *)&g_ctx[dev];
    return res;
}

CUresult CUDAAPI cuStreamGetCtx(CUstream hStream, CUcontext *pctx) { FAKE_ENTRY(); return stream_get_ctx(hStream, pctx); }
CUresult CUDAAPI cuStreamGetCtx_ptsz(CUstream hStream, CUcontext *pctx) { FAKE_ENTRY(); return stream_get_ctx(hStream, pctx); }

/* ------------------------------------------------------------------------ */
/* Stream-ordered allocation                                                  */

/* hp NULL: the current pool of the stream's device */
static CUresult alloc_async(CUdeviceptr *dptr, size_t size, CUmemoryPool hp, CUstream h)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!dptr || size == 0)
        return CUDA_ERROR_INVALID_VALUE;
    int dev;
    struct fake_stream *s;
    uintptr_t addr = 0;
    pthread_mutex_lock(&g_lock);
    CUresult res = stream_dev_locked(h, &dev, &s);
    struct fake_pool *p = NULL;
    if (res == CUDA_SUCCESS) {
        /* imported pools "may not be used in cuMemAllocFromPoolAsync" */
        p = hp ? pool_find_locked(hp) : pool_current_locked(dev);
        if (!p || p->imported)
            res = hp ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (res == CUDA_SUCCESS && s && s->capturing) {
        /* captured: a mem-alloc node with a fresh address; nothing allocated until launch */
        if (p->loc_type != CU_MEM_LOCATION_TYPE_DEVICE || p->alloc_type != CU_MEM_ALLOCATION_TYPE_PINNED)
            res = CUDA_ERROR_NOT_SUPPORTED;
        else
            res = graph_alloc_node_locked(s->cap, p->loc_id, size, &addr, NULL);
    } else if (res == CUDA_SUCCESS) {
        res = pool_alloc_locked(p, size, dev, &addr);
    }
    pthread_mutex_unlock(&g_lock);
    if (res == CUDA_SUCCESS)
        *dptr = (CUdeviceptr)addr;
    return res;
}

CUresult CUDAAPI cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
    FAKE_ENTRY();
    return alloc_async(dptr, bytesize, NULL, hStream);
}

CUresult CUDAAPI cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
    FAKE_ENTRY();
    return alloc_async(dptr, bytesize, NULL, hStream);
}

CUresult CUDAAPI cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool, CUstream hStream)
{
    FAKE_ENTRY();
    if (!pool)
        return CUDA_ERROR_INVALID_VALUE;
    return alloc_async(dptr, bytesize, pool, hStream);
}

CUresult CUDAAPI cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool, CUstream hStream)
{
    FAKE_ENTRY();
    if (!pool)
        return CUDA_ERROR_INVALID_VALUE;
    return alloc_async(dptr, bytesize, pool, hStream);
}

/* Any stream of any device may free memory of any pool (or cuMemAlloc memory). */
static CUresult free_async(CUdeviceptr dptr, CUstream h)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    int dev;
    struct fake_stream *s;
    void *host = NULL;
    pthread_mutex_lock(&g_lock);
    CUresult res = stream_dev_locked(h, &dev, &s);
    if (res == CUDA_SUCCESS && dptr != 0) {
        struct fake_alloc *a = map_exact((uintptr_t)dptr);
        if (s && s->capturing) /* captured: a mem-free node (graph allocations only) */
            res = graph_free_node_locked(s->cap, (uintptr_t)dptr, NULL);
        else
            res = free_entry_locked(a, &host);
    }
    pthread_mutex_unlock(&g_lock);
    free(host);
    return res;
}

CUresult CUDAAPI cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream) { FAKE_ENTRY(); return free_async(dptr, hStream); }
CUresult CUDAAPI cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream) { FAKE_ENTRY(); return free_async(dptr, hStream); }

/* ------------------------------------------------------------------------ */
/* Pools: default, current, create, destroy, attributes                       */

static CUresult pool_out_slot(CUmemoryPool *out, int slot, int current)
{
    pthread_mutex_lock(&g_lock);
    struct fake_pool *p = current ? pool_current_locked(slot) : pool_default_locked(slot);
    pthread_mutex_unlock(&g_lock);
    if (!p)
        return CUDA_ERROR_OUT_OF_MEMORY;
    *out = (CUmemoryPool)(void *)p;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetDefaultMemPool(CUmemoryPool *pool_out, CUdevice dev)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!pool_out)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_dev(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    return pool_out_slot(pool_out, dev, 0);
}

CUresult CUDAAPI cuDeviceGetMemPool(CUmemoryPool *pool, CUdevice dev)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!pool)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_dev(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    return pool_out_slot(pool, dev, 1);
}

static CUresult set_current_pool(int slot, CUmemoryPool hp)
{
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_pool *p = pool_find_locked(hp);
    if (!p || p->imported || p->slot != slot) /* "must be local to the device" / match location and type */
        res = CUDA_ERROR_INVALID_VALUE;
    else
        g_curpool[slot] = p;
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuDeviceSetMemPool(CUdevice dev, CUmemoryPool pool)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!valid_dev(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    return set_current_pool(dev, pool);
}

CUresult CUDAAPI cuMemGetDefaultMemPool(CUmemoryPool *pool_out, CUmemLocation *location, CUmemAllocationType type)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    int slot;
    CUresult res = slot_of(location, type, &slot);
    if (res)
        return res;
    if (!pool_out)
        return CUDA_ERROR_INVALID_VALUE;
    return pool_out_slot(pool_out, slot, 0);
}

CUresult CUDAAPI cuMemGetMemPool(CUmemoryPool *pool, CUmemLocation *location, CUmemAllocationType type)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    int slot;
    CUresult res = slot_of(location, type, &slot);
    if (res)
        return res;
    if (!pool)
        return CUDA_ERROR_INVALID_VALUE;
    return pool_out_slot(pool, slot, 1);
}

CUresult CUDAAPI cuMemSetMemPool(CUmemLocation *location, CUmemAllocationType type, CUmemoryPool pool)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    int slot;
    CUresult res = slot_of(location, type, &slot);
    if (res)
        return res;
    return set_current_pool(slot, pool);
}

CUresult CUDAAPI cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *poolProps)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!pool || !poolProps)
        return CUDA_ERROR_INVALID_VALUE;
    if (poolProps->location.type == CU_MEM_LOCATION_TYPE_HOST_NUMA_CURRENT)
        return CUDA_ERROR_INVALID_VALUE;
    int slot;
    CUresult res = slot_of(&poolProps->location, poolProps->allocType, &slot);
    if (res)
        return res;
    unsigned ht = (unsigned)poolProps->handleTypes;
    if (ht & ~(unsigned)(CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR | CU_MEM_HANDLE_TYPE_FABRIC))
        return CUDA_ERROR_INVALID_VALUE;
    if (ht && poolProps->location.type == CU_MEM_LOCATION_TYPE_HOST) /* "not IPC capable" */
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    struct fake_pool *p = pool_new_locked(slot, ht, poolProps->maxSize);
    pthread_mutex_unlock(&g_lock);
    if (!p)
        return CUDA_ERROR_OUT_OF_MEMORY;
    *pool = (CUmemoryPool)(void *)p;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemPoolDestroy(CUmemoryPool pool)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_pool *p = pool_find_locked(pool);
    if (!p || p->is_default) {
        res = CUDA_ERROR_INVALID_VALUE;
    } else {
        for (int i = 0; i < FAKE_NSLOTS; i++) /* the default becomes current again */
            if (g_curpool[i] == p)
                g_curpool[i] = NULL;
        p->destroyed = 1; /* memory released once the last pointer is freed */
        pool_maybe_release_locked(p);
    }
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuMemPoolTrimTo(CUmemoryPool pool, size_t minBytesToKeep)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_pool *p = pool_find_locked(pool);
    if (!p)
        res = CUDA_ERROR_INVALID_VALUE;
    else if (!p->imported)
        pool_trim_locked(p, minBytesToKeep);
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuMemPoolSetAttribute(CUmemoryPool pool, CUmemPool_attribute attr, void *value)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!value)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_pool *p = pool_find_locked(pool);
    if (!p) {
        res = CUDA_ERROR_INVALID_VALUE;
        goto out;
    }
    switch (attr) {
    case CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES:
        p->reuse[attr - CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES] = *(int *)value != 0;
        break;
    case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD:
        p->threshold = *(cuuint64_t *)value;
        break;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH: /* can only be reset to zero (= the current value) */
        if (*(cuuint64_t *)value != 0)
            res = CUDA_ERROR_INVALID_VALUE;
        else
            p->reserved_high = p->reserved;
        break;
    case CU_MEMPOOL_ATTR_USED_MEM_HIGH:
        if (*(cuuint64_t *)value != 0)
            res = CUDA_ERROR_INVALID_VALUE;
        else
            p->used_high = p->used;
        break;
    default: /* the CURRENT values are read-only */
        res = CUDA_ERROR_INVALID_VALUE;
        break;
    }
out:
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuMemPoolGetAttribute(CUmemoryPool pool, CUmemPool_attribute attr, void *value)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!value)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_pool *p = pool_find_locked(pool);
    if (!p) {
        res = CUDA_ERROR_INVALID_VALUE;
        goto out;
    }
    switch (attr) {
    case CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES:
        *(int *)value = p->reuse[attr - CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES];
        break;
    case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD: *(cuuint64_t *)value = p->threshold; break;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT: *(cuuint64_t *)value = p->reserved; break;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH: *(cuuint64_t *)value = p->reserved_high; break;
    case CU_MEMPOOL_ATTR_USED_MEM_CURRENT: *(cuuint64_t *)value = p->used; break;
    case CU_MEMPOOL_ATTR_USED_MEM_HIGH: *(cuuint64_t *)value = p->used_high; break;
    default: res = CUDA_ERROR_INVALID_VALUE; break;
    }
out:
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuMemPoolSetAccess(CUmemoryPool pool, const CUmemAccessDesc *map, size_t count)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!map && count)
        return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < count; i++)
        if (map[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE || !valid_dev(map[i].location.id) ||
            (map[i].flags != CU_MEM_ACCESS_FLAGS_PROT_NONE && map[i].flags != CU_MEM_ACCESS_FLAGS_PROT_READ &&
             map[i].flags != CU_MEM_ACCESS_FLAGS_PROT_READWRITE))
            return CUDA_ERROR_INVALID_VALUE;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_pool *p = pool_find_locked(pool);
    if (!p)
        res = CUDA_ERROR_INVALID_VALUE;
    else
        for (size_t i = 0; i < count; i++)
            p->access[map[i].location.id] = (unsigned char)map[i].flags;
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuMemPoolGetAccess(CUmemAccess_flags *flags, CUmemoryPool memPool, CUmemLocation *location)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!flags || !location)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_pool *p = pool_find_locked(memPool);
    if (!p)
        res = CUDA_ERROR_INVALID_VALUE;
    else if (location->type == CU_MEM_LOCATION_TYPE_DEVICE && valid_dev(location->id))
        *flags = (CUmemAccess_flags)p->access[location->id];
    else if (location->type == CU_MEM_LOCATION_TYPE_HOST || location->type == CU_MEM_LOCATION_TYPE_HOST_NUMA)
        *flags = p->loc_type != CU_MEM_LOCATION_TYPE_DEVICE ? CU_MEM_ACCESS_FLAGS_PROT_READWRITE
                                                            : CU_MEM_ACCESS_FLAGS_PROT_NONE;
    else
        res = CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_unlock(&g_lock);
    return res;
}

/* ------------------------------------------------------------------------ */
/* Pool IPC: shareable handles and pointer export                             */

CUresult CUDAAPI cuMemPoolExportToShareableHandle(void *handle_out, CUmemoryPool pool,
                                                  CUmemAllocationHandleType handleType, unsigned long long flags)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!handle_out || flags)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_share_rec rec = {.magic = FAKE_SHARE_MAGIC, .what = SHARE_POOL, .pid = (int32_t)getpid()};
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_pool *p = pool_find_locked(pool);
    if (!p || p->imported || !(p->handle_types & (unsigned)handleType))
        res = CUDA_ERROR_INVALID_VALUE;
    else if (handleType != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR)
        res = CUDA_ERROR_NOT_SUPPORTED;
    else {
        rec.loc_type = p->loc_type;
        rec.loc_id = p->loc_id;
        rec.alloc_type = p->alloc_type;
        rec.serial = p->serial;
    }
    pthread_mutex_unlock(&g_lock);
    if (res)
        return res;
    int fd = share_fd_create(&rec);
    if (fd < 0)
        return CUDA_ERROR_OUT_OF_MEMORY;
    *(int *)handle_out = fd;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemPoolImportFromShareableHandle(CUmemoryPool *pool_out, void *handle,
                                                    CUmemAllocationHandleType handleType, unsigned long long flags)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!pool_out || flags)
        return CUDA_ERROR_INVALID_VALUE;
    if (handleType != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR)
        return CUDA_ERROR_NOT_SUPPORTED;
    struct fake_share_rec rec;
    if (share_fd_read((int)(intptr_t)handle, SHARE_POOL, &rec))
        return CUDA_ERROR_INVALID_VALUE;
    CUmemLocation loc = {.type = (CUmemLocationType)rec.loc_type, .id = rec.loc_id};
    int slot;
    CUresult res = slot_of(&loc, (CUmemAllocationType)rec.alloc_type, &slot);
    if (res)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    struct fake_pool *p = pool_new_locked(slot, (unsigned)handleType, 0);
    if (p) {
        p->imported = 1;
        p->charge_dev = -1; /* the exporter's memory: not charged here */
        p->src_serial = rec.serial;
    }
    pthread_mutex_unlock(&g_lock);
    if (!p)
        return CUDA_ERROR_OUT_OF_MEMORY;
    *pool_out = (CUmemoryPool)(void *)p;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemPoolExportPointer(CUmemPoolPtrExportData *shareData_out, CUdeviceptr ptr)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!shareData_out)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_share_rec rec = {.magic = FAKE_SHARE_MAGIC, .what = SHARE_PTR, .pid = (int32_t)getpid()};
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_alloc *a = map_exact((uintptr_t)ptr);
    struct fake_pool *p = a && a->kind == K_POOL ? a->obj : NULL;
    if (!p || p->imported || !p->handle_types) {
        res = CUDA_ERROR_INVALID_VALUE;
    } else {
        rec.size = a->size;
        rec.serial = p->serial;
        rec.device = a->device;
    }
    pthread_mutex_unlock(&g_lock);
    if (res == CUDA_SUCCESS) {
        memset(shareData_out, 0, sizeof *shareData_out);
        memcpy(shareData_out->reserved, &rec, sizeof rec);
    }
    return res;
}

CUresult CUDAAPI cuMemPoolImportPointer(CUdeviceptr *ptr_out, CUmemoryPool pool, CUmemPoolPtrExportData *shareData)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!ptr_out || !shareData)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_share_rec rec;
    memcpy(&rec, shareData->reserved, sizeof rec);
    if (rec.magic != FAKE_SHARE_MAGIC || rec.what != SHARE_PTR || rec.size == 0)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult res = CUDA_SUCCESS;
    uintptr_t addr = 0;
    pthread_mutex_lock(&g_lock);
    struct fake_pool *p = pool_find_locked(pool);
    if (!p || !p->imported || p->src_serial != rec.serial) {
        res = CUDA_ERROR_INVALID_VALUE;
    } else {
        int on_dev = p->loc_type == CU_MEM_LOCATION_TYPE_DEVICE;
        size_t r = (size_t)(rec.size + FAKE_ALIGN - 1) / FAKE_ALIGN * FAKE_ALIGN;
        if (on_dev ? va_dev_locked(p->loc_id, r, &addr) : va_vmm_locked(r, FAKE_ALIGN, &addr)) {
            res = CUDA_ERROR_OUT_OF_MEMORY;
        } else {
            int managed = p->alloc_type == CU_MEM_ALLOCATION_TYPE_MANAGED;
            struct fake_alloc a = {.start = addr,
                                   .size = (size_t)rec.size,
                                   .device = on_dev ? p->loc_id : rec.device,
                                   .kind = K_POOL,
                                   .host = !managed && !on_dev,
                                   .managed = managed,
                                   .handle_types = p->handle_types,
                                   .obj = p};
            if (map_insert(&a))
                res = CUDA_ERROR_OUT_OF_MEMORY;
            else
                p->live++;
        }
    }
    pthread_mutex_unlock(&g_lock);
    if (res == CUDA_SUCCESS)
        *ptr_out = (CUdeviceptr)addr;
    return res;
}

/* ------------------------------------------------------------------------ */
/* Graphs                                                                     */

CUresult CUDAAPI cuGraphCreate(CUgraph *phGraph, unsigned int flags)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!phGraph || flags)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    struct fake_graph *g = graph_new_locked();
    pthread_mutex_unlock(&g_lock);
    if (!g)
        return CUDA_ERROR_OUT_OF_MEMORY;
    *phGraph = (CUgraph)(void *)g;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGraphDestroy(CUgraph hGraph)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_graph *g = graph_find_locked(hGraph);
    if (!g)
        res = CUDA_ERROR_INVALID_VALUE;
    else
        graph_free_locked(g);
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuGraphAddMemAllocNode(CUgraphNode *phGraphNode, CUgraph hGraph, const CUgraphNode *dependencies,
                                        size_t numDependencies, CUDA_MEM_ALLOC_NODE_PARAMS *nodeParams)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!phGraphNode || !nodeParams || (numDependencies && !dependencies) || nodeParams->bytesize == 0)
        return CUDA_ERROR_INVALID_VALUE;
    const CUmemPoolProps *pp = &nodeParams->poolProps;
    /* device-located, pinned, no IPC handle types (as the real driver requires) */
    if (pp->location.type != CU_MEM_LOCATION_TYPE_DEVICE || !valid_dev(pp->location.id) ||
        pp->allocType != CU_MEM_ALLOCATION_TYPE_PINNED || pp->handleTypes != CU_MEM_HANDLE_TYPE_NONE)
        return CUDA_ERROR_INVALID_VALUE;
    uintptr_t addr = 0;
    struct fake_node *node = NULL;
    CUresult res;
    pthread_mutex_lock(&g_lock);
    struct fake_graph *g = graph_find_locked(hGraph);
    res = g ? graph_alloc_node_locked(g, pp->location.id, nodeParams->bytesize, &addr, &node) : CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_unlock(&g_lock);
    if (res == CUDA_SUCCESS) {
        nodeParams->dptr = (CUdeviceptr)addr;
        *phGraphNode = (CUgraphNode)(void *)node;
    }
    return res;
}

CUresult CUDAAPI cuGraphAddMemFreeNode(CUgraphNode *phGraphNode, CUgraph hGraph, const CUgraphNode *dependencies,
                                       size_t numDependencies, CUdeviceptr dptr)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!phGraphNode || (numDependencies && !dependencies))
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_node *node = NULL;
    pthread_mutex_lock(&g_lock);
    struct fake_graph *g = graph_find_locked(hGraph);
    CUresult res = g ? graph_free_node_locked(g, (uintptr_t)dptr, &node) : CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_unlock(&g_lock);
    if (res == CUDA_SUCCESS)
        *phGraphNode = (CUgraphNode)(void *)node;
    return res;
}

static CUresult instantiate(CUgraphExec *phGraphExec, CUgraph hGraph, unsigned long long flags)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!phGraphExec || (flags & ~0xfULL))
        return CUDA_ERROR_INVALID_VALUE;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_graph *g = graph_find_locked(hGraph);
    struct fake_exec *e = g ? calloc(1, sizeof *e) : NULL;
    if (!g) {
        res = CUDA_ERROR_INVALID_VALUE;
    } else if (!e || (g->n && (!(e->types = calloc(g->n, sizeof *e->types)) ||
                               !(e->gas = calloc(g->n, sizeof *e->gas))))) {
        if (e) {
            free(e->types);
            free(e);
        }
        res = CUDA_ERROR_OUT_OF_MEMORY;
    } else {
        e->n = g->n;
        e->flags = flags;
        for (size_t i = 0; i < g->n; i++) {
            e->types[i] = g->nodes[i]->type;
            e->gas[i] = g->nodes[i]->ga;
            e->gas[i]->refs++;
        }
        e->next = g_execs;
        g_execs = e;
        *phGraphExec = (CUgraphExec)(void *)e;
    }
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuGraphInstantiateWithFlags(CUgraphExec *phGraphExec, CUgraph hGraph, unsigned long long flags)
{
    FAKE_ENTRY();
    return instantiate(phGraphExec, hGraph, flags);
}

/* legacy 5-argument forms (cuda.h maps cuGraphInstantiate to ...WithFlags) */
CUresult CUDAAPI legacy_cuGraphInstantiate(CUgraphExec *phGraphExec, CUgraph hGraph, CUgraphNode *phErrorNode,
                                           char *logBuffer, size_t bufferSize)
{
    FAKE_ENTRY();
    (void)phErrorNode;
    if (logBuffer && bufferSize)
        logBuffer[0] = 0;
    return instantiate(phGraphExec, hGraph, 0);
}

CUresult CUDAAPI cuGraphInstantiate_v2(CUgraphExec *phGraphExec, CUgraph hGraph, CUgraphNode *phErrorNode,
                                       char *logBuffer, size_t bufferSize)
{
    /* no FAKE_ENTRY(): legacy_cuGraphInstantiate counts this call */
    return legacy_cuGraphInstantiate(phGraphExec, hGraph, phErrorNode, logBuffer, bufferSize);
}

CUresult CUDAAPI cuGraphExecDestroy(CUgraphExec hGraphExec)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_exec *e = exec_find_locked(hGraphExec);
    if (!e) {
        res = CUDA_ERROR_INVALID_VALUE;
    } else {
        for (struct fake_exec **pp = &g_execs; *pp; pp = &(*pp)->next)
            if (*pp == e) {
                *pp = e->next;
                break;
            }
        for (size_t i = 0; i < e->n; i++) {
            e->gas[i]->refs--;
            ga_maybe_release_locked(e->gas[i]);
        }
        free(e->types);
        free(e->gas);
        free(e);
    }
    pthread_mutex_unlock(&g_lock);
    return res;
}

/* A launch allocates the graph's allocation nodes from the per-device graph
 * pool: used += what the graph leaves allocated; reserved grows (2 MiB
 * units, charged to the device) to cover the peak inside the launch. */
static CUresult graph_launch(CUgraphExec hGraphExec, CUstream h)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    int dev;
    pthread_mutex_lock(&g_lock);
    CUresult res = stream_dev_locked(h, &dev, NULL);
    struct fake_exec *e = res ? NULL : exec_find_locked(hGraphExec);
    if (res == CUDA_SUCCESS && !e)
        res = CUDA_ERROR_INVALID_VALUE;
    if (res)
        goto out;
    long long cur[FAKE_MAX_DEVICES] = {0}, peak[FAKE_MAX_DEVICES] = {0};
    for (size_t i = 0; i < e->n; i++)
        e->gas[i]->now_live = e->gas[i]->live;
    if (e->flags & CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH)
        for (size_t i = 0; i < e->n; i++)
            if (e->types[i] == N_ALLOC && e->gas[i]->now_live) {
                e->gas[i]->now_live = 0;
                cur[e->gas[i]->dev] -= (long long)e->gas[i]->r;
            }
    for (size_t i = 0; i < e->n && res == CUDA_SUCCESS; i++) {
        struct fake_galloc *ga = e->gas[i];
        if (e->types[i] == N_ALLOC) {
            if (ga->now_live) /* allocations of a previous launch not freed */
                res = CUDA_ERROR_INVALID_VALUE;
            ga->now_live = 1;
            cur[ga->dev] += (long long)ga->r;
            if (cur[ga->dev] > peak[ga->dev])
                peak[ga->dev] = cur[ga->dev];
        } else {
            if (!ga->now_live)
                res = CUDA_ERROR_INVALID_VALUE;
            ga->now_live = 0;
            cur[ga->dev] -= (long long)ga->r;
        }
    }
    unsigned long long nres[FAKE_MAX_DEVICES];
    for (int d = 0; d < FAKE_MAX_DEVICES && res == CUDA_SUCCESS; d++) {
        nres[d] = max_ull(g_gres[d], round_up_gran(g_gused[d] + (unsigned long long)peak[d]));
        if (nres[d] - g_gres[d] > g_cfg.vram - g_charged[d])
            res = CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (res)
        goto out;
    for (int d = 0; d < FAKE_MAX_DEVICES; d++) {
        (void)charge_locked(d, nres[d] - g_gres[d]);
        g_gres[d] = nres[d];
        g_gused[d] = (unsigned long long)((long long)g_gused[d] + cur[d]);
        if (g_gres[d] > g_gres_high[d])
            g_gres_high[d] = g_gres[d];
        if (g_gused[d] > g_gused_high[d])
            g_gused_high[d] = g_gused[d];
    }
    for (size_t i = 0; i < e->n; i++)
        e->gas[i]->live = e->gas[i]->now_live;
out:
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream) { FAKE_ENTRY(); return graph_launch(hGraphExec, hStream); }
CUresult CUDAAPI cuGraphLaunch_ptsz(CUgraphExec hGraphExec, CUstream hStream)
{
    FAKE_ENTRY();
    return graph_launch(hGraphExec, hStream);
}

CUresult CUDAAPI cuDeviceGetGraphMemAttribute(CUdevice device, CUgraphMem_attribute attr, void *value)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!value)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_dev(device))
        return CUDA_ERROR_INVALID_DEVICE;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    switch (attr) {
    case CU_GRAPH_MEM_ATTR_USED_MEM_CURRENT: *(cuuint64_t *)value = g_gused[device]; break;
    case CU_GRAPH_MEM_ATTR_USED_MEM_HIGH: *(cuuint64_t *)value = g_gused_high[device]; break;
    case CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT: *(cuuint64_t *)value = g_gres[device]; break;
    case CU_GRAPH_MEM_ATTR_RESERVED_MEM_HIGH: *(cuuint64_t *)value = g_gres_high[device]; break;
    default: res = CUDA_ERROR_INVALID_VALUE; break;
    }
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuDeviceSetGraphMemAttribute(CUdevice device, CUgraphMem_attribute attr, void *value)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!value || *(cuuint64_t *)value != 0) /* high watermarks can only be reset to zero */
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_dev(device))
        return CUDA_ERROR_INVALID_DEVICE;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    if (attr == CU_GRAPH_MEM_ATTR_USED_MEM_HIGH)
        g_gused_high[device] = g_gused[device];
    else if (attr == CU_GRAPH_MEM_ATTR_RESERVED_MEM_HIGH)
        g_gres_high[device] = g_gres[device];
    else
        res = CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuDeviceGraphMemTrim(CUdevice device)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!valid_dev(device))
        return CUDA_ERROR_INVALID_DEVICE;
    pthread_mutex_lock(&g_lock);
    unsigned long long target = round_up_gran(g_gused[device]);
    if (target < g_gres[device]) {
        uncharge_locked(device, g_gres[device] - target);
        g_gres[device] = target;
    }
    pthread_mutex_unlock(&g_lock);
    return CUDA_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Virtual memory management                                                  */

CUresult CUDAAPI cuMemGetAllocationGranularity(size_t *granularity, const CUmemAllocationProp *prop,
                                               CUmemAllocationGranularity_flags option)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!granularity || (option != CU_MEM_ALLOC_GRANULARITY_MINIMUM && option != CU_MEM_ALLOC_GRANULARITY_RECOMMENDED))
        return CUDA_ERROR_INVALID_VALUE;
    CUresult res = vmm_prop_check(prop);
    if (res)
        return res;
    *granularity = (size_t)FAKE_GRAN;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size, const CUmemAllocationProp *prop,
                             unsigned long long flags)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!handle || flags || size == 0 || size % FAKE_GRAN)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult res = vmm_prop_check(prop);
    if (res)
        return res;
    /* device-located: charged now; host-located: not VRAM, no backing store
     * kept (the mapping stays synthetic) */
    int dev = prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE ? prop->location.id : -1;
    pthread_mutex_lock(&g_lock);
    struct fake_phys *ph = NULL;
    if (dev >= 0 && charge_locked(dev, size))
        res = CUDA_ERROR_OUT_OF_MEMORY;
    else if (!(ph = phys_new_locked(size, prop, dev, 0))) {
        if (dev >= 0)
            uncharge_locked(dev, size);
        res = CUDA_ERROR_OUT_OF_MEMORY;
    }
    pthread_mutex_unlock(&g_lock);
    if (res == CUDA_SUCCESS)
        *handle = (CUmemGenericAllocationHandle)(uintptr_t)ph;
    return res;
}

CUresult CUDAAPI cuMemRelease(CUmemGenericAllocationHandle handle)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_phys *ph = phys_find_locked(handle);
    if (!ph) {
        res = CUDA_ERROR_INVALID_VALUE;
    } else {
        ph->refs--;
        phys_maybe_free_locked(ph); /* kept while mapped */
    }
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment, CUdeviceptr addr,
                                     unsigned long long flags)
{
    FAKE_ENTRY();
    (void)addr; /* only a hint */
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!ptr || flags || size == 0 || size % 4096 || (alignment & (alignment - 1)))
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_resv *rv = calloc(1, sizeof *rv);
    if (!rv)
        return CUDA_ERROR_OUT_OF_MEMORY;
    CUresult res = CUDA_SUCCESS;
    uintptr_t start;
    pthread_mutex_lock(&g_lock);
    if (va_vmm_locked(size, max_ull(alignment, FAKE_GRAN), &start)) {
        res = CUDA_ERROR_OUT_OF_MEMORY;
        free(rv);
    } else {
        rv->start = start;
        rv->size = size;
        rv->next = g_resv;
        g_resv = rv;
        *ptr = (CUdeviceptr)start;
    }
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuMemAddressFree(CUdeviceptr ptr, size_t size)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    CUresult res = CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    for (struct fake_resv **pp = &g_resv; *pp; pp = &(*pp)->next) {
        struct fake_resv *rv = *pp;
        if (rv->start == (uintptr_t)ptr && rv->size == size) {
            if (!map_overlaps(rv->start, rv->start + rv->size)) { /* still mapped: refused */
                *pp = rv->next;
                free(rv);
                res = CUDA_SUCCESS;
            }
            break;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return res;
}

static struct fake_resv *resv_containing_locked(uintptr_t lo, size_t size)
{
    for (struct fake_resv *rv = g_resv; rv; rv = rv->next)
        if (lo >= rv->start && size <= rv->size && lo - rv->start <= rv->size - size)
            return rv;
    return NULL;
}

CUresult CUDAAPI cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle,
                          unsigned long long flags)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (flags || offset || size == 0 || size % FAKE_GRAN || ptr % FAKE_GRAN) /* offset: "currently must be zero" */
        return CUDA_ERROR_INVALID_VALUE;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_phys *ph = phys_find_locked(handle);
    if (!ph || size > ph->size || !resv_containing_locked((uintptr_t)ptr, size) ||
        map_overlaps((uintptr_t)ptr, (uintptr_t)ptr + size)) {
        res = CUDA_ERROR_INVALID_VALUE;
    } else {
        int on_dev = ph->prop.location.type == CU_MEM_LOCATION_TYPE_DEVICE;
        struct fake_alloc a = {.start = (uintptr_t)ptr,
                               .size = size,
                               .device = on_dev ? ph->prop.location.id : -1, /* CU_DEVICE_CPU */
                               .kind = K_VMM,
                               .host = !on_dev,
                               .handle_types = (unsigned)ph->prop.requestedHandleTypes,
                               .obj = ph};
        if (map_insert(&a))
            res = CUDA_ERROR_OUT_OF_MEMORY;
        else
            ph->maps++;
    }
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuMemUnmap(CUdeviceptr ptr, size_t size)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    uintptr_t lo = (uintptr_t)ptr, hi = lo + size;
    if (size == 0 || hi < lo)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    /* whole mappings only: every mapping touching [lo, hi) must lie inside it */
    struct fake_alloc *before = map_pred(lo, 1), *first = before ? map_next(before) : map_first(), *a;
    size_t n = 0; /* first: the first entry starting at or after lo */
    if (before && before->start + before->size > lo)
        res = CUDA_ERROR_INVALID_VALUE;
    for (a = first; res == CUDA_SUCCESS && a && a->start < hi; a = map_next(a), n++)
        if (a->kind != K_VMM || a->start + a->size > hi)
            res = CUDA_ERROR_INVALID_VALUE;
    if (res == CUDA_SUCCESS && n == 0)
        res = CUDA_ERROR_INVALID_VALUE;
    for (a = first; res == CUDA_SUCCESS && n-- > 0; a = first) {
        struct fake_phys *ph = a->obj;
        first = map_next(a);
        map_remove(a);
        ph->maps--;
        phys_maybe_free_locked(ph); /* released before the unmap: freed now */
    }
    pthread_mutex_unlock(&g_lock);
    return res;
}

static int access_index(const CUmemLocation *loc)
{
    if (loc->type == CU_MEM_LOCATION_TYPE_DEVICE)
        return valid_dev(loc->id) ? loc->id : -1;
    if (loc->type == CU_MEM_LOCATION_TYPE_HOST || loc->type == CU_MEM_LOCATION_TYPE_HOST_NUMA)
        return FAKE_MAX_DEVICES;
    return -1;
}

CUresult CUDAAPI cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc, size_t count)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!desc || count == 0 || size == 0)
        return CUDA_ERROR_INVALID_VALUE;
    for (size_t k = 0; k < count; k++)
        if (access_index(&desc[k].location) < 0 ||
            (desc[k].flags != CU_MEM_ACCESS_FLAGS_PROT_NONE && desc[k].flags != CU_MEM_ACCESS_FLAGS_PROT_READ &&
             desc[k].flags != CU_MEM_ACCESS_FLAGS_PROT_READWRITE))
            return CUDA_ERROR_INVALID_VALUE;
    uintptr_t lo = (uintptr_t)ptr, hi = lo + size;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    /* the range must be fully mapped */
    for (uintptr_t pos = lo; pos < hi && res == CUDA_SUCCESS;) {
        struct fake_alloc *a = map_find(pos);
        if (!a || a->kind != K_VMM)
            res = CUDA_ERROR_INVALID_VALUE;
        else
            pos = a->start + a->size;
    }
    for (uintptr_t pos = lo; pos < hi && res == CUDA_SUCCESS;) {
        struct fake_alloc *a = map_find(pos);
        for (size_t k = 0; k < count; k++)
            a->acc[access_index(&desc[k].location)] = (unsigned char)desc[k].flags;
        pos = a->start + a->size;
    }
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuMemGetAccess(unsigned long long *flags, const CUmemLocation *location, CUdeviceptr ptr)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!flags || !location || access_index(location) < 0)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_alloc *a = map_find((uintptr_t)ptr);
    if (!a || a->kind != K_VMM)
        res = CUDA_ERROR_INVALID_VALUE;
    else
        *flags = a->acc[access_index(location)];
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuMemRetainAllocationHandle(CUmemGenericAllocationHandle *handle, void *addr)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!handle)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_alloc *a = map_find((uintptr_t)addr); /* any address inside a mapping */
    if (!a || a->kind != K_VMM) {
        res = CUDA_ERROR_INVALID_VALUE;
    } else {
        struct fake_phys *ph = a->obj;
        ph->refs++; /* needs its own cuMemRelease */
        *handle = (CUmemGenericAllocationHandle)(uintptr_t)ph;
    }
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuMemGetAllocationPropertiesFromHandle(CUmemAllocationProp *prop, CUmemGenericAllocationHandle handle)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!prop)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_phys *ph = phys_find_locked(handle);
    if (!ph)
        res = CUDA_ERROR_INVALID_VALUE;
    else
        *prop = ph->prop;
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuMemExportToShareableHandle(void *shareableHandle, CUmemGenericAllocationHandle handle,
                                              CUmemAllocationHandleType handleType, unsigned long long flags)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!shareableHandle || flags)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_share_rec rec = {.magic = FAKE_SHARE_MAGIC, .what = SHARE_PHYS, .pid = (int32_t)getpid()};
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_phys *ph = phys_find_locked(handle);
    if (!ph || !((unsigned)ph->prop.requestedHandleTypes & (unsigned)handleType))
        res = CUDA_ERROR_INVALID_VALUE;
    else if (handleType != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR) /* fabric: no IMEX channel here */
        res = CUDA_ERROR_NOT_SUPPORTED;
    else {
        rec.size = ph->size;
        rec.loc_type = ph->prop.location.type;
        rec.loc_id = ph->prop.location.id;
        rec.alloc_type = ph->prop.type;
    }
    pthread_mutex_unlock(&g_lock);
    if (res)
        return res;
    int fd = share_fd_create(&rec);
    if (fd < 0)
        return CUDA_ERROR_OUT_OF_MEMORY;
    *(int *)shareableHandle = fd;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemImportFromShareableHandle(CUmemGenericAllocationHandle *handle, void *osHandle,
                                                CUmemAllocationHandleType shHandleType)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!handle)
        return CUDA_ERROR_INVALID_VALUE;
    if (shHandleType != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR)
        return CUDA_ERROR_NOT_SUPPORTED;
    struct fake_share_rec rec;
    if (share_fd_read((int)(intptr_t)osHandle, SHARE_PHYS, &rec))
        return CUDA_ERROR_INVALID_VALUE;
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = (CUmemAllocationType)rec.alloc_type;
    prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
    prop.location.type = (CUmemLocationType)rec.loc_type;
    prop.location.id = rec.loc_id;
    if (prop.location.type == CU_MEM_LOCATION_TYPE_DEVICE && !valid_dev(prop.location.id))
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    struct fake_phys *ph = phys_new_locked((size_t)rec.size, &prop, -1 /* the exporter's: not charged again */, 1);
    pthread_mutex_unlock(&g_lock);
    if (!ph)
        return CUDA_ERROR_OUT_OF_MEMORY;
    *handle = (CUmemGenericAllocationHandle)(uintptr_t)ph;
    return CUDA_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Arrays                                                                     */

struct fake_array {
    int mip;
    CUDA_ARRAY3D_DESCRIPTOR desc;
    unsigned levels;
    size_t charged; /* 0 for a sparse or deferred-mapping array: its memory is mapped VMM handles */
    size_t size;    /* what its memory requirements say */
    int dev;
    struct fake_ctx *ctx;
    struct fake_array *next;
};
static struct fake_array *g_arrays;

/* bytes of one element (all channels); 0: unsupported format/channel count */
static size_t array_elem_bytes(CUarray_format f, unsigned ch)
{
    size_t per;
    switch (f) {
    case CU_AD_FORMAT_UNSIGNED_INT8:
    case CU_AD_FORMAT_SIGNED_INT8: per = 1; break;
    case CU_AD_FORMAT_UNSIGNED_INT16:
    case CU_AD_FORMAT_SIGNED_INT16:
    case CU_AD_FORMAT_HALF: per = 2; break;
    case CU_AD_FORMAT_UNSIGNED_INT32:
    case CU_AD_FORMAT_SIGNED_INT32:
    case CU_AD_FORMAT_FLOAT: per = 4; break;
    /* packed formats: the channel count is part of the format */
    case CU_AD_FORMAT_UNORM_INT8X1: case CU_AD_FORMAT_SNORM_INT8X1: return 1;
    case CU_AD_FORMAT_UNORM_INT8X2: case CU_AD_FORMAT_SNORM_INT8X2: return 2;
    case CU_AD_FORMAT_UNORM_INT8X4: case CU_AD_FORMAT_SNORM_INT8X4: return 4;
    case CU_AD_FORMAT_UNORM_INT16X1: case CU_AD_FORMAT_SNORM_INT16X1: return 2;
    case CU_AD_FORMAT_UNORM_INT16X2: case CU_AD_FORMAT_SNORM_INT16X2: return 4;
    case CU_AD_FORMAT_UNORM_INT16X4: case CU_AD_FORMAT_SNORM_INT16X4: return 8;
    default: return 0;
    }
    return (ch == 1 || ch == 2 || ch == 4) ? per * ch : 0;
}

/* round_up(w*max(h,1)*max(d,1)*elem, 512) summed over mip levels */
static CUresult array_size(const CUDA_ARRAY3D_DESCRIPTOR *d, unsigned levels, size_t *out)
{
    size_t elem = array_elem_bytes(d->Format, d->NumChannels);
    if (!elem || d->Width == 0 || (d->Depth && !d->Height && !(d->Flags & CUDA_ARRAY3D_LAYERED)) || levels == 0 ||
        levels > 32)
        return CUDA_ERROR_INVALID_VALUE;
    size_t total = 0;
    for (unsigned l = 0; l < levels; l++) {
        size_t w = d->Width >> l ? d->Width >> l : 1;
        size_t h = d->Height ? (d->Height >> l ? d->Height >> l : 1) : 1;
        size_t z = !d->Depth ? 1 : (d->Flags & CUDA_ARRAY3D_LAYERED) ? d->Depth : (d->Depth >> l ? d->Depth >> l : 1);
        size_t b, r;
        if (__builtin_mul_overflow(w, h, &b) || __builtin_mul_overflow(b, z, &b) ||
            __builtin_mul_overflow(b, elem, &b) || round_up_512(b, &r) || __builtin_add_overflow(total, r, &total))
            return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *out = total;
    return CUDA_SUCCESS;
}

static CUresult array_create(void **out, const CUDA_ARRAY3D_DESCRIPTOR *desc, unsigned levels, int mip)
{
    int dev;
    CUresult res = need_ctx(&dev);
    if (res)
        return res;
    if (!out || !desc)
        return CUDA_ERROR_INVALID_VALUE;
    size_t size;
    if ((res = array_size(desc, levels, &size)))
        return res;
    struct fake_array *a = calloc(1, sizeof *a);
    if (!a)
        return CUDA_ERROR_OUT_OF_MEMORY;
    /* sparse and deferred-mapping arrays allocate nothing (measured on an H200) */
    int vmm_backed = (desc->Flags & (CUDA_ARRAY3D_SPARSE | CUDA_ARRAY3D_DEFERRED_MAPPING)) != 0;
    *a = (struct fake_array){.mip = mip,
                             .desc = *desc,
                             .levels = levels,
                             .charged = vmm_backed ? 0 : size,
                             .size = size,
                             .dev = dev,
                             .ctx = owner_ctx()};
    pthread_mutex_lock(&g_lock);
    if (charge_locked(dev, a->charged)) {
        res = CUDA_ERROR_OUT_OF_MEMORY;
    } else {
        a->next = g_arrays;
        g_arrays = a;
    }
    pthread_mutex_unlock(&g_lock);
    if (res) {
        free(a);
        return res;
    }
    *out = a;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuArray3DCreate(CUarray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *pAllocateArray) /* = _v2 */
{
    FAKE_ENTRY();
    return array_create((void **)pHandle, pAllocateArray, 1, 0);
}

CUresult CUDAAPI cuArrayCreate(CUarray *pHandle, const CUDA_ARRAY_DESCRIPTOR *pAllocateArray) /* = _v2 */
{
    FAKE_ENTRY();
    if (!pAllocateArray)
        return array_create((void **)pHandle, NULL, 1, 0);
    CUDA_ARRAY3D_DESCRIPTOR d = {.Width = pAllocateArray->Width,
                                 .Height = pAllocateArray->Height,
                                 .Depth = 0,
                                 .Format = pAllocateArray->Format,
                                 .NumChannels = pAllocateArray->NumChannels,
                                 .Flags = 0};
    return array_create((void **)pHandle, &d, 1, 0);
}

CUresult CUDAAPI cuMipmappedArrayCreate(CUmipmappedArray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *pMipmappedArrayDesc,
                                        unsigned int numMipmapLevels)
{
    FAKE_ENTRY();
    return array_create((void **)pHandle, pMipmappedArrayDesc, numMipmapLevels, 1);
}

/* ---- VMM memory mapped into sparse and deferred-mapping arrays ---------------
 * One record per map operation: a deferred-mapping array is mapped whole (the
 * subresource is ignored), a sparse one by tiles of a level region (64 x 64 x 1
 * elements, as an H200 answers for 4-channel floats) or bytes of its mip tail
 * (64 KiB tiles). Mapping or unmapping tiles takes them from the records they
 * overlap; a record left with no tile ends, and its handle loses a mapping
 * (its memory goes once released and unmapped everywhere: so on an H200, also
 * when a sparse region is unmapped in pieces). Destroying the array ends all
 * of its records. Tiles unmapped twice are not told apart (a record may end
 * early when unmaps overlap each other). */

#define FAKE_TILE_W 64u
#define FAKE_TILE_H 64u
#define FAKE_MIPTAIL_TILE 65536ull

struct fake_amap {
    struct fake_array *arr;
    struct fake_phys *ph;
    int whole, miptail;
    unsigned level, layer;
    unsigned long long lo[3], hi[3]; /* level: x, y, z; mip tail: bytes in lo[0]..hi[0] */
    unsigned long long tiles;        /* left */
    struct fake_amap *next;
};
static struct fake_amap *g_amaps;

static unsigned long long tiles_in(const struct fake_amap *r)
{
    if (r->whole)
        return 1;
    if (r->miptail)
        return (r->hi[0] - r->lo[0] + FAKE_MIPTAIL_TILE - 1) / FAKE_MIPTAIL_TILE;
    unsigned long long w = (r->hi[0] - r->lo[0] + FAKE_TILE_W - 1) / FAKE_TILE_W;
    unsigned long long h = (r->hi[1] - r->lo[1] + FAKE_TILE_H - 1) / FAKE_TILE_H;
    return w * h * (r->hi[2] > r->lo[2] ? r->hi[2] - r->lo[2] : 1);
}

/* Tiles of record m that region r (same array) covers. */
static unsigned long long overlap_tiles(const struct fake_amap *r, const struct fake_amap *m)
{
    if (r->whole || m->whole)
        return m->tiles;
    if (r->miptail != m->miptail || r->layer != m->layer || (!r->miptail && r->level != m->level))
        return 0;
    struct fake_amap x = *m;
    int dims = r->miptail ? 1 : 3;
    for (int k = 0; k < dims; k++) {
        x.lo[k] = r->lo[k] > m->lo[k] ? r->lo[k] : m->lo[k];
        x.hi[k] = r->hi[k] < m->hi[k] ? r->hi[k] : m->hi[k];
        if (x.hi[k] <= x.lo[k] && !(k == 2 && r->hi[2] <= r->lo[2]))
            return 0;
    }
    return tiles_in(&x);
}

/* Take region r's tiles from the records of its array; end emptied ones. */
static void amap_unmap_locked(const struct fake_amap *r)
{
    for (struct fake_amap **pp = &g_amaps; *pp;) {
        struct fake_amap *m = *pp;
        unsigned long long t = m->arr == r->arr ? overlap_tiles(r, m) : 0;
        m->tiles -= t < m->tiles ? t : m->tiles;
        if (t == 0 || m->tiles > 0) {
            pp = &m->next;
            continue;
        }
        *pp = m->next;
        m->ph->maps--;
        phys_maybe_free_locked(m->ph);
        free(m);
    }
}

/* An array's memory goes (destroyed, or its context ended). */
static void array_free_locked(struct fake_array *a)
{
    struct fake_amap all = {.arr = a, .whole = 1};
    amap_unmap_locked(&all);
    uncharge_locked(a->dev, a->charged);
    free(a);
}

static struct fake_array *array_find_locked(void *h, int mip)
{
    for (struct fake_array *a = g_arrays; a; a = a->next)
        if ((void *)a == h && a->mip == mip)
            return a;
    return NULL;
}

/* The region one operation names, validated as the driver documents it. */
static CUresult amap_region_locked(const CUarrayMapInfo *op, struct fake_amap *r)
{
    int mip = op->resourceType == CU_RESOURCE_TYPE_MIPMAPPED_ARRAY;
    if (!mip && op->resourceType != CU_RESOURCE_TYPE_ARRAY)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_array *a = array_find_locked(mip ? (void *)op->resource.mipmap : (void *)op->resource.array, mip);
    if (!a)
        return CUDA_ERROR_INVALID_HANDLE;
    unsigned flags = a->desc.Flags;
    if (!(flags & (CUDA_ARRAY3D_SPARSE | CUDA_ARRAY3D_DEFERRED_MAPPING)) || op->flags || op->reserved[0] ||
        op->reserved[1] || op->deviceBitMask != 1u << a->dev)
        return CUDA_ERROR_INVALID_VALUE;
    *r = (struct fake_amap){.arr = a};
    if (flags & CUDA_ARRAY3D_DEFERRED_MAPPING) {
        r->whole = 1;
    } else if (op->subresourceType == CU_ARRAY_SPARSE_SUBRESOURCE_TYPE_MIPTAIL) {
        r->miptail = 1;
        r->layer = op->subresource.miptail.layer;
        r->lo[0] = op->subresource.miptail.offset;
        r->hi[0] = r->lo[0] + op->subresource.miptail.size;
        if (r->lo[0] % FAKE_MIPTAIL_TILE || r->hi[0] % FAKE_MIPTAIL_TILE || r->hi[0] <= r->lo[0])
            return CUDA_ERROR_INVALID_VALUE;
    } else if (op->subresourceType == CU_ARRAY_SPARSE_SUBRESOURCE_TYPE_SPARSE_LEVEL) {
        r->level = op->subresource.sparseLevel.level;
        r->layer = op->subresource.sparseLevel.layer;
        r->lo[0] = op->subresource.sparseLevel.offsetX;
        r->lo[1] = op->subresource.sparseLevel.offsetY;
        r->lo[2] = op->subresource.sparseLevel.offsetZ;
        r->hi[0] = r->lo[0] + op->subresource.sparseLevel.extentWidth;
        r->hi[1] = r->lo[1] + op->subresource.sparseLevel.extentHeight;
        r->hi[2] = r->lo[2] + op->subresource.sparseLevel.extentDepth;
        if (r->lo[0] % FAKE_TILE_W || r->lo[1] % FAKE_TILE_H || r->hi[0] <= r->lo[0] || r->hi[1] <= r->lo[1] ||
            r->hi[0] > a->desc.Width || r->hi[1] > (a->desc.Height ? a->desc.Height : 1))
            return CUDA_ERROR_INVALID_VALUE;
    } else {
        return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

/* Every operation is checked first; then all are applied (the stream's
 * ordering is not modelled: they take effect at once). */
static CUresult map_array(CUarrayMapInfo *list, unsigned int count, CUstream h)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!list || count == 0)
        return CUDA_ERROR_INVALID_VALUE;
    int sdev;
    pthread_mutex_lock(&g_lock);
    CUresult res = stream_dev_locked(h, &sdev, NULL);
    for (unsigned i = 0; res == CUDA_SUCCESS && i < count; i++) {
        struct fake_amap r;
        const CUarrayMapInfo *op = &list[i];
        if ((res = amap_region_locked(op, &r)))
            break;
        if (op->memOperationType == CU_MEM_OPERATION_TYPE_MAP) {
            struct fake_phys *ph = phys_find_locked(op->memHandle.memHandle);
            /* a tile pool on the array's device only: an H200 refuses a plain handle */
            if (op->memHandleType != CU_MEM_HANDLE_TYPE_GENERIC || !ph ||
                !(ph->prop.allocFlags.usage & CU_MEM_CREATE_USAGE_TILE_POOL) || ph->charge_dev != r.arr->dev ||
                op->offset >= ph->size)
                res = CUDA_ERROR_INVALID_VALUE;
        } else if (op->memOperationType != CU_MEM_OPERATION_TYPE_UNMAP || op->memHandle.memHandle) {
            res = CUDA_ERROR_INVALID_VALUE;
        }
    }
    for (unsigned i = 0; res == CUDA_SUCCESS && i < count; i++) {
        struct fake_amap r;
        (void)amap_region_locked(&list[i], &r);
        amap_unmap_locked(&r); /* a map replaces what it covers */
        if (list[i].memOperationType != CU_MEM_OPERATION_TYPE_MAP)
            continue;
        struct fake_amap *m = malloc(sizeof *m);
        if (!m) {
            res = CUDA_ERROR_OUT_OF_MEMORY;
            break;
        }
        *m = r;
        m->ph = phys_find_locked(list[i].memHandle.memHandle);
        m->tiles = tiles_in(&r);
        m->ph->maps++;
        m->next = g_amaps;
        g_amaps = m;
    }
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuMemMapArrayAsync(CUarrayMapInfo *mapInfoList, unsigned int count, CUstream hStream)
{
    FAKE_ENTRY();
    return map_array(mapInfoList, count, hStream);
}

CUresult CUDAAPI cuMemMapArrayAsync_ptsz(CUarrayMapInfo *mapInfoList, unsigned int count, CUstream hStream)
{
    FAKE_ENTRY();
    return map_array(mapInfoList, count, hStream);
}

static CUresult sparse_properties(CUDA_ARRAY_SPARSE_PROPERTIES *props, void *h, int mip)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!props)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    struct fake_array *a = array_find_locked(h, mip);
    CUresult res = !a ? CUDA_ERROR_INVALID_HANDLE
                      : !(a->desc.Flags & CUDA_ARRAY3D_SPARSE) ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
    pthread_mutex_unlock(&g_lock);
    if (res == CUDA_SUCCESS) {
        memset(props, 0, sizeof *props);
        props->tileExtent.width = FAKE_TILE_W;
        props->tileExtent.height = FAKE_TILE_H;
        props->tileExtent.depth = 1;
    }
    return res;
}

CUresult CUDAAPI cuArrayGetSparseProperties(CUDA_ARRAY_SPARSE_PROPERTIES *sparseProperties, CUarray array)
{
    FAKE_ENTRY();
    return sparse_properties(sparseProperties, array, 0);
}

CUresult CUDAAPI cuMipmappedArrayGetSparseProperties(CUDA_ARRAY_SPARSE_PROPERTIES *sparseProperties,
                                                     CUmipmappedArray mipmap)
{
    FAKE_ENTRY();
    return sparse_properties(sparseProperties, mipmap, 1);
}

/* ---- a context ends: the driver frees what it owns ------------------------- */

/* Its allocations (device, host-pinned, managed, registrations, IPC and
 * external-memory mappings, external memory objects) and arrays (with the
 * VMM mappings into them). Stream-ordered and VMM memory belong to no
 * context and stay, as on an H200. g_lock held. */
static void ctx_end_locked(struct fake_ctx *c)
{
    for (struct fake_alloc *a = map_first(), *next; a; a = next) {
        next = map_next(a);
        if (a->ctx != c)
            continue;
        switch (a->kind) {
        case K_DEVICE:
            uncharge_locked(a->device, a->charged);
            break;
        case K_PINNED:
        case K_MANAGED:
            free((void *)a->start);
            break;
        case K_EXTMEM:
            ((struct fake_extmem *)a->obj)->bufs--;
            break;
        default: /* registered, IPC: a mapping of memory the driver does not own */
            break;
        }
        map_remove(a);
    }
    for (struct fake_extmem *x = g_extmem, *next; x; x = next) {
        next = x->next;
        if (x->ctx == c) {
            x->destroyed = 1;
            extmem_maybe_free_locked(x);
        }
    }
    for (struct fake_array **pp = &g_arrays; *pp;) {
        struct fake_array *a = *pp;
        if (a->ctx != c) {
            pp = &a->next;
            continue;
        }
        *pp = a->next;
        array_free_locked(a);
    }
    __atomic_store_n(&c->dead, 1, __ATOMIC_RELEASE);
}

static CUresult array_destroy(void *h, int mip)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    CUresult res = CUDA_ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&g_lock);
    for (struct fake_array **pp = &g_arrays; *pp; pp = &(*pp)->next)
        if ((void *)*pp == h && (*pp)->mip == mip) {
            struct fake_array *a = *pp;
            *pp = a->next;
            array_free_locked(a);
            res = CUDA_SUCCESS;
            break;
        }
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuArrayDestroy(CUarray hArray) { FAKE_ENTRY(); return array_destroy(hArray, 0); }
CUresult CUDAAPI cuMipmappedArrayDestroy(CUmipmappedArray hMipmappedArray) { FAKE_ENTRY(); return array_destroy(hMipmappedArray, 1); }

/* copy of the array (g_lock taken here) */
static int array_get(void *h, int mip, struct fake_array *out)
{
    int found = 0;
    pthread_mutex_lock(&g_lock);
    for (struct fake_array *a = g_arrays; a; a = a->next)
        if ((void *)a == h && a->mip == mip) {
            *out = *a;
            found = 1;
            break;
        }
    pthread_mutex_unlock(&g_lock);
    return found;
}

CUresult CUDAAPI cuArray3DGetDescriptor(CUDA_ARRAY3D_DESCRIPTOR *pArrayDescriptor, CUarray hArray) /* = _v2 */
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!pArrayDescriptor)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_array a;
    if (!array_get(hArray, 0, &a))
        return CUDA_ERROR_INVALID_HANDLE;
    *pArrayDescriptor = a.desc;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuArrayGetDescriptor(CUDA_ARRAY_DESCRIPTOR *pArrayDescriptor, CUarray hArray) /* = _v2 */
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!pArrayDescriptor)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_array a;
    if (!array_get(hArray, 0, &a))
        return CUDA_ERROR_INVALID_HANDLE;
    pArrayDescriptor->Width = a.desc.Width;
    pArrayDescriptor->Height = a.desc.Height;
    pArrayDescriptor->Format = a.desc.Format;
    pArrayDescriptor->NumChannels = a.desc.NumChannels;
    return CUDA_SUCCESS;
}

static CUresult array_requirements(CUDA_ARRAY_MEMORY_REQUIREMENTS *req, void *h, int mip, CUdevice dev)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!req)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_dev(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    struct fake_array a;
    if (!array_get(h, mip, &a))
        return CUDA_ERROR_INVALID_HANDLE;
    if (!(a.desc.Flags & CUDA_ARRAY3D_DEFERRED_MAPPING)) /* documented, and so on an H200 (sparse ones too) */
        return CUDA_ERROR_INVALID_VALUE;
    memset(req, 0, sizeof *req);
    req->size = a.size; /* an H200: exactly the levels' sum for a 4096 x 4096 float4 (256 MiB, 4 levels 340 MiB) */
    req->alignment = 65536; /* as an H200 answers */
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuArrayGetMemoryRequirements(CUDA_ARRAY_MEMORY_REQUIREMENTS *memoryRequirements, CUarray array,
                                              CUdevice device)
{
    FAKE_ENTRY();
    return array_requirements(memoryRequirements, array, 0, device);
}

CUresult CUDAAPI cuMipmappedArrayGetMemoryRequirements(CUDA_ARRAY_MEMORY_REQUIREMENTS *memoryRequirements,
                                                       CUmipmappedArray mipmap, CUdevice device)
{
    FAKE_ENTRY();
    return array_requirements(memoryRequirements, mipmap, 1, device);
}

/* ------------------------------------------------------------------------ */
/* Legacy IPC                                                                 */

CUresult CUDAAPI cuIpcGetMemHandle(CUipcMemHandle *pHandle, CUdeviceptr dptr)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!pHandle)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_share_rec rec = {.magic = FAKE_SHARE_MAGIC, .what = SHARE_IPC, .pid = (int32_t)getpid()};
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_alloc *a = map_exact((uintptr_t)dptr); /* the base of a cuMemAlloc allocation */
    if (!a || a->kind != K_DEVICE) {
        res = CUDA_ERROR_INVALID_VALUE;
    } else {
        rec.size = a->size;
        rec.device = a->device;
        rec.serial = a->id;
    }
    pthread_mutex_unlock(&g_lock);
    if (res == CUDA_SUCCESS) {
        memset(pHandle, 0, sizeof *pHandle);
        memcpy(pHandle->reserved, &rec, sizeof rec);
    }
    return res;
}

static CUresult ipc_open(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int Flags)
{
    int dev;
    CUresult res = need_ctx(&dev);
    if (res)
        return res;
    if (!pdptr || (Flags & ~(unsigned)CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS))
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_share_rec rec;
    memcpy(&rec, handle.reserved, sizeof rec);
    if (rec.magic != FAKE_SHARE_MAGIC || rec.what != SHARE_IPC || rec.size == 0)
        return CUDA_ERROR_INVALID_VALUE;
    if (rec.pid == (int32_t)getpid()) /* the exporting process cannot open its own handle */
        return CUDA_ERROR_INVALID_CONTEXT;
    int src_dev = valid_dev(rec.device) ? rec.device : dev;
    uintptr_t addr = 0;
    pthread_mutex_lock(&g_lock);
    for (struct fake_alloc *o = map_first(); o; o = map_next(o)) /* already open: same address, one more reference */
        if (o->kind == K_IPC && o->src == rec.serial && o->src_pid == rec.pid) {
            o->flags++;
            addr = o->start;
            break;
        }
    if (!addr) {
        size_t r = (size_t)(rec.size + FAKE_ALIGN - 1) / FAKE_ALIGN * FAKE_ALIGN;
        if (va_dev_locked(src_dev, r, &addr)) {
            res = CUDA_ERROR_OUT_OF_MEMORY;
        } else {
            /* a new mapping of the exporter's memory: not charged here */
            struct fake_alloc a = {.start = addr,
                                   .size = (size_t)rec.size,
                                   .device = src_dev,
                                   .kind = K_IPC,
                                   .ctx = owner_ctx(),
                                   .flags = 1,
                                   .src = rec.serial,
                                   .src_pid = rec.pid};
            if (map_insert(&a))
                res = CUDA_ERROR_OUT_OF_MEMORY;
        }
    }
    pthread_mutex_unlock(&g_lock);
    if (res == CUDA_SUCCESS)
        *pdptr = (CUdeviceptr)addr;
    return res;
}

CUresult CUDAAPI cuIpcOpenMemHandle(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int Flags) /* = _v2 */
{
    FAKE_ENTRY();
    return ipc_open(pdptr, handle, Flags);
}

CUresult CUDAAPI legacy_cuIpcOpenMemHandle(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int Flags)
{
    FAKE_ENTRY();
    return ipc_open(pdptr, handle, Flags);
}

CUresult CUDAAPI cuIpcCloseMemHandle(CUdeviceptr dptr)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_alloc *a = map_exact((uintptr_t)dptr);
    if (!a || a->kind != K_IPC)
        res = CUDA_ERROR_INVALID_VALUE;
    else if (--a->flags == 0)
        map_remove(a);
    pthread_mutex_unlock(&g_lock);
    return res;
}

/* ------------------------------------------------------------------------ */
/* External memory                                                            */

CUresult CUDAAPI cuImportExternalMemory(CUexternalMemory *extMem_out, const CUDA_EXTERNAL_MEMORY_HANDLE_DESC *memHandleDesc)
{
    FAKE_ENTRY();
    int dev;
    CUresult res = need_ctx(&dev);
    if (res)
        return res;
    if (!extMem_out || !memHandleDesc || memHandleDesc->size == 0 ||
        (memHandleDesc->flags & ~(unsigned)CUDA_EXTERNAL_MEMORY_DEDICATED))
        return CUDA_ERROR_INVALID_VALUE;
    int fd = -1;
    switch (memHandleDesc->type) {
    case CU_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD:
    case CU_EXTERNAL_MEMORY_HANDLE_TYPE_DMABUF_FD:
        fd = memHandleDesc->handle.fd;
        if (fd < 0)
            return CUDA_ERROR_INVALID_VALUE;
        break;
    default: /* Windows/D3D/NvSciBuf handles: not on this platform */
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    struct fake_extmem *x = calloc(1, sizeof *x);
    if (!x)
        return CUDA_ERROR_OUT_OF_MEMORY;
    x->size = memHandleDesc->size;
    x->dev = dev;
    x->ctx = owner_ctx();
    pthread_mutex_lock(&g_lock);
    x->next = g_extmem;
    g_extmem = x;
    pthread_mutex_unlock(&g_lock);
    if (memHandleDesc->type == CU_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD)
        close(fd); /* "ownership of the file descriptor is transferred to the CUDA driver" */
    *extMem_out = (CUexternalMemory)(void *)x;
    return CUDA_SUCCESS;
}

static struct fake_extmem *extmem_find_locked(CUexternalMemory h)
{
    for (struct fake_extmem *x = g_extmem; x; x = x->next)
        if ((void *)x == (void *)h)
            return x->destroyed ? NULL : x;
    return NULL;
}

CUresult CUDAAPI cuExternalMemoryGetMappedBuffer(CUdeviceptr *devPtr, CUexternalMemory extMem,
                                                 const CUDA_EXTERNAL_MEMORY_BUFFER_DESC *bufferDesc)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!devPtr || !bufferDesc || bufferDesc->size == 0 || bufferDesc->flags)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult res = CUDA_SUCCESS;
    uintptr_t addr = 0;
    pthread_mutex_lock(&g_lock);
    struct fake_extmem *x = extmem_find_locked(extMem);
    size_t r;
    if (!x) {
        res = CUDA_ERROR_INVALID_HANDLE;
    } else if (bufferDesc->offset > x->size || bufferDesc->size > x->size - bufferDesc->offset ||
               round_up_512((size_t)bufferDesc->size, &r)) {
        res = CUDA_ERROR_INVALID_VALUE;
    } else if (va_dev_locked(x->dev, r, &addr)) {
        res = CUDA_ERROR_OUT_OF_MEMORY;
    } else {
        /* device memory of another API: not charged */
        struct fake_alloc a = {
            .start = addr, .size = (size_t)bufferDesc->size, .device = x->dev, .kind = K_EXTMEM, .obj = x, .ctx = x->ctx};
        if (map_insert(&a))
            res = CUDA_ERROR_OUT_OF_MEMORY;
        else
            x->bufs++;
    }
    pthread_mutex_unlock(&g_lock);
    if (res == CUDA_SUCCESS)
        *devPtr = (CUdeviceptr)addr;
    return res;
}

CUresult CUDAAPI cuDestroyExternalMemory(CUexternalMemory extMem)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_extmem *x = extmem_find_locked(extMem);
    if (!x) {
        res = CUDA_ERROR_INVALID_HANDLE;
    } else {
        x->destroyed = 1; /* mapped buffers stay valid until cuMemFree */
        extmem_maybe_free_locked(x);
    }
    pthread_mutex_unlock(&g_lock);
    return res;
}

/* ------------------------------------------------------------------------ */
/* Peer access                                                                */

static unsigned g_peer[FAKE_MAX_DEVICES]; /* bit p of [d]: d's context has enabled access to p */

CUresult CUDAAPI cuDeviceCanAccessPeer(int *canAccessPeer, CUdevice dev, CUdevice peerDev)
{
    FAKE_ENTRY();
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!canAccessPeer)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_dev(dev) || !valid_dev(peerDev))
        return CUDA_ERROR_INVALID_DEVICE;
    *canAccessPeer = dev != peerDev;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxEnablePeerAccess(CUcontext peerContext, unsigned int Flags)
{
    FAKE_ENTRY();
    int dev;
    CUresult res = need_ctx(&dev);
    if (res)
        return res;
    if (Flags)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_ctx *pc = ctx_from_handle(peerContext);
    if (!pc || !valid_dev(pc->device))
        return CUDA_ERROR_INVALID_CONTEXT;
    if (pc->device == dev)
        return CUDA_ERROR_INVALID_DEVICE;
    pthread_mutex_lock(&g_lock);
    if (g_peer[dev] & (1u << pc->device))
        res = CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED;
    else
        g_peer[dev] |= 1u << pc->device;
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuCtxDisablePeerAccess(CUcontext peerContext)
{
    FAKE_ENTRY();
    int dev;
    CUresult res = need_ctx(&dev);
    if (res)
        return res;
    struct fake_ctx *pc = ctx_from_handle(peerContext);
    if (!pc || !valid_dev(pc->device))
        return CUDA_ERROR_INVALID_CONTEXT;
    pthread_mutex_lock(&g_lock);
    if (!(g_peer[dev] & (1u << pc->device)))
        res = CUDA_ERROR_PEER_ACCESS_NOT_ENABLED;
    else
        g_peer[dev] &= ~(1u << pc->device);
    pthread_mutex_unlock(&g_lock);
    return res;
}

/* ------------------------------------------------------------------------ */
/* Modules and libraries: globals only (no code, no kernels)                  */

/* A fake image is text:  "fakecuda-module\n" then one line per global,
 * "device NAME BYTES\n" (a __device__ global: VRAM of the loading device,
 * charged) or "managed NAME BYTES\n" (a __managed__ global: zeroed host
 * memory, attributes DEVICE with IS_MANAGED 1, as managed memory).  Anything
 * else is CUDA_ERROR_INVALID_IMAGE (200). */
#define FAKE_IMAGE_MAGIC "fakecuda-module\n"
enum { FAKE_MODULE_GLOBALS = 16, FAKE_GLOBAL_NAME = 64 };

struct fake_global {
    char name[FAKE_GLOBAL_NAME];
    int managed;
    size_t size, charged;
    uintptr_t addr;
};

struct fake_module {
    int library; /* CUlibrary (else CUmodule) */
    int dev;
    int n;
    struct fake_global g[FAKE_MODULE_GLOBALS];
    struct fake_module *next;
};
static struct fake_module *g_modules;

static struct fake_module *module_find_locked(const void *h, int library)
{
    for (struct fake_module *m = g_modules; m; m = m->next)
        if ((const void *)m == h && m->library == library)
            return m;
    return NULL;
}

/* Parse an image into m (names and sizes only); 0 on success. */
static int image_parse(const void *image, struct fake_module *m)
{
    const char *t = image;
    if (!t || strncmp(t, FAKE_IMAGE_MAGIC, strlen(FAKE_IMAGE_MAGIC)) != 0)
        return -1;
    t += strlen(FAKE_IMAGE_MAGIC);
    while (*t) {
        char kind[16], name[FAKE_GLOBAL_NAME];
        unsigned long long size;
        int used = 0;
        if (m->n == FAKE_MODULE_GLOBALS ||
            sscanf(t, "%15s %63s %llu%n", kind, name, &size, &used) != 3 || size == 0 || t[used] != '\n')
            return -1;
        struct fake_global *g = &m->g[m->n++];
        if (strcmp(kind, "managed") == 0)
            g->managed = 1;
        else if (strcmp(kind, "device") != 0)
            return -1;
        snprintf(g->name, sizeof g->name, "%s", name);
        g->size = (size_t)size;
        t += used + 1;
    }
    return 0;
}

/* Give back what the first `upto` globals of m hold (g_lock held); managed
 * memory is returned in host[] to free() after unlocking. */
static void module_release_locked(struct fake_module *m, int upto, void **host)
{
    for (int i = 0; i < upto; i++) {
        struct fake_global *g = &m->g[i];
        struct fake_alloc *a = map_exact(g->addr);
        if (a && a->kind == K_GLOBAL)
            map_remove(a);
        if (g->managed)
            host[i] = (void *)g->addr;
        else
            uncharge_locked(m->dev, g->charged);
    }
}

/* Load: every global is created at once on dev. */
static CUresult module_load(const void *image, int library, int dev, void **out)
{
    struct fake_module *m = calloc(1, sizeof *m);
    if (!m)
        return CUDA_ERROR_OUT_OF_MEMORY;
    m->library = library;
    m->dev = dev;
    if (image_parse(image, m)) {
        free(m);
        return CUDA_ERROR_INVALID_IMAGE;
    }
    void *host[FAKE_MODULE_GLOBALS] = {0};
    for (int i = 0; i < m->n; i++)
        if (m->g[i].managed && !(host[i] = host_mem(m->g[i].size, 1))) {
            for (int k = 0; k < i; k++)
                free(host[k]);
            free(m);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
    CUresult res = CUDA_SUCCESS;
    int i;
    pthread_mutex_lock(&g_lock);
    for (i = 0; i < m->n; i++) {
        struct fake_global *g = &m->g[i];
        struct fake_alloc a = {.size = g->size, .device = dev, .kind = K_GLOBAL, .obj = m};
        if (g->managed) {
            a.start = (uintptr_t)host[i];
            a.managed = 1;
        } else {
            if (round_up_512(g->size, &g->charged) || charge_locked(dev, g->charged)) {
                g->charged = 0;
                res = CUDA_ERROR_OUT_OF_MEMORY;
                break;
            }
            if (va_dev_locked(dev, g->charged, &a.start)) {
                uncharge_locked(dev, g->charged);
                res = CUDA_ERROR_OUT_OF_MEMORY;
                break;
            }
            a.charged = g->charged;
        }
        g->addr = a.start;
        if (map_insert(&a)) {
            if (!g->managed)
                uncharge_locked(dev, g->charged);
            res = CUDA_ERROR_OUT_OF_MEMORY;
            break;
        }
    }
    if (res != CUDA_SUCCESS) {
        module_release_locked(m, i, host);
    } else {
        m->next = g_modules;
        g_modules = m;
    }
    pthread_mutex_unlock(&g_lock);
    if (res != CUDA_SUCCESS) {
        for (int k = 0; k < m->n; k++)
            free(host[k]);
        free(m);
        return res;
    }
    *out = m;
    return CUDA_SUCCESS;
}

static CUresult module_unload(void *h, int library)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    void *host[FAKE_MODULE_GLOBALS] = {0};
    pthread_mutex_lock(&g_lock);
    struct fake_module *m = module_find_locked(h, library);
    if (m) {
        module_release_locked(m, m->n, host);
        for (struct fake_module **pp = &g_modules; *pp; pp = &(*pp)->next)
            if (*pp == m) {
                *pp = m->next;
                break;
            }
    }
    pthread_mutex_unlock(&g_lock);
    if (!m)
        return CUDA_ERROR_INVALID_HANDLE;
    for (int k = 0; k < FAKE_MODULE_GLOBALS; k++)
        free(host[k]);
    free(m);
    return CUDA_SUCCESS;
}

/* A global by name: any (managed_only 0) or a __managed__ one. */
static CUresult module_global(const void *h, int library, const char *name, int managed_only, uintptr_t *addr,
                              size_t *size)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!name)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult res = CUDA_ERROR_NOT_FOUND;
    pthread_mutex_lock(&g_lock);
    struct fake_module *m = module_find_locked(h, library);
    if (!m)
        res = CUDA_ERROR_INVALID_HANDLE;
    for (int i = 0; m && i < m->n; i++)
        if (strcmp(m->g[i].name, name) == 0 && (m->g[i].managed || !managed_only)) {
            *addr = m->g[i].addr;
            *size = m->g[i].size;
            res = CUDA_SUCCESS;
            break;
        }
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuModuleLoadData(CUmodule *module, const void *image)
{
    FAKE_ENTRY();
    int dev;
    CUresult res = need_ctx(&dev);
    if (res)
        return res;
    if (!module || !image)
        return CUDA_ERROR_INVALID_VALUE;
    void *m;
    if ((res = module_load(image, 0, dev, &m)))
        return res;
    *module = (CUmodule)m;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuModuleUnload(CUmodule hmod)
{
    FAKE_ENTRY();
    return module_unload((void *)hmod, 0);
}

CUresult CUDAAPI cuModuleGetGlobal_v2(CUdeviceptr *dptr, size_t *bytes, CUmodule hmod, const char *name)
{
    FAKE_ENTRY();
    uintptr_t addr;
    size_t size;
    CUresult res = module_global((void *)hmod, 0, name, 0, &addr, &size);
    if (res)
        return res;
    if (dptr)
        *dptr = (CUdeviceptr)addr;
    if (bytes)
        *bytes = size;
    return CUDA_SUCCESS;
}

/* Legacy 32-bit (version 2000): answers 201 writing nothing, like the
 * legacy allocation entry points by default (globals live above 4 GiB). */
CUresult CUDAAPI legacy_cuModuleGetGlobal(fake_deviceptr_v1 *dptr, unsigned int *bytes, CUmodule hmod,
                                          const char *name)
{
    FAKE_ENTRY();
    (void)dptr, (void)bytes, (void)hmod, (void)name;
    return inited() ? CUDA_ERROR_INVALID_CONTEXT : CUDA_ERROR_NOT_INITIALIZED;
}

/* Context-independent in the real driver; here a library's globals are
 * created at load on the current context's device (device 0 without one). */
CUresult CUDAAPI cuLibraryLoadData(CUlibrary *library, const void *code, CUjit_option *jitOptions,
                                   void **jitOptionsValues, unsigned int numJitOptions,
                                   CUlibraryOption *libraryOptions, void **libraryOptionValues,
                                   unsigned int numLibraryOptions)
{
    FAKE_ENTRY();
    (void)jitOptions, (void)jitOptionsValues, (void)numJitOptions;
    (void)libraryOptions, (void)libraryOptionValues, (void)numLibraryOptions;
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!library || !code)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_ctx *c = cur_ctx();
    void *m;
    CUresult res = module_load(code, 1, c ? c->device : 0, &m);
    if (res)
        return res;
    *library = (CUlibrary)m;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuLibraryUnload(CUlibrary library)
{
    FAKE_ENTRY();
    return module_unload((void *)library, 1);
}

static CUresult library_global(CUdeviceptr *dptr, size_t *bytes, CUlibrary library, const char *name,
                               int managed_only)
{
    uintptr_t addr;
    size_t size;
    CUresult res = module_global((void *)library, 1, name, managed_only, &addr, &size);
    if (res)
        return res;
    if (dptr)
        *dptr = (CUdeviceptr)addr;
    if (bytes)
        *bytes = size;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuLibraryGetGlobal(CUdeviceptr *dptr, size_t *bytes, CUlibrary library, const char *name)
{
    FAKE_ENTRY();
    return library_global(dptr, bytes, library, name, 0);
}

CUresult CUDAAPI cuLibraryGetManaged(CUdeviceptr *dptr, size_t *bytes, CUlibrary library, const char *name)
{
    FAKE_ENTRY();
    return library_global(dptr, bytes, library, name, 1);
}

/* ------------------------------------------------------------------------ */
/* Test hooks (not CUDA)                                                      */

/* VMM handles usable by the API (created or imported, not fully released). */
FAKE_API unsigned long long fakecuda_vmm_live_handles(void);
FAKE_API unsigned long long fakecuda_vmm_live_handles(void)
{
    unsigned long long n = 0;
    pthread_mutex_lock(&g_lock);
    for (struct fake_phys *ph = g_phys; ph; ph = ph->next)
        n += ph->refs > 0;
    pthread_mutex_unlock(&g_lock);
    return n;
}

/* VRAM the fake holds on device dev: allocations, pool and graph reserves,
 * VMM physical memory, arrays, module globals. What the shim's charged
 * figure must equal. */
FAKE_API unsigned long long fakecuda_charged_bytes(int dev);
FAKE_API unsigned long long fakecuda_charged_bytes(int dev)
{
    if (dev < 0 || dev >= FAKE_MAX_DEVICES)
        return 0;
    pthread_mutex_lock(&g_lock);
    unsigned long long n = g_charged[dev];
    pthread_mutex_unlock(&g_lock);
    return n;
}

/* Entries of the allocation map: every live address range of any kind. */
FAKE_API unsigned long long fakecuda_live_ranges(void);
FAKE_API unsigned long long fakecuda_live_ranges(void)
{
    pthread_mutex_lock(&g_lock);
    unsigned long long n = g_map_n;
    pthread_mutex_unlock(&g_lock);
    return n;
}

/* A POSIX-fd shareable handle for VMM memory of any properties, as another
 * process's driver would export it: cuMemCreate here (as cuda.h documents)
 * makes neither MANAGED nor exportable HOST handles, yet an importer must be
 * ready for whatever cuMemGetAllocationPropertiesFromHandle says.  -1 on
 * failure.  cuMemImportFromShareableHandle reads it like any other. */
FAKE_API int fakecuda_vmm_share_fd(int alloc_type, int loc_type, int loc_id, unsigned long long size);
FAKE_API int fakecuda_vmm_share_fd(int alloc_type, int loc_type, int loc_id, unsigned long long size)
{
    struct fake_share_rec rec = {.magic = FAKE_SHARE_MAGIC, .what = SHARE_PHYS, .pid = (int32_t)getpid(),
                                 .size = size, .loc_type = loc_type, .loc_id = loc_id, .alloc_type = alloc_type};
    return share_fd_create(&rec);
}

/* ------------------------------------------------------------------------ */
/* cuGetProcAddress                                                           */

struct gpa_row {
    const char *name; /* base name, as callers pass it */
    int min_version;  /* first CUDA version whose ABI this variant implements */
    int is_ptsz;      /* per-thread-default-stream variant */
    void *fn;         /* the exported function (its own address: -Bsymbolic) */
};

#define ROW(name, ver, fn) {name, ver, 0, (void *)(fn)}
#define ROW_PTSZ(name, ver, fn) {name, ver, 1, (void *)(fn)}

static const struct gpa_row g_rows[] = {
    ROW("cuGetProcAddress", 11030, legacy_cuGetProcAddress),
    ROW("cuGetProcAddress", 12000, cuGetProcAddress_v2),
    ROW("cuInit", 2000, cuInit),
    ROW("cuDriverGetVersion", 2020, cuDriverGetVersion),
    ROW("cuDeviceGet", 2000, cuDeviceGet),
    ROW("cuDeviceGetCount", 2000, cuDeviceGetCount),
    ROW("cuDeviceGetName", 2000, cuDeviceGetName),
    ROW("cuDeviceTotalMem", 3020, cuDeviceTotalMem_v2),
    ROW("cuDeviceGetAttribute", 2000, cuDeviceGetAttribute),
    ROW("cuDeviceGetUuid", 9020, legacy_cuDeviceGetUuid),
    ROW("cuDeviceGetUuid", 11040, cuDeviceGetUuid_v2),
    ROW("cuDeviceGetPCIBusId", 4010, cuDeviceGetPCIBusId),
    ROW("cuDevicePrimaryCtxRetain", 7000, cuDevicePrimaryCtxRetain),
    ROW("cuDevicePrimaryCtxRelease", 7000, legacy_cuDevicePrimaryCtxRelease),
    ROW("cuDevicePrimaryCtxRelease", 11000, cuDevicePrimaryCtxRelease_v2),
    ROW("cuDevicePrimaryCtxReset", 7000, legacy_cuDevicePrimaryCtxReset),
    ROW("cuDevicePrimaryCtxReset", 11000, cuDevicePrimaryCtxReset_v2),
    ROW("cuDevicePrimaryCtxGetState", 7000, cuDevicePrimaryCtxGetState),
    ROW("cuCtxCreate", 2000, legacy_cuCtxCreate),
    ROW("cuCtxCreate", 3020, cuCtxCreate_v2),
    ROW("cuCtxCreate", 11040, cuCtxCreate_v3),
    ROW("cuCtxCreate", 12050, cuCtxCreate_v4),
    ROW("cuCtxDestroy", 2000, legacy_cuCtxDestroy),
    ROW("cuCtxDestroy", 4000, cuCtxDestroy_v2),
    ROW("cuDeviceGetDevResource", 12040, cuDeviceGetDevResource),
    ROW("cuDevSmResourceSplitByCount", 12040, cuDevSmResourceSplitByCount),
    ROW("cuDevResourceGenerateDesc", 12040, cuDevResourceGenerateDesc),
    ROW("cuGreenCtxCreate", 12040, cuGreenCtxCreate),
    ROW("cuCtxFromGreenCtx", 12040, cuCtxFromGreenCtx),
    ROW("cuGreenCtxDestroy", 12040, cuGreenCtxDestroy),
    ROW("cuCtxSetCurrent", 4000, cuCtxSetCurrent),
    ROW("cuCtxGetCurrent", 4000, cuCtxGetCurrent),
    ROW("cuCtxGetDevice", 2000, cuCtxGetDevice),
    ROW("cuCtxPushCurrent", 4000, cuCtxPushCurrent_v2),
    ROW("cuCtxPopCurrent", 4000, cuCtxPopCurrent_v2),
    ROW("cuCtxSynchronize", 2000, cuCtxSynchronize),
    ROW("cuMemAlloc", 2000, legacy_cuMemAlloc),
    ROW("cuMemAlloc", 3020, cuMemAlloc_v2),
    ROW("cuMemAllocPitch", 2000, legacy_cuMemAllocPitch),
    ROW("cuMemAllocPitch", 3020, cuMemAllocPitch_v2),
    ROW("cuMemFree", 2000, legacy_cuMemFree),
    ROW("cuMemFree", 3020, cuMemFree_v2),
    ROW("cuMemAllocHost", 2000, legacy_cuMemAllocHost),
    ROW("cuMemAllocHost", 3020, cuMemAllocHost_v2),
    ROW("cuMemHostAlloc", 2020, cuMemHostAlloc),
    ROW("cuMemFreeHost", 2000, cuMemFreeHost),
    ROW("cuMemAllocManaged", 6000, cuMemAllocManaged),
    ROW("cuMemGetInfo", 3020, cuMemGetInfo_v2),
    ROW("cuMemHostRegister", 4000, legacy_cuMemHostRegister),
    ROW("cuMemHostRegister", 6050, cuMemHostRegister_v2),
    ROW("cuMemHostUnregister", 4000, cuMemHostUnregister),
    ROW("cuPointerGetAttribute", 4000, cuPointerGetAttribute),
    ROW("cuPointerGetAttributes", 7000, cuPointerGetAttributes),
    ROW("cuMemGetAddressRange", 3020, cuMemGetAddressRange_v2),
    ROW("cuMemAllocAsync", 11020, cuMemAllocAsync),
    ROW_PTSZ("cuMemAllocAsync", 11020, cuMemAllocAsync_ptsz),
    ROW("cuMemFreeAsync", 11020, cuMemFreeAsync),
    ROW_PTSZ("cuMemFreeAsync", 11020, cuMemFreeAsync_ptsz),
    ROW("cuGetErrorName", 6000, cuGetErrorName),
    ROW("cuGetErrorString", 6000, cuGetErrorString),
    /* streams and capture */
    ROW("cuStreamCreate", 2000, cuStreamCreate),
    ROW("cuStreamCreateWithPriority", 5050, cuStreamCreateWithPriority),
    ROW("cuStreamDestroy", 2000, legacy_cuStreamDestroy),
    ROW("cuStreamDestroy", 4000, cuStreamDestroy_v2),
    ROW("cuStreamSynchronize", 2000, cuStreamSynchronize),
    ROW_PTSZ("cuStreamSynchronize", 7000, cuStreamSynchronize_ptsz),
    ROW("cuStreamBeginCapture", 10000, legacy_cuStreamBeginCapture),
    ROW_PTSZ("cuStreamBeginCapture", 10000, legacy_cuStreamBeginCapture_ptsz),
    ROW("cuStreamBeginCapture", 10010, cuStreamBeginCapture_v2),
    ROW_PTSZ("cuStreamBeginCapture", 10010, cuStreamBeginCapture_v2_ptsz),
    ROW("cuStreamEndCapture", 10000, cuStreamEndCapture),
    ROW_PTSZ("cuStreamEndCapture", 10000, cuStreamEndCapture_ptsz),
    ROW("cuStreamIsCapturing", 10000, cuStreamIsCapturing),
    ROW_PTSZ("cuStreamIsCapturing", 10000, cuStreamIsCapturing_ptsz),
    ROW("cuStreamGetCtx", 9020, cuStreamGetCtx),
    ROW_PTSZ("cuStreamGetCtx", 9020, cuStreamGetCtx_ptsz),
    /* stream-ordered pools */
    ROW("cuMemAllocFromPoolAsync", 11020, cuMemAllocFromPoolAsync),
    ROW_PTSZ("cuMemAllocFromPoolAsync", 11020, cuMemAllocFromPoolAsync_ptsz),
    ROW("cuDeviceGetDefaultMemPool", 11020, cuDeviceGetDefaultMemPool),
    ROW("cuDeviceGetMemPool", 11020, cuDeviceGetMemPool),
    ROW("cuDeviceSetMemPool", 11020, cuDeviceSetMemPool),
    ROW("cuMemGetDefaultMemPool", 13000, cuMemGetDefaultMemPool),
    ROW("cuMemGetMemPool", 13000, cuMemGetMemPool),
    ROW("cuMemSetMemPool", 13000, cuMemSetMemPool),
    ROW("cuMemPoolCreate", 11020, cuMemPoolCreate),
    ROW("cuMemPoolDestroy", 11020, cuMemPoolDestroy),
    ROW("cuMemPoolTrimTo", 11020, cuMemPoolTrimTo),
    ROW("cuMemPoolSetAttribute", 11020, cuMemPoolSetAttribute),
    ROW("cuMemPoolGetAttribute", 11020, cuMemPoolGetAttribute),
    ROW("cuMemPoolSetAccess", 11020, cuMemPoolSetAccess),
    ROW("cuMemPoolGetAccess", 11020, cuMemPoolGetAccess),
    ROW("cuMemPoolExportToShareableHandle", 11020, cuMemPoolExportToShareableHandle),
    ROW("cuMemPoolImportFromShareableHandle", 11020, cuMemPoolImportFromShareableHandle),
    ROW("cuMemPoolExportPointer", 11020, cuMemPoolExportPointer),
    ROW("cuMemPoolImportPointer", 11020, cuMemPoolImportPointer),
    /* graphs */
    ROW("cuGraphCreate", 10000, cuGraphCreate),
    ROW("cuGraphDestroy", 10000, cuGraphDestroy),
    ROW("cuGraphAddMemAllocNode", 11040, cuGraphAddMemAllocNode),
    ROW("cuGraphAddMemFreeNode", 11040, cuGraphAddMemFreeNode),
    ROW("cuGraphInstantiate", 10000, legacy_cuGraphInstantiate),
    ROW("cuGraphInstantiate", 11000, cuGraphInstantiate_v2),
    ROW("cuGraphInstantiate", 12000, cuGraphInstantiateWithFlags),
    ROW("cuGraphInstantiateWithFlags", 11040, cuGraphInstantiateWithFlags),
    ROW("cuGraphLaunch", 10000, cuGraphLaunch),
    ROW_PTSZ("cuGraphLaunch", 10000, cuGraphLaunch_ptsz),
    ROW("cuGraphExecDestroy", 10000, cuGraphExecDestroy),
    ROW("cuDeviceGetGraphMemAttribute", 11040, cuDeviceGetGraphMemAttribute),
    ROW("cuDeviceSetGraphMemAttribute", 11040, cuDeviceSetGraphMemAttribute),
    ROW("cuDeviceGraphMemTrim", 11040, cuDeviceGraphMemTrim),
    /* virtual memory management */
    ROW("cuMemGetAllocationGranularity", 10020, cuMemGetAllocationGranularity),
    ROW("cuMemCreate", 10020, cuMemCreate),
    ROW("cuMemRelease", 10020, cuMemRelease),
    ROW("cuMemAddressReserve", 10020, cuMemAddressReserve),
    ROW("cuMemAddressFree", 10020, cuMemAddressFree),
    ROW("cuMemMap", 10020, cuMemMap),
    ROW("cuMemUnmap", 10020, cuMemUnmap),
    ROW("cuMemSetAccess", 10020, cuMemSetAccess),
    ROW("cuMemGetAccess", 10020, cuMemGetAccess),
    ROW("cuMemRetainAllocationHandle", 11000, cuMemRetainAllocationHandle),
    ROW("cuMemGetAllocationPropertiesFromHandle", 10020, cuMemGetAllocationPropertiesFromHandle),
    ROW("cuMemExportToShareableHandle", 10020, cuMemExportToShareableHandle),
    ROW("cuMemImportFromShareableHandle", 10020, cuMemImportFromShareableHandle),
    /* arrays */
    ROW("cuArrayCreate", 3020, cuArrayCreate_v2),
    ROW("cuArray3DCreate", 3020, cuArray3DCreate_v2),
    ROW("cuArrayGetDescriptor", 3020, cuArrayGetDescriptor_v2),
    ROW("cuArray3DGetDescriptor", 3020, cuArray3DGetDescriptor_v2),
    ROW("cuArrayDestroy", 2000, cuArrayDestroy),
    ROW("cuMipmappedArrayCreate", 5000, cuMipmappedArrayCreate),
    ROW("cuMipmappedArrayDestroy", 5000, cuMipmappedArrayDestroy),
    ROW("cuArrayGetMemoryRequirements", 11060, cuArrayGetMemoryRequirements),
    ROW("cuMipmappedArrayGetMemoryRequirements", 11060, cuMipmappedArrayGetMemoryRequirements),
    ROW("cuArrayGetSparseProperties", 11010, cuArrayGetSparseProperties),
    ROW("cuMipmappedArrayGetSparseProperties", 11010, cuMipmappedArrayGetSparseProperties),
    ROW("cuMemMapArrayAsync", 11010, cuMemMapArrayAsync),
    ROW_PTSZ("cuMemMapArrayAsync", 11010, cuMemMapArrayAsync_ptsz),
    /* IPC and external memory */
    ROW("cuIpcGetMemHandle", 4010, cuIpcGetMemHandle),
    ROW("cuIpcOpenMemHandle", 4010, legacy_cuIpcOpenMemHandle),
    ROW("cuIpcOpenMemHandle", 11000, cuIpcOpenMemHandle_v2),
    ROW("cuIpcCloseMemHandle", 4010, cuIpcCloseMemHandle),
    ROW("cuImportExternalMemory", 10000, cuImportExternalMemory),
    ROW("cuExternalMemoryGetMappedBuffer", 10000, cuExternalMemoryGetMappedBuffer),
    ROW("cuDestroyExternalMemory", 10000, cuDestroyExternalMemory),
    /* modules and libraries (globals only) */
    ROW("cuModuleLoadData", 2000, cuModuleLoadData),
    ROW("cuModuleUnload", 2000, cuModuleUnload),
    ROW("cuModuleGetGlobal", 2000, legacy_cuModuleGetGlobal),
    ROW("cuModuleGetGlobal", 3020, cuModuleGetGlobal_v2),
    ROW("cuLibraryLoadData", 12000, cuLibraryLoadData),
    ROW("cuLibraryUnload", 12000, cuLibraryUnload),
    ROW("cuLibraryGetGlobal", 12000, cuLibraryGetGlobal),
    ROW("cuLibraryGetManaged", 12000, cuLibraryGetManaged),
    /* peers */
    ROW("cuDeviceCanAccessPeer", 4000, cuDeviceCanAccessPeer),
    ROW("cuCtxEnablePeerAccess", 4000, cuCtxEnablePeerAccess),
    ROW("cuCtxDisablePeerAccess", 4000, cuCtxDisablePeerAccess),
};

/* FAKECUDA_FUTURE_VARIANTS=1: a hypothetical newer driver (CUDA 14.0).
 * cuMemAlloc gains a variant with another argument list, exported as
 * cuMemAlloc_v9; cuMemGetInfo and, from 14000, cuMemFree are answered with
 * unexported internal functions (same ABI as their _v2). Rows here win over
 * g_rows for the same name when their version is reached. */
FAKE_API CUresult CUDAAPI cuMemAlloc_v9(CUdeviceptr *dptr, size_t bytesize, unsigned int flags,
                                        unsigned int *variant);

CUresult CUDAAPI cuMemAlloc_v9(CUdeviceptr *dptr, size_t bytesize, unsigned int flags, unsigned int *variant)
{
    /* counted once, by cuMemAlloc_v2 */
    if (!variant || flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = cuMemAlloc_v2(dptr, bytesize);
    if (r == CUDA_SUCCESS)
        *variant = 9;
    return r;
}

static CUresult CUDAAPI internal_cuMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
    return cuMemGetInfo_v2(free_bytes, total_bytes);
}

static CUresult CUDAAPI internal_cuMemFree(CUdeviceptr dptr)
{
    return cuMemFree_v2(dptr);
}

static const struct gpa_row g_future_rows[] = {
    ROW("cuMemAlloc", 14000, cuMemAlloc_v9),
    ROW("cuMemGetInfo", 3020, internal_cuMemGetInfo),
    ROW("cuMemFree", 14000, internal_cuMemFree),
};

static CUresult gpa_lookup(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                           CUdriverProcAddressQueryResult *status)
{
    *status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    if (!pfn || !symbol)
        return CUDA_ERROR_INVALID_VALUE;
    if (flags & ~(cuuint64_t)(CU_GET_PROC_ADDRESS_LEGACY_STREAM | CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM))
        return CUDA_ERROR_INVALID_VALUE;
    const struct gpa_row *best = NULL, *best_ptsz = NULL;
    int known = 0;
    for (size_t i = 0; i < sizeof g_rows / sizeof g_rows[0]; i++) {
        const struct gpa_row *r = &g_rows[i];
        if (strcmp(r->name, symbol) != 0)
            continue;
        known = 1;
        if (r->min_version > cudaVersion)
            continue;
        const struct gpa_row **slot = r->is_ptsz ? &best_ptsz : &best;
        if (!*slot || r->min_version > (*slot)->min_version)
            *slot = r;
    }
    if ((flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) && best_ptsz)
        best = best_ptsz;
    for (size_t i = 0; g_cfg.future_variants && best && i < sizeof g_future_rows / sizeof g_future_rows[0]; i++)
        if (strcmp(g_future_rows[i].name, symbol) == 0 && g_future_rows[i].min_version <= cudaVersion &&
            g_future_rows[i].min_version >= best->min_version)
            best = &g_future_rows[i];
    if (!best) {
        *pfn = NULL;
        *status = known ? CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
        return CUDA_ERROR_NOT_FOUND;
    }
    *pfn = best->fn;
    *status = CU_GET_PROC_ADDRESS_SUCCESS;
    return CUDA_SUCCESS;
}

static CUresult gpa_common(const char *abi, const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                           CUdriverProcAddressQueryResult *symbolStatus)
{
    cfg();
    CUdriverProcAddressQueryResult st;
    CUresult res = gpa_lookup(symbol, pfn, cudaVersion, flags, &st);
    if (symbolStatus && res != CUDA_ERROR_INVALID_VALUE)
        *symbolStatus = st;
    trace("fakecuda: gpa abi=%s symbol=%s version=%d flags=%llu result=%d status=%d", abi,
          symbol ? symbol : "(null)", cudaVersion, (unsigned long long)flags, (int)res, (int)st);
    return res;
}

CUresult CUDAAPI cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                                  CUdriverProcAddressQueryResult *symbolStatus) /* = cuGetProcAddress_v2 */
{
    FAKE_ENTRY();
    return gpa_common("v2", symbol, pfn, cudaVersion, flags, symbolStatus);
}

CUresult CUDAAPI legacy_cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags)
{
    FAKE_ENTRY();
    return gpa_common("v1", symbol, pfn, cudaVersion, flags, NULL);
}
