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
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
FAKE_API CUresult CUDAAPI cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream);
FAKE_API CUresult CUDAAPI cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream);

/* ------------------------------------------------------------------------ */
/* Configuration (environment, read once)                                    */

#define FAKE_MAX_DEVICES 8
#define FAKE_DEV_BASE 0x7e0000000000ULL
#define FAKE_DEV_STRIDE 0x10000000000ULL /* 1 TiB of synthetic address space per device */
#define FAKE_LEGACY_LO 0x10000000ULL     /* legacy (32-bit) device addresses */
#define FAKE_LEGACY_HI 0x100000000ULL
#define FAKE_ALIGN 512u
#define FAKE_DRIVER_VERSION 13000

static struct {
    int devices;
    unsigned long long vram;
    int pageable_access;
    int legacy_alloc;
    int trace_fd; /* -1: off */
} g_cfg = {1, 1073741824ULL, 0, 0, -1};

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
/* Driver state: initialisation, primary contexts, per-thread context stack   */

static volatile int g_inited; /* set by cuInit(0), under g_lock */

struct fake_ctx {
    unsigned magic;
    int device;
    int refcount;
};
#define FAKE_CTX_MAGIC 0xFACEC7u
static struct fake_ctx g_ctx[FAKE_MAX_DEVICES];

#define FAKE_CTX_STACK 64
static _Thread_local struct fake_ctx *tl_stack[FAKE_CTX_STACK];
static _Thread_local int tl_depth;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static inline int inited(void)
{
    cfg();
    return __atomic_load_n(&g_inited, __ATOMIC_ACQUIRE);
}

static inline struct fake_ctx *cur_ctx(void) { return tl_depth > 0 ? tl_stack[tl_depth - 1] : NULL; }

static struct fake_ctx *ctx_from_handle(CUcontext h)
{
    struct fake_ctx *c = (struct fake_ctx *)(void *)h;
    if (c < &g_ctx[0] || c >= &g_ctx[FAKE_MAX_DEVICES])
        return NULL;
    if (((uintptr_t)c - (uintptr_t)&g_ctx[0]) % sizeof(struct fake_ctx))
        return NULL;
    return c->magic == FAKE_CTX_MAGIC ? c : NULL;
}

static inline int valid_dev(CUdevice d) { return d >= 0 && d < g_cfg.devices; }

/* Common preamble: driver initialised and a current context.  *dev gets its device. */
static CUresult need_ctx(int *dev)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    struct fake_ctx *c = cur_ctx();
    if (!c)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (dev)
        *dev = c->device;
    return CUDA_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Allocation map: array sorted by start address, one mutex                   */

enum fake_kind { K_DEVICE = 1, K_PINNED, K_REGISTERED, K_MANAGED };

struct fake_alloc {
    uintptr_t start;
    size_t size;     /* requested size (range size) */
    size_t charged;  /* VRAM charged to the device (device memory only) */
    int device;
    int kind;
    unsigned long long id;
};

static struct fake_alloc *g_map;
static size_t g_map_n, g_map_cap;
static unsigned long long g_next_id = 1;
static unsigned long long g_charged[FAKE_MAX_DEVICES];
static unsigned long long g_bump[FAKE_MAX_DEVICES]; /* next offset from the device base */
static unsigned long long g_legacy_bump = FAKE_LEGACY_LO;

/* index of the first entry with start > p (caller holds g_lock) */
static size_t map_upper(uintptr_t p)
{
    size_t lo = 0, hi = g_map_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g_map[mid].start <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* entry containing p (interior pointers too), or NULL (caller holds g_lock) */
static struct fake_alloc *map_find(uintptr_t p)
{
    size_t i = map_upper(p);
    if (i == 0)
        return NULL;
    struct fake_alloc *a = &g_map[i - 1];
    size_t len = a->size ? a->size : 1;
    return p - a->start < len ? a : NULL;
}

/* exact start match, or NULL (caller holds g_lock) */
static struct fake_alloc *map_exact(uintptr_t p)
{
    struct fake_alloc *a = map_find(p);
    return a && a->start == p ? a : NULL;
}

static int map_insert(const struct fake_alloc *a)
{
    if (g_map_n == g_map_cap) {
        size_t ncap = g_map_cap ? g_map_cap * 2 : 256;
        struct fake_alloc *n = realloc(g_map, ncap * sizeof *n);
        if (!n)
            return -1;
        g_map = n;
        g_map_cap = ncap;
    }
    size_t i = map_upper(a->start);
    memmove(&g_map[i + 1], &g_map[i], (g_map_n - i) * sizeof *g_map);
    g_map[i] = *a;
    g_map[i].id = g_next_id++;
    g_map_n++;
    return 0;
}

static void map_remove(struct fake_alloc *a)
{
    size_t i = (size_t)(a - g_map);
    memmove(&g_map[i], &g_map[i + 1], (g_map_n - i - 1) * sizeof *g_map);
    g_map_n--;
}

/* lowest gap of r bytes in [lo, hi) between live entries (caller holds g_lock); 0 if none */
static uintptr_t find_gap(uintptr_t lo, uintptr_t hi, size_t r)
{
    uintptr_t cand = lo;
    for (size_t i = map_upper(lo > 0 ? lo - 1 : 0); i < g_map_n && g_map[i].start < hi; i++) {
        const struct fake_alloc *a = &g_map[i];
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
    } else {
        uintptr_t base = FAKE_DEV_BASE + (uintptr_t)dev * FAKE_DEV_STRIDE;
        if (r <= FAKE_DEV_STRIDE - g_bump[dev]) {
            addr = base + g_bump[dev];
            g_bump[dev] += r;
        } else if (!(addr = find_gap(base, base + FAKE_DEV_STRIDE, r))) {
            res = CUDA_ERROR_OUT_OF_MEMORY;
            goto out;
        }
    }
    struct fake_alloc a = {.start = addr, .size = size, .charged = r, .device = dev, .kind = K_DEVICE};
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

/* Free device or managed memory at exactly p. */
static CUresult dev_free(uintptr_t p)
{
    void *host = NULL;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    struct fake_alloc *a = map_exact(p);
    if (!a || (a->kind != K_DEVICE && a->kind != K_MANAGED)) {
        res = CUDA_ERROR_INVALID_VALUE;
    } else {
        if (a->kind == K_DEVICE)
            g_charged[a->device] -= a->charged;
        else
            host = (void *)a->start;
        map_remove(a);
    }
    pthread_mutex_unlock(&g_lock);
    free(host);
    return res;
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
    struct fake_alloc a = {.start = (uintptr_t)p, .size = size, .device = dev, .kind = kind};
    pthread_mutex_lock(&g_lock);
    int rc = map_insert(&a);
    pthread_mutex_unlock(&g_lock);
    return rc ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Initialisation, version, devices                                           */

CUresult CUDAAPI cuInit(unsigned int Flags)
{
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
        }
        __atomic_store_n(&g_inited, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&g_lock);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDriverGetVersion(int *driverVersion)
{
    if (!driverVersion)
        return CUDA_ERROR_INVALID_VALUE;
    *driverVersion = FAKE_DRIVER_VERSION;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetCount(int *count)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!count)
        return CUDA_ERROR_INVALID_VALUE;
    *count = g_cfg.devices;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGet(CUdevice *device, int ordinal)
{
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
    return get_uuid(uuid, dev);
}

CUresult CUDAAPI legacy_cuDeviceGetUuid(CUuuid *uuid, CUdevice dev) { return get_uuid(uuid, dev); }

CUresult CUDAAPI cuDeviceGetPCIBusId(char *pciBusId, int len, CUdevice dev)
{
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

CUresult CUDAAPI cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!pctx)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_dev(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    pthread_mutex_lock(&g_lock);
    g_ctx[dev].refcount++;
    pthread_mutex_unlock(&g_lock);
    *pctx = (CUcontext)(void *)&g_ctx[dev];
    return CUDA_SUCCESS;
}

static CUresult primary_release(CUdevice dev)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!valid_dev(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    if (g_ctx[dev].refcount > 0)
        g_ctx[dev].refcount--;
    else
        res = CUDA_ERROR_INVALID_CONTEXT;
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuDevicePrimaryCtxRelease(CUdevice dev) /* = cuDevicePrimaryCtxRelease_v2 */
{
    return primary_release(dev);
}

CUresult CUDAAPI legacy_cuDevicePrimaryCtxRelease(CUdevice dev) { return primary_release(dev); }

CUresult CUDAAPI cuCtxSetCurrent(CUcontext ctx)
{
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
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!pctx)
        return CUDA_ERROR_INVALID_VALUE;
    *pctx = (CUcontext)(void *)cur_ctx();
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxGetDevice(CUdevice *device)
{
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!device)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_ctx *c = cur_ctx();
    if (!c)
        return CUDA_ERROR_INVALID_CONTEXT;
    *device = c->device;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxPushCurrent(CUcontext ctx) /* = cuCtxPushCurrent_v2 */
{
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
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (tl_depth == 0)
        return CUDA_ERROR_INVALID_CONTEXT;
    struct fake_ctx *c = tl_stack[--tl_depth];
    if (pctx)
        *pctx = (CUcontext)(void *)c;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxSynchronize(void) { return need_ctx(NULL); }

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
    {500, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {712, "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED", "part or all of the requested memory range is already mapped"},
    {713, "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED", "pointer does not correspond to a registered memory region"},
    {800, "CUDA_ERROR_NOT_PERMITTED", "operation not permitted"},
    {801, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
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

CUresult CUDAAPI cuGetErrorName(CUresult error, const char **pStr) { return error_lookup(error, pStr, 1); }
CUresult CUDAAPI cuGetErrorString(CUresult error, const char **pStr) { return error_lookup(error, pStr, 0); }

/* ------------------------------------------------------------------------ */
/* Device memory                                                              */

CUresult CUDAAPI cuMemAlloc(CUdeviceptr *dptr, size_t bytesize) /* = cuMemAlloc_v2 */
{
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
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (dptr == 0)
        return CUDA_SUCCESS;
    return dev_free((uintptr_t)dptr);
}

CUresult CUDAAPI cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
    (void)hStream;
    return cuMemAlloc_v2(dptr, bytesize);
}

CUresult CUDAAPI cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
    (void)hStream;
    return cuMemAlloc_v2(dptr, bytesize);
}

CUresult CUDAAPI cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream)
{
    (void)hStream;
    return cuMemFree_v2(dptr);
}

CUresult CUDAAPI cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream)
{
    (void)hStream;
    return cuMemFree_v2(dptr);
}

CUresult CUDAAPI cuMemGetInfo(size_t *free_bytes, size_t *total) /* = cuMemGetInfo_v2 */
{
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
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!g_cfg.legacy_alloc)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (dptr == 0)
        return CUDA_SUCCESS;
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
    return pinned_alloc(pp, bytesize, 0);
}

CUresult CUDAAPI legacy_cuMemAllocHost(void **pp, unsigned int bytesize) { return pinned_alloc(pp, bytesize, 0); }

CUresult CUDAAPI cuMemHostAlloc(void **pp, size_t bytesize, unsigned int Flags)
{
    return pinned_alloc(pp, bytesize, Flags);
}

CUresult CUDAAPI cuMemFreeHost(void *p)
{
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
    for (size_t i = map_upper(lo) > 0 ? map_upper(lo) - 1 : 0; i < g_map_n && g_map[i].start < hi; i++) {
        const struct fake_alloc *a = &g_map[i];
        if ((a->kind == K_PINNED || a->kind == K_REGISTERED) && a->start + a->size > lo) {
            res = CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
            break;
        }
    }
    if (res == CUDA_SUCCESS) {
        struct fake_alloc a = {.start = lo, .size = size, .device = dev, .kind = K_REGISTERED};
        if (map_insert(&a))
            res = CUDA_ERROR_OUT_OF_MEMORY;
    }
    pthread_mutex_unlock(&g_lock);
    return res;
}

CUresult CUDAAPI cuMemHostRegister(void *p, size_t bytesize, unsigned int Flags) /* = cuMemHostRegister_v2 */
{
    return host_register(p, bytesize, Flags);
}

CUresult CUDAAPI legacy_cuMemHostRegister(void *p, size_t bytesize, unsigned int Flags)
{
    return host_register(p, bytesize, Flags);
}

CUresult CUDAAPI cuMemHostUnregister(void *p)
{
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
    int is_dev = a->kind == K_DEVICE;
    switch (attr) {
    case CU_POINTER_ATTRIBUTE_CONTEXT:
        *(CUcontext *)data = (CUcontext)(void *)&g_ctx[a->device];
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
        *(unsigned int *)data = (a->kind == K_DEVICE || a->kind == K_MANAGED) ? CU_MEMORYTYPE_DEVICE : CU_MEMORYTYPE_HOST;
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
        *(unsigned int *)data = a->kind == K_MANAGED;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL:
        *(int *)data = a->device;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE:
        *(unsigned int *)data = is_dev;
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
        *(unsigned long long *)data = 0;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE:
        *(void **)data = NULL;
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
    if (!inited())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!data)
        return CUDA_ERROR_INVALID_VALUE;
    struct fake_alloc a;
    if (!lookup_copy(ptr, &a))
        return CUDA_ERROR_INVALID_VALUE;
    return ptr_attr(&a, ptr, attribute, data, 1);
}

CUresult CUDAAPI cuPointerGetAttributes(unsigned int numAttributes, CUpointer_attribute *attributes, void **data,
                                        CUdeviceptr ptr)
{
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
    ROW("cuMemAllocAsync", 11020, cuMemAllocAsync),
    ROW_PTSZ("cuMemAllocAsync", 11020, cuMemAllocAsync_ptsz),
    ROW("cuMemFreeAsync", 11020, cuMemFreeAsync),
    ROW_PTSZ("cuMemFreeAsync", 11020, cuMemFreeAsync_ptsz),
    ROW("cuGetErrorName", 6000, cuGetErrorName),
    ROW("cuGetErrorString", 6000, cuGetErrorString),
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
    return gpa_common("v2", symbol, pfn, cudaVersion, flags, symbolStatus);
}

CUresult CUDAAPI legacy_cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags)
{
    return gpa_common("v1", symbol, pfn, cudaVersion, flags, NULL);
}
