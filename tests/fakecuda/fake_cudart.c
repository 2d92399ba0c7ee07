/*
 * fake_cudart.c - a GPU-less stand-in for the CUDA runtime (libcudart) used by
 * vramguard's tests.  See tests/fakecuda/README.md.
 *
 * Built twice from this one source:
 *   build/fakecuda/libcudart.so.13        shared, -Wl,-Bsymbolic, cuda* exported
 *   build/fakecuda/libcudart_static_fake.a  -fvisibility=hidden -DFAKECUDART_STATIC:
 *       a program linked with it exports no cuda* symbol (like nvcc's default
 *       static cudart, whose cudaMalloc is an internal call no interposer sees).
 *
 * It bootstraps the driver exactly as the real cudart does (DESIGN.md, "Facts
 * measured"): dlopen("libcuda.so.1"), dlsym("cuGetProcAddress_v2"), a probe
 * GPA(""), GPA("cuInit", 2000), cuInit(0), GPA("cuGetProcAddress", 11030) and
 * (12000) -- the 12000 pointer replaces the bootstrap pointer -- then every
 * driver function at its own ABI version.
 */
#include <cuda.h>
#include <cuda_runtime_api.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef FAKECUDART_STATIC
#define FAKERT_API /* hidden: -fvisibility=hidden */
/* CUDA 13's libcudart_static.a names every internal function
 * libcudart_static_<sha1> (nm: 1 703 functions, cudaXxx or that); so do
 * ours, readable. The shim tells cudart's frames by these names. */
#define fork_child libcudart_static_fork_child
#define fetch libcudart_static_fetch
#define bootstrap libcudart_static_bootstrap
#define fail libcudart_static_fail
#define enter libcudart_static_enter
#define channel_format libcudart_static_channel_format
#define array_3d libcudart_static_array_3d
#else
#define FAKERT_API __attribute__((visibility("default")))
#endif

#ifndef FAKECUDART_MAJOR
#define FAKECUDART_MAJOR 13
#endif
#define FAKERT_RUNTIME_VERSION (FAKECUDART_MAJOR * 1000)
#define FAKERT_MAX_DEVICES 8

/* ------------------------------------------------------------------------ */
/* Driver entry points, fetched at bootstrap                                  */

typedef CUresult (*gpa_v2_t)(const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *);
typedef CUresult (*gpa_v1_t)(const char *, void **, int, cuuint64_t);

static struct {
    CUresult (*init)(unsigned int);
    CUresult (*memAlloc)(CUdeviceptr *, size_t);
    CUresult (*memAllocPitch)(CUdeviceptr *, size_t *, size_t, size_t, unsigned int);
    CUresult (*memFree)(CUdeviceptr);
    CUresult (*memAllocHost)(void **, size_t);
    CUresult (*memHostAlloc)(void **, size_t, unsigned int);
    CUresult (*memFreeHost)(void *);
    CUresult (*memAllocManaged)(CUdeviceptr *, size_t, unsigned int);
    CUresult (*memHostRegister)(void *, size_t, unsigned int);
    CUresult (*memHostUnregister)(void *);
    CUresult (*memAllocAsync)(CUdeviceptr *, size_t, CUstream);
    CUresult (*memAllocAsync_ptsz)(CUdeviceptr *, size_t, CUstream);
    CUresult (*memFreeAsync)(CUdeviceptr, CUstream);
    CUresult (*memFreeAsync_ptsz)(CUdeviceptr, CUstream);
    CUresult (*memGetInfo)(size_t *, size_t *);
    CUresult (*deviceGetCount)(int *);
    CUresult (*deviceGet)(CUdevice *, int);
    CUresult (*primaryCtxRetain)(CUcontext *, CUdevice);
    CUresult (*ctxSetCurrent)(CUcontext);
    CUresult (*ctxGetDevice)(CUdevice *);
    CUresult (*pointerGetAttribute)(void *, CUpointer_attribute, CUdeviceptr);
    CUresult (*ctxSynchronize)(void);
    CUresult (*driverGetVersion)(int *);
    /* appended after the original set: the bootstrap trace keeps its prefix */
    CUresult (*memAllocFromPoolAsync)(CUdeviceptr *, size_t, CUmemoryPool, CUstream);
    CUresult (*memPoolCreate)(CUmemoryPool *, const CUmemPoolProps *);
    CUresult (*memPoolDestroy)(CUmemoryPool);
    CUresult (*deviceGetDefaultMemPool)(CUmemoryPool *, CUdevice);
    CUresult (*memPoolGetAttribute)(CUmemoryPool, CUmemPool_attribute, void *);
    CUresult (*array3DCreate)(CUarray *, const CUDA_ARRAY3D_DESCRIPTOR *);
    CUresult (*arrayDestroy)(CUarray);
    CUresult (*streamCreate)(CUstream *, unsigned int);
    CUresult (*streamDestroy)(CUstream);
    CUresult (*streamSynchronize)(CUstream);
    CUresult (*streamBeginCapture)(CUstream, CUstreamCaptureMode);
    CUresult (*streamEndCapture)(CUstream, CUgraph *);
    CUresult (*graphInstantiate)(CUgraphExec *, CUgraph, unsigned long long);
    CUresult (*graphLaunch)(CUgraphExec, CUstream);
    CUresult (*graphDestroy)(CUgraph);
    CUresult (*graphExecDestroy)(CUgraphExec);
    CUresult (*deviceGraphMemTrim)(CUdevice);
    CUresult (*ipcGetMemHandle)(CUipcMemHandle *, CUdeviceptr);
    CUresult (*ipcOpenMemHandle)(CUdeviceptr *, CUipcMemHandle, unsigned int);
    CUresult (*ipcCloseMemHandle)(CUdeviceptr);
    CUresult (*primaryCtxReset)(CUdevice);
    CUresult (*primaryCtxRelease)(CUdevice);
    CUresult (*ctxGetCurrent)(CUcontext *);
} d;

/* Bootstrap lookups after cuInit, in the order the real cudart performs them.
 * export_name: the symbol dlsym'd when the driver has no cuGetProcAddress_v2. */
static const struct fetch_row {
    const char *name;
    int version;
    unsigned flags;
    size_t slot; /* offsetof(d, ...) */
    const char *export_name;
} g_fetch[] = {
#define F(name, ver, flags, field, exp) {name, ver, flags, offsetof(__typeof__(d), field), exp}
    F("cuMemAlloc", 3020, 0, memAlloc, "cuMemAlloc_v2"),
    F("cuMemAllocPitch", 3020, 0, memAllocPitch, "cuMemAllocPitch_v2"),
    F("cuMemFree", 3020, 0, memFree, "cuMemFree_v2"),
    F("cuMemAllocHost", 3020, 0, memAllocHost, "cuMemAllocHost_v2"),
    F("cuMemHostAlloc", 2020, 0, memHostAlloc, "cuMemHostAlloc"),
    F("cuMemFreeHost", 2000, 0, memFreeHost, "cuMemFreeHost"),
    F("cuMemAllocManaged", 6000, 0, memAllocManaged, "cuMemAllocManaged"),
    F("cuMemHostRegister", 6050, 0, memHostRegister, "cuMemHostRegister_v2"),
    F("cuMemHostUnregister", 4000, 0, memHostUnregister, "cuMemHostUnregister"),
    F("cuMemAllocAsync", 11020, 0, memAllocAsync, "cuMemAllocAsync"),
    F("cuMemAllocAsync", 11020, 2, memAllocAsync_ptsz, "cuMemAllocAsync_ptsz"),
    F("cuMemFreeAsync", 11020, 0, memFreeAsync, "cuMemFreeAsync"),
    F("cuMemFreeAsync", 11020, 2, memFreeAsync_ptsz, "cuMemFreeAsync_ptsz"),
    F("cuMemGetInfo", 3020, 0, memGetInfo, "cuMemGetInfo_v2"),
    F("cuDeviceGetCount", 2000, 0, deviceGetCount, "cuDeviceGetCount"),
    F("cuDeviceGet", 2000, 0, deviceGet, "cuDeviceGet"),
    F("cuDevicePrimaryCtxRetain", 7000, 0, primaryCtxRetain, "cuDevicePrimaryCtxRetain"),
    F("cuCtxSetCurrent", 4000, 0, ctxSetCurrent, "cuCtxSetCurrent"),
    F("cuCtxGetDevice", 2000, 0, ctxGetDevice, "cuCtxGetDevice"),
    F("cuPointerGetAttribute", 4000, 0, pointerGetAttribute, "cuPointerGetAttribute"),
    F("cuCtxSynchronize", 2000, 0, ctxSynchronize, "cuCtxSynchronize"),
    F("cuDriverGetVersion", 2020, 0, driverGetVersion, "cuDriverGetVersion"),
    F("cuMemAllocFromPoolAsync", 11020, 0, memAllocFromPoolAsync, "cuMemAllocFromPoolAsync"),
    F("cuMemPoolCreate", 11020, 0, memPoolCreate, "cuMemPoolCreate"),
    F("cuMemPoolDestroy", 11020, 0, memPoolDestroy, "cuMemPoolDestroy"),
    F("cuDeviceGetDefaultMemPool", 11020, 0, deviceGetDefaultMemPool, "cuDeviceGetDefaultMemPool"),
    F("cuMemPoolGetAttribute", 11020, 0, memPoolGetAttribute, "cuMemPoolGetAttribute"),
    F("cuArray3DCreate", 3020, 0, array3DCreate, "cuArray3DCreate_v2"),
    F("cuArrayDestroy", 2000, 0, arrayDestroy, "cuArrayDestroy"),
    F("cuStreamCreate", 2000, 0, streamCreate, "cuStreamCreate"),
    F("cuStreamDestroy", 4000, 0, streamDestroy, "cuStreamDestroy_v2"),
    F("cuStreamSynchronize", 2000, 0, streamSynchronize, "cuStreamSynchronize"),
    F("cuStreamBeginCapture", 10010, 0, streamBeginCapture, "cuStreamBeginCapture_v2"),
    F("cuStreamEndCapture", 10000, 0, streamEndCapture, "cuStreamEndCapture"),
    F("cuGraphInstantiateWithFlags", 11040, 0, graphInstantiate, "cuGraphInstantiateWithFlags"),
    F("cuGraphLaunch", 10000, 0, graphLaunch, "cuGraphLaunch"),
    F("cuGraphDestroy", 10000, 0, graphDestroy, "cuGraphDestroy"),
    F("cuGraphExecDestroy", 10000, 0, graphExecDestroy, "cuGraphExecDestroy"),
    F("cuDeviceGraphMemTrim", 11040, 0, deviceGraphMemTrim, "cuDeviceGraphMemTrim"),
    F("cuIpcGetMemHandle", 4010, 0, ipcGetMemHandle, "cuIpcGetMemHandle"),
    F("cuIpcOpenMemHandle", 11000, 0, ipcOpenMemHandle, "cuIpcOpenMemHandle_v2"),
    F("cuIpcCloseMemHandle", 4010, 0, ipcCloseMemHandle, "cuIpcCloseMemHandle"),
    F("cuDevicePrimaryCtxReset", 11000, 0, primaryCtxReset, "cuDevicePrimaryCtxReset_v2"),
    F("cuDevicePrimaryCtxRelease", 11000, 0, primaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"),
    F("cuCtxGetCurrent", 4000, 0, ctxGetCurrent, "cuCtxGetCurrent"),
#undef F
};

static void *g_libcuda;
static gpa_v2_t g_gpa;        /* bootstrap pointer, then the 12000 one */
static gpa_v1_t g_gpa_legacy; /* GPA("cuGetProcAddress", 11030): fetched, kept, unused */
static cudaError_t g_boot_err = cudaSuccess;
static pthread_once_t g_boot_once = PTHREAD_ONCE_INIT;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

/* On its own cache line: every thread's cudaMalloc writes it. Not kept under
 * FAKECUDA_THREAD_ARENAS=1 (the driver's benchmark mode: nothing shared). */
static int malloc_calls __attribute__((aligned(64)));
static int g_count_mallocs = 1;

/* A child forked while another thread held g_lock gets it unlocked. Only
 * the child: the lock is held across a driver call (primary context
 * retain), so taking it before fork could invert the order against the
 * driver's own fork lock; what it guards stays consistent (g_primary[dev]
 * is written by the driver under the driver's lock, which fork holds).
 * Registered by the bootstrap, not a constructor: the program's static
 * copy keeps no code in .text.startup, which would put the runtime's
 * object ahead of the program's own code (vramguard tells the runtime's
 * frames by their object file). */
static void fork_child(void) { pthread_mutex_init(&g_lock, NULL); }
static CUcontext g_primary[FAKERT_MAX_DEVICES]; /* retained once per device */

static _Thread_local int tl_device;     /* cudaSetDevice */
static _Thread_local int tl_bound = -1; /* device whose primary ctx this thread made current */
static int g_resets;                    /* cudaDeviceReset calls: every thread binds again after one */
static _Thread_local int tl_resets;     /* g_resets when this thread bound */
static _Thread_local cudaError_t tl_last_error = cudaSuccess;

static void *fetch(const char *name, int version, unsigned flags, const char *export_name)
{
    void *p = NULL;
    if (g_gpa) {
        CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
        if (g_gpa(name, &p, version, flags, &st) != CUDA_SUCCESS || st != CU_GET_PROC_ADDRESS_SUCCESS)
            p = NULL;
    } else {
        p = dlsym(g_libcuda, export_name);
    }
    return p;
}

/* A context the program made current through the driver API: the runtime
 * uses it rather than the primary one (CUDA's runtime/driver interop), even
 * one destroyed while below another on the thread's stack (its calls then
 * fail: 201, cudaErrorDeviceUninitialized, see fail(); H200 runs 15, 16). */
static bool driver_context_current(void)
{
    CUcontext cur = NULL;
    return d.ctxGetCurrent && d.ctxGetCurrent(&cur) == CUDA_SUCCESS && cur != NULL;
}

static void bootstrap(void)
{
    pthread_atfork(NULL, NULL, fork_child);
    const char *arenas = getenv("FAKECUDA_THREAD_ARENAS");
    /* the driver's reading of the value: a plain decimal 1 ("01" too) */
    size_t digits = arenas ? strspn(arenas, "0123456789") : 0;
    g_count_mallocs = !(digits > 0 && arenas[digits] == '\0' && strtoull(arenas, NULL, 10) == 1);
    /* (1) */
    g_libcuda = dlopen("libcuda.so.1", RTLD_NOW);
    if (!g_libcuda) {
        g_boot_err = cudaErrorInsufficientDriver;
        return;
    }
    /* (2) */
    g_gpa = (gpa_v2_t)dlsym(g_libcuda, "cuGetProcAddress_v2");
    if (g_gpa) {
        /* (3) probe */
        void *p = NULL;
        (void)g_gpa("", &p, 0, 0, NULL);
    }
    /* (4) */
    d.init = (CUresult(*)(unsigned))fetch("cuInit", 2000, 0, "cuInit");
    if (!d.init) {
        g_boot_err = cudaErrorInsufficientDriver;
        return;
    }
    CUresult res = d.init(0);
    if (res != CUDA_SUCCESS) {
        g_boot_err = (cudaError_t)res;
        return;
    }
    if (g_gpa) {
        g_gpa_legacy = (gpa_v1_t)fetch("cuGetProcAddress", 11030, 0, "cuGetProcAddress");
        gpa_v2_t gpa12 = (gpa_v2_t)fetch("cuGetProcAddress", 12000, 0, "cuGetProcAddress_v2");
        if (gpa12)
            g_gpa = gpa12; /* replaces the bootstrap pointer */
    }
    (void)g_gpa_legacy;
    /* (5) */
    for (size_t i = 0; i < sizeof g_fetch / sizeof g_fetch[0]; i++) {
        const struct fetch_row *r = &g_fetch[i];
        void *p = fetch(r->name, r->version, r->flags, r->export_name);
        memcpy((char *)&d + r->slot, &p, sizeof p);
    }
    if (!d.memAlloc || !d.memFree || !d.deviceGetCount || !d.primaryCtxRetain || !d.ctxSetCurrent) {
        g_boot_err = cudaErrorInsufficientDriver;
        return;
    }
    /* device 0's primary context, current on the calling thread */
    res = d.primaryCtxRetain(&g_primary[0], 0);
    if (res != CUDA_SUCCESS) {
        g_boot_err = (cudaError_t)res;
        return;
    }
    if (driver_context_current() || d.ctxSetCurrent(g_primary[0]) == CUDA_SUCCESS)
        tl_bound = 0;
}

static inline cudaError_t fail(cudaError_t e)
{
    if ((int)e == CUDA_ERROR_CONTEXT_IS_DESTROYED)
        e = cudaErrorDeviceUninitialized; /* H200 (run 16): cudaMalloc in a destroyed current context answers 201 */
    if (e != cudaSuccess)
        tl_last_error = e;
    return e;
}

/* Bootstrap, then make the current device's primary context current on this thread. */
static cudaError_t enter(void)
{
    pthread_once(&g_boot_once, bootstrap);
    if (g_boot_err != cudaSuccess)
        return g_boot_err;
    int dev = tl_device;
    if (tl_bound == dev && tl_resets == __atomic_load_n(&g_resets, __ATOMIC_ACQUIRE))
        return cudaSuccess;
    if (tl_bound == -1 && driver_context_current()) { /* this thread's first runtime call */
        tl_bound = dev;
        tl_resets = __atomic_load_n(&g_resets, __ATOMIC_ACQUIRE);
        return cudaSuccess;
    }
    CUresult res = CUDA_SUCCESS;
    pthread_mutex_lock(&g_lock);
    if (!g_primary[dev])
        res = d.primaryCtxRetain(&g_primary[dev], dev);
    CUcontext ctx = g_primary[dev];
    pthread_mutex_unlock(&g_lock);
    if (res == CUDA_SUCCESS)
        res = d.ctxSetCurrent(ctx);
    if (res != CUDA_SUCCESS)
        return (cudaError_t)res;
    tl_bound = dev;
    tl_resets = __atomic_load_n(&g_resets, __ATOMIC_ACQUIRE);
    return cudaSuccess;
}

#define ENTER()                                                                                                        \
    do {                                                                                                               \
        cudaError_t e_ = enter();                                                                                      \
        if (e_ != cudaSuccess)                                                                                         \
            return fail(e_);                                                                                           \
    } while (0)

#define FWD(call) return fail((cudaError_t)(call))
#define NEED(fn)                                                                                                       \
    do {                                                                                                               \
        if (!d.fn)                                                                                                     \
            return fail(cudaErrorNotSupported);                                                                        \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Memory                                                                     */

/* How many cudaMalloc calls this copy of the runtime served: tests with two
 * cudart majors in one process check which copy a call reached. */
FAKERT_API int fakecudart_malloc_calls(void);
FAKERT_API int fakecudart_malloc_calls(void)
{
    return malloc_calls;
}

FAKERT_API cudaError_t CUDARTAPI cudaMalloc(void **devPtr, size_t size)
{
    cudaError_t e = enter();
    /* After enter(): its bootstrap decides g_count_mallocs (the first call was counted in any mode). */
    if (g_count_mallocs)
        __atomic_fetch_add(&malloc_calls, 1, __ATOMIC_RELAXED);
    if (e != cudaSuccess)
        return fail(e);
    if (!devPtr)
        return fail(cudaErrorInvalidValue);
    if (size == 0) { /* the real runtime succeeds with NULL */
        *devPtr = NULL;
        return cudaSuccess;
    }
    CUdeviceptr p;
    CUresult res = d.memAlloc(&p, size);
    if (res == CUDA_SUCCESS)
        *devPtr = (void *)(uintptr_t)p;
    FWD(res);
}

FAKERT_API cudaError_t CUDARTAPI cudaMallocPitch(void **devPtr, size_t *pitch, size_t width, size_t height)
{
    ENTER();
    NEED(memAllocPitch);
    if (!devPtr || !pitch)
        return fail(cudaErrorInvalidValue);
    CUdeviceptr p;
    size_t pt;
    CUresult res = d.memAllocPitch(&p, &pt, width, height, 16);
    if (res == CUDA_SUCCESS) {
        *devPtr = (void *)(uintptr_t)p;
        *pitch = pt;
    }
    FWD(res);
}

FAKERT_API cudaError_t CUDARTAPI cudaFree(void *devPtr)
{
    ENTER();
    FWD(d.memFree((CUdeviceptr)(uintptr_t)devPtr));
}

FAKERT_API cudaError_t CUDARTAPI cudaMallocHost(void **ptr, size_t size)
{
    ENTER();
    NEED(memHostAlloc);
    FWD(d.memHostAlloc(ptr, size, 0));
}

FAKERT_API cudaError_t CUDARTAPI cudaHostAlloc(void **pHost, size_t size, unsigned int flags)
{
    ENTER();
    NEED(memHostAlloc);
    FWD(d.memHostAlloc(pHost, size, flags));
}

FAKERT_API cudaError_t CUDARTAPI cudaFreeHost(void *ptr)
{
    ENTER();
    NEED(memFreeHost);
    FWD(d.memFreeHost(ptr));
}

FAKERT_API cudaError_t CUDARTAPI cudaHostRegister(void *ptr, size_t size, unsigned int flags)
{
    ENTER();
    NEED(memHostRegister);
    FWD(d.memHostRegister(ptr, size, flags));
}

FAKERT_API cudaError_t CUDARTAPI cudaHostUnregister(void *ptr)
{
    ENTER();
    NEED(memHostUnregister);
    FWD(d.memHostUnregister(ptr));
}

FAKERT_API cudaError_t CUDARTAPI cudaMallocManaged(void **devPtr, size_t size, unsigned int flags)
{
    ENTER();
    NEED(memAllocManaged);
    if (!devPtr)
        return fail(cudaErrorInvalidValue);
    CUdeviceptr p;
    CUresult res = d.memAllocManaged(&p, size, flags);
    if (res == CUDA_SUCCESS)
        *devPtr = (void *)(uintptr_t)p;
    FWD(res);
}

FAKERT_API cudaError_t CUDARTAPI cudaMallocAsync(void **devPtr, size_t size, cudaStream_t hStream)
{
    ENTER();
    NEED(memAllocAsync);
    if (!devPtr)
        return fail(cudaErrorInvalidValue);
    CUdeviceptr p;
    CUresult res = d.memAllocAsync(&p, size, (CUstream)hStream);
    if (res == CUDA_SUCCESS)
        *devPtr = (void *)(uintptr_t)p;
    FWD(res);
}

FAKERT_API cudaError_t CUDARTAPI cudaFreeAsync(void *devPtr, cudaStream_t hStream)
{
    ENTER();
    NEED(memFreeAsync);
    FWD(d.memFreeAsync((CUdeviceptr)(uintptr_t)devPtr, (CUstream)hStream));
}

FAKERT_API cudaError_t CUDARTAPI cudaMallocFromPoolAsync(void **ptr, size_t size, cudaMemPool_t memPool,
                                                         cudaStream_t stream)
{
    ENTER();
    NEED(memAllocFromPoolAsync);
    if (!ptr)
        return fail(cudaErrorInvalidValue);
    CUdeviceptr p;
    CUresult res = d.memAllocFromPoolAsync(&p, size, (CUmemoryPool)memPool, (CUstream)stream);
    if (res == CUDA_SUCCESS)
        *ptr = (void *)(uintptr_t)p;
    FWD(res);
}

FAKERT_API cudaError_t CUDARTAPI cudaMemPoolCreate(cudaMemPool_t *memPool, const struct cudaMemPoolProps *poolProps)
{
    ENTER();
    NEED(memPoolCreate);
    if (!memPool || !poolProps)
        return fail(cudaErrorInvalidValue);
    CUmemPoolProps p;
    memset(&p, 0, sizeof p);
    p.allocType = (CUmemAllocationType)poolProps->allocType;
    p.handleTypes = (CUmemAllocationHandleType)poolProps->handleTypes;
    p.location.type = (CUmemLocationType)poolProps->location.type;
    p.location.id = poolProps->location.id;
    p.win32SecurityAttributes = poolProps->win32SecurityAttributes;
    p.maxSize = poolProps->maxSize;
    p.usage = poolProps->usage;
    CUmemoryPool pool;
    CUresult res = d.memPoolCreate(&pool, &p);
    if (res == CUDA_SUCCESS)
        *memPool = (cudaMemPool_t)pool;
    FWD(res);
}

FAKERT_API cudaError_t CUDARTAPI cudaMemPoolDestroy(cudaMemPool_t memPool)
{
    ENTER();
    NEED(memPoolDestroy);
    FWD(d.memPoolDestroy((CUmemoryPool)memPool));
}

FAKERT_API cudaError_t CUDARTAPI cudaDeviceGetDefaultMemPool(cudaMemPool_t *memPool, int device)
{
    ENTER();
    NEED(deviceGetDefaultMemPool);
    if (!memPool)
        return fail(cudaErrorInvalidValue);
    CUmemoryPool pool;
    CUresult res = d.deviceGetDefaultMemPool(&pool, (CUdevice)device);
    if (res == CUDA_ERROR_INVALID_DEVICE)
        return fail(cudaErrorInvalidDevice);
    if (res == CUDA_SUCCESS)
        *memPool = (cudaMemPool_t)pool;
    FWD(res);
}

FAKERT_API cudaError_t CUDARTAPI cudaMemPoolGetAttribute(cudaMemPool_t memPool, enum cudaMemPoolAttr attr, void *value)
{
    ENTER();
    NEED(memPoolGetAttribute);
    /* cudaMemPoolAttr and CUmemPool_attribute share their values */
    FWD(d.memPoolGetAttribute((CUmemoryPool)memPool, (CUmemPool_attribute)attr, value));
}

FAKERT_API cudaError_t CUDARTAPI cudaMalloc3D(struct cudaPitchedPtr *pitchedDevPtr, struct cudaExtent extent)
{
    ENTER();
    NEED(memAllocPitch);
    if (!pitchedDevPtr)
        return fail(cudaErrorInvalidValue);
    size_t rows;
    if (__builtin_mul_overflow(extent.height ? extent.height : 1, extent.depth ? extent.depth : 1, &rows))
        return fail(cudaErrorMemoryAllocation);
    CUdeviceptr p;
    size_t pitch;
    CUresult res = d.memAllocPitch(&p, &pitch, extent.width, rows, 16);
    if (res == CUDA_SUCCESS) {
        pitchedDevPtr->ptr = (void *)(uintptr_t)p;
        pitchedDevPtr->pitch = pitch;
        pitchedDevPtr->xsize = extent.width;
        pitchedDevPtr->ysize = extent.height;
    }
    FWD(res);
}

/* cudaChannelFormatDesc -> driver format and channel count */
static int channel_format(const struct cudaChannelFormatDesc *c, CUarray_format *fmt, unsigned *nch)
{
    int bits = c->x;
    unsigned n = (c->x != 0) + (c->y != 0) + (c->z != 0) + (c->w != 0);
    if (n == 0 || (c->y && c->y != bits) || (c->z && c->z != bits) || (c->w && c->w != bits))
        return -1;
    switch (c->f) {
    case cudaChannelFormatKindSigned:
        *fmt = bits == 8 ? CU_AD_FORMAT_SIGNED_INT8 : bits == 16 ? CU_AD_FORMAT_SIGNED_INT16 : CU_AD_FORMAT_SIGNED_INT32;
        break;
    case cudaChannelFormatKindUnsigned:
        *fmt = bits == 8 ? CU_AD_FORMAT_UNSIGNED_INT8 : bits == 16 ? CU_AD_FORMAT_UNSIGNED_INT16 : CU_AD_FORMAT_UNSIGNED_INT32;
        break;
    case cudaChannelFormatKindFloat:
        if (bits != 16 && bits != 32)
            return -1;
        *fmt = bits == 16 ? CU_AD_FORMAT_HALF : CU_AD_FORMAT_FLOAT;
        break;
    default:
        return -1;
    }
    if (bits != 8 && bits != 16 && bits != 32)
        return -1;
    *nch = n;
    return 0;
}

static cudaError_t array_3d(cudaArray_t *array, const struct cudaChannelFormatDesc *desc, size_t w, size_t h, size_t dd,
                            unsigned int flags)
{
    ENTER();
    NEED(array3DCreate);
    CUDA_ARRAY3D_DESCRIPTOR ad;
    memset(&ad, 0, sizeof ad);
    if (!array || !desc || channel_format(desc, &ad.Format, &ad.NumChannels))
        return fail(cudaErrorInvalidValue);
    ad.Width = w;
    ad.Height = h;
    ad.Depth = dd;
    ad.Flags = flags;
    CUarray a;
    CUresult res = d.array3DCreate(&a, &ad);
    if (res == CUDA_SUCCESS)
        *array = (cudaArray_t)a;
    FWD(res);
}

FAKERT_API cudaError_t CUDARTAPI cudaMallocArray(cudaArray_t *array, const struct cudaChannelFormatDesc *desc,
                                                 size_t width, size_t height, unsigned int flags)
{
    return array_3d(array, desc, width, height, 0, flags);
}

FAKERT_API cudaError_t CUDARTAPI cudaMalloc3DArray(cudaArray_t *array, const struct cudaChannelFormatDesc *desc,
                                                   struct cudaExtent extent, unsigned int flags)
{
    return array_3d(array, desc, extent.width, extent.height, extent.depth, flags);
}

FAKERT_API cudaError_t CUDARTAPI cudaFreeArray(cudaArray_t array)
{
    ENTER();
    NEED(arrayDestroy);
    if (!array) /* like cudaFree(0) */
        return cudaSuccess;
    FWD(d.arrayDestroy((CUarray)array));
}

/* ------------------------------------------------------------------------ */
/* Streams, capture, graphs                                                   */

FAKERT_API cudaError_t CUDARTAPI cudaStreamCreate(cudaStream_t *pStream)
{
    ENTER();
    NEED(streamCreate);
    if (!pStream)
        return fail(cudaErrorInvalidValue);
    FWD(d.streamCreate((CUstream *)pStream, 0));
}

FAKERT_API cudaError_t CUDARTAPI cudaStreamDestroy(cudaStream_t stream)
{
    ENTER();
    NEED(streamDestroy);
    FWD(d.streamDestroy((CUstream)stream));
}

FAKERT_API cudaError_t CUDARTAPI cudaStreamSynchronize(cudaStream_t stream)
{
    ENTER();
    NEED(streamSynchronize);
    FWD(d.streamSynchronize((CUstream)stream));
}

FAKERT_API cudaError_t CUDARTAPI cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode)
{
    ENTER();
    NEED(streamBeginCapture);
    FWD(d.streamBeginCapture((CUstream)stream, (CUstreamCaptureMode)mode));
}

FAKERT_API cudaError_t CUDARTAPI cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *pGraph)
{
    ENTER();
    NEED(streamEndCapture);
    FWD(d.streamEndCapture((CUstream)stream, (CUgraph *)pGraph));
}

FAKERT_API cudaError_t CUDARTAPI cudaGraphInstantiate(cudaGraphExec_t *pGraphExec, cudaGraph_t graph,
                                                      unsigned long long flags)
{
    ENTER();
    NEED(graphInstantiate);
    FWD(d.graphInstantiate((CUgraphExec *)pGraphExec, (CUgraph)graph, flags));
}

FAKERT_API cudaError_t CUDARTAPI cudaGraphLaunch(cudaGraphExec_t graphExec, cudaStream_t stream)
{
    ENTER();
    NEED(graphLaunch);
    FWD(d.graphLaunch((CUgraphExec)graphExec, (CUstream)stream));
}

FAKERT_API cudaError_t CUDARTAPI cudaGraphDestroy(cudaGraph_t graph)
{
    ENTER();
    NEED(graphDestroy);
    FWD(d.graphDestroy((CUgraph)graph));
}

FAKERT_API cudaError_t CUDARTAPI cudaGraphExecDestroy(cudaGraphExec_t graphExec)
{
    ENTER();
    NEED(graphExecDestroy);
    FWD(d.graphExecDestroy((CUgraphExec)graphExec));
}

FAKERT_API cudaError_t CUDARTAPI cudaDeviceGraphMemTrim(int device)
{
    ENTER();
    NEED(deviceGraphMemTrim);
    CUresult res = d.deviceGraphMemTrim((CUdevice)device);
    if (res == CUDA_ERROR_INVALID_DEVICE)
        return fail(cudaErrorInvalidDevice);
    FWD(res);
}

/* ------------------------------------------------------------------------ */
/* Legacy IPC                                                                 */

FAKERT_API cudaError_t CUDARTAPI cudaIpcGetMemHandle(cudaIpcMemHandle_t *handle, void *devPtr)
{
    ENTER();
    NEED(ipcGetMemHandle);
    if (!handle)
        return fail(cudaErrorInvalidValue);
    CUipcMemHandle h;
    CUresult res = d.ipcGetMemHandle(&h, (CUdeviceptr)(uintptr_t)devPtr);
    if (res == CUDA_SUCCESS)
        memcpy(handle, &h, sizeof *handle < sizeof h ? sizeof *handle : sizeof h);
    FWD(res);
}

FAKERT_API cudaError_t CUDARTAPI cudaIpcOpenMemHandle(void **devPtr, cudaIpcMemHandle_t handle, unsigned int flags)
{
    ENTER();
    NEED(ipcOpenMemHandle);
    if (!devPtr)
        return fail(cudaErrorInvalidValue);
    CUipcMemHandle h;
    memset(&h, 0, sizeof h);
    memcpy(&h, &handle, sizeof handle < sizeof h ? sizeof handle : sizeof h);
    CUdeviceptr p;
    CUresult res = d.ipcOpenMemHandle(&p, h, flags);
    if (res == CUDA_SUCCESS)
        *devPtr = (void *)(uintptr_t)p;
    FWD(res);
}

FAKERT_API cudaError_t CUDARTAPI cudaIpcCloseMemHandle(void *devPtr)
{
    ENTER();
    NEED(ipcCloseMemHandle);
    FWD(d.ipcCloseMemHandle((CUdeviceptr)(uintptr_t)devPtr));
}

FAKERT_API cudaError_t CUDARTAPI cudaMemGetInfo(size_t *free_bytes, size_t *total)
{
    ENTER();
    NEED(memGetInfo);
    FWD(d.memGetInfo(free_bytes, total));
}

FAKERT_API cudaError_t CUDARTAPI cudaPointerGetAttributes(struct cudaPointerAttributes *attributes, const void *ptr)
{
    ENTER();
    NEED(pointerGetAttribute);
    if (!attributes)
        return fail(cudaErrorInvalidValue);
    CUdeviceptr p = (CUdeviceptr)(uintptr_t)ptr;
    unsigned int memtype = 0, managed = 0;
    int ordinal = -2;
    CUresult res = d.pointerGetAttribute(&memtype, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, p);
    if (res == CUDA_ERROR_INVALID_VALUE) { /* not a CUDA pointer: unregistered host memory */
        memset(attributes, 0, sizeof *attributes);
        attributes->type = cudaMemoryTypeUnregistered;
        attributes->device = -2;
        attributes->devicePointer = NULL;
        attributes->hostPointer = (void *)ptr;
        return cudaSuccess;
    }
    if (res != CUDA_SUCCESS)
        FWD(res);
    if ((res = d.pointerGetAttribute(&managed, CU_POINTER_ATTRIBUTE_IS_MANAGED, p)) ||
        (res = d.pointerGetAttribute(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, p)))
        FWD(res);
    memset(attributes, 0, sizeof *attributes);
    attributes->device = ordinal;
    if (managed) {
        attributes->type = cudaMemoryTypeManaged;
        attributes->devicePointer = (void *)ptr;
        attributes->hostPointer = (void *)ptr;
    } else if (memtype == CU_MEMORYTYPE_DEVICE) {
        attributes->type = cudaMemoryTypeDevice;
        attributes->devicePointer = (void *)ptr;
        attributes->hostPointer = NULL;
    } else {
        void *dp = NULL;
        (void)d.pointerGetAttribute(&dp, CU_POINTER_ATTRIBUTE_DEVICE_POINTER, p);
        attributes->type = cudaMemoryTypeHost;
        attributes->devicePointer = dp;
        attributes->hostPointer = (void *)ptr;
    }
    return cudaSuccess;
}

/* ------------------------------------------------------------------------ */
/* Devices, versions, synchronisation                                         */

FAKERT_API cudaError_t CUDARTAPI cudaGetDeviceCount(int *count)
{
    ENTER();
    if (!count)
        return fail(cudaErrorInvalidValue);
    FWD(d.deviceGetCount(count));
}

FAKERT_API cudaError_t CUDARTAPI cudaSetDevice(int device)
{
    pthread_once(&g_boot_once, bootstrap);
    if (g_boot_err != cudaSuccess)
        return fail(g_boot_err);
    int n = 0;
    CUresult res = d.deviceGetCount(&n);
    if (res != CUDA_SUCCESS)
        FWD(res);
    if (device < 0 || device >= n || device >= FAKERT_MAX_DEVICES)
        return fail(cudaErrorInvalidDevice);
    tl_device = device;
    tl_bound = -2; /* the device's primary context made current, whatever was (CUDA 12+; H200 run 16) */
    ENTER();
    return cudaSuccess;
}

FAKERT_API cudaError_t CUDARTAPI cudaGetDevice(int *device)
{
    pthread_once(&g_boot_once, bootstrap);
    if (g_boot_err != cudaSuccess)
        return fail(g_boot_err);
    if (!device)
        return fail(cudaErrorInvalidValue);
    *device = tl_device;
    return cudaSuccess;
}

/* The current device's primary context is reset (the driver frees what it
 * owned); the runtime gives its reference back and retains the context
 * again at its next call, on every thread. */
FAKERT_API cudaError_t CUDARTAPI cudaDeviceReset(void)
{
    ENTER();
    NEED(primaryCtxReset);
    int dev = tl_device;
    CUresult res = d.primaryCtxReset(dev);
    if (res == CUDA_SUCCESS) {
        pthread_mutex_lock(&g_lock);
        if (g_primary[dev] && d.primaryCtxRelease)
            (void)d.primaryCtxRelease(dev);
        g_primary[dev] = NULL;
        __atomic_fetch_add(&g_resets, 1, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&g_lock);
    }
    FWD(res);
}

FAKERT_API cudaError_t CUDARTAPI cudaDeviceSynchronize(void)
{
    ENTER();
    NEED(ctxSynchronize);
    FWD(d.ctxSynchronize());
}

FAKERT_API cudaError_t CUDARTAPI cudaRuntimeGetVersion(int *runtimeVersion)
{
    if (!runtimeVersion)
        return fail(cudaErrorInvalidValue);
    *runtimeVersion = FAKERT_RUNTIME_VERSION;
    return cudaSuccess;
}

FAKERT_API cudaError_t CUDARTAPI cudaDriverGetVersion(int *driverVersion)
{
    if (!driverVersion)
        return fail(cudaErrorInvalidValue);
    pthread_once(&g_boot_once, bootstrap);
    if (!d.driverGetVersion) { /* no driver: version 0, like the real runtime */
        *driverVersion = 0;
        return cudaSuccess;
    }
    FWD(d.driverGetVersion(driverVersion));
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                     */

FAKERT_API cudaError_t CUDARTAPI cudaGetLastError(void)
{
    cudaError_t e = tl_last_error;
    tl_last_error = cudaSuccess;
    return e;
}

FAKERT_API cudaError_t CUDARTAPI cudaPeekAtLastError(void) { return tl_last_error; }

static const struct {
    int code;
    const char *name;
    const char *str;
} g_errors[] = {
    {cudaSuccess, "cudaSuccess", "no error"},
    {cudaErrorInvalidValue, "cudaErrorInvalidValue", "invalid argument"},
    {cudaErrorMemoryAllocation, "cudaErrorMemoryAllocation", "out of memory"},
    {cudaErrorInitializationError, "cudaErrorInitializationError", "initialization error"},
    {cudaErrorInsufficientDriver, "cudaErrorInsufficientDriver",
     "CUDA driver version is insufficient for CUDA runtime version"},
    {cudaErrorNoDevice, "cudaErrorNoDevice", "no CUDA-capable device is detected"},
    {cudaErrorInvalidDevice, "cudaErrorInvalidDevice", "invalid device ordinal"},
    {cudaErrorDeviceUninitialized, "cudaErrorDeviceUninitialized", "invalid device context"},
    {cudaErrorInvalidResourceHandle, "cudaErrorInvalidResourceHandle", "invalid resource handle"},
    {cudaErrorIllegalState, "cudaErrorIllegalState", "the operation cannot be performed in the present state"},
    {cudaErrorStreamCaptureUnsupported, "cudaErrorStreamCaptureUnsupported",
     "operation not permitted when stream is capturing"},
    {cudaErrorSymbolNotFound, "cudaErrorSymbolNotFound", "named symbol not found"},
    {cudaErrorHostMemoryAlreadyRegistered, "cudaErrorHostMemoryAlreadyRegistered",
     "part or all of the requested memory range is already mapped"},
    {cudaErrorHostMemoryNotRegistered, "cudaErrorHostMemoryNotRegistered",
     "pointer does not correspond to a registered memory region"},
    {cudaErrorNotPermitted, "cudaErrorNotPermitted", "operation not permitted"},
    {cudaErrorNotSupported, "cudaErrorNotSupported", "operation not supported"},
    {cudaErrorUnknown, "cudaErrorUnknown", "unknown error"},
};

FAKERT_API const char *CUDARTAPI cudaGetErrorName(cudaError_t error)
{
    for (size_t i = 0; i < sizeof g_errors / sizeof g_errors[0]; i++)
        if (g_errors[i].code == (int)error)
            return g_errors[i].name;
    return "unrecognized error code";
}

FAKERT_API const char *CUDARTAPI cudaGetErrorString(cudaError_t error)
{
    for (size_t i = 0; i < sizeof g_errors / sizeof g_errors[0]; i++)
        if (g_errors[i].code == (int)error)
            return g_errors[i].str;
    return "unrecognized error code";
}

/* ------------------------------------------------------------------------ */
/* Driver entry points through the 12000 cuGetProcAddress pointer             */

FAKERT_API cudaError_t CUDARTAPI cudaGetDriverEntryPointByVersion(const char *symbol, void **funcPtr,
                                                                  unsigned int cudaVersion, unsigned long long flags,
                                                                  enum cudaDriverEntryPointQueryResult *driverStatus)
{
    ENTER();
    if (!symbol || !funcPtr)
        return fail(cudaErrorInvalidValue);
    int drv = 0;
    if (d.driverGetVersion)
        (void)d.driverGetVersion(&drv);
    if (cudaVersion > (unsigned)drv || cudaVersion > (unsigned)INT32_MAX)
        return fail(cudaErrorInvalidValue);
    CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    void *p = NULL;
    CUresult res;
    if (g_gpa) {
        res = g_gpa(symbol, &p, (int)cudaVersion, (cuuint64_t)flags, &st);
    } else { /* driver without cuGetProcAddress: plain exported name */
        p = dlsym(g_libcuda, symbol);
        res = p ? CUDA_SUCCESS : CUDA_ERROR_NOT_FOUND;
        st = p ? CU_GET_PROC_ADDRESS_SUCCESS : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    }
    if (res == CUDA_ERROR_NOT_FOUND) { /* success with a NULL pointer, status says why */
        *funcPtr = NULL;
        if (driverStatus)
            *driverStatus = st == CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT ? cudaDriverEntryPointVersionNotSufficent
                                                                              : cudaDriverEntryPointSymbolNotFound;
        return cudaSuccess;
    }
    if (res != CUDA_SUCCESS)
        FWD(res);
    *funcPtr = p;
    if (driverStatus)
        *driverStatus = cudaDriverEntryPointSuccess;
    return cudaSuccess;
}

FAKERT_API cudaError_t CUDARTAPI cudaGetDriverEntryPoint(const char *symbol, void **funcPtr, unsigned long long flags,
                                                         enum cudaDriverEntryPointQueryResult *driverStatus)
{
    return cudaGetDriverEntryPointByVersion(symbol, funcPtr, FAKERT_RUNTIME_VERSION, flags, driverStatus);
}
