/*
 * fake_smoke.c - self-checking smoke test of the fake CUDA driver/runtime.
 *
 * Linked with the static fake cudart (build/fakecuda/fake_smoke, -rdynamic)
 * and, with -DFAKE_SMOKE_SHARED, with the shared one (fake_smoke_shared).
 * Run with LD_LIBRARY_PATH=build/fakecuda.  Without arguments it re-executes
 * itself once per scenario (the fakes read their environment once per
 * process), each child printing PASS/FAIL lines; exit status 0 only if every
 * check of every scenario passed.
 */
#include <cuda.h>
#include <cuda_runtime_api.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef FAKE_SMOKE_SHARED
#define VARIANT "shared-cudart"
#else
#define VARIANT "static-cudart"
#endif

extern char **environ;

static const char *g_scn = "main";
static int g_fail, g_pass;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        char m_[256];                                                                                                  \
        snprintf(m_, sizeof m_, __VA_ARGS__);                                                                          \
        if (cond) {                                                                                                    \
            g_pass++;                                                                                                  \
            printf("PASS %s/%s: %s\n", VARIANT, g_scn, m_);                                                            \
        } else {                                                                                                       \
            g_fail++;                                                                                                  \
            printf("FAIL %s/%s: %s  [%s:%d: %s]\n", VARIANT, g_scn, m_, __FILE__, __LINE__, #cond);                    \
        }                                                                                                              \
    } while (0)

/* evaluates a and b exactly once */
#define EQ(a, b, what)                                                                                                 \
    do {                                                                                                               \
        long long a_ = (long long)(a), b_ = (long long)(b);                                                            \
        CHECK(a_ == b_, "%s (got %lld, want %lld)", what, a_, b_);                                                     \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Driver access through dlopen/dlsym (the smoke binary does not link libcuda) */

static void *g_h;

static void *dsym(const char *name)
{
    if (!g_h)
        g_h = dlopen("libcuda.so.1", RTLD_NOW);
    if (!g_h) {
        printf("FAIL %s/%s: dlopen(libcuda.so.1): %s\n", VARIANT, g_scn, dlerror());
        exit(1);
    }
    void *p = dlsym(g_h, name);
    if (!p) {
        printf("FAIL %s/%s: dlsym(%s) is NULL\n", VARIANT, g_scn, name);
        exit(1);
    }
    return p;
}

/* Exported names as cuda.h declares them (post-#define), e.g. DRV(cuMemAlloc_v2). */
#define DRV(fn) ((__typeof__(&fn))dsym(#fn))

typedef unsigned int devptr_v1;
typedef CUresult (*gpa_v1_t)(const char *, void **, int, cuuint64_t);
typedef CUresult (*gpa_v2_t)(const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *);
typedef CUresult (*legacy_alloc_t)(devptr_v1 *, unsigned int);
typedef CUresult (*legacy_pitch_t)(devptr_v1 *, unsigned int *, unsigned int, unsigned int, unsigned int);
typedef CUresult (*legacy_free_t)(devptr_v1);
typedef CUresult (*legacy_host_t)(void **, unsigned int);

#define GIB 1073741824ULL
#define DEV_BASE(n) (0x7e0000000000ULL + (unsigned long long)(n) * 0x10000000000ULL)

static size_t mem_free_now(void)
{
    size_t f = 0, t = 0;
    if (DRV(cuMemGetInfo_v2)(&f, &t) != CUDA_SUCCESS)
        return (size_t)-1;
    return f;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

static int count_substr(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* ------------------------------------------------------------------------ */
/* Scenario: bootstrap order seen by FAKECUDA_TRACE                           */

static const char *const k_boot[] = {
    "fakecuda: gpa abi=v2 symbol= version=0 flags=0 result=500 status=1",
    "fakecuda: gpa abi=v2 symbol=cuInit version=2000 flags=0 result=0 status=0",
    "fakecuda: cuInit",
    "fakecuda: gpa abi=v2 symbol=cuGetProcAddress version=11030 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuGetProcAddress version=12000 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuMemAlloc version=3020 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuMemAllocPitch version=3020 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuMemFree version=3020 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuMemAllocHost version=3020 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuMemHostAlloc version=2020 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuMemFreeHost version=2000 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuMemAllocManaged version=6000 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuMemHostRegister version=6050 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuMemHostUnregister version=4000 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuMemAllocAsync version=11020 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuMemAllocAsync version=11020 flags=2 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuMemFreeAsync version=11020 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuMemFreeAsync version=11020 flags=2 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuMemGetInfo version=3020 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuDeviceGetCount version=2000 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuDeviceGet version=2000 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuDevicePrimaryCtxRetain version=7000 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuCtxSetCurrent version=4000 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuCtxGetDevice version=2000 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuPointerGetAttribute version=4000 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuCtxSynchronize version=2000 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuDriverGetVersion version=2020 flags=0 result=0 status=0",
    /* appended by the pool/stream/graph/array/IPC runtime calls */
    "fakecuda: gpa abi=v2 symbol=cuMemAllocFromPoolAsync version=11020 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuMemPoolCreate version=11020 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuMemPoolDestroy version=11020 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuDeviceGetDefaultMemPool version=11020 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuMemPoolGetAttribute version=11020 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuArray3DCreate version=3020 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuArrayDestroy version=2000 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuStreamCreate version=2000 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuStreamDestroy version=4000 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuStreamSynchronize version=2000 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuStreamBeginCapture version=10010 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuStreamEndCapture version=10000 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuGraphInstantiateWithFlags version=11040 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuGraphLaunch version=10000 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuGraphDestroy version=10000 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuGraphExecDestroy version=10000 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuDeviceGraphMemTrim version=11040 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuIpcGetMemHandle version=4010 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuIpcOpenMemHandle version=11000 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuIpcCloseMemHandle version=4010 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuDevicePrimaryCtxReset version=11000 flags=0 result=0 status=0",
    "fakecuda: gpa abi=v2 symbol=cuDevicePrimaryCtxRelease version=11000 flags=0 result=0 status=0",
    /* appended when cudart began to use a context the driver made current */
    "fakecuda: gpa abi=v2 symbol=cuCtxGetCurrent version=4000 flags=0 result=0 status=0",
};

static void scn_trace(void)
{
    const char *path = getenv("FAKECUDA_TRACE");
    CHECK(path && *path, "FAKECUDA_TRACE is set for this scenario");
    if (!path)
        return;
    void *p = NULL;
    EQ(cudaMalloc(&p, 4096), cudaSuccess, "first runtime call cudaMalloc(4096) bootstraps and succeeds");

    char *t = read_file(path);
    CHECK(t != NULL, "trace file readable");
    if (!t)
        return;
    size_t nexp = sizeof k_boot / sizeof k_boot[0];
    char *save = NULL, *line = strtok_r(t, "\n", &save);
    size_t i = 0;
    int ok = 1;
    for (; i < nexp; i++, line = strtok_r(NULL, "\n", &save)) {
        if (!line || strcmp(line, k_boot[i]) != 0) {
            printf("     line %zu: got  '%s'\n     line %zu: want '%s'\n", i + 1, line ? line : "(eof)", i + 1, k_boot[i]);
            ok = 0;
            break;
        }
    }
    CHECK(ok, "bootstrap trace is exactly dlopen/probe \"\"/cuInit/cuInit()/GPA 11030/GPA 12000/%zu fetches", nexp - 5);
    CHECK(ok && line == NULL, "nothing else traced during bootstrap + cudaMalloc (next: %s)", line ? line : "none");

    /* entry points through the 12000 pointer */
    void *fp = (void *)1;
    enum cudaDriverEntryPointQueryResult st = cudaDriverEntryPointSuccess;
    EQ(cudaGetDriverEntryPointByVersion("cuMemAlloc", &fp, 12000, cudaEnableDefault, &st), cudaSuccess,
       "cudaGetDriverEntryPointByVersion(cuMemAlloc, 12000)");
    CHECK(fp == dsym("cuMemAlloc_v2") && st == cudaDriverEntryPointSuccess, "... returns cuMemAlloc_v2");
    EQ(cudaGetDriverEntryPointByVersion("cuMemAlloc", &fp, 2000, cudaEnableDefault, &st), cudaSuccess,
       "cudaGetDriverEntryPointByVersion(cuMemAlloc, 2000)");
    CHECK(fp == dsym("cuMemAlloc"), "... returns the legacy cuMemAlloc");
    EQ(cudaGetDriverEntryPointByVersion("cuMemAllocAsync", &fp, 12000, cudaEnablePerThreadDefaultStream, &st),
       cudaSuccess, "cudaGetDriverEntryPointByVersion(cuMemAllocAsync, per-thread)");
    CHECK(fp == dsym("cuMemAllocAsync_ptsz"), "... returns cuMemAllocAsync_ptsz");
    fp = (void *)1;
    EQ(cudaGetDriverEntryPointByVersion("cuModuleLoad", &fp, 12000, 0, &st), cudaSuccess,
       "unknown symbol: cudaSuccess");
    CHECK(fp == NULL && st == cudaDriverEntryPointSymbolNotFound, "... NULL pointer, status SymbolNotFound");
    fp = (void *)1;
    EQ(cudaGetDriverEntryPointByVersion("cuMemAllocAsync", &fp, 11000, 0, &st), cudaSuccess,
       "too-old version: cudaSuccess");
    CHECK(fp == NULL && st == cudaDriverEntryPointVersionNotSufficent, "... NULL pointer, status VersionNotSufficent");
    EQ(cudaGetDriverEntryPointByVersion("cuMemAlloc", &fp, 13010, 0, &st), cudaErrorInvalidValue,
       "version above the driver's 13000: cudaErrorInvalidValue");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    EQ(cudaGetDriverEntryPoint("cuGetProcAddress", &fp, cudaEnableDefault, &st), cudaSuccess,
       "cudaGetDriverEntryPoint(cuGetProcAddress)");
#pragma GCC diagnostic pop
    CHECK(fp == dsym("cuGetProcAddress_v2"), "... (version 13000) returns cuGetProcAddress_v2");

    t = read_file(path);
    CHECK(t && strstr(t, "fakecuda: gpa abi=v2 symbol=cuModuleLoad version=12000 flags=0 result=500 status=1\n"),
          "entry-point lookups went through the v2 GPA pointer (traced)");
    CHECK(t && strstr(t, "symbol=cuGetProcAddress version=13000 flags=0 result=0 status=0\n"),
          "cudaGetDriverEntryPoint asks version 13000");
    CHECK(t && count_substr(t, "fakecuda: cuInit\n") == 1, "cuInit called exactly once");
    CHECK(t && count_substr(t, "abi=v1") == 0, "no legacy-ABI GPA call by the runtime");
    EQ(cudaFree(p), cudaSuccess, "cudaFree");
}

/* ------------------------------------------------------------------------ */
/* Scenario: cuGetProcAddress, both ABIs, versions, flags                     */

static const struct {
    const char *sym;
    int version;
    unsigned flags;
    const char *exported;
} k_gpa[] = {
    {"cuGetProcAddress", 11030, 0, "cuGetProcAddress"},
    {"cuGetProcAddress", 11080, 0, "cuGetProcAddress"},
    {"cuGetProcAddress", 12000, 0, "cuGetProcAddress_v2"},
    {"cuGetProcAddress", 13000, 0, "cuGetProcAddress_v2"},
    {"cuInit", 2000, 0, "cuInit"},
    {"cuDriverGetVersion", 2020, 0, "cuDriverGetVersion"},
    {"cuDeviceGet", 2000, 0, "cuDeviceGet"},
    {"cuDeviceGetCount", 2000, 0, "cuDeviceGetCount"},
    {"cuDeviceGetName", 2000, 0, "cuDeviceGetName"},
    {"cuDeviceTotalMem", 3020, 0, "cuDeviceTotalMem_v2"},
    {"cuDeviceGetAttribute", 2000, 0, "cuDeviceGetAttribute"},
    {"cuDeviceGetUuid", 9020, 0, "cuDeviceGetUuid"},
    {"cuDeviceGetUuid", 11040, 0, "cuDeviceGetUuid_v2"},
    {"cuDeviceGetPCIBusId", 4010, 0, "cuDeviceGetPCIBusId"},
    {"cuDevicePrimaryCtxRetain", 7000, 0, "cuDevicePrimaryCtxRetain"},
    {"cuDevicePrimaryCtxRelease", 7000, 0, "cuDevicePrimaryCtxRelease"},
    {"cuDevicePrimaryCtxRelease", 11000, 0, "cuDevicePrimaryCtxRelease_v2"},
    {"cuCtxSetCurrent", 4000, 0, "cuCtxSetCurrent"},
    {"cuCtxGetCurrent", 4000, 0, "cuCtxGetCurrent"},
    {"cuCtxGetDevice", 2000, 0, "cuCtxGetDevice"},
    {"cuCtxPushCurrent", 4000, 0, "cuCtxPushCurrent_v2"},
    {"cuCtxPopCurrent", 4000, 0, "cuCtxPopCurrent_v2"},
    {"cuCtxSynchronize", 2000, 0, "cuCtxSynchronize"},
    {"cuMemAlloc", 2000, 0, "cuMemAlloc"},
    {"cuMemAlloc", 3010, 0, "cuMemAlloc"},
    {"cuMemAlloc", 3020, 0, "cuMemAlloc_v2"},
    {"cuMemAlloc", 13000, 2, "cuMemAlloc_v2"},
    {"cuMemAllocPitch", 2000, 0, "cuMemAllocPitch"},
    {"cuMemAllocPitch", 3020, 0, "cuMemAllocPitch_v2"},
    {"cuMemFree", 2000, 0, "cuMemFree"},
    {"cuMemFree", 3020, 0, "cuMemFree_v2"},
    {"cuMemAllocHost", 2000, 0, "cuMemAllocHost"},
    {"cuMemAllocHost", 3020, 0, "cuMemAllocHost_v2"},
    {"cuMemHostAlloc", 2020, 0, "cuMemHostAlloc"},
    {"cuMemFreeHost", 2000, 0, "cuMemFreeHost"},
    {"cuMemAllocManaged", 6000, 0, "cuMemAllocManaged"},
    {"cuMemGetInfo", 3020, 0, "cuMemGetInfo_v2"},
    {"cuMemHostRegister", 4000, 0, "cuMemHostRegister"},
    {"cuMemHostRegister", 6000, 0, "cuMemHostRegister"},
    {"cuMemHostRegister", 6050, 0, "cuMemHostRegister_v2"},
    {"cuMemHostUnregister", 4000, 0, "cuMemHostUnregister"},
    {"cuPointerGetAttribute", 4000, 0, "cuPointerGetAttribute"},
    {"cuPointerGetAttributes", 7000, 0, "cuPointerGetAttributes"},
    {"cuMemAllocAsync", 11020, 0, "cuMemAllocAsync"},
    {"cuMemAllocAsync", 11020, 1, "cuMemAllocAsync"},
    {"cuMemAllocAsync", 11020, 2, "cuMemAllocAsync_ptsz"},
    {"cuMemAllocAsync", 13000, 2, "cuMemAllocAsync_ptsz"},
    {"cuMemFreeAsync", 11020, 0, "cuMemFreeAsync"},
    {"cuMemFreeAsync", 11020, 2, "cuMemFreeAsync_ptsz"},
    {"cuGetErrorName", 6000, 0, "cuGetErrorName"},
    {"cuGetErrorString", 6000, 0, "cuGetErrorString"},
    {"cuStreamCreate", 2000, 0, "cuStreamCreate"},
    {"cuStreamCreateWithPriority", 5050, 0, "cuStreamCreateWithPriority"},
    {"cuStreamDestroy", 2000, 0, "cuStreamDestroy"},
    {"cuStreamDestroy", 4000, 0, "cuStreamDestroy_v2"},
    {"cuStreamSynchronize", 2000, 0, "cuStreamSynchronize"},
    {"cuStreamSynchronize", 7000, 2, "cuStreamSynchronize_ptsz"},
    {"cuStreamSynchronize", 6050, 2, "cuStreamSynchronize"},
    {"cuStreamBeginCapture", 10000, 0, "cuStreamBeginCapture"},
    {"cuStreamBeginCapture", 10000, 2, "cuStreamBeginCapture_ptsz"},
    {"cuStreamBeginCapture", 10010, 0, "cuStreamBeginCapture_v2"},
    {"cuStreamBeginCapture", 12000, 2, "cuStreamBeginCapture_v2_ptsz"},
    {"cuStreamEndCapture", 10000, 0, "cuStreamEndCapture"},
    {"cuStreamEndCapture", 10000, 2, "cuStreamEndCapture_ptsz"},
    {"cuStreamIsCapturing", 10000, 0, "cuStreamIsCapturing"},
    {"cuStreamIsCapturing", 10000, 2, "cuStreamIsCapturing_ptsz"},
    {"cuStreamGetCtx", 9020, 0, "cuStreamGetCtx"},
    {"cuStreamGetCtx", 9020, 2, "cuStreamGetCtx_ptsz"},
    {"cuMemAllocFromPoolAsync", 11020, 0, "cuMemAllocFromPoolAsync"},
    {"cuMemAllocFromPoolAsync", 11020, 2, "cuMemAllocFromPoolAsync_ptsz"},
    {"cuDeviceGetDefaultMemPool", 11020, 0, "cuDeviceGetDefaultMemPool"},
    {"cuDeviceGetMemPool", 11020, 0, "cuDeviceGetMemPool"},
    {"cuDeviceSetMemPool", 11020, 0, "cuDeviceSetMemPool"},
    {"cuMemGetDefaultMemPool", 13000, 0, "cuMemGetDefaultMemPool"},
    {"cuMemGetMemPool", 13000, 0, "cuMemGetMemPool"},
    {"cuMemSetMemPool", 13000, 0, "cuMemSetMemPool"},
    {"cuMemPoolCreate", 11020, 0, "cuMemPoolCreate"},
    {"cuMemPoolDestroy", 11020, 0, "cuMemPoolDestroy"},
    {"cuMemPoolTrimTo", 11020, 0, "cuMemPoolTrimTo"},
    {"cuMemPoolSetAttribute", 11020, 0, "cuMemPoolSetAttribute"},
    {"cuMemPoolGetAttribute", 11020, 0, "cuMemPoolGetAttribute"},
    {"cuMemPoolSetAccess", 11020, 0, "cuMemPoolSetAccess"},
    {"cuMemPoolGetAccess", 11020, 0, "cuMemPoolGetAccess"},
    {"cuMemPoolExportToShareableHandle", 11020, 0, "cuMemPoolExportToShareableHandle"},
    {"cuMemPoolImportFromShareableHandle", 11020, 0, "cuMemPoolImportFromShareableHandle"},
    {"cuMemPoolExportPointer", 11020, 0, "cuMemPoolExportPointer"},
    {"cuMemPoolImportPointer", 11020, 0, "cuMemPoolImportPointer"},
    {"cuGraphCreate", 10000, 0, "cuGraphCreate"},
    {"cuGraphDestroy", 10000, 0, "cuGraphDestroy"},
    {"cuGraphAddMemAllocNode", 11040, 0, "cuGraphAddMemAllocNode"},
    {"cuGraphAddMemFreeNode", 11040, 0, "cuGraphAddMemFreeNode"},
    {"cuGraphInstantiate", 10000, 0, "cuGraphInstantiate"},
    {"cuGraphInstantiate", 11000, 0, "cuGraphInstantiate_v2"},
    {"cuGraphInstantiate", 12000, 0, "cuGraphInstantiateWithFlags"},
    {"cuGraphInstantiateWithFlags", 11040, 0, "cuGraphInstantiateWithFlags"},
    {"cuGraphLaunch", 10000, 0, "cuGraphLaunch"},
    {"cuGraphLaunch", 11040, 2, "cuGraphLaunch_ptsz"},
    {"cuGraphExecDestroy", 10000, 0, "cuGraphExecDestroy"},
    {"cuDeviceGetGraphMemAttribute", 11040, 0, "cuDeviceGetGraphMemAttribute"},
    {"cuDeviceSetGraphMemAttribute", 11040, 0, "cuDeviceSetGraphMemAttribute"},
    {"cuDeviceGraphMemTrim", 11040, 0, "cuDeviceGraphMemTrim"},
    {"cuMemGetAllocationGranularity", 10020, 0, "cuMemGetAllocationGranularity"},
    {"cuMemCreate", 10020, 0, "cuMemCreate"},
    {"cuMemRelease", 10020, 0, "cuMemRelease"},
    {"cuMemAddressReserve", 10020, 0, "cuMemAddressReserve"},
    {"cuMemAddressFree", 10020, 0, "cuMemAddressFree"},
    {"cuMemMap", 10020, 0, "cuMemMap"},
    {"cuMemUnmap", 10020, 0, "cuMemUnmap"},
    {"cuMemSetAccess", 10020, 0, "cuMemSetAccess"},
    {"cuMemGetAccess", 10020, 0, "cuMemGetAccess"},
    {"cuMemRetainAllocationHandle", 11000, 0, "cuMemRetainAllocationHandle"},
    {"cuMemGetAllocationPropertiesFromHandle", 10020, 0, "cuMemGetAllocationPropertiesFromHandle"},
    {"cuMemExportToShareableHandle", 10020, 0, "cuMemExportToShareableHandle"},
    {"cuMemImportFromShareableHandle", 10020, 0, "cuMemImportFromShareableHandle"},
    {"cuArrayCreate", 3020, 0, "cuArrayCreate_v2"},
    {"cuArray3DCreate", 3020, 0, "cuArray3DCreate_v2"},
    {"cuArrayGetDescriptor", 3020, 0, "cuArrayGetDescriptor_v2"},
    {"cuArray3DGetDescriptor", 3020, 0, "cuArray3DGetDescriptor_v2"},
    {"cuArrayDestroy", 2000, 0, "cuArrayDestroy"},
    {"cuMipmappedArrayCreate", 5000, 0, "cuMipmappedArrayCreate"},
    {"cuMipmappedArrayDestroy", 5000, 0, "cuMipmappedArrayDestroy"},
    {"cuArrayGetMemoryRequirements", 11060, 0, "cuArrayGetMemoryRequirements"},
    {"cuMipmappedArrayGetMemoryRequirements", 11060, 0, "cuMipmappedArrayGetMemoryRequirements"},
    {"cuIpcGetMemHandle", 4010, 0, "cuIpcGetMemHandle"},
    {"cuIpcOpenMemHandle", 4010, 0, "cuIpcOpenMemHandle"},
    {"cuIpcOpenMemHandle", 11000, 0, "cuIpcOpenMemHandle_v2"},
    {"cuIpcCloseMemHandle", 4010, 0, "cuIpcCloseMemHandle"},
    {"cuImportExternalMemory", 10000, 0, "cuImportExternalMemory"},
    {"cuExternalMemoryGetMappedBuffer", 10000, 0, "cuExternalMemoryGetMappedBuffer"},
    {"cuDestroyExternalMemory", 10000, 0, "cuDestroyExternalMemory"},
    {"cuDeviceCanAccessPeer", 4000, 0, "cuDeviceCanAccessPeer"},
    {"cuCtxEnablePeerAccess", 4000, 0, "cuCtxEnablePeerAccess"},
    {"cuCtxDisablePeerAccess", 4000, 0, "cuCtxDisablePeerAccess"},
    {"cuModuleLoadData", 2000, 0, "cuModuleLoadData"},
    {"cuModuleUnload", 2000, 0, "cuModuleUnload"},
    {"cuModuleGetGlobal", 2000, 0, "cuModuleGetGlobal"},
    {"cuModuleGetGlobal", 3020, 0, "cuModuleGetGlobal_v2"},
    {"cuLibraryLoadData", 12000, 0, "cuLibraryLoadData"},
    {"cuLibraryUnload", 12000, 0, "cuLibraryUnload"},
    {"cuLibraryGetGlobal", 12000, 0, "cuLibraryGetGlobal"},
    {"cuLibraryGetManaged", 12000, 0, "cuLibraryGetManaged"},
};

static void scn_gpa(void)
{
    gpa_v1_t gpa1 = (gpa_v1_t)dsym("cuGetProcAddress");
    gpa_v2_t gpa2 = (gpa_v2_t)dsym("cuGetProcAddress_v2");
    CHECK((void *)gpa1 != (void *)gpa2, "cuGetProcAddress (4-arg) and cuGetProcAddress_v2 (5-arg) are distinct");

    /* before cuInit, as cudart's probe does */
    void *p = (void *)1;
    CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SUCCESS;
    EQ(gpa2("", &p, 0, 0, NULL), CUDA_ERROR_NOT_FOUND, "probe GPA(\"\", 0, 0, NULL) before cuInit -> 500");
    CHECK(p == NULL, "probe writes NULL");
    EQ(gpa2("", &p, 0, 0, &st), CUDA_ERROR_NOT_FOUND, "GPA(\"\") with status -> 500");
    EQ(st, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND, "... status SYMBOL_NOT_FOUND");

    int all_v2 = 1, all_v1 = 1, nv1 = 0;
    for (size_t i = 0; i < sizeof k_gpa / sizeof k_gpa[0]; i++) {
        void *want = dsym(k_gpa[i].exported);
        void *got = NULL;
        st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
        CUresult r = gpa2(k_gpa[i].sym, &got, k_gpa[i].version, k_gpa[i].flags, &st);
        if (r != CUDA_SUCCESS || got != want || st != CU_GET_PROC_ADDRESS_SUCCESS) {
            all_v2 = 0;
            printf("     v2 %s@%d flags=%u: r=%d st=%d got=%p want %s=%p\n", k_gpa[i].sym, k_gpa[i].version,
                   k_gpa[i].flags, (int)r, (int)st, got, k_gpa[i].exported, want);
        }
        if (k_gpa[i].version < 12000) { /* the legacy ABI is what callers below 12000 use */
            got = NULL;
            r = gpa1(k_gpa[i].sym, &got, k_gpa[i].version, k_gpa[i].flags);
            nv1++;
            if (r != CUDA_SUCCESS || got != want) {
                all_v1 = 0;
                printf("     v1 %s@%d: r=%d got=%p want %p\n", k_gpa[i].sym, k_gpa[i].version, (int)r, got, want);
            }
        }
    }
    CHECK(all_v2, "GPA_v2: %zu (symbol, version, flags) lookups == dlsym(libcuda, exported variant)",
          sizeof k_gpa / sizeof k_gpa[0]);
    CHECK(all_v1, "GPA legacy 4-arg ABI: %d lookups == dlsym(libcuda, exported variant)", nv1);

    p = (void *)1;
    EQ(gpa2("cuMemAllocAsync", &p, 11010, 0, &st), CUDA_ERROR_NOT_FOUND, "cuMemAllocAsync@11010 -> 500");
    CHECK(p == NULL && st == CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT, "... NULL, VERSION_NOT_SUFFICIENT");
    p = (void *)1;
    EQ(gpa2("cuMemAlloc", &p, 1000, 0, &st), CUDA_ERROR_NOT_FOUND, "cuMemAlloc@1000 -> 500");
    CHECK(p == NULL && st == CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT, "... NULL, VERSION_NOT_SUFFICIENT");
    p = (void *)1;
    EQ(gpa2("cuNoSuchThing", &p, 13000, 0, &st), CUDA_ERROR_NOT_FOUND, "unknown symbol -> 500");
    CHECK(p == NULL && st == CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND, "... NULL, SYMBOL_NOT_FOUND");
    p = (void *)1;
    EQ(gpa1("cuNoSuchThing", &p, 13000, 0), CUDA_ERROR_NOT_FOUND, "unknown symbol, legacy ABI -> 500");
    CHECK(p == NULL, "... NULL");
    EQ(gpa2("cuMemAlloc", NULL, 13000, 0, &st), CUDA_ERROR_INVALID_VALUE, "pfn NULL -> INVALID_VALUE");
    EQ(gpa2("cuMemAlloc", &p, 13000, 4, &st), CUDA_ERROR_INVALID_VALUE, "flags 4 -> INVALID_VALUE");
    EQ(gpa2("cuMemAlloc", &p, 13000, 0, NULL), CUDA_SUCCESS, "symbolStatus may be NULL");
    /* the self-lookup hands back both ABIs; the 12000 one is callable with 5 args */
    gpa_v2_t self = NULL;
    EQ(gpa2("cuGetProcAddress", (void **)&self, 12000, 0, &st), CUDA_SUCCESS, "self-lookup at 12000");
    p = NULL;
    EQ(self ? (int)self("cuInit", &p, 2000, 0, &st) : -1, CUDA_SUCCESS, "the 12000 pointer works as the 5-arg ABI");
    CHECK(p == dsym("cuInit"), "... and finds cuInit");

    const char *path = getenv("FAKECUDA_TRACE");
    char *t = path ? read_file(path) : NULL;
    CHECK(t && count_substr(t, "abi=v1") == nv1 + 1, "trace shows %d legacy-ABI (abi=v1) calls", nv1 + 1);
    CHECK(t && strstr(t, "fakecuda: gpa abi=v1 symbol=cuMemAlloc version=2000 flags=0 result=0 status=0\n"),
          "trace line format (v1)");
    CHECK(t && strstr(t, "fakecuda: gpa abi=v2 symbol=cuMemAllocAsync version=11020 flags=2 result=0 status=0\n"),
          "trace line format (v2, flags 2)");
    CHECK(t && strstr(t, "fakecuda: gpa abi=v2 symbol=cuMemAllocAsync version=11010 flags=0 result=500 status=2\n"),
          "trace line format (version not sufficient)");
    CHECK(t && !strstr(t, "fakecuda: cuInit"), "GPA needs no cuInit (nothing initialised yet)");
}

/* ------------------------------------------------------------------------ */
/* Scenario: driver API, default environment                                  */

static void scn_driver(void)
{
    int n = -1;
    EQ(DRV(cuDeviceGetCount)(&n), CUDA_ERROR_NOT_INITIALIZED, "cuDeviceGetCount before cuInit -> 3");
    CUdeviceptr dp = 0x1234;
    EQ(DRV(cuMemAlloc_v2)(&dp, 4096), CUDA_ERROR_NOT_INITIALIZED, "cuMemAlloc_v2 before cuInit -> 3");
    EQ(DRV(cuInit)(1), CUDA_ERROR_INVALID_VALUE, "cuInit(1) -> INVALID_VALUE");
    EQ(DRV(cuInit)(0), CUDA_SUCCESS, "cuInit(0)");
    int v = 0;
    EQ(DRV(cuDriverGetVersion)(&v), CUDA_SUCCESS, "cuDriverGetVersion");
    EQ(v, 13000, "driver version 13000");
    EQ(DRV(cuDeviceGetCount)(&n), CUDA_SUCCESS, "cuDeviceGetCount");
    EQ(n, 1, "default FAKECUDA_DEVICES is 1");
    CUdevice dev = -1;
    EQ(DRV(cuDeviceGet)(&dev, 1), CUDA_ERROR_INVALID_DEVICE, "cuDeviceGet(1) -> 101");
    EQ(DRV(cuDeviceGet)(&dev, 0), CUDA_SUCCESS, "cuDeviceGet(0)");
    char name[64] = "";
    DRV(cuDeviceGetName)(name, sizeof name, 0);
    CHECK(strcmp(name, "FakeCUDA Device 0") == 0, "name '%s'", name);
    size_t total = 0;
    EQ(DRV(cuDeviceTotalMem_v2)(&total, 0), CUDA_SUCCESS, "cuDeviceTotalMem_v2");
    EQ(total, GIB, "default capacity 1 GiB");
    int a = -1;
    DRV(cuDeviceGetAttribute)(&a, CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS, 0);
    EQ(a, 0, "PAGEABLE_MEMORY_ACCESS defaults to 0");
    DRV(cuDeviceGetAttribute)(&a, CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING, 0);
    EQ(a, 1, "UNIFIED_ADDRESSING 1");
    DRV(cuDeviceGetAttribute)(&a, CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS, 0);
    EQ(a, 1, "CONCURRENT_MANAGED_ACCESS 1");
    DRV(cuDeviceGetAttribute)(&a, CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, 0);
    EQ(a, 0x10, "PCI_BUS_ID 0x10");
    DRV(cuDeviceGetAttribute)(&a, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 0);
    EQ(a, 9, "CC major 9");
    DRV(cuDeviceGetAttribute)(&a, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 0);
    EQ(a, 0, "other attributes 0");
    char bus[32] = "";
    DRV(cuDeviceGetPCIBusId)(bus, sizeof bus, 0);
    CHECK(strcmp(bus, "0000:10:00.0") == 0, "PCI bus id '%s'", bus);
    CUuuid u1, u2;
    memset(&u1, 0, sizeof u1);
    memset(&u2, 1, sizeof u2);
    DRV(cuDeviceGetUuid_v2)(&u1, 0);
    ((CUresult(*)(CUuuid *, CUdevice))dsym("cuDeviceGetUuid"))(&u2, 0);
    CHECK(memcmp(&u1, &u2, sizeof u1) == 0, "cuDeviceGetUuid == cuDeviceGetUuid_v2 (deterministic)");

    const char *s = NULL;
    static const int codes[] = {0, 1, 2, 3, 100, 101, 200, 201, 400, 500, 800, 801, 999};
    int names_ok = 1;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *nm = NULL, *st = NULL;
        if (DRV(cuGetErrorName)((CUresult)codes[i], &nm) || DRV(cuGetErrorString)((CUresult)codes[i], &st) || !nm ||
            !st)
            names_ok = 0;
    }
    CHECK(names_ok, "cuGetErrorName/String know codes 0..999 of the brief");
    DRV(cuGetErrorName)(CUDA_ERROR_OUT_OF_MEMORY, &s);
    CHECK(s && strcmp(s, "CUDA_ERROR_OUT_OF_MEMORY") == 0, "cuGetErrorName(2)");
    EQ(DRV(cuGetErrorName)((CUresult)12345, &s), CUDA_ERROR_INVALID_VALUE, "unknown code -> INVALID_VALUE");

    /* no context yet */
    EQ(DRV(cuCtxGetDevice)(&dev), CUDA_ERROR_INVALID_CONTEXT, "cuCtxGetDevice without context -> 201");
    dp = 0x1234;
    EQ(DRV(cuMemAlloc_v2)(&dp, 4096), CUDA_ERROR_INVALID_CONTEXT, "cuMemAlloc_v2 without context -> 201");
    EQ(dp, 0x1234, "... nothing written");
    CUcontext ctx = NULL, c2 = NULL;
    EQ(DRV(cuDevicePrimaryCtxRetain)(&ctx, 0), CUDA_SUCCESS, "cuDevicePrimaryCtxRetain");
    EQ(DRV(cuCtxPushCurrent_v2)(ctx), CUDA_SUCCESS, "cuCtxPushCurrent_v2");
    DRV(cuCtxGetCurrent)(&c2);
    CHECK(c2 == ctx, "pushed context is current");
    EQ(DRV(cuCtxPopCurrent_v2)(&c2), CUDA_SUCCESS, "cuCtxPopCurrent_v2");
    DRV(cuCtxGetCurrent)(&c2);
    CHECK(c2 == NULL, "popped: no current context");
    EQ(DRV(cuCtxSetCurrent)(ctx), CUDA_SUCCESS, "cuCtxSetCurrent(primary)");
    EQ(DRV(cuCtxGetDevice)(&dev), CUDA_SUCCESS, "cuCtxGetDevice");
    EQ(DRV(cuCtxSynchronize)(), CUDA_SUCCESS, "cuCtxSynchronize");

    /* device memory */
    size_t f0 = mem_free_now(), t0 = 0, f1;
    DRV(cuMemGetInfo_v2)(&f1, &t0);
    EQ(t0, GIB, "cuMemGetInfo_v2 total = capacity");
    EQ(f0, GIB, "nothing charged yet");
    EQ(DRV(cuMemAlloc_v2)(&dp, 1000), CUDA_SUCCESS, "cuMemAlloc_v2(1000)");
    CHECK(dp >= DEV_BASE(0) && dp < DEV_BASE(1) && dp % 512 == 0, "address 0x%llx in device 0 range, 512-aligned",
          (unsigned long long)dp);
    EQ(mem_free_now(), GIB - 1024, "free = capacity - round_up(1000, 512)");
    unsigned int mt = 0, managed = 7;
    int ord = -1;
    CUdeviceptr start = 0, devp = 0;
    size_t rsize = 0;
    void *hostp = (void *)1;
    EQ(DRV(cuPointerGetAttribute)(&mt, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, dp + 100), CUDA_SUCCESS,
       "interior device pointer is known");
    EQ(mt, CU_MEMORYTYPE_DEVICE, "device: MEMORY_TYPE DEVICE");
    DRV(cuPointerGetAttribute)(&managed, CU_POINTER_ATTRIBUTE_IS_MANAGED, dp + 100);
    EQ(managed, 0, "device: IS_MANAGED 0");
    DRV(cuPointerGetAttribute)(&ord, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, dp);
    EQ(ord, 0, "device: DEVICE_ORDINAL 0");
    DRV(cuPointerGetAttribute)(&devp, CU_POINTER_ATTRIBUTE_DEVICE_POINTER, dp + 8);
    EQ(devp, dp + 8, "device: DEVICE_POINTER = ptr");
    DRV(cuPointerGetAttribute)(&start, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, dp + 999);
    EQ(start, dp, "device: RANGE_START_ADDR");
    DRV(cuPointerGetAttribute)(&rsize, CU_POINTER_ATTRIBUTE_RANGE_SIZE, dp + 999);
    EQ(rsize, 1000, "device: RANGE_SIZE");
    DRV(cuPointerGetAttribute)(&c2, CU_POINTER_ATTRIBUTE_CONTEXT, dp);
    CHECK(c2 == ctx, "device: CONTEXT = primary context");
    EQ(DRV(cuPointerGetAttribute)(&hostp, CU_POINTER_ATTRIBUTE_HOST_POINTER, dp), CUDA_ERROR_INVALID_VALUE,
       "device: HOST_POINTER -> INVALID_VALUE");
    {
        CUpointer_attribute at[3] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE, CU_POINTER_ATTRIBUTE_HOST_POINTER,
                                     CU_POINTER_ATTRIBUTE_IS_MANAGED};
        unsigned int m2 = 0, im = 9;
        void *hp = (void *)1;
        void *data[3] = {&m2, &hp, &im};
        EQ(DRV(cuPointerGetAttributes)(3, at, data, dp), CUDA_SUCCESS, "cuPointerGetAttributes(device)");
        CHECK(m2 == CU_MEMORYTYPE_DEVICE && hp == NULL && im == 0, "... DEVICE, host NULL, not managed");
    }
    EQ(DRV(cuMemFree_v2)(dp + 512), CUDA_ERROR_INVALID_VALUE, "cuMemFree_v2(interior) -> INVALID_VALUE");
    EQ(DRV(cuMemFree_v2)(dp), CUDA_SUCCESS, "cuMemFree_v2");
    EQ(mem_free_now(), GIB, "free restored");
    EQ(DRV(cuMemFree_v2)(dp), CUDA_ERROR_INVALID_VALUE, "double free -> INVALID_VALUE");
    EQ(DRV(cuMemFree_v2)(0), CUDA_SUCCESS, "cuMemFree_v2(0) -> success");
    EQ(DRV(cuPointerGetAttribute)(&mt, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, dp), CUDA_ERROR_INVALID_VALUE,
       "freed pointer unknown");
    dp = 0x77;
    EQ(DRV(cuMemAlloc_v2)(&dp, 0), CUDA_ERROR_INVALID_VALUE, "size 0 -> INVALID_VALUE");
    EQ(DRV(cuMemAlloc_v2)(NULL, 16), CUDA_ERROR_INVALID_VALUE, "NULL out -> INVALID_VALUE");
    EQ(dp, 0x77, "... nothing written");

    /* OOM */
    CUdeviceptr x = 0, y = 0, z = 0x99;
    EQ(DRV(cuMemAlloc_v2)(&x, GIB / 2), CUDA_SUCCESS, "alloc 512 MiB");
    EQ(DRV(cuMemAlloc_v2)(&y, GIB / 2 - 1000), CUDA_SUCCESS, "alloc 512 MiB - 1000 (charged rounded to 512)");
    EQ(mem_free_now(), 512, "free = 512 bytes");
    EQ(DRV(cuMemAlloc_v2)(&z, 513), CUDA_ERROR_OUT_OF_MEMORY, "513 bytes more -> OUT_OF_MEMORY (2)");
    EQ(z, 0x99, "... nothing written");
    EQ(DRV(cuMemAlloc_v2)(&z, 512), CUDA_SUCCESS, "exactly the remaining 512 bytes fit");
    EQ(mem_free_now(), 0, "free = 0");
    DRV(cuMemFree_v2)(x);
    DRV(cuMemFree_v2)(y);
    DRV(cuMemFree_v2)(z);
    EQ(DRV(cuMemAlloc_v2)(&z, GIB + 1), CUDA_ERROR_OUT_OF_MEMORY, "capacity + 1 -> OUT_OF_MEMORY");
    EQ(DRV(cuMemAlloc_v2)(&z, (size_t)-1), CUDA_ERROR_OUT_OF_MEMORY, "SIZE_MAX -> OUT_OF_MEMORY");

    /* pitch, async */
    size_t pitch = 0;
    EQ(DRV(cuMemAllocPitch_v2)(&x, &pitch, 1000, 3, 16), CUDA_SUCCESS, "cuMemAllocPitch_v2(1000 x 3)");
    EQ(pitch, 1024, "pitch = round_up(1000, 512)");
    EQ(mem_free_now(), GIB - 3072, "charged pitch * height");
    EQ(DRV(cuMemAllocPitch_v2)(&y, &pitch, 1000, 3, 3), CUDA_ERROR_INVALID_VALUE, "ElementSizeBytes 3 -> INVALID_VALUE");
    DRV(cuMemFree_v2)(x);
    EQ(DRV(cuMemAllocAsync)(&x, 4096, NULL), CUDA_SUCCESS, "cuMemAllocAsync");
    EQ(((CUresult(*)(CUdeviceptr *, size_t, CUstream))dsym("cuMemAllocAsync_ptsz"))(&y, 4096, NULL), CUDA_SUCCESS,
       "cuMemAllocAsync_ptsz");
    EQ(mem_free_now(), GIB - (2 << 20), "async allocations: the default pool reserved 2 MiB");
    EQ(DRV(cuMemFreeAsync)(x, NULL), CUDA_SUCCESS, "cuMemFreeAsync");
    EQ(((CUresult(*)(CUdeviceptr, CUstream))dsym("cuMemFreeAsync_ptsz"))(y, NULL), CUDA_SUCCESS, "cuMemFreeAsync_ptsz");
    EQ(mem_free_now(), GIB - (2 << 20), "async frees keep the pool's reserve");
    EQ(DRV(cuCtxSynchronize)(), CUDA_SUCCESS, "cuCtxSynchronize");
    EQ(mem_free_now(), GIB, "... releases it (release threshold 0)");

    /* pinned host */
    void *hp = NULL;
    EQ(DRV(cuMemAllocHost_v2)(&hp, 10000), CUDA_SUCCESS, "cuMemAllocHost_v2");
    memset(hp, 0xab, 10000);
    CHECK(((unsigned char *)hp)[9999] == 0xab, "pinned memory is dereferenceable");
    EQ(mem_free_now(), GIB, "pinned memory not charged to VRAM");
    DRV(cuPointerGetAttribute)(&mt, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, (CUdeviceptr)(uintptr_t)hp + 5000);
    EQ(mt, CU_MEMORYTYPE_HOST, "pinned: MEMORY_TYPE HOST");
    managed = 7;
    DRV(cuPointerGetAttribute)(&managed, CU_POINTER_ATTRIBUTE_IS_MANAGED, (CUdeviceptr)(uintptr_t)hp);
    EQ(managed, 0, "pinned: IS_MANAGED 0");
    hostp = NULL;
    DRV(cuPointerGetAttribute)(&hostp, CU_POINTER_ATTRIBUTE_HOST_POINTER, (CUdeviceptr)(uintptr_t)hp);
    CHECK(hostp == hp, "pinned: HOST_POINTER = ptr");
    devp = 0;
    DRV(cuPointerGetAttribute)(&devp, CU_POINTER_ATTRIBUTE_DEVICE_POINTER, (CUdeviceptr)(uintptr_t)hp);
    CHECK(devp == (CUdeviceptr)(uintptr_t)hp, "pinned: DEVICE_POINTER = ptr");
    EQ(DRV(cuMemFree_v2)((CUdeviceptr)(uintptr_t)hp), CUDA_ERROR_INVALID_VALUE, "cuMemFree_v2(pinned) -> INVALID_VALUE");
    EQ(DRV(cuMemFreeHost)(hp), CUDA_SUCCESS, "cuMemFreeHost");
    EQ(DRV(cuMemFreeHost)(hp), CUDA_ERROR_INVALID_VALUE, "cuMemFreeHost twice -> INVALID_VALUE");
    EQ(DRV(cuMemHostAlloc)(&hp, 64, 0x8), CUDA_ERROR_INVALID_VALUE, "cuMemHostAlloc bad flags -> INVALID_VALUE");
    EQ(DRV(cuMemHostAlloc)(&hp, 64, CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP), CUDA_SUCCESS,
       "cuMemHostAlloc(PORTABLE|DEVICEMAP)");
    EQ(DRV(cuMemFreeHost)(hp), CUDA_SUCCESS, "cuMemFreeHost");
    hp = (void *)UINTPTR_MAX;
    EQ(((legacy_host_t)dsym("cuMemAllocHost"))(&hp, 100), CUDA_SUCCESS, "legacy cuMemAllocHost works");
    CHECK(hp != NULL && ((uintptr_t)hp >> 32) != 0xffffffffu, "... writes a full-width host pointer");
    EQ(DRV(cuMemFreeHost)(hp), CUDA_SUCCESS, "cuMemFreeHost(legacy allocation)");

    /* registered host */
    char *buf = malloc(8192);
    EQ(DRV(cuMemHostRegister_v2)(buf, 8192, 0), CUDA_SUCCESS, "cuMemHostRegister_v2");
    DRV(cuPointerGetAttribute)(&mt, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, (CUdeviceptr)(uintptr_t)(buf + 100));
    EQ(mt, CU_MEMORYTYPE_HOST, "registered: MEMORY_TYPE HOST");
    EQ(DRV(cuMemHostRegister_v2)(buf + 4096, 100, 0), CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED,
       "overlapping register -> 712");
    EQ(DRV(cuMemHostUnregister)(buf), CUDA_SUCCESS, "cuMemHostUnregister");
    EQ(DRV(cuMemHostUnregister)(buf), CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED, "unregister twice -> 713");
    EQ(((CUresult(*)(void *, size_t, unsigned))dsym("cuMemHostRegister"))(buf, 8192, 0), CUDA_SUCCESS,
       "legacy cuMemHostRegister");
    EQ(DRV(cuMemHostUnregister)(buf), CUDA_SUCCESS, "cuMemHostUnregister");

    /* plain malloc */
    EQ(DRV(cuPointerGetAttribute)(&mt, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, (CUdeviceptr)(uintptr_t)buf),
       CUDA_ERROR_INVALID_VALUE, "malloc: cuPointerGetAttribute -> INVALID_VALUE");
    {
        CUpointer_attribute at[3] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE, CU_POINTER_ATTRIBUTE_CONTEXT,
                                     CU_POINTER_ATTRIBUTE_DEVICE_POINTER};
        unsigned int m2 = 9;
        CUcontext cc = (CUcontext)1;
        CUdeviceptr dd = 1;
        void *data[3] = {&m2, &cc, &dd};
        EQ(DRV(cuPointerGetAttributes)(3, at, data, (CUdeviceptr)(uintptr_t)buf), CUDA_SUCCESS,
           "malloc: cuPointerGetAttributes -> SUCCESS (cuda.h: default values)");
        CHECK(m2 == 0 && cc == NULL && dd == 0, "... all zero/NULL");
    }
    free(buf);

    /* managed */
    CUdeviceptr mp = 0;
    EQ(DRV(cuMemAllocManaged)(&mp, 5000, 0), CUDA_ERROR_INVALID_VALUE, "cuMemAllocManaged flags 0 -> INVALID_VALUE");
    EQ(DRV(cuMemAllocManaged)(&mp, 5000, CU_MEM_ATTACH_GLOBAL), CUDA_SUCCESS, "cuMemAllocManaged(GLOBAL)");
    CHECK(((unsigned char *)(uintptr_t)mp)[4999] == 0, "managed memory is zeroed and dereferenceable");
    ((unsigned char *)(uintptr_t)mp)[0] = 1;
    EQ(mem_free_now(), GIB, "managed memory not charged to VRAM");
    DRV(cuPointerGetAttribute)(&mt, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, mp + 10);
    EQ(mt, CU_MEMORYTYPE_DEVICE, "managed: MEMORY_TYPE DEVICE (as the real driver)");
    DRV(cuPointerGetAttribute)(&managed, CU_POINTER_ATTRIBUTE_IS_MANAGED, mp + 10);
    EQ(managed, 1, "managed: IS_MANAGED 1");
    EQ(DRV(cuMemFreeHost)((void *)(uintptr_t)mp), CUDA_ERROR_INVALID_VALUE, "cuMemFreeHost(managed) -> INVALID_VALUE");
    EQ(DRV(cuMemFree_v2)(mp), CUDA_SUCCESS, "cuMemFree_v2 frees managed memory");
    EQ(DRV(cuMemAllocManaged)(&mp, 64, CU_MEM_ATTACH_HOST), CUDA_SUCCESS, "cuMemAllocManaged(HOST)");
    EQ(DRV(cuMemFree_v2)(mp), CUDA_SUCCESS, "cuMemFree_v2");

    /* legacy 32-bit entry points, default: 201 and nothing written */
    struct {
        devptr_v1 out;
        devptr_v1 canary;
    } lg = {0xdeadbeefu, 0xcafef00du};
    unsigned int lpitch[2] = {0xdeadbeefu, 0xcafef00du};
    EQ(((legacy_alloc_t)dsym("cuMemAlloc"))(&lg.out, 4096), CUDA_ERROR_INVALID_CONTEXT,
       "legacy cuMemAlloc (v2000) -> 201 like driver 580");
    CHECK(lg.out == 0xdeadbeefu && lg.canary == 0xcafef00du, "... out-parameter and neighbouring canary untouched");
    EQ(((legacy_pitch_t)dsym("cuMemAllocPitch"))(&lg.out, &lpitch[0], 100, 2, 4), CUDA_ERROR_INVALID_CONTEXT,
       "legacy cuMemAllocPitch -> 201");
    CHECK(lg.out == 0xdeadbeefu && lpitch[0] == 0xdeadbeefu && lpitch[1] == 0xcafef00du, "... nothing written");
    EQ(((legacy_free_t)dsym("cuMemFree"))(0x10000000u), CUDA_ERROR_INVALID_CONTEXT, "legacy cuMemFree -> 201");
    EQ(mem_free_now(), GIB, "nothing charged by legacy calls");

    /* release */
    EQ(DRV(cuDevicePrimaryCtxRelease_v2)(0), CUDA_SUCCESS, "cuDevicePrimaryCtxRelease_v2");
}

/* ------------------------------------------------------------------------ */
/* Scenario: runtime API (default environment)                                */

struct thr_arg {
    int iters;
    int fails;
    int had_ctx_before;
};

static void *thr_main(void *p)
{
    struct thr_arg *t = p;
    CUcontext c = (CUcontext)1;
    DRV(cuCtxGetCurrent)(&c);
    t->had_ctx_before = c != NULL;
    for (int i = 0; i < t->iters; i++) {
        void *d = NULL;
        if (cudaMalloc(&d, 4096 + (size_t)i) != cudaSuccess || cudaFree(d) != cudaSuccess)
            t->fails++;
    }
    return NULL;
}

static void scn_runtime(void)
{
#ifdef FAKE_SMOKE_SHARED
    CHECK(dlsym(RTLD_DEFAULT, "cudaMalloc") != NULL, "shared fake cudart exports cudaMalloc");
#else
    CHECK(dlsym(RTLD_DEFAULT, "cudaMalloc") == NULL, "static fake cudart: cudaMalloc not visible to dlsym (-rdynamic)");
#endif
    int v = 0;
    EQ(cudaRuntimeGetVersion(&v), cudaSuccess, "cudaRuntimeGetVersion");
    EQ(v, 13000, "runtime 13000");
    void *p = NULL;
    EQ(cudaMalloc(&p, 1000), cudaSuccess, "cudaMalloc(1000)");
    CHECK((uintptr_t)p >= DEV_BASE(0) && (uintptr_t)p < DEV_BASE(1), "device address %p", p);
    CUcontext c = NULL;
    DRV(cuCtxGetCurrent)(&c);
    CHECK(c != NULL, "cudart made device 0's primary context current on this thread");
    EQ(cudaDriverGetVersion(&v), cudaSuccess, "cudaDriverGetVersion");
    EQ(v, 13000, "driver 13000");
    size_t f = 0, t = 0;
    EQ(cudaMemGetInfo(&f, &t), cudaSuccess, "cudaMemGetInfo");
    CHECK(t == GIB && f == GIB - 1024, "free %zu = total %zu - 1024", f, t);
    struct cudaPointerAttributes at;
    EQ(cudaPointerGetAttributes(&at, p), cudaSuccess, "cudaPointerGetAttributes(device)");
    CHECK(at.type == cudaMemoryTypeDevice && at.device == 0 && at.devicePointer == p && at.hostPointer == NULL,
          "device: type Device, devicePointer = ptr, hostPointer NULL");
    EQ(cudaFree(p), cudaSuccess, "cudaFree");
    EQ(cudaFree(NULL), cudaSuccess, "cudaFree(0)");
    EQ(cudaFree(p), cudaErrorInvalidValue, "cudaFree twice -> cudaErrorInvalidValue");
    EQ(cudaGetLastError(), cudaErrorInvalidValue, "cudaGetLastError returns it");
    EQ(cudaGetLastError(), cudaSuccess, "... and resets");

    void *q = (void *)0x55;
    EQ(cudaMalloc(&q, 2 * GIB), cudaErrorMemoryAllocation, "cudaMalloc(2 GiB) -> cudaErrorMemoryAllocation (2)");
    CHECK(q == (void *)0x55, "... nothing written");
    EQ(cudaPeekAtLastError(), cudaErrorMemoryAllocation, "cudaPeekAtLastError");
    EQ(cudaGetLastError(), cudaErrorMemoryAllocation, "cudaGetLastError");
    CHECK(strcmp(cudaGetErrorName(cudaErrorMemoryAllocation), "cudaErrorMemoryAllocation") == 0 &&
              strcmp(cudaGetErrorString(cudaErrorMemoryAllocation), "out of memory") == 0,
          "cudaGetErrorName/String(2)");
    EQ(cudaMalloc(&q, 0), cudaSuccess, "cudaMalloc(0) succeeds");
    CHECK(q == NULL, "... with NULL");

    size_t pitch = 0;
    EQ(cudaMallocPitch(&p, &pitch, 100, 10), cudaSuccess, "cudaMallocPitch(100 x 10)");
    EQ(pitch, 512, "pitch 512");
    EQ(cudaMemGetInfo(&f, &t), cudaSuccess, "cudaMemGetInfo");
    EQ(f, GIB - 5120, "charged 5120");
    cudaFree(p);

    EQ(cudaMallocAsync(&p, 4096, NULL), cudaSuccess, "cudaMallocAsync");
    EQ(cudaFreeAsync(p, NULL), cudaSuccess, "cudaFreeAsync");
    EQ(cudaDeviceSynchronize(), cudaSuccess, "cudaDeviceSynchronize trims the pool");

    EQ(cudaMallocHost(&p, 4096), cudaSuccess, "cudaMallocHost");
    EQ(cudaPointerGetAttributes(&at, p), cudaSuccess, "cudaPointerGetAttributes(pinned)");
    CHECK(at.type == cudaMemoryTypeHost && at.hostPointer == p, "pinned: type Host");
    EQ(cudaFreeHost(p), cudaSuccess, "cudaFreeHost");
    EQ(cudaHostAlloc(&p, 4096, cudaHostAllocMapped), cudaSuccess, "cudaHostAlloc(Mapped)");
    EQ(cudaFreeHost(p), cudaSuccess, "cudaFreeHost");

    EQ(cudaMallocManaged(&p, 4096, cudaMemAttachGlobal), cudaSuccess, "cudaMallocManaged");
    EQ(cudaPointerGetAttributes(&at, p), cudaSuccess, "cudaPointerGetAttributes(managed)");
    CHECK(at.type == cudaMemoryTypeManaged && at.devicePointer == p && at.hostPointer == p, "managed: type Managed");
    EQ(cudaMemGetInfo(&f, &t), cudaSuccess, "cudaMemGetInfo");
    EQ(f, GIB, "managed not charged");
    EQ(cudaFree(p), cudaSuccess, "cudaFree(managed)");

    char *m = malloc(64);
    EQ(cudaPointerGetAttributes(&at, m), cudaSuccess, "cudaPointerGetAttributes(malloc) -> cudaSuccess");
    CHECK(at.type == cudaMemoryTypeUnregistered && at.devicePointer == NULL, "malloc: type Unregistered");
    EQ(cudaHostRegister(m, 64, cudaHostRegisterDefault), cudaSuccess, "cudaHostRegister");
    EQ(cudaPointerGetAttributes(&at, m), cudaSuccess, "cudaPointerGetAttributes(registered)");
    EQ(at.type, cudaMemoryTypeHost, "registered: type Host");
    EQ(cudaHostUnregister(m), cudaSuccess, "cudaHostUnregister");
    free(m);

    int n = 0, d = -1;
    EQ(cudaGetDeviceCount(&n), cudaSuccess, "cudaGetDeviceCount");
    EQ(n, 1, "one device");
    EQ(cudaSetDevice(1), cudaErrorInvalidDevice, "cudaSetDevice(1) -> cudaErrorInvalidDevice");
    cudaGetLastError();
    EQ(cudaGetDevice(&d), cudaSuccess, "cudaGetDevice");
    EQ(d, 0, "still device 0");
    EQ(cudaDeviceSynchronize(), cudaSuccess, "cudaDeviceSynchronize");

    /* threads: the driver's current context is per-thread; cudart binds on first call */
    enum { NT = 8 };
    pthread_t th[NT];
    struct thr_arg ta[NT];
    for (int i = 0; i < NT; i++) {
        ta[i] = (struct thr_arg){.iters = 2000};
        pthread_create(&th[i], NULL, thr_main, &ta[i]);
    }
    int fails = 0, had = 0;
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        fails += ta[i].fails;
        had += ta[i].had_ctx_before;
    }
    EQ(had, 0, "new threads start without a current context");
    EQ(fails, 0, "8 threads x 2000 cudaMalloc/cudaFree all succeed");
    EQ(cudaMemGetInfo(&f, &t), cudaSuccess, "cudaMemGetInfo");
    EQ(f, GIB, "everything uncharged after the threads");
}

/* ------------------------------------------------------------------------ */
/* Scenario: FAKECUDA_LEGACY_ALLOC=1                                          */

static void scn_legacy(void)
{
    DRV(cuInit)(0);
    CUcontext c;
    DRV(cuDevicePrimaryCtxRetain)(&c, 0);
    DRV(cuCtxSetCurrent)(c);
    devptr_v1 w[3] = {0xdeadbeefu, 0xdeadbeefu, 0xdeadbeefu};
    EQ(((legacy_alloc_t)dsym("cuMemAlloc"))(&w[1], 1000), CUDA_SUCCESS, "legacy cuMemAlloc succeeds");
    CHECK(w[0] == 0xdeadbeefu && w[2] == 0xdeadbeefu && w[1] != 0xdeadbeefu, "exactly 4 bytes written");
    CHECK(w[1] != 0 && w[1] % 512 == 0, "32-bit device address 0x%x, 512-aligned", w[1]);
    EQ(mem_free_now(), GIB - 1024, "legacy allocation charged");
    unsigned int mt = 0;
    EQ(DRV(cuPointerGetAttribute)(&mt, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, (CUdeviceptr)w[1]), CUDA_SUCCESS,
       "legacy address known to pointer attributes");
    EQ(mt, CU_MEMORYTYPE_DEVICE, "... DEVICE");
    devptr_v1 pw[3] = {0xdeadbeefu, 0xdeadbeefu, 0xdeadbeefu};
    unsigned int pp[3] = {0xdeadbeefu, 0xdeadbeefu, 0xdeadbeefu};
    EQ(((legacy_pitch_t)dsym("cuMemAllocPitch"))(&pw[1], &pp[1], 700, 2, 8), CUDA_SUCCESS, "legacy cuMemAllocPitch");
    CHECK(pw[0] == 0xdeadbeefu && pw[2] == 0xdeadbeefu && pp[0] == 0xdeadbeefu && pp[2] == 0xdeadbeefu && pp[1] == 1024,
          "4-byte pointer and pitch written, pitch 1024");
    EQ(((legacy_free_t)dsym("cuMemFree"))(w[1]), CUDA_SUCCESS, "legacy cuMemFree");
    EQ(((legacy_free_t)dsym("cuMemFree"))(pw[1]), CUDA_SUCCESS, "legacy cuMemFree (pitch)");
    EQ(((legacy_free_t)dsym("cuMemFree"))(0), CUDA_SUCCESS, "legacy cuMemFree(0)");
    EQ(mem_free_now(), GIB, "uncharged");
}

/* ------------------------------------------------------------------------ */
/* Scenario: FAKECUDA_DEVICES=2, 1 MiB each, pageable access                  */

static void scn_twodev(void)
{
    const size_t cap = 1 << 20;
    int n = 0, d = -1;
    EQ(cudaGetDeviceCount(&n), cudaSuccess, "cudaGetDeviceCount");
    EQ(n, 2, "FAKECUDA_DEVICES=2");
    void *p0 = NULL, *p1 = NULL, *q = (void *)0x55;
    EQ(cudaMalloc(&p0, 1000), cudaSuccess, "cudaMalloc on device 0");
    EQ(cudaSetDevice(1), cudaSuccess, "cudaSetDevice(1)");
    EQ(cudaGetDevice(&d), cudaSuccess, "cudaGetDevice");
    EQ(d, 1, "device 1");
    CUdevice cd = -1;
    EQ(DRV(cuCtxGetDevice)(&cd), CUDA_SUCCESS, "cuCtxGetDevice");
    EQ(cd, 1, "device 1's primary context is current");
    EQ(cudaMalloc(&p1, 4096), cudaSuccess, "cudaMalloc on device 1");
    CHECK((uintptr_t)p1 >= DEV_BASE(1) && (uintptr_t)p1 < DEV_BASE(2), "device 1 address %p", p1);
    struct cudaPointerAttributes at;
    EQ(cudaPointerGetAttributes(&at, p1), cudaSuccess, "cudaPointerGetAttributes");
    EQ(at.device, 1, "attributes say device 1");
    int ord = -1;
    DRV(cuPointerGetAttribute)(&ord, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, (CUdeviceptr)(uintptr_t)p0);
    EQ(ord, 0, "device 0 allocation keeps ordinal 0");
    size_t f = 0, t = 0;
    EQ(cudaMemGetInfo(&f, &t), cudaSuccess, "cudaMemGetInfo on device 1");
    CHECK(t == cap && f == cap - 4096, "device 1: free %zu of %zu", f, t);
    EQ(cudaMalloc(&q, cap - 4096 + 1), cudaErrorMemoryAllocation, "device 1 OOM at its own capacity");
    CHECK(q == (void *)0x55, "... nothing written");
    EQ(cudaSetDevice(0), cudaSuccess, "cudaSetDevice(0)");
    EQ(cudaMemGetInfo(&f, &t), cudaSuccess, "cudaMemGetInfo on device 0");
    EQ(f, cap - 1024, "device 0 charged only its own 1024");
    EQ(cudaSetDevice(2), cudaErrorInvalidDevice, "cudaSetDevice(2) -> cudaErrorInvalidDevice");
    cudaFree(p0);
    cudaFree(p1);

    char n0[64], n1[64], b1[32];
    DRV(cuDeviceGetName)(n0, sizeof n0, 0);
    DRV(cuDeviceGetName)(n1, sizeof n1, 1);
    CHECK(strcmp(n1, "FakeCUDA Device 1") == 0 && strcmp(n0, n1) != 0, "names '%s' / '%s'", n0, n1);
    DRV(cuDeviceGetPCIBusId)(b1, sizeof b1, 1);
    CHECK(strcmp(b1, "0000:11:00.0") == 0, "PCI bus id '%s'", b1);
    CUuuid u0, u1;
    DRV(cuDeviceGetUuid_v2)(&u0, 0);
    DRV(cuDeviceGetUuid_v2)(&u1, 1);
    CHECK(memcmp(&u0, &u1, sizeof u0) != 0, "UUIDs differ");
    int a = -1;
    DRV(cuDeviceGetAttribute)(&a, CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, 1);
    EQ(a, 0x11, "PCI_BUS_ID 0x11");
    DRV(cuDeviceGetAttribute)(&a, CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS, 1);
    EQ(a, 1, "FAKECUDA_PAGEABLE_ACCESS=1");
    CUdevice dv;
    EQ(DRV(cuDeviceGet)(&dv, 2), CUDA_ERROR_INVALID_DEVICE, "cuDeviceGet(2) -> 101");
}

/* ------------------------------------------------------------------------ */
/* Scenario: a preloaded library exports cuMemAlloc_v2/cuMemFree_v2/cuInit     */

static void scn_preload(void)
{
    void *mine = dlsym(RTLD_DEFAULT, "cuMemAlloc_v2");
    CHECK(mine != NULL && mine != dsym("cuMemAlloc_v2"), "interposer is preloaded and exports cuMemAlloc_v2");
    gpa_v2_t gpa2 = (gpa_v2_t)dsym("cuGetProcAddress_v2");
    void *p = NULL;
    CUdriverProcAddressQueryResult st;
    EQ(gpa2("cuMemAlloc", &p, 3020, 0, &st), CUDA_SUCCESS, "GPA(cuMemAlloc, 3020)");
    CHECK(p == dsym("cuMemAlloc_v2") && p != mine, "... is libcuda's own cuMemAlloc_v2, not the preloaded one (-Bsymbolic)");
    EQ(gpa2("cuInit", &p, 2000, 0, &st), CUDA_SUCCESS, "GPA(cuInit, 2000)");
    CHECK(p == dsym("cuInit") && p != dlsym(RTLD_DEFAULT, "cuInit"), "... is libcuda's own cuInit");
    /* the whole runtime path runs without ever reaching the interposer (it aborts if reached) */
    void *d = NULL;
    EQ(cudaMalloc(&d, 4096), cudaSuccess, "cudaMalloc under the interposer");
    EQ(cudaMallocAsync(&d, 4096, NULL), cudaSuccess, "cudaMallocAsync under the interposer");
    EQ(cudaFreeAsync(d, NULL), cudaSuccess, "cudaFreeAsync under the interposer");
}

/* ------------------------------------------------------------------------ */
/* Helpers for the memory-API scenarios                                       */

#define MiB (1ULL << 20)

static CUcontext drv_setup(int dev)
{
    CUcontext c = NULL;
    DRV(cuInit)(0);
    DRV(cuDevicePrimaryCtxRetain)(&c, dev);
    DRV(cuCtxSetCurrent)(c);
    return c;
}

static unsigned long long pool_attr(CUmemoryPool p, CUmemPool_attribute a)
{
    cuuint64_t v = 0xdeadULL;
    if (DRV(cuMemPoolGetAttribute)(p, a, &v) != CUDA_SUCCESS)
        return 0xdeadULL;
    return v;
}

static unsigned long long graph_attr(int dev, CUgraphMem_attribute a)
{
    cuuint64_t v = 0xdeadULL;
    if (DRV(cuDeviceGetGraphMemAttribute)(dev, a, &v) != CUDA_SUCCESS)
        return 0xdeadULL;
    return v;
}

static long long attr_int(CUdeviceptr p, CUpointer_attribute a)
{
    int v = -77;
    return DRV(cuPointerGetAttribute)(&v, a, p) == CUDA_SUCCESS ? v : -99;
}

/* An attribute the driver answers in 8 bytes (ALLOWED_HANDLE_TYPES, as
 * cuda-python reads it). */
static long long attr_u64(CUdeviceptr p, CUpointer_attribute a)
{
    unsigned long long v = 77;
    return DRV(cuPointerGetAttribute)(&v, a, p) == CUDA_SUCCESS ? (long long)v : -99;
}

static void *attr_ptr(CUdeviceptr p, CUpointer_attribute a)
{
    void *v = (void *)1;
    return DRV(cuPointerGetAttribute)(&v, a, p) == CUDA_SUCCESS ? v : (void *)2;
}

#define RESERVED(p) pool_attr(p, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT)
#define USED(p) pool_attr(p, CU_MEMPOOL_ATTR_USED_MEM_CURRENT)
#define MEMTYPE(p) attr_int(p, CU_POINTER_ATTRIBUTE_MEMORY_TYPE)
#define ISMANAGED(p) attr_int(p, CU_POINTER_ATTRIBUTE_IS_MANAGED)
#define ORDINAL(p) attr_int(p, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL)
#define POOLOF(p) attr_ptr(p, CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE)

typedef CUresult (*alloc_async_t)(CUdeviceptr *, size_t, CUstream);
typedef CUresult (*pool_async_t)(CUdeviceptr *, size_t, CUmemoryPool, CUstream);

/* ------------------------------------------------------------------------ */
/* Scenario: streams and stream-ordered pools (driver API)                    */

static void scn_pools(void)
{
    CUcontext ctx = drv_setup(0), c2 = NULL;
    CUstream s = NULL;
    EQ(DRV(cuStreamCreate)(&s, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS, "cuStreamCreate");
    EQ(DRV(cuStreamGetCtx)(s, &c2), CUDA_SUCCESS, "cuStreamGetCtx");
    CHECK(c2 == ctx, "a stream belongs to the context it was created in");
    c2 = NULL;
    DRV(cuStreamGetCtx)(CU_STREAM_PER_THREAD, &c2);
    CHECK(c2 == ctx, "CU_STREAM_PER_THREAD: the current context");
    CUstreamCaptureStatus cs = CU_STREAM_CAPTURE_STATUS_ACTIVE;
    EQ(DRV(cuStreamIsCapturing)(s, &cs), CUDA_SUCCESS, "cuStreamIsCapturing");
    EQ(cs, CU_STREAM_CAPTURE_STATUS_NONE, "... not capturing");

    /* default and current pools */
    CUmemoryPool def = NULL, cur = NULL, viaLoc = NULL;
    EQ(DRV(cuDeviceGetDefaultMemPool)(&def, 0), CUDA_SUCCESS, "cuDeviceGetDefaultMemPool(0)");
    EQ(DRV(cuDeviceGetMemPool)(&cur, 0), CUDA_SUCCESS, "cuDeviceGetMemPool(0)");
    CUmemLocation dloc = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0};
    EQ(DRV(cuMemGetDefaultMemPool)(&viaLoc, &dloc, CU_MEM_ALLOCATION_TYPE_PINNED), CUDA_SUCCESS,
       "cuMemGetDefaultMemPool(DEVICE 0, PINNED)");
    CHECK(def && def == cur && def == viaLoc, "one default device pool, current by default");
    EQ(DRV(cuDeviceGetDefaultMemPool)(&cur, 1), CUDA_ERROR_INVALID_DEVICE, "device 1 of 1 -> INVALID_DEVICE");

    /* reserve vs used */
    CUdeviceptr a = 0, b = 0;
    EQ(DRV(cuMemAllocAsync)(&a, 1000, s), CUDA_SUCCESS, "cuMemAllocAsync(1000) on a stream");
    CHECK(a >= DEV_BASE(0) && a < DEV_BASE(1), "device 0 address");
    EQ(USED(def), 1024, "pool used = round_up(1000, 512)");
    EQ(RESERVED(def), 2 * MiB, "pool reserved = 2 MiB");
    EQ(mem_free_now(), GIB - 2 * MiB, "device charged with the pool's reserve, not the allocation");
    EQ(MEMTYPE(a + 10), CU_MEMORYTYPE_DEVICE, "pool memory: MEMORY_TYPE DEVICE");
    EQ(ISMANAGED(a), 0, "... IS_MANAGED 0");
    CHECK(POOLOF(a + 999) == (void *)def, "... MEMPOOL_HANDLE = the default pool");
    EQ(ORDINAL(a), 0, "... DEVICE_ORDINAL 0");
    EQ(((alloc_async_t)dsym("cuMemAllocAsync_ptsz"))(&b, 3 * MiB, NULL), CUDA_SUCCESS, "cuMemAllocAsync_ptsz(3 MiB)");
    EQ(USED(def), 3 * MiB + 1024, "used 3 MiB + 1024");
    EQ(RESERVED(def), 4 * MiB, "reserved grew by round_up(shortfall, 2 MiB) to 4 MiB");
    EQ(DRV(cuMemFreeAsync)(a, s), CUDA_SUCCESS, "cuMemFreeAsync(a)");
    EQ(USED(def), 3 * MiB, "frees reduce used");
    EQ(RESERVED(def), 4 * MiB, "... not reserved");
    EQ(DRV(cuMemPoolTrimTo)(def, 0), CUDA_SUCCESS, "cuMemPoolTrimTo(0)");
    EQ(RESERVED(def), 4 * MiB, "trim keeps round_up(used, 2 MiB)");
    EQ(DRV(cuMemFreeAsync)(b, CU_STREAM_LEGACY), CUDA_SUCCESS, "cuMemFreeAsync(b, CU_STREAM_LEGACY)");
    EQ(RESERVED(def), 4 * MiB, "still reserved before a synchronize");
    EQ(DRV(cuStreamSynchronize)(s), CUDA_SUCCESS, "cuStreamSynchronize");
    EQ(RESERVED(def), 0, "synchronize trims down to used (threshold 0)");
    EQ(mem_free_now(), GIB, "... and uncharges the device");
    EQ(pool_attr(def, CU_MEMPOOL_ATTR_USED_MEM_HIGH), 3 * MiB + 1024, "USED_MEM_HIGH");
    EQ(pool_attr(def, CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH), 4 * MiB, "RESERVED_MEM_HIGH");
    cuuint64_t v = 0;
    EQ(DRV(cuMemPoolSetAttribute)(def, CU_MEMPOOL_ATTR_USED_MEM_HIGH, &v), CUDA_SUCCESS, "reset USED_MEM_HIGH");
    EQ(pool_attr(def, CU_MEMPOOL_ATTR_USED_MEM_HIGH), 0, "... to the current value");
    v = 5;
    EQ(DRV(cuMemPoolSetAttribute)(def, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &v), CUDA_ERROR_INVALID_VALUE,
       "USED_MEM_CURRENT is read-only");
    v = 8 * MiB;
    EQ(DRV(cuMemPoolSetAttribute)(def, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &v), CUDA_SUCCESS, "RELEASE_THRESHOLD = 8 MiB");
    EQ(pool_attr(def, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD), 8 * MiB, "... read back");
    DRV(cuMemAllocAsync)(&a, 6 * MiB, s);
    DRV(cuMemFreeAsync)(a, s);
    DRV(cuCtxSynchronize)();
    EQ(RESERVED(def), 6 * MiB, "below the threshold: a synchronize keeps the reserve");
    EQ(DRV(cuMemPoolTrimTo)(def, 0), CUDA_SUCCESS, "cuMemPoolTrimTo(0)");
    EQ(RESERVED(def), 0, "... releases it");
    v = 0;
    DRV(cuMemPoolSetAttribute)(def, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &v);

    /* OOM: growth beyond capacity */
    CUdeviceptr big = 0, z = 0x99;
    EQ(DRV(cuMemAllocAsync)(&big, GIB - 2 * MiB + 1, s), CUDA_SUCCESS, "cuMemAllocAsync(1 GiB - 2 MiB + 1)");
    EQ(mem_free_now(), 0, "reserve rounded up to the whole 1 GiB");
    EQ(DRV(cuMemAllocAsync)(&z, 2 * MiB, s), CUDA_ERROR_OUT_OF_MEMORY, "growth beyond capacity -> OUT_OF_MEMORY (2)");
    EQ(z, 0x99, "... nothing written");
    DRV(cuMemFreeAsync)(big, s);
    DRV(cuStreamSynchronize)(s);
    EQ(mem_free_now(), GIB, "released");

    /* created pools of every location and type succeed, as on an H100 */
    CUmemPoolProps pp;
    memset(&pp, 0, sizeof pp);
    pp.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
    pp.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    pp.location.id = 0;
    pp.maxSize = 4 * MiB;
    CUmemoryPool dp = NULL, hp = NULL, np = NULL, mp = NULL;
    EQ(DRV(cuMemPoolCreate)(&dp, &pp), CUDA_SUCCESS, "cuMemPoolCreate(DEVICE 0, PINNED, maxSize 4 MiB)");
    EQ(DRV(cuMemAllocFromPoolAsync)(&a, 3 * MiB, dp, s), CUDA_SUCCESS, "cuMemAllocFromPoolAsync(3 MiB)");
    CHECK(POOLOF(a) == (void *)dp, "MEMPOOL_HANDLE = the created pool");
    EQ(DRV(cuMemAllocFromPoolAsync)(&b, 2 * MiB, dp, s), CUDA_ERROR_OUT_OF_MEMORY, "beyond maxSize -> OUT_OF_MEMORY");
    EQ(((pool_async_t)dsym("cuMemAllocFromPoolAsync_ptsz"))(&b, 512, dp, NULL), CUDA_SUCCESS,
       "cuMemAllocFromPoolAsync_ptsz within the reserve");
    EQ(mem_free_now(), GIB - 4 * MiB, "created device pool charged with its reserve");
    EQ(DRV(cuMemPoolDestroy)(dp), CUDA_SUCCESS, "cuMemPoolDestroy with live allocations (deferred)");
    EQ(mem_free_now(), GIB - 4 * MiB, "... memory stays until the last free");
    DRV(cuMemFreeAsync)(a, s);
    EQ(DRV(cuMemFreeAsync)(b, s), CUDA_SUCCESS, "last free of a destroyed pool");
    EQ(mem_free_now(), GIB, "... releases its memory");
    EQ(DRV(cuMemPoolDestroy)(def), CUDA_ERROR_INVALID_VALUE, "the default pool cannot be destroyed");

    pp.maxSize = 0;
    pp.location.type = CU_MEM_LOCATION_TYPE_HOST;
    EQ(DRV(cuMemPoolCreate)(&hp, &pp), CUDA_SUCCESS, "cuMemPoolCreate(HOST, PINNED)");
    pp.location.type = CU_MEM_LOCATION_TYPE_HOST_NUMA;
    EQ(DRV(cuMemPoolCreate)(&np, &pp), CUDA_SUCCESS, "cuMemPoolCreate(HOST_NUMA 0, PINNED)");
    pp.location.type = CU_MEM_LOCATION_TYPE_NONE;
    pp.allocType = CU_MEM_ALLOCATION_TYPE_MANAGED;
    EQ(DRV(cuMemPoolCreate)(&mp, &pp), CUDA_SUCCESS, "cuMemPoolCreate(NONE, MANAGED)");
    pp.location.type = CU_MEM_LOCATION_TYPE_HOST;
    pp.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
    pp.handleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
    CUmemoryPool bad = NULL;
    EQ(DRV(cuMemPoolCreate)(&bad, &pp), CUDA_ERROR_INVALID_VALUE, "HOST pool with IPC handle types -> INVALID_VALUE");
    EQ(DRV(cuMemAllocFromPoolAsync)(&a, 10000, hp, s), CUDA_SUCCESS, "allocation from the host pool");
    memset((void *)(uintptr_t)a, 0x5a, 10000);
    CHECK(((unsigned char *)(uintptr_t)a)[9999] == 0x5a, "host-pool memory is dereferenceable");
    EQ(MEMTYPE(a), CU_MEMORYTYPE_HOST, "host pool: MEMORY_TYPE HOST");
    CHECK(POOLOF(a) == (void *)hp, "host pool: MEMPOOL_HANDLE");
    EQ(RESERVED(hp), 2 * MiB, "host pool reserve counted in its attributes");
    EQ(mem_free_now(), GIB, "... not charged to the device");
    EQ(DRV(cuMemAllocFromPoolAsync)(&b, 100, np, s), CUDA_SUCCESS, "allocation from the HOST_NUMA pool");
    EQ(MEMTYPE(b), CU_MEMORYTYPE_HOST, "HOST_NUMA pool: MEMORY_TYPE HOST");
    DRV(cuMemFreeAsync)(b, s);
    EQ(DRV(cuMemAllocFromPoolAsync)(&b, 100, mp, s), CUDA_SUCCESS, "allocation from the managed pool");
    CHECK(((unsigned char *)(uintptr_t)b)[99] == 0, "managed-pool memory is dereferenceable (zeroed)");
    EQ(MEMTYPE(b), CU_MEMORYTYPE_DEVICE, "managed pool: MEMORY_TYPE DEVICE");
    EQ(ISMANAGED(b), 1, "managed pool: IS_MANAGED 1");
    EQ(mem_free_now(), GIB, "managed pool not charged");
    DRV(cuMemFreeAsync)(a, s);
    DRV(cuMemFreeAsync)(b, s);

    /* 13.0 default pools per location and type */
    static const struct {
        CUmemLocationType t;
        int id;
        CUmemAllocationType at;
        const char *what;
    } k_def[] = {
        {CU_MEM_LOCATION_TYPE_HOST, 0, CU_MEM_ALLOCATION_TYPE_PINNED, "HOST, PINNED"},
        {CU_MEM_LOCATION_TYPE_HOST_NUMA, 0, CU_MEM_ALLOCATION_TYPE_PINNED, "HOST_NUMA 0, PINNED"},
        {CU_MEM_LOCATION_TYPE_NONE, 0, CU_MEM_ALLOCATION_TYPE_MANAGED, "NONE, MANAGED"},
        {CU_MEM_LOCATION_TYPE_DEVICE, 0, CU_MEM_ALLOCATION_TYPE_MANAGED, "DEVICE 0, MANAGED"},
    };
    for (size_t i = 0; i < sizeof k_def / sizeof k_def[0]; i++) {
        CUmemLocation l = {.type = k_def[i].t, .id = k_def[i].id};
        CUmemoryPool p = NULL, q = NULL;
        EQ(DRV(cuMemGetDefaultMemPool)(&p, &l, k_def[i].at), CUDA_SUCCESS, k_def[i].what);
        DRV(cuMemGetMemPool)(&q, &l, k_def[i].at);
        CHECK(p && p == q && p != def, "... a distinct default pool, current by default");
        CUdeviceptr x = 0;
        EQ(DRV(cuMemAllocFromPoolAsync)(&x, 64, p, s), CUDA_SUCCESS, "... allocation from it succeeds");
        EQ(MEMTYPE(x), k_def[i].at == CU_MEM_ALLOCATION_TYPE_MANAGED ? CU_MEMORYTYPE_DEVICE : CU_MEMORYTYPE_HOST,
           "... MEMORY_TYPE");
        EQ(ISMANAGED(x), k_def[i].at == CU_MEM_ALLOCATION_TYPE_MANAGED, "... IS_MANAGED");
        DRV(cuMemFreeAsync)(x, s);
    }
    CUmemLocation hl = {.type = CU_MEM_LOCATION_TYPE_NONE, .id = 0};
    CUmemoryPool p = NULL;
    EQ(DRV(cuMemGetDefaultMemPool)(&p, &hl, CU_MEM_ALLOCATION_TYPE_PINNED), CUDA_ERROR_INVALID_VALUE,
       "(NONE, PINNED) -> INVALID_VALUE");
    hl.type = CU_MEM_LOCATION_TYPE_HOST;
    EQ(DRV(cuMemSetMemPool)(&hl, CU_MEM_ALLOCATION_TYPE_PINNED, hp), CUDA_SUCCESS, "cuMemSetMemPool(HOST, PINNED, pool)");
    DRV(cuMemGetMemPool)(&p, &hl, CU_MEM_ALLOCATION_TYPE_PINNED);
    CHECK(p == hp, "cuMemGetMemPool returns it");
    EQ(DRV(cuMemSetMemPool)(&dloc, CU_MEM_ALLOCATION_TYPE_PINNED, hp), CUDA_ERROR_INVALID_VALUE,
       "location must match the pool's");
    EQ(DRV(cuDeviceSetMemPool)(0, mp), CUDA_ERROR_INVALID_VALUE, "cuDeviceSetMemPool(managed pool) -> INVALID_VALUE");
    pp.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    pp.handleTypes = 0;
    EQ(DRV(cuMemPoolCreate)(&dp, &pp), CUDA_SUCCESS, "another device pool");
    EQ(DRV(cuDeviceSetMemPool)(0, dp), CUDA_SUCCESS, "cuDeviceSetMemPool(0, pool)");
    EQ(DRV(cuMemAllocAsync)(&a, 64, s), CUDA_SUCCESS, "cuMemAllocAsync");
    CHECK(POOLOF(a) == (void *)dp, "... comes from the device's current pool");
    DRV(cuMemFreeAsync)(a, s);
    EQ(DRV(cuMemPoolDestroy)(dp), CUDA_SUCCESS, "destroy the current pool");
    DRV(cuDeviceGetMemPool)(&p, 0);
    CHECK(p == def, "the default pool is current again");
    DRV(cuMemPoolDestroy)(hp);
    DRV(cuMemPoolDestroy)(np);
    DRV(cuMemPoolDestroy)(mp);
    EQ(DRV(cuMemFree_v2)(0), CUDA_SUCCESS, "cuMemFree_v2(0)");
    EQ(DRV(cuMemAllocAsync)(&a, 4096, s), CUDA_SUCCESS, "pool allocation");
    EQ(DRV(cuMemFree_v2)(a), CUDA_SUCCESS, "cuMemFree_v2 frees pool memory too");
    DRV(cuCtxSynchronize)();
    EQ(mem_free_now(), GIB, "everything released");
    EQ(DRV(cuStreamDestroy_v2)(s), CUDA_SUCCESS, "cuStreamDestroy_v2");
    EQ(DRV(cuStreamDestroy_v2)(s), CUDA_ERROR_INVALID_HANDLE, "twice -> INVALID_HANDLE");
}

/* ------------------------------------------------------------------------ */
/* Scenario: stream capture and graph memory nodes                            */

static void scn_capture(void)
{
    drv_setup(0);
    CUstream s = NULL;
    DRV(cuStreamCreate)(&s, 0);
    CUmemoryPool def = NULL;
    DRV(cuDeviceGetDefaultMemPool)(&def, 0);
    EQ(DRV(cuStreamBeginCapture_v2)(NULL, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
       "capture of the legacy stream -> 900");
    EQ(DRV(cuStreamBeginCapture_v2)(s, CU_STREAM_CAPTURE_MODE_RELAXED), CUDA_SUCCESS, "cuStreamBeginCapture_v2");
    EQ(DRV(cuStreamBeginCapture_v2)(s, CU_STREAM_CAPTURE_MODE_RELAXED), CUDA_ERROR_ILLEGAL_STATE, "twice -> 401");
    CUstreamCaptureStatus cs = CU_STREAM_CAPTURE_STATUS_NONE;
    DRV(cuStreamIsCapturing)(s, &cs);
    EQ(cs, CU_STREAM_CAPTURE_STATUS_ACTIVE, "cuStreamIsCapturing: ACTIVE");
    CUdeviceptr keep = 0, tmp = 0;
    EQ(DRV(cuMemAllocAsync)(&keep, 3 * MiB, s), CUDA_SUCCESS, "captured cuMemAllocAsync(3 MiB)");
    CHECK(keep >= DEV_BASE(0) && keep < DEV_BASE(1), "... returns a device address");
    EQ(DRV(cuMemAllocAsync)(&tmp, 1 * MiB, s), CUDA_SUCCESS, "captured cuMemAllocAsync(1 MiB)");
    EQ(DRV(cuMemFreeAsync)(tmp, s), CUDA_SUCCESS, "captured cuMemFreeAsync (free node)");
    EQ(USED(def) + RESERVED(def), 0, "capture allocates nothing from the pool");
    EQ(mem_free_now(), GIB, "... nor charges the device");
    EQ(DRV(cuStreamSynchronize)(s), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "synchronize while capturing -> 900");
    CUgraph g = NULL;
    EQ(DRV(cuStreamEndCapture)(s, &g), CUDA_SUCCESS, "cuStreamEndCapture");
    CHECK(g != NULL, "... returns the graph");
    EQ(DRV(cuStreamEndCapture)(s, &g), CUDA_ERROR_ILLEGAL_STATE, "not capturing -> 401");
    CUgraphExec e = NULL;
    EQ(DRV(cuGraphInstantiateWithFlags)(&e, g, 0), CUDA_SUCCESS, "cuGraphInstantiateWithFlags");
    EQ(graph_attr(0, CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT), 0, "nothing reserved before the launch");
    EQ(DRV(cuGraphLaunch)(e, s), CUDA_SUCCESS, "cuGraphLaunch");
    EQ(graph_attr(0, CU_GRAPH_MEM_ATTR_USED_MEM_CURRENT), 3 * MiB, "graph used = the allocation not freed in the graph");
    EQ(graph_attr(0, CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT), 4 * MiB, "graph reserved = the peak (4 MiB)");
    EQ(mem_free_now(), GIB - 4 * MiB, "graph reserve charged to the device");
    EQ(USED(def), 0, "the default pool is not involved");
    EQ(MEMTYPE(keep), CU_MEMORYTYPE_DEVICE, "graph memory: MEMORY_TYPE DEVICE");
    EQ(DRV(cuGraphLaunch)(e, s), CUDA_ERROR_INVALID_VALUE, "relaunch with the allocation unfreed -> INVALID_VALUE");
    EQ(DRV(cuMemFreeAsync)(keep, s), CUDA_SUCCESS, "cuMemFreeAsync of graph memory outside the graph");
    EQ(graph_attr(0, CU_GRAPH_MEM_ATTR_USED_MEM_CURRENT), 0, "... reduces graph used");
    EQ(graph_attr(0, CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT), 4 * MiB, "... not the reserve");
    EQ(((CUresult(*)(CUgraphExec, CUstream))dsym("cuGraphLaunch_ptsz"))(e, NULL), CUDA_SUCCESS,
       "cuGraphLaunch_ptsz relaunch");
    EQ(graph_attr(0, CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT), 4 * MiB, "reserve reused");
    EQ(graph_attr(0, CU_GRAPH_MEM_ATTR_USED_MEM_HIGH), 3 * MiB, "USED_MEM_HIGH");
    EQ(DRV(cuMemFreeAsync)(keep, s), CUDA_SUCCESS, "free again");
    EQ(DRV(cuDeviceGraphMemTrim)(0), CUDA_SUCCESS, "cuDeviceGraphMemTrim");
    EQ(graph_attr(0, CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT), 0, "... releases the reserve");
    EQ(mem_free_now(), GIB, "... and uncharges the device");
    EQ(graph_attr(0, CU_GRAPH_MEM_ATTR_RESERVED_MEM_HIGH), 4 * MiB, "RESERVED_MEM_HIGH stays");
    EQ(DRV(cuGraphExecDestroy)(e), CUDA_SUCCESS, "cuGraphExecDestroy");
    EQ(DRV(cuGraphDestroy)(g), CUDA_SUCCESS, "cuGraphDestroy");

    /* explicit graph construction */
    EQ(DRV(cuGraphCreate)(&g, 0), CUDA_SUCCESS, "cuGraphCreate");
    CUDA_MEM_ALLOC_NODE_PARAMS np;
    memset(&np, 0, sizeof np);
    np.poolProps.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
    np.poolProps.location.type = CU_MEM_LOCATION_TYPE_HOST;
    np.bytesize = 5 * MiB;
    CUgraphNode n1 = NULL, n2 = NULL;
    EQ(DRV(cuGraphAddMemAllocNode)(&n1, g, NULL, 0, &np), CUDA_ERROR_INVALID_VALUE,
       "cuGraphAddMemAllocNode(HOST location) -> INVALID_VALUE");
    np.poolProps.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    EQ(DRV(cuGraphAddMemAllocNode)(&n1, g, NULL, 0, &np), CUDA_SUCCESS, "cuGraphAddMemAllocNode(DEVICE 0, 5 MiB)");
    CHECK(np.dptr >= DEV_BASE(0) && np.dptr < DEV_BASE(1), "... sets params->dptr");
    EQ(DRV(cuGraphAddMemFreeNode)(&n2, g, &n1, 1, np.dptr), CUDA_SUCCESS, "cuGraphAddMemFreeNode");
    EQ(DRV(cuGraphAddMemFreeNode)(&n2, g, &n1, 1, np.dptr), CUDA_ERROR_INVALID_VALUE, "second free node -> INVALID_VALUE");
    EQ(DRV(cuGraphAddMemFreeNode)(&n2, g, NULL, 0, DEV_BASE(0) + 12345), CUDA_ERROR_INVALID_VALUE,
       "free node of a non-graph address -> INVALID_VALUE");
    void *inst = NULL;
    CUdriverProcAddressQueryResult st;
    ((gpa_v2_t)dsym("cuGetProcAddress_v2"))("cuGraphInstantiate", &inst, 12000, 0, &st);
    CHECK(inst == dsym("cuGraphInstantiateWithFlags"), "GPA(cuGraphInstantiate, 12000) = cuGraphInstantiateWithFlags");
    EQ(((CUresult(*)(CUgraphExec *, CUgraph, unsigned long long))inst)(&e, g, 0), CUDA_SUCCESS, "instantiate");
    EQ(DRV(cuGraphLaunch)(e, s), CUDA_SUCCESS, "launch (alloc + free inside the graph)");
    EQ(graph_attr(0, CU_GRAPH_MEM_ATTR_USED_MEM_CURRENT), 0, "used 0: freed inside the graph");
    EQ(graph_attr(0, CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT), 6 * MiB, "reserved = round_up(5 MiB peak, 2 MiB)");
    EQ(DRV(cuGraphLaunch)(e, s), CUDA_SUCCESS, "relaunch allowed (nothing left allocated)");
    DRV(cuGraphExecDestroy)(e);
    DRV(cuGraphDestroy)(g);
    DRV(cuDeviceGraphMemTrim)(0);
    EQ(mem_free_now(), GIB, "trimmed");
    DRV(cuStreamDestroy_v2)(s);
}

/* ------------------------------------------------------------------------ */
/* Scenario: virtual memory management                                        */

static void scn_vmm(void)
{
    drv_setup(0);
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = 0;
    size_t gr = 0;
    EQ(DRV(cuMemGetAllocationGranularity)(&gr, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM), CUDA_SUCCESS,
       "granularity (minimum)");
    EQ(gr, 2 * MiB, "2 MiB");
    gr = 0;
    DRV(cuMemGetAllocationGranularity)(&gr, &prop, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED);
    EQ(gr, 2 * MiB, "recommended 2 MiB");
    CUmemGenericAllocationHandle h = 0, h2 = 0, h3 = 0;
    EQ(DRV(cuMemCreate)(&h, 3 * MiB, &prop, 0), CUDA_ERROR_INVALID_VALUE, "size not a granularity multiple -> INVALID_VALUE");
    prop.type = CU_MEM_ALLOCATION_TYPE_MANAGED;
    EQ(DRV(cuMemCreate)(&h, 4 * MiB, &prop, 0), CUDA_ERROR_INVALID_VALUE, "MANAGED type (undocumented) -> INVALID_VALUE");
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    EQ(DRV(cuMemCreate)(&h, 4 * MiB, &prop, 0), CUDA_SUCCESS, "cuMemCreate(DEVICE 0, 4 MiB)");
    EQ(mem_free_now(), GIB - 4 * MiB, "physical memory charged at creation");
    CUdeviceptr va = 0;
    EQ(DRV(cuMemAddressReserve)(&va, 16 * MiB, 0, 0, 0), CUDA_SUCCESS, "cuMemAddressReserve(16 MiB)");
    CHECK(va && va % (2 * MiB) == 0, "reservation 2 MiB aligned");
    EQ(mem_free_now(), GIB - 4 * MiB, "a reservation charges nothing");
    EQ(DRV(cuMemMap)(va, 4 * MiB, 0, h, 0), CUDA_SUCCESS, "cuMemMap at va");
    EQ(DRV(cuMemMap)(va + 8 * MiB, 4 * MiB, 0, h, 0), CUDA_SUCCESS, "cuMemMap of the same handle at va + 8 MiB");
    EQ(DRV(cuMemMap)(va + 2 * MiB, 2 * MiB, 0, h, 0), CUDA_ERROR_INVALID_VALUE, "overlapping map -> INVALID_VALUE");
    EQ(DRV(cuMemMap)(va + 14 * MiB, 4 * MiB, 0, h, 0), CUDA_ERROR_INVALID_VALUE, "beyond the reservation -> INVALID_VALUE");
    EQ(DRV(cuMemMap)(va + 4 * MiB, 2 * MiB, 2 * MiB, h, 0), CUDA_ERROR_INVALID_VALUE, "offset != 0 -> INVALID_VALUE");
    EQ(mem_free_now(), GIB - 4 * MiB, "two mappings, one charge");
    EQ(MEMTYPE(va + 100), CU_MEMORYTYPE_DEVICE, "mapped: MEMORY_TYPE DEVICE");
    EQ(ORDINAL(va + 8 * MiB + 100), 0, "mapped: DEVICE_ORDINAL 0");
    CHECK(attr_ptr(va + 8 * MiB + 5, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR) == (void *)(uintptr_t)(va + 8 * MiB),
          "RANGE_START_ADDR = the mapping");
    CUmemAccessDesc ad = {.location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0},
                          .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
    unsigned long long fl = 9;
    DRV(cuMemGetAccess)(&fl, &ad.location, va);
    EQ(fl, CU_MEM_ACCESS_FLAGS_PROT_NONE, "no access right after cuMemMap");
    EQ(DRV(cuMemSetAccess)(va, 4 * MiB, &ad, 1), CUDA_SUCCESS, "cuMemSetAccess");
    DRV(cuMemGetAccess)(&fl, &ad.location, va + 1);
    EQ(fl, CU_MEM_ACCESS_FLAGS_PROT_READWRITE, "cuMemGetAccess: READWRITE");
    EQ(DRV(cuMemSetAccess)(va, 8 * MiB, &ad, 1), CUDA_ERROR_INVALID_VALUE, "cuMemSetAccess over a hole -> INVALID_VALUE");

    /* lifecycle: release before unmap; retain by interior address */
    EQ(DRV(cuMemRelease)(h), CUDA_SUCCESS, "cuMemRelease while mapped");
    EQ(mem_free_now(), GIB - 4 * MiB, "... memory kept (still mapped)");
    EQ(DRV(cuMemRelease)(h), CUDA_ERROR_INVALID_VALUE, "released handle is invalid");
    EQ(DRV(cuMemRetainAllocationHandle)(&h2, (void *)(uintptr_t)(va + 8 * MiB + 12345)), CUDA_SUCCESS,
       "cuMemRetainAllocationHandle(interior address)");
    CHECK(h2 == h, "... returns the handle");
    CUmemAllocationProp got;
    memset(&got, 0, sizeof got);
    EQ(DRV(cuMemGetAllocationPropertiesFromHandle)(&got, h2), CUDA_SUCCESS, "cuMemGetAllocationPropertiesFromHandle");
    CHECK(got.location.type == CU_MEM_LOCATION_TYPE_DEVICE && got.location.id == 0, "... DEVICE 0");
    EQ(DRV(cuMemRetainAllocationHandle)(&h3, (void *)(uintptr_t)(va + 5 * MiB)), CUDA_ERROR_INVALID_VALUE,
       "retain of an unmapped address -> INVALID_VALUE");
    EQ(DRV(cuMemUnmap)(va, 2 * MiB), CUDA_ERROR_INVALID_VALUE, "partial unmap -> INVALID_VALUE");
    EQ(DRV(cuMemAddressFree)(va, 16 * MiB), CUDA_ERROR_INVALID_VALUE, "cuMemAddressFree while mapped -> INVALID_VALUE");
    EQ(DRV(cuMemUnmap)(va, 4 * MiB), CUDA_SUCCESS, "cuMemUnmap(first mapping)");
    EQ(DRV(cuMemRelease)(h2), CUDA_SUCCESS, "release the retained reference");
    EQ(mem_free_now(), GIB - 4 * MiB, "still mapped once: kept");
    EQ(MEMTYPE(va), -99, "unmapped address unknown");
    EQ(DRV(cuMemUnmap)(va, 16 * MiB), CUDA_SUCCESS, "cuMemUnmap(whole reservation, covering the last mapping)");
    EQ(mem_free_now(), GIB, "last unmap after the last release frees the memory");
    EQ(DRV(cuMemAddressFree)(va, 16 * MiB), CUDA_SUCCESS, "cuMemAddressFree");

    /* host-located physical memory */
    CUmemAllocationProp hp = prop;
    hp.location.type = CU_MEM_LOCATION_TYPE_HOST;
    hp.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
    EQ(DRV(cuMemCreate)(&h, 2 * MiB, &hp, 0), CUDA_ERROR_INVALID_VALUE, "HOST with handle types -> INVALID_VALUE");
    hp.requestedHandleTypes = 0;
    EQ(DRV(cuMemCreate)(&h, 2 * MiB, &hp, 0), CUDA_SUCCESS, "cuMemCreate(HOST)");
    hp.location.type = CU_MEM_LOCATION_TYPE_HOST_NUMA;
    EQ(DRV(cuMemCreate)(&h2, 2 * MiB, &hp, 0), CUDA_SUCCESS, "cuMemCreate(HOST_NUMA 0)");
    EQ(mem_free_now(), GIB, "host-located physical memory not charged");
    DRV(cuMemAddressReserve)(&va, 4 * MiB, 0, 0, 0);
    EQ(DRV(cuMemMap)(va, 2 * MiB, 0, h, 0), CUDA_SUCCESS, "map HOST memory");
    DRV(cuMemMap)(va + 2 * MiB, 2 * MiB, 0, h2, 0);
    EQ(MEMTYPE(va), CU_MEMORYTYPE_HOST, "HOST-located mapping: MEMORY_TYPE HOST");
    EQ(MEMTYPE(va + 3 * MiB), CU_MEMORYTYPE_HOST, "HOST_NUMA-located mapping: MEMORY_TYPE HOST");
    EQ(ORDINAL(va), -1, "... DEVICE_ORDINAL -1 (CU_DEVICE_CPU)");
    DRV(cuMemRelease)(h);
    DRV(cuMemRelease)(h2);
    EQ(DRV(cuMemUnmap)(va, 4 * MiB), CUDA_SUCCESS, "unmap both");
    DRV(cuMemAddressFree)(va, 4 * MiB);

    /* shareable handles */
    prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
    EQ(DRV(cuMemCreate)(&h, 2 * MiB, &prop, 0), CUDA_SUCCESS, "cuMemCreate(POSIX fd exportable)");
    int fd = -1;
    EQ(DRV(cuMemExportToShareableHandle)(&fd, h, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0), CUDA_SUCCESS,
       "cuMemExportToShareableHandle(POSIX fd)");
    CHECK(fd >= 0 && fcntl(fd, F_GETFD) >= 0, "... a real file descriptor (%d)", fd);
    EQ(DRV(cuMemImportFromShareableHandle)(&h2, (void *)(uintptr_t)fd, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR),
       CUDA_SUCCESS, "cuMemImportFromShareableHandle");
    CHECK(h2 && h2 != h, "... a new handle");
    EQ(mem_free_now(), GIB - 2 * MiB, "imported handle not charged again");
    DRV(cuMemAddressReserve)(&va, 2 * MiB, 0, 0, 0);
    EQ(DRV(cuMemMap)(va, 2 * MiB, 0, h2, 0), CUDA_SUCCESS, "map the imported handle");
    EQ(MEMTYPE(va), CU_MEMORYTYPE_DEVICE, "... DEVICE");
    EQ(attr_u64(va, CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES), CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR,
       "ALLOWED_HANDLE_TYPES");
    DRV(cuMemUnmap)(va, 2 * MiB);
    DRV(cuMemAddressFree)(va, 2 * MiB);
    EQ(DRV(cuMemRelease)(h2), CUDA_SUCCESS, "release the imported handle");
    EQ(mem_free_now(), GIB - 2 * MiB, "... the exporter's memory stays");
    EQ(DRV(cuMemRelease)(h), CUDA_SUCCESS, "release the original");
    EQ(mem_free_now(), GIB, "freed");
    close(fd);
    EQ(DRV(cuMemCreate)(&h, 2 * GIB, &prop, 0), CUDA_ERROR_OUT_OF_MEMORY, "cuMemCreate beyond capacity -> OOM");
}

/* ------------------------------------------------------------------------ */
/* Scenario: contexts end, and what the driver frees with them (as measured   */
/* on an H200, driver 580)                                                    */

typedef CUresult (*ctx_create_v2_t)(CUcontext *, unsigned int, CUdevice);

static void scn_contexts(void)
{
    CUcontext p = drv_setup(0), c = NULL, cur = NULL;
    CUstream s = NULL;
    EQ(DRV(cuStreamCreate)(&s, 0), CUDA_SUCCESS, "cuStreamCreate");
    /* a created context owns cuMemAlloc, host-pinned, managed, registered memory and arrays */
    EQ(DRV(cuCtxCreate_v4)(&c, NULL, 0, 0), CUDA_SUCCESS, "cuCtxCreate_v4");
    DRV(cuCtxGetCurrent)(&cur);
    CHECK(cur == c && c != p, "the created context is current");
    CUdeviceptr d = 0, m = 0, q = 0;
    void *h = NULL;
    static char reg[8192] __attribute__((aligned(4096)));
    EQ(DRV(cuMemAlloc_v2)(&d, 4 * MiB), CUDA_SUCCESS, "cuMemAlloc in it");
    EQ(DRV(cuMemAllocHost_v2)(&h, 4096), CUDA_SUCCESS, "cuMemAllocHost in it");
    EQ(DRV(cuMemAllocManaged)(&m, 4096, CU_MEM_ATTACH_GLOBAL), CUDA_SUCCESS, "cuMemAllocManaged in it");
    EQ(DRV(cuMemHostRegister_v2)(reg, sizeof reg, 0), CUDA_SUCCESS, "cuMemHostRegister in it");
    CUDA_ARRAY3D_DESCRIPTOR ad = {.Width = 1024, .Height = 1024, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 1};
    CUarray arr = NULL;
    EQ(DRV(cuArray3DCreate_v2)(&arr, &ad), CUDA_SUCCESS, "cuArray3DCreate in it");
    EQ(DRV(cuMemAllocAsync)(&q, 2 * MiB, s), CUDA_SUCCESS, "cuMemAllocAsync (stream of the primary context)");
    EQ(mem_free_now(), GIB - 4 * MiB - 4 * MiB - 2 * MiB, "charged: device + array + pool reserve");
    CHECK(attr_ptr(d, CU_POINTER_ATTRIBUTE_CONTEXT) == (void *)c, "CONTEXT of its allocation: the created context");
    CHECK(attr_ptr(q, CU_POINTER_ATTRIBUTE_CONTEXT) == NULL, "CONTEXT of a pool allocation: none");
    EQ(DRV(cuCtxDestroy_v2)(p), CUDA_ERROR_INVALID_CONTEXT, "cuCtxDestroy(primary) -> INVALID_CONTEXT");
    EQ(DRV(cuCtxDestroy_v2)(c), CUDA_SUCCESS, "cuCtxDestroy");
    DRV(cuCtxGetCurrent)(&cur);
    CHECK(cur == p, "... popped: the primary context is current again");
    EQ(mem_free_now(), GIB - 2 * MiB, "its memory and array freed; the pool's reserve stays");
    EQ(DRV(cuMemFree_v2)(d), CUDA_ERROR_INVALID_VALUE, "cuMemFree of its allocation -> INVALID_VALUE");
    EQ(DRV(cuMemFreeHost)(h), CUDA_ERROR_INVALID_VALUE, "cuMemFreeHost -> INVALID_VALUE");
    EQ(DRV(cuMemFree_v2)(m), CUDA_ERROR_INVALID_VALUE, "cuMemFree(managed) -> INVALID_VALUE");
    EQ(DRV(cuMemHostUnregister)(reg), CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED, "cuMemHostUnregister -> 713");
    EQ(DRV(cuMemFreeAsync)(q, s), CUDA_SUCCESS, "the pool allocation is still valid");
    EQ(DRV(cuCtxDestroy_v2)(c), CUDA_ERROR_CONTEXT_IS_DESTROYED, "destroyed twice -> CONTEXT_IS_DESTROYED");
    /* another thread keeping a destroyed context current */
    EQ(((ctx_create_v2_t)dsym("cuCtxCreate_v2"))(&c, 0, 0), CUDA_SUCCESS, "cuCtxCreate_v2");
    EQ(DRV(cuCtxPushCurrent_v2)(p), CUDA_SUCCESS, "push the primary over it");
    EQ(DRV(cuCtxDestroy_v2)(c), CUDA_SUCCESS, "destroy the created one (not on top)");
    CUcontext popped = NULL;
    EQ(DRV(cuCtxPopCurrent_v2)(&popped), CUDA_SUCCESS, "pop");
    EQ(DRV(cuMemAlloc_v2)(&d, 4096), CUDA_ERROR_CONTEXT_IS_DESTROYED, "current but destroyed -> 709");
    DRV(cuCtxSetCurrent)(p);

    /* the primary context: reset ends it whatever its references */
    unsigned flags = 0;
    int active = -1;
    EQ(DRV(cuMemAlloc_v2)(&d, 4 * MiB), CUDA_SUCCESS, "cuMemAlloc in the primary context");
    EQ(DRV(cuDevicePrimaryCtxGetState)(0, &flags, &active), CUDA_SUCCESS, "cuDevicePrimaryCtxGetState");
    EQ(active, 1, "... active");
    EQ(DRV(cuDevicePrimaryCtxReset_v2)(0), CUDA_SUCCESS, "cuDevicePrimaryCtxReset");
    DRV(cuDevicePrimaryCtxGetState)(0, &flags, &active);
    EQ(active, 0, "... inactive");
    size_t f = 0, t = 0;
    EQ(DRV(cuMemGetInfo_v2)(&f, &t), CUDA_ERROR_CONTEXT_IS_DESTROYED, "used before a retain -> 709");
    CUcontext p2 = NULL;
    EQ(DRV(cuDevicePrimaryCtxRetain)(&p2, 0), CUDA_SUCCESS, "retained again");
    CHECK(p2 == p, "... the same handle");
    EQ(mem_free_now(), GIB - 2 * MiB, "the reset freed its allocation, not the pool's reserve");
    EQ(DRV(cuMemFree_v2)(d), CUDA_ERROR_INVALID_VALUE, "cuMemFree after the reset -> INVALID_VALUE");
    /* releases: the last one ends it (two references now) */
    EQ(DRV(cuMemAlloc_v2)(&d, 4 * MiB), CUDA_SUCCESS, "cuMemAlloc");
    EQ(DRV(cuDevicePrimaryCtxRelease_v2)(0), CUDA_SUCCESS, "one release");
    DRV(cuDevicePrimaryCtxGetState)(0, &flags, &active);
    EQ(active, 1, "... still active");
    CHECK(MEMTYPE(d) == CU_MEMORYTYPE_DEVICE, "... its allocation lives");
    EQ(DRV(cuDevicePrimaryCtxRelease_v2)(0), CUDA_SUCCESS, "the last release");
    DRV(cuDevicePrimaryCtxGetState)(0, &flags, &active);
    EQ(active, 0, "... inactive");
    EQ(DRV(cuDevicePrimaryCtxRelease_v2)(0), CUDA_ERROR_INVALID_CONTEXT, "one release too many -> INVALID_CONTEXT");
    DRV(cuDevicePrimaryCtxRetain)(&p2, 0);
    EQ(DRV(cuMemFree_v2)(d), CUDA_ERROR_INVALID_VALUE, "freed with the context");

    /* green contexts: allocations belong to the primary context, which each holds */
    CUdevResource res, split[4], rem;
    unsigned n = 4;
    EQ(DRV(cuDeviceGetDevResource)(0, &res, CU_DEV_RESOURCE_TYPE_SM), CUDA_SUCCESS, "cuDeviceGetDevResource");
    EQ(DRV(cuDevSmResourceSplitByCount)(split, &n, &res, &rem, 0, 8), CUDA_SUCCESS, "cuDevSmResourceSplitByCount");
    CHECK(n == 4 && split[0].sm.smCount == 8, "... 4 groups of 8");
    CUdevResourceDesc desc = NULL;
    EQ(DRV(cuDevResourceGenerateDesc)(&desc, split, 1), CUDA_SUCCESS, "cuDevResourceGenerateDesc");
    CUgreenCtx g = NULL;
    EQ(DRV(cuGreenCtxCreate)(&g, desc, 0, 0), CUDA_ERROR_INVALID_VALUE, "without CU_GREEN_CTX_DEFAULT_STREAM");
    EQ(DRV(cuGreenCtxCreate)(&g, desc, 0, CU_GREEN_CTX_DEFAULT_STREAM), CUDA_SUCCESS, "cuGreenCtxCreate");
    CUcontext gc = NULL, gc2 = NULL;
    EQ(DRV(cuCtxFromGreenCtx)(&gc, g), CUDA_SUCCESS, "cuCtxFromGreenCtx");
    DRV(cuCtxFromGreenCtx)(&gc2, g);
    CHECK(gc == gc2 && gc != p && (void *)gc != (void *)g, "... the same context each time, its own handle");
    DRV(cuCtxPushCurrent_v2)(gc);
    EQ(DRV(cuMemAlloc_v2)(&d, 4 * MiB), CUDA_SUCCESS, "cuMemAlloc in the green context");
    CHECK(attr_ptr(d, CU_POINTER_ATTRIBUTE_CONTEXT) == (void *)p, "... owned by the primary context");
    DRV(cuCtxPopCurrent_v2)(&popped);
    EQ(DRV(cuCtxDestroy_v2)(gc), CUDA_ERROR_INVALID_CONTEXT, "cuCtxDestroy(green) -> INVALID_CONTEXT");
    EQ(DRV(cuGreenCtxDestroy)(g), CUDA_SUCCESS, "cuGreenCtxDestroy (the primary context is still retained)");
    CHECK(MEMTYPE(d) == CU_MEMORYTYPE_DEVICE, "... the allocation lives");
    EQ(DRV(cuGreenCtxCreate)(&g, desc, 0, CU_GREEN_CTX_DEFAULT_STREAM), CUDA_SUCCESS, "another green context");
    EQ(DRV(cuDevicePrimaryCtxRelease_v2)(0), CUDA_SUCCESS, "our own reference released");
    EQ(DRV(cuGreenCtxDestroy)(g), CUDA_SUCCESS, "its destruction releases the last reference");
    DRV(cuDevicePrimaryCtxGetState)(0, &flags, &active);
    EQ(active, 0, "... the primary context ended");
    DRV(cuDevicePrimaryCtxRetain)(&p2, 0);
    EQ(DRV(cuMemFree_v2)(d), CUDA_ERROR_INVALID_VALUE, "the green context's allocation went with it");
    EQ(DRV(cuStreamDestroy_v2)(s), CUDA_SUCCESS, "cuStreamDestroy");
}

/* ------------------------------------------------------------------------ */
/* Scenario: VMM handles mapped into sparse and deferred-mapping arrays       */

static void scn_sparse(void)
{
    drv_setup(0);
    CUstream s = NULL;
    DRV(cuStreamCreate)(&s, 0);
    CUDA_ARRAY3D_DESCRIPTOR ad = {.Width = 1024, .Height = 1024, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 4,
                                  .Flags = CUDA_ARRAY3D_DEFERRED_MAPPING};
    CUarray a = NULL;
    EQ(DRV(cuArray3DCreate_v2)(&a, &ad), CUDA_SUCCESS, "deferred-mapping array (16 MiB)");
    EQ(mem_free_now(), GIB, "... allocates nothing");
    CUDA_ARRAY_MEMORY_REQUIREMENTS rq;
    EQ(DRV(cuArrayGetMemoryRequirements)(&rq, a, 0), CUDA_SUCCESS, "its requirements");
    EQ(rq.size, 16 * MiB, "... 16 MiB");
    CUmemAllocationProp tp = {.type = CU_MEM_ALLOCATION_TYPE_PINNED, .location = {CU_MEM_LOCATION_TYPE_DEVICE, 0}};
    tp.allocFlags.usage = CU_MEM_CREATE_USAGE_TILE_POOL;
    CUmemAllocationProp plain = tp;
    plain.allocFlags.usage = 0;
    CUmemGenericAllocationHandle h1 = 0, h2 = 0, hp = 0;
    EQ(DRV(cuMemCreate)(&h1, 16 * MiB, &tp, 0), CUDA_SUCCESS, "a tile pool handle");
    EQ(DRV(cuMemCreate)(&hp, 16 * MiB, &plain, 0), CUDA_SUCCESS, "a plain handle");
    CUarrayMapInfo mi;
    memset(&mi, 0, sizeof mi);
    mi.resourceType = CU_RESOURCE_TYPE_ARRAY;
    mi.resource.array = a;
    mi.memOperationType = CU_MEM_OPERATION_TYPE_MAP;
    mi.memHandleType = CU_MEM_HANDLE_TYPE_GENERIC;
    mi.memHandle.memHandle = hp;
    mi.deviceBitMask = 1;
    EQ(DRV(cuMemMapArrayAsync)(&mi, 1, s), CUDA_ERROR_INVALID_VALUE, "mapping a plain handle -> INVALID_VALUE");
    mi.memHandle.memHandle = h1;
    EQ(DRV(cuMemMapArrayAsync)(&mi, 1, s), CUDA_SUCCESS, "cuMemMapArrayAsync(map)");
    EQ(DRV(cuMemRelease)(h1), CUDA_SUCCESS, "released while mapped");
    EQ(mem_free_now(), GIB - 32 * MiB, "... kept (and the plain handle)");
    mi.memOperationType = CU_MEM_OPERATION_TYPE_UNMAP;
    mi.memHandle.memHandle = 0;
    EQ(DRV(cuMemMapArrayAsync)(&mi, 1, s), CUDA_SUCCESS, "cuMemMapArrayAsync(unmap)");
    EQ(mem_free_now(), GIB - 16 * MiB, "... freed");
    EQ(DRV(cuMemCreate)(&h1, 16 * MiB, &tp, 0), CUDA_SUCCESS, "h1 again");
    EQ(DRV(cuMemCreate)(&h2, 16 * MiB, &tp, 0), CUDA_SUCCESS, "h2");
    mi.memOperationType = CU_MEM_OPERATION_TYPE_MAP;
    mi.memHandle.memHandle = h1;
    DRV(cuMemMapArrayAsync)(&mi, 1, s);
    mi.memHandle.memHandle = h2;
    EQ(DRV(cuMemMapArrayAsync)(&mi, 1, s), CUDA_SUCCESS, "h2 mapped over h1");
    EQ(DRV(cuMemRelease)(h1), CUDA_SUCCESS, "release h1");
    EQ(DRV(cuMemRelease)(h2), CUDA_SUCCESS, "release h2");
    EQ(mem_free_now(), GIB - 32 * MiB, "... h1 (mapped over) freed, h2 kept");
    EQ(DRV(cuArrayDestroy)(a), CUDA_SUCCESS, "cuArrayDestroy");
    EQ(mem_free_now(), GIB - 16 * MiB, "... h2 freed with it");
    EQ(DRV(cuMemRelease)(hp), CUDA_SUCCESS, "release the plain handle");

    /* sparse: tiles of 64 x 64; a handle goes when its last tile is unmapped */
    ad.Flags = CUDA_ARRAY3D_SPARSE;
    EQ(DRV(cuArray3DCreate_v2)(&a, &ad), CUDA_SUCCESS, "sparse array");
    EQ(mem_free_now(), GIB, "... allocates nothing");
    EQ(DRV(cuArrayGetMemoryRequirements)(&rq, a, 0), CUDA_ERROR_INVALID_VALUE, "its requirements -> INVALID_VALUE");
    CUDA_ARRAY_SPARSE_PROPERTIES sp;
    EQ(DRV(cuArrayGetSparseProperties)(&sp, a), CUDA_SUCCESS, "cuArrayGetSparseProperties");
    CHECK(sp.tileExtent.width == 64 && sp.tileExtent.height == 64 && sp.tileExtent.depth == 1, "... 64 x 64 x 1 tiles");
    EQ(DRV(cuMemCreate)(&h1, 4 * MiB, &tp, 0), CUDA_SUCCESS, "a tile pool handle");
    memset(&mi, 0, sizeof mi);
    mi.resourceType = CU_RESOURCE_TYPE_ARRAY;
    mi.resource.array = a;
    mi.subresourceType = CU_ARRAY_SPARSE_SUBRESOURCE_TYPE_SPARSE_LEVEL;
    mi.subresource.sparseLevel.extentWidth = 256;
    mi.subresource.sparseLevel.extentHeight = 256;
    mi.subresource.sparseLevel.extentDepth = 1;
    mi.memOperationType = CU_MEM_OPERATION_TYPE_MAP;
    mi.memHandleType = CU_MEM_HANDLE_TYPE_GENERIC;
    mi.memHandle.memHandle = h1;
    mi.deviceBitMask = 1;
    EQ(DRV(cuMemMapArrayAsync)(&mi, 1, s), CUDA_SUCCESS, "16 tiles mapped");
    EQ(DRV(cuMemRelease)(h1), CUDA_SUCCESS, "released while mapped");
    mi.memOperationType = CU_MEM_OPERATION_TYPE_UNMAP;
    mi.memHandle.memHandle = 0;
    mi.subresource.sparseLevel.extentWidth = 128;
    EQ(DRV(cuMemMapArrayAsync)(&mi, 1, s), CUDA_SUCCESS, "left half unmapped");
    EQ(mem_free_now(), GIB - 4 * MiB, "... kept");
    mi.subresource.sparseLevel.offsetX = 128;
    EQ(DRV(cuMemMapArrayAsync)(&mi, 1, s), CUDA_SUCCESS, "right half unmapped");
    EQ(mem_free_now(), GIB, "... freed");
    mi.subresource.sparseLevel.offsetX = 3;
    EQ(DRV(cuMemMapArrayAsync)(&mi, 1, s), CUDA_ERROR_INVALID_VALUE, "an offset off the tiles -> INVALID_VALUE");
    EQ(DRV(cuArrayDestroy)(a), CUDA_SUCCESS, "cuArrayDestroy");
    DRV(cuStreamDestroy_v2)(s);
}

/* ------------------------------------------------------------------------ */
/* Scenario: arrays                                                           */

static void scn_arrays(void)
{
    drv_setup(0);
    CUDA_ARRAY_DESCRIPTOR d2 = {.Width = 100, .Height = 10, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 4};
    CUarray a = NULL, b = NULL;
    EQ(DRV(cuArrayCreate_v2)(&a, &d2), CUDA_SUCCESS, "cuArrayCreate_v2(100 x 10, float4)");
    EQ(mem_free_now(), GIB - 16384, "charged round_up(100*10*16, 512) = 16384");
    CUDA_ARRAY_MEMORY_REQUIREMENTS rq;
    EQ(DRV(cuArrayGetMemoryRequirements)(&rq, a, 0), CUDA_ERROR_INVALID_VALUE,
       "cuArrayGetMemoryRequirements of an ordinary array -> INVALID_VALUE (documented; so on an H200)");
    CUDA_ARRAY3D_DESCRIPTOR d3 = {.Width = 64, .Height = 64, .Depth = 5, .Format = CU_AD_FORMAT_UNSIGNED_INT8,
                                  .NumChannels = 1};
    EQ(DRV(cuArray3DCreate_v2)(&b, &d3), CUDA_SUCCESS, "cuArray3DCreate_v2(64 x 64 x 5, uchar)");
    EQ(mem_free_now(), GIB - 16384 - 20480, "charged 20480");
    CUDA_ARRAY3D_DESCRIPTOR back;
    memset(&back, 0, sizeof back);
    EQ(DRV(cuArray3DGetDescriptor_v2)(&back, b), CUDA_SUCCESS, "cuArray3DGetDescriptor_v2");
    CHECK(back.Width == 64 && back.Depth == 5 && back.Format == CU_AD_FORMAT_UNSIGNED_INT8, "... descriptor back");
    CUmipmappedArray m = NULL;
    CUDA_ARRAY3D_DESCRIPTOR dm = {.Width = 256, .Height = 256, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 1};
    EQ(DRV(cuMipmappedArrayCreate)(&m, &dm, 3), CUDA_SUCCESS, "cuMipmappedArrayCreate(256 x 256 float, 3 levels)");
    EQ(DRV(cuMipmappedArrayGetMemoryRequirements)(&rq, m, 0), CUDA_ERROR_INVALID_VALUE,
       "cuMipmappedArrayGetMemoryRequirements of an ordinary one -> INVALID_VALUE");
    EQ(mem_free_now(), GIB - 16384 - 20480 - 344064, "charged the levels' sum");
    /* deferred mapping: nothing allocated, the requirements answer */
    CUmipmappedArray md = NULL;
    dm.Flags = CUDA_ARRAY3D_DEFERRED_MAPPING;
    EQ(DRV(cuMipmappedArrayCreate)(&md, &dm, 3), CUDA_SUCCESS, "cuMipmappedArrayCreate(deferred mapping)");
    EQ(mem_free_now(), GIB - 16384 - 20480 - 344064, "... charged nothing");
    EQ(DRV(cuMipmappedArrayGetMemoryRequirements)(&rq, md, 0), CUDA_SUCCESS, "cuMipmappedArrayGetMemoryRequirements");
    EQ(rq.size, 262144 + 65536 + 16384, "... summed over the levels");
    EQ(DRV(cuMipmappedArrayDestroy)(md), CUDA_SUCCESS, "destroyed");
    dm.Flags = 0;
    EQ(DRV(cuArrayDestroy)(a), CUDA_SUCCESS, "cuArrayDestroy");
    EQ(DRV(cuArrayDestroy)(a), CUDA_ERROR_INVALID_HANDLE, "twice -> INVALID_HANDLE");
    DRV(cuArrayDestroy)(b);
    EQ(DRV(cuMipmappedArrayDestroy)(m), CUDA_SUCCESS, "cuMipmappedArrayDestroy");
    EQ(mem_free_now(), GIB, "uncharged");
    d2.Width = 1ULL << 26;
    d2.Height = 2;
    EQ(DRV(cuArrayCreate_v2)(&a, &d2), CUDA_ERROR_OUT_OF_MEMORY, "2 GiB array -> OUT_OF_MEMORY");
    d2.NumChannels = 3;
    EQ(DRV(cuArrayCreate_v2)(&a, &d2), CUDA_ERROR_INVALID_VALUE, "3 channels -> INVALID_VALUE");
}

/* ------------------------------------------------------------------------ */
/* Scenario: registration, legacy IPC, pool IPC, external memory              */

static void scn_ipc(void)
{
    drv_setup(0);
    char *io = aligned_alloc(4096, 8192);
    EQ(DRV(cuMemHostRegister_v2)(io, 8192, CU_MEMHOSTREGISTER_IOMEMORY), CUDA_SUCCESS,
       "cuMemHostRegister_v2(IOMEMORY)");
    EQ(MEMTYPE((CUdeviceptr)(uintptr_t)io + 10), CU_MEMORYTYPE_HOST, "IOMEMORY registration: MEMORY_TYPE HOST");
    EQ(mem_free_now(), GIB, "... not charged");
    EQ(DRV(cuMemHostUnregister)(io), CUDA_SUCCESS, "cuMemHostUnregister");
    free(io);

    CUdeviceptr p = 0, q = 0;
    DRV(cuMemAlloc_v2)(&p, 5000);
    CUipcMemHandle ih;
    EQ(DRV(cuIpcGetMemHandle)(&ih, p + 512), CUDA_ERROR_INVALID_VALUE, "cuIpcGetMemHandle(interior) -> INVALID_VALUE");
    EQ(DRV(cuIpcGetMemHandle)(&ih, p), CUDA_SUCCESS, "cuIpcGetMemHandle");
    EQ(DRV(cuIpcOpenMemHandle_v2)(&q, ih, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS), CUDA_ERROR_INVALID_CONTEXT,
       "opening in the exporting process -> INVALID_CONTEXT (201)");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) { /* another process: open works */
        g_fail = 0;
        CUdeviceptr r = 0, r2 = 0;
        size_t before = mem_free_now();
        EQ(DRV(cuIpcOpenMemHandle_v2)(&r, ih, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS), CUDA_SUCCESS,
           "child: cuIpcOpenMemHandle_v2");
        CHECK(r && r != p, "child: a new mapping");
        EQ(mem_free_now(), before, "child: not charged again");
        EQ(MEMTYPE(r + 4999), CU_MEMORYTYPE_DEVICE, "child: MEMORY_TYPE DEVICE");
        EQ(((CUresult(*)(CUdeviceptr *, CUipcMemHandle, unsigned))dsym("cuIpcOpenMemHandle"))(&r2, ih, 1),
           CUDA_SUCCESS, "child: legacy cuIpcOpenMemHandle");
        CHECK(r2 == r, "child: opened twice -> same address (refcounted)");
        EQ(DRV(cuIpcCloseMemHandle)(r), CUDA_SUCCESS, "child: cuIpcCloseMemHandle");
        EQ(DRV(cuIpcCloseMemHandle)(r), CUDA_SUCCESS, "child: second close");
        EQ(DRV(cuIpcCloseMemHandle)(r), CUDA_ERROR_INVALID_VALUE, "child: third close -> INVALID_VALUE");
        fflush(stdout);
        _exit(g_fail ? 1 : 0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child process checks passed");
    DRV(cuMemFree_v2)(p);

    /* pool export/import */
    CUstream s = NULL;
    DRV(cuStreamCreate)(&s, 0);
    CUmemPoolProps pp;
    memset(&pp, 0, sizeof pp);
    pp.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
    pp.handleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
    pp.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    CUmemoryPool ep = NULL, ip = NULL, def = NULL;
    EQ(DRV(cuMemPoolCreate)(&ep, &pp), CUDA_SUCCESS, "exportable device pool");
    EQ(DRV(cuMemAllocFromPoolAsync)(&p, 10000, ep, s), CUDA_SUCCESS, "allocation from it");
    int fd = -1;
    EQ(DRV(cuMemPoolExportToShareableHandle)(&fd, ep, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0), CUDA_SUCCESS,
       "cuMemPoolExportToShareableHandle");
    DRV(cuDeviceGetDefaultMemPool)(&def, 0);
    EQ(DRV(cuMemPoolExportToShareableHandle)(&fd, def, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0),
       CUDA_ERROR_INVALID_VALUE, "default pool is not exportable");
    CUmemPoolPtrExportData ed;
    EQ(DRV(cuMemPoolExportPointer)(&ed, p), CUDA_SUCCESS, "cuMemPoolExportPointer");
    EQ(DRV(cuMemPoolImportFromShareableHandle)(&ip, (void *)(uintptr_t)fd, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0),
       CUDA_SUCCESS, "cuMemPoolImportFromShareableHandle");
    size_t before = mem_free_now();
    EQ(DRV(cuMemPoolImportPointer)(&q, ip, &ed), CUDA_SUCCESS, "cuMemPoolImportPointer");
    CHECK(q && q != p, "imported pointer: a new address");
    CHECK(POOLOF(q) == (void *)ip, "... MEMPOOL_HANDLE = the imported pool");
    EQ(MEMTYPE(q), CU_MEMORYTYPE_DEVICE, "... DEVICE");
    EQ(mem_free_now(), before, "... not charged");
    CUdeviceptr x = 0;
    EQ(DRV(cuMemAllocFromPoolAsync)(&x, 64, ip, s), CUDA_ERROR_INVALID_VALUE, "no allocations from an imported pool");
    EQ(DRV(cuMemFreeAsync)(q, s), CUDA_SUCCESS, "free the imported pointer");
    EQ(DRV(cuMemPoolDestroy)(ip), CUDA_SUCCESS, "destroy the imported pool");
    DRV(cuMemFreeAsync)(p, s);
    DRV(cuMemPoolDestroy)(ep);
    close(fd);

    /* external memory */
    int efd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CUDA_EXTERNAL_MEMORY_HANDLE_DESC hd;
    memset(&hd, 0, sizeof hd);
    hd.type = CU_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD;
    hd.handle.fd = efd;
    hd.size = 8 * MiB;
    CUexternalMemory em = NULL;
    before = mem_free_now();
    EQ(DRV(cuImportExternalMemory)(&em, &hd), CUDA_SUCCESS, "cuImportExternalMemory(OPAQUE_FD, 8 MiB)");
    CHECK(fcntl(efd, F_GETFD) < 0, "... the driver took ownership of the fd (closed)");
    CUDA_EXTERNAL_MEMORY_BUFFER_DESC bd = {.offset = 1 * MiB, .size = 2 * MiB};
    EQ(DRV(cuExternalMemoryGetMappedBuffer)(&x, em, &bd), CUDA_SUCCESS, "cuExternalMemoryGetMappedBuffer");
    EQ(MEMTYPE(x + 100), CU_MEMORYTYPE_DEVICE, "mapped buffer: DEVICE");
    EQ(mem_free_now(), before, "external memory not charged");
    bd.offset = 7 * MiB;
    EQ(DRV(cuExternalMemoryGetMappedBuffer)(&q, em, &bd), CUDA_ERROR_INVALID_VALUE, "beyond the size -> INVALID_VALUE");
    EQ(DRV(cuDestroyExternalMemory)(em), CUDA_SUCCESS, "cuDestroyExternalMemory");
    EQ(DRV(cuMemFree_v2)(x), CUDA_SUCCESS, "cuMemFree of the mapped buffer");
    DRV(cuCtxSynchronize)();
    EQ(mem_free_now(), GIB, "everything released");
}

/* ------------------------------------------------------------------------ */
/* Scenario: two devices (FAKECUDA_DEVICES=2, 64 MiB each)                    */

static void scn_twopools(void)
{
    const size_t cap = 64 * MiB;
    CUcontext c0 = drv_setup(0), c1 = NULL;
    CUdeviceptr p0 = 0, p1 = 0;
    EQ(DRV(cuMemAllocAsync)(&p0, 4096, NULL), CUDA_SUCCESS, "device 0: cuMemAllocAsync on stream 0");
    EQ(ORDINAL(p0), 0, "... ordinal 0");
    EQ(DRV(cuDevicePrimaryCtxRetain)(&c1, 1), CUDA_SUCCESS, "retain device 1's primary context");
    EQ(DRV(cuCtxSetCurrent)(c1), CUDA_SUCCESS, "cuCtxSetCurrent(device 1)");
    CUstream s1 = NULL;
    EQ(DRV(cuStreamCreate)(&s1, 0), CUDA_SUCCESS, "stream on device 1");
    CUcontext sc = NULL;
    DRV(cuStreamGetCtx)(s1, &sc);
    CHECK(sc == c1, "cuStreamGetCtx: device 1's context");
    CUmemoryPool d0 = NULL, d1 = NULL, l1 = NULL;
    DRV(cuDeviceGetDefaultMemPool)(&d0, 0);
    DRV(cuDeviceGetDefaultMemPool)(&d1, 1);
    CUmemLocation loc1 = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 1};
    DRV(cuMemGetDefaultMemPool)(&l1, &loc1, CU_MEM_ALLOCATION_TYPE_PINNED);
    CHECK(d0 && d1 && d0 != d1 && l1 == d1, "one default pool per device");
    EQ(USED(d0), 4096, "device 0 pool used");
    EQ(DRV(cuMemFreeAsync)(p0, s1), CUDA_SUCCESS, "cuMemFreeAsync of device-0 memory on a device-1 stream");
    EQ(USED(d0), 0, "... device 0's pool used drops");
    EQ(DRV(cuMemAllocAsync)(&p1, 4096, s1), CUDA_SUCCESS, "cuMemAllocAsync on the device-1 stream");
    CHECK(p1 >= DEV_BASE(1) && p1 < DEV_BASE(2), "... device 1 address");
    EQ(ORDINAL(p1), 1, "... ordinal 1");
    CHECK(POOLOF(p1) == (void *)d1, "... from device 1's pool");
    EQ(mem_free_now(), cap - 2 * MiB, "cuMemGetInfo on device 1: its pool's reserve");
    EQ(DRV(cuStreamSynchronize)(s1), CUDA_SUCCESS, "synchronize device 1");
    EQ(RESERVED(d0), 2 * MiB, "device 0's pool untouched by device 1's synchronize");
    DRV(cuMemFreeAsync)(p1, s1);

    /* graph memory is per device */
    DRV(cuStreamBeginCapture_v2)(s1, CU_STREAM_CAPTURE_MODE_GLOBAL);
    DRV(cuMemAllocAsync)(&p1, 3 * MiB, s1);
    CUgraph g = NULL;
    CUgraphExec e = NULL;
    DRV(cuStreamEndCapture)(s1, &g);
    DRV(cuGraphInstantiateWithFlags)(&e, g, 0);
    EQ(DRV(cuGraphLaunch)(e, s1), CUDA_SUCCESS, "graph captured on device 1, launched");
    EQ(graph_attr(1, CU_GRAPH_MEM_ATTR_USED_MEM_CURRENT), 3 * MiB, "device 1 graph used");
    EQ(graph_attr(0, CU_GRAPH_MEM_ATTR_USED_MEM_CURRENT), 0, "device 0 graph used 0");
    EQ(ORDINAL(p1), 1, "graph memory ordinal 1");
    DRV(cuMemFreeAsync)(p1, s1);
    DRV(cuGraphExecDestroy)(e);
    DRV(cuGraphDestroy)(g);
    DRV(cuDeviceGraphMemTrim)(1);

    /* peers */
    int can = -1;
    EQ(DRV(cuDeviceCanAccessPeer)(&can, 1, 0), CUDA_SUCCESS, "cuDeviceCanAccessPeer(1, 0)");
    EQ(can, 1, "... yes");
    DRV(cuDeviceCanAccessPeer)(&can, 1, 1);
    EQ(can, 0, "(1, 1): no");
    EQ(DRV(cuCtxEnablePeerAccess)(c0, 0), CUDA_SUCCESS, "cuCtxEnablePeerAccess(device 0) from device 1");
    EQ(DRV(cuCtxEnablePeerAccess)(c0, 0), CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED, "twice -> 704");
    EQ(DRV(cuCtxEnablePeerAccess)(c1, 0), CUDA_ERROR_INVALID_DEVICE, "own context -> INVALID_DEVICE");
    DRV(cuStreamDestroy_v2)(s1);
    DRV(cuStreamSynchronize)(NULL);
    EQ(mem_free_now(), cap, "device 1 released");
}

/* ------------------------------------------------------------------------ */
/* Scenario: the runtime's pool, array, stream, graph and IPC calls            */

static void scn_rtmem(void)
{
    size_t f = 0, t = 0;
    cudaStream_t s = NULL;
    EQ(cudaStreamCreate(&s), cudaSuccess, "cudaStreamCreate");
    cudaMemPool_t def = NULL, mp = NULL;
    EQ(cudaDeviceGetDefaultMemPool(&def, 0), cudaSuccess, "cudaDeviceGetDefaultMemPool");
    void *p = NULL;
    EQ(cudaMallocAsync(&p, 1000, s), cudaSuccess, "cudaMallocAsync on a stream");
    cuuint64_t v = 0;
    EQ(cudaMemPoolGetAttribute(def, cudaMemPoolAttrReservedMemCurrent, &v), cudaSuccess, "cudaMemPoolGetAttribute");
    EQ(v, 2 * MiB, "reserved 2 MiB");
    EQ(cudaFreeAsync(p, s), cudaSuccess, "cudaFreeAsync");
    EQ(cudaStreamSynchronize(s), cudaSuccess, "cudaStreamSynchronize");
    cudaMemPoolGetAttribute(def, cudaMemPoolAttrReservedMemCurrent, &v);
    EQ(v, 0, "trimmed by the synchronize");
    struct cudaMemPoolProps pp;
    memset(&pp, 0, sizeof pp);
    pp.allocType = cudaMemAllocationTypePinned;
    pp.location.type = cudaMemLocationTypeHost;
    EQ(cudaMemPoolCreate(&mp, &pp), cudaSuccess, "cudaMemPoolCreate(host)");
    EQ(cudaMallocFromPoolAsync(&p, 100, mp, s), cudaSuccess, "cudaMallocFromPoolAsync");
    struct cudaPointerAttributes at;
    cudaPointerGetAttributes(&at, p);
    EQ(at.type, cudaMemoryTypeHost, "host pool memory: type Host");
    cudaFreeAsync(p, s);
    EQ(cudaMemPoolDestroy(mp), cudaSuccess, "cudaMemPoolDestroy");

    struct cudaPitchedPtr pit;
    EQ(cudaMalloc3D(&pit, (struct cudaExtent){.width = 1000, .height = 4, .depth = 3}), cudaSuccess, "cudaMalloc3D(1000 x 4 x 3)");
    EQ(pit.pitch, 1024, "pitch 1024");
    cudaMemGetInfo(&f, &t);
    EQ(f, GIB - 1024 * 12, "charged pitch * height * depth");
    cudaFree(pit.ptr);
    cudaArray_t a = NULL, b = NULL;
    struct cudaChannelFormatDesc cd = {.x = 32, .y = 32, .z = 32, .w = 32, .f = cudaChannelFormatKindFloat};
    EQ(cudaMallocArray(&a, &cd, 100, 10, 0), cudaSuccess, "cudaMallocArray(100 x 10, float4)");
    EQ(cudaMalloc3DArray(&b, &cd, (struct cudaExtent){.width = 8, .height = 8, .depth = 8}, 0), cudaSuccess, "cudaMalloc3DArray(8x8x8)");
    cudaMemGetInfo(&f, &t);
    EQ(f, GIB - 16384 - 8192, "arrays charged");
    EQ(cudaFreeArray(a), cudaSuccess, "cudaFreeArray");
    cudaFreeArray(b);

    cudaGraph_t g = NULL;
    cudaGraphExec_t e = NULL;
    EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess, "cudaStreamBeginCapture");
    EQ(cudaMallocAsync(&p, 3 * MiB, s), cudaSuccess, "captured cudaMallocAsync");
    EQ(cudaStreamEndCapture(s, &g), cudaSuccess, "cudaStreamEndCapture");
    cudaMemGetInfo(&f, &t);
    EQ(f, GIB, "nothing charged before the launch");
    EQ(cudaGraphInstantiate(&e, g, 0), cudaSuccess, "cudaGraphInstantiate");
    EQ(cudaGraphLaunch(e, s), cudaSuccess, "cudaGraphLaunch");
    cudaMemGetInfo(&f, &t);
    EQ(f, GIB - 4 * MiB, "graph reserve charged");
    EQ(cudaFreeAsync(p, s), cudaSuccess, "cudaFreeAsync(graph memory)");
    EQ(cudaDeviceGraphMemTrim(0), cudaSuccess, "cudaDeviceGraphMemTrim");
    EQ(cudaGraphExecDestroy(e), cudaSuccess, "cudaGraphExecDestroy");
    EQ(cudaGraphDestroy(g), cudaSuccess, "cudaGraphDestroy");
    EQ(cudaStreamBeginCapture(NULL, cudaStreamCaptureModeGlobal), cudaErrorStreamCaptureUnsupported,
       "capture of the legacy stream -> cudaErrorStreamCaptureUnsupported");
    cudaGetLastError();

    cudaIpcMemHandle_t ih;
    cudaMalloc(&p, 4096);
    EQ(cudaIpcGetMemHandle(&ih, p), cudaSuccess, "cudaIpcGetMemHandle");
    void *q = NULL;
    EQ(cudaIpcOpenMemHandle(&q, ih, cudaIpcMemLazyEnablePeerAccess), cudaErrorDeviceUninitialized,
       "cudaIpcOpenMemHandle in the exporting process -> 201");
    EQ(cudaIpcCloseMemHandle(p), cudaErrorInvalidValue, "cudaIpcCloseMemHandle(not opened) -> invalid value");
    cudaFree(p);
    EQ(cudaStreamDestroy(s), cudaSuccess, "cudaStreamDestroy");
    cudaDeviceSynchronize();
    cudaMemGetInfo(&f, &t);
    EQ(f, GIB, "everything released");
}

/* ------------------------------------------------------------------------ */
/* Scenarios: invalid environment, no device, no driver                       */

/* Modules and libraries (globals only), and the VMM test hooks. */
static void scn_modules(void)
{
    drv_setup(0);
    CUmodule mod = NULL;
    CUlibrary lib = NULL;
    EQ(DRV(cuModuleLoadData)(&mod, "not an image"), CUDA_ERROR_INVALID_IMAGE, "cuModuleLoadData(text) -> 200");
    EQ(DRV(cuModuleLoadData)(&mod, "fakecuda-module\nmanaged x\n"), CUDA_ERROR_INVALID_IMAGE, "a line without a size -> 200");
    EQ(DRV(cuModuleLoadData)(&mod, "fakecuda-module\ndevice d 1000\nmanaged m 4\n"), CUDA_SUCCESS, "cuModuleLoadData");
    EQ(mem_free_now(), GIB - 1024, "__device__ global charged (512-rounded)");
    CUdeviceptr d = 0, m = 0;
    size_t bytes = 0;
    EQ(DRV(cuModuleGetGlobal_v2)(&d, &bytes, mod, "d"), CUDA_SUCCESS, "cuModuleGetGlobal_v2(__device__)");
    EQ(bytes, 1000, "... its size");
    EQ(DRV(cuModuleGetGlobal_v2)(&m, NULL, mod, "m"), CUDA_SUCCESS, "cuModuleGetGlobal_v2(__managed__), size NULL");
    EQ(DRV(cuModuleGetGlobal_v2)(NULL, &bytes, mod, "m"), CUDA_SUCCESS, "cuModuleGetGlobal_v2, dptr NULL");
    EQ(bytes, 4, "... its size");
    EQ(DRV(cuModuleGetGlobal_v2)(&m, &bytes, mod, "nope"), CUDA_ERROR_NOT_FOUND, "unknown name -> 500");
    unsigned int managed = 9, type = 0;
    EQ(DRV(cuPointerGetAttribute)(&managed, CU_POINTER_ATTRIBUTE_IS_MANAGED, m), CUDA_SUCCESS, "IS_MANAGED of the global");
    EQ(managed, 1, "__managed__ global: IS_MANAGED 1");
    DRV(cuPointerGetAttribute)(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, m);
    EQ(type, CU_MEMORYTYPE_DEVICE, "... MEMORY_TYPE DEVICE, as managed memory");
    EQ(*(volatile int *)(uintptr_t)m, 0, "... zeroed, dereferenceable");
    DRV(cuPointerGetAttribute)(&managed, CU_POINTER_ATTRIBUTE_IS_MANAGED, d);
    EQ(managed, 0, "__device__ global: IS_MANAGED 0");
    EQ(DRV(cuMemFree_v2)(d), CUDA_ERROR_INVALID_VALUE, "cuMemFree of a global -> INVALID_VALUE");
    devptr_v1 d32 = 0;
    unsigned int b32 = 0;
    CUresult (*legacy)(devptr_v1 *, unsigned int *, CUmodule, const char *) =
        (CUresult(*)(devptr_v1 *, unsigned int *, CUmodule, const char *))dsym("cuModuleGetGlobal");
    EQ(legacy(&d32, &b32, mod, "d"), CUDA_ERROR_INVALID_CONTEXT, "legacy 32-bit cuModuleGetGlobal -> 201");
    EQ(d32, 0, "... writes nothing");

    EQ(DRV(cuLibraryLoadData)(&lib, "fakecuda-module\nmanaged s 24\ndevice w 512\n", NULL, NULL, 0, NULL, NULL, 0),
       CUDA_SUCCESS, "cuLibraryLoadData");
    CUdeviceptr s1 = 0, s2 = 0;
    EQ(DRV(cuLibraryGetManaged)(&s1, &bytes, lib, "s"), CUDA_SUCCESS, "cuLibraryGetManaged");
    EQ(bytes, 24, "... its size");
    EQ(DRV(cuLibraryGetManaged)(&s2, &bytes, lib, "w"), CUDA_ERROR_NOT_FOUND, "cuLibraryGetManaged(__device__) -> 500");
    EQ(DRV(cuLibraryGetGlobal)(&s2, &bytes, lib, "s"), CUDA_SUCCESS, "cuLibraryGetGlobal finds the managed one too");
    CHECK(s1 == s2, "... at the same address");
    EQ(DRV(cuModuleGetGlobal_v2)(&d, &bytes, (CUmodule)(void *)lib, "w"), CUDA_ERROR_INVALID_HANDLE,
       "a library is no module -> 400");
    EQ(DRV(cuLibraryUnload)(lib), CUDA_SUCCESS, "cuLibraryUnload");
    EQ(DRV(cuModuleUnload)(mod), CUDA_SUCCESS, "cuModuleUnload");
    EQ(DRV(cuModuleUnload)(mod), CUDA_ERROR_INVALID_HANDLE, "unloaded twice -> 400");
    EQ(mem_free_now(), GIB, "everything given back");

    /* test hooks */
    unsigned long long (*handles)(void) = (unsigned long long (*)(void))dsym("fakecuda_vmm_live_handles");
    unsigned long long (*ranges)(void) = (unsigned long long (*)(void))dsym("fakecuda_live_ranges");
    int (*share)(int, int, int, unsigned long long) = (int (*)(int, int, int, unsigned long long))dsym("fakecuda_vmm_share_fd");
    CHECK(handles && ranges && share, "test hooks exported");
    if (!(handles && ranges && share))
        return;
    unsigned long long h0 = handles(), r0 = ranges();
    int fd = share(CU_MEM_ALLOCATION_TYPE_MANAGED, CU_MEM_LOCATION_TYPE_DEVICE, 0, 2 * MiB);
    CHECK(fd >= 0, "fakecuda_vmm_share_fd(MANAGED)");
    CUmemGenericAllocationHandle h = 0;
    EQ(DRV(cuMemImportFromShareableHandle)(&h, (void *)(uintptr_t)fd, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR),
       CUDA_SUCCESS, "... imported");
    EQ(handles(), h0 + 1, "fakecuda_vmm_live_handles counts it");
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    EQ(DRV(cuMemGetAllocationPropertiesFromHandle)(&prop, h), CUDA_SUCCESS, "its properties");
    EQ(prop.type, CU_MEM_ALLOCATION_TYPE_MANAGED, "... type MANAGED");
    EQ(mem_free_now(), GIB, "... not charged");
    EQ(DRV(cuMemRelease)(h), CUDA_SUCCESS, "cuMemRelease");
    EQ(handles(), h0, "... no longer counted");
    EQ(ranges(), r0, "fakecuda_live_ranges unchanged");
    close(fd);
}

int fakecudart_malloc_calls(void);

static void scn_badenv(void)
{
    /* the driver warns on stderr when it reads its environment (the first call): catch that in a file */
    FILE *cap = tmpfile();
    int saved = dup(2);
    CHECK(cap && saved >= 0 && dup2(fileno(cap), 2) == 2, "stderr redirected to a temporary file");
    int n = 0;
    EQ(cudaGetDeviceCount(&n), cudaSuccess, "cudaGetDeviceCount");
    if (saved >= 0) {
        dup2(saved, 2);
        close(saved);
    }
    char err[1024] = "";
    if (cap) {
        rewind(cap);
        err[fread(err, 1, sizeof err - 1, cap)] = 0;
        fclose(cap);
    }
    CHECK(strstr(err, "fakecuda: ignoring FAKECUDA_DEVICES=two (accepted: 0..8)\n"), "FAKECUDA_DEVICES=two: warned");
    CHECK(strstr(err, "fakecuda: ignoring FAKECUDA_VRAM_BYTES=1G (accepted: "), "FAKECUDA_VRAM_BYTES=1G: warned");
    CHECK(strstr(err, "fakecuda: ignoring FAKECUDA_THREAD_ARENAS=2 (accepted: 0, 1)\n"),
          "FAKECUDA_THREAD_ARENAS=2: warned");
    EQ(count_substr(err, "\n"), 3, "three warnings, nothing else");
    EQ(n, 1, "FAKECUDA_DEVICES=two ignored: default 1");
    size_t f = 0, t = 0;
    EQ(cudaMemGetInfo(&f, &t), cudaSuccess, "cudaMemGetInfo");
    EQ(t, GIB, "FAKECUDA_VRAM_BYTES=1G ignored (plain integers only): default 1 GiB");
    void *p = NULL;
    EQ(cudaMalloc(&p, 4096), cudaSuccess, "cudaMalloc(4096)");
    CHECK((uintptr_t)p >= DEV_BASE(0) && (uintptr_t)p < DEV_BASE(1),
          "FAKECUDA_THREAD_ARENAS=2 ignored: the ordinary path (%p), no arena", p);
    EQ(fakecudart_malloc_calls(), 1, "... and cudart counts its cudaMalloc calls");
    EQ(cudaFree(p), cudaSuccess, "cudaFree");
}

static void scn_nodevice(void)
{
    void *p = (void *)0x55;
    EQ(cudaMalloc(&p, 16), cudaErrorNoDevice, "FAKECUDA_DEVICES=0: cudaMalloc -> cudaErrorNoDevice (100)");
    CHECK(p == (void *)0x55, "... nothing written");
    EQ(cudaGetLastError(), cudaErrorNoDevice, "cudaGetLastError");
}

static void scn_nodriver(void)
{
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (!h)
        h = dlopen("libcuda.so.1", RTLD_NOW);
    if (h) {
        printf("SKIP %s/%s: a libcuda.so.1 is reachable without LD_LIBRARY_PATH\n", VARIANT, g_scn);
        return;
    }
    void *p = (void *)0x55;
    EQ(cudaMalloc(&p, 16), cudaErrorInsufficientDriver, "no libcuda.so.1: cudaMalloc -> cudaErrorInsufficientDriver");
    EQ(cudaFree(NULL), cudaErrorInsufficientDriver, "... cudaFree too");
    EQ(cudaGetLastError(), cudaErrorInsufficientDriver, "cudaGetLastError");
    int v = -1;
    EQ(cudaDriverGetVersion(&v), cudaSuccess, "cudaDriverGetVersion succeeds");
    EQ(v, 0, "... with 0");
}

/* ------------------------------------------------------------------------ */
/* Scenario: FAKECUDA_THREAD_ARENAS=1 (the benchmarks' per-thread arenas)     */

#define ARENA_BASE 0x600000000000ULL
#define ARENA_SPAN (1ULL << 36) /* 64 GiB per arena */
#define ARENAS 64

/* Index of the arena holding p, -1 outside them. */
static int arena_of(CUdeviceptr p)
{
    return p >= ARENA_BASE && p - ARENA_BASE < ARENAS * ARENA_SPAN ? (int)((p - ARENA_BASE) / ARENA_SPAN) : -1;
}

struct arena_thr {
    CUcontext ctx;
    size_t size;
    int free_own;           /* free its block before exiting (else the main thread frees it later) */
    CUdeviceptr other;      /* someone else's block this thread frees (0: none) */
    CUdeviceptr p;
    CUresult alloc_rc, free_rc, other_rc;
};

static pthread_barrier_t g_held, g_go;
static pthread_t g_athr[64];

/* Allocates, then holds its block (and its arena) until the main thread lets go. */
static void *arena_thr_main(void *v)
{
    struct arena_thr *t = v;
    DRV(cuCtxSetCurrent)(t->ctx);
    t->alloc_rc = DRV(cuMemAlloc_v2)(&t->p, t->size);
    if (t->other)
        t->other_rc = DRV(cuMemFree_v2)(t->other);
    pthread_barrier_wait(&g_held);
    pthread_barrier_wait(&g_go);
    if (t->free_own)
        t->free_rc = DRV(cuMemFree_v2)(t->p);
    return NULL;
}

/* n threads that all hold a block at once when this returns. */
static void arena_batch_start(struct arena_thr *t, int n)
{
    pthread_barrier_init(&g_held, NULL, (unsigned)n + 1);
    pthread_barrier_init(&g_go, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++)
        if (pthread_create(&g_athr[i], NULL, arena_thr_main, &t[i])) {
            printf("FAIL %s/%s: pthread_create\n", VARIANT, g_scn);
            exit(1);
        }
    pthread_barrier_wait(&g_held);
}

/* Lets them go and joins them: their arenas are free again when this returns. */
static void arena_batch_end(int n)
{
    pthread_barrier_wait(&g_go);
    for (int i = 0; i < n; i++)
        pthread_join(g_athr[i], NULL);
    pthread_barrier_destroy(&g_held);
    pthread_barrier_destroy(&g_go);
}

struct arena_churn {
    CUcontext ctx;
    CUdeviceptr *mine, *theirs; /* theirs: a neighbour's blocks, freed here while it allocates */
    int n, fails;
};

/* Allocates n blocks; once every thread has, frees its neighbour's while allocating and freeing more of its own. */
static void *arena_churn_main(void *v)
{
    struct arena_churn *t = v;
    CUresult (*alloc)(CUdeviceptr *, size_t) = DRV(cuMemAlloc_v2);
    CUresult (*mfree)(CUdeviceptr) = DRV(cuMemFree_v2);
    DRV(cuCtxSetCurrent)(t->ctx);
    for (int i = 0; i < t->n; i++)
        t->fails += alloc(&t->mine[i], 512 * (size_t)(1 + i % 5)) != CUDA_SUCCESS || arena_of(t->mine[i]) <= 0;
    pthread_barrier_wait(&g_held);
    for (int i = 0; i < t->n; i++) {
        CUdeviceptr x = 0;
        t->fails += mfree(t->theirs[i]) != CUDA_SUCCESS;
        t->fails += alloc(&x, 512 * (size_t)(1 + i % 3)) != CUDA_SUCCESS || mfree(x) != CUDA_SUCCESS;
    }
    return NULL;
}

struct dev_block {
    CUdeviceptr p;
    size_t size;
};

static int cmp_block(const void *a, const void *b)
{
    CUdeviceptr x = ((const struct dev_block *)a)->p, y = ((const struct dev_block *)b)->p;
    return x < y ? -1 : x > y;
}

/* Many live blocks in one arena (its live set grows and rehashes, frees in scattered order shift entries back),
 * then threads freeing each other's blocks while they allocate. */
static void arena_churn(CUcontext ctx)
{
    enum { N = 3001, STEP = 1009, NT = 4, PER = 1000 };
    CUresult (*alloc)(CUdeviceptr *, size_t) = DRV(cuMemAlloc_v2);
    CUresult (*mfree)(CUdeviceptr) = DRV(cuMemFree_v2);
    static CUdeviceptr p[N];
    static struct dev_block s[N];
    int bad = 0;
    for (int i = 0; i < N; i++) {
        s[i].size = 512 * (size_t)(1 + i % 7);
        bad += alloc(&p[i], s[i].size) != CUDA_SUCCESS || arena_of(p[i]) != 0;
        s[i].p = p[i];
    }
    EQ(bad, 0, "3001 live blocks of 512..3584 bytes, all from arena 0");
    qsort(s, N, sizeof s[0], cmp_block);
    int overlap = 0;
    for (int i = 0; i + 1 < N; i++)
        overlap += s[i].p + s[i].size > s[i + 1].p;
    EQ(overlap, 0, "... distinct and not overlapping");
    bad = 0;
    for (int i = 0; i < N; i++)
        bad += mfree(p[(size_t)i * STEP % N]) != CUDA_SUCCESS;
    EQ(bad, 0, "all freed, in scattered order");
    bad = 0;
    for (int i = 0; i < N; i++)
        bad += mfree(p[i]) != CUDA_ERROR_INVALID_VALUE;
    EQ(bad, 0, "... and each a second time -> 1");

    static CUdeviceptr blocks[NT][PER];
    struct arena_churn t[NT];
    pthread_t th[NT];
    pthread_barrier_init(&g_held, NULL, NT);
    for (int i = 0; i < NT; i++)
        t[i] = (struct arena_churn){.ctx = ctx, .mine = blocks[i], .theirs = blocks[(i + 1) % NT], .n = PER};
    for (int i = 0; i < NT; i++)
        pthread_create(&th[i], NULL, arena_churn_main, &t[i]);
    int fails = 0;
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        fails += t[i].fails;
    }
    pthread_barrier_destroy(&g_held);
    EQ(fails, 0, "4 threads x 1000 blocks, each freed by the next thread while it allocates and frees its own");
    bad = 0;
    for (int i = 0; i < NT; i++)
        for (int j = 0; j < PER; j++)
            bad += mfree(blocks[i][j]) != CUDA_ERROR_INVALID_VALUE;
    EQ(bad, 0, "... all of them gone (a second free -> 1)");
}

static void scn_arenas(void)
{
    CUcontext ctx = drv_setup(0);
    CUresult (*alloc)(CUdeviceptr *, size_t) = DRV(cuMemAlloc_v2);
    CUresult (*mfree)(CUdeviceptr) = DRV(cuMemFree_v2);
    unsigned long long (*calls)(void) = (unsigned long long (*)(void))dsym("fakecuda_driver_calls");
    unsigned long long (*ranges)(void) = (unsigned long long (*)(void))dsym("fakecuda_live_ranges");
    unsigned long long (*charged)(int) = (unsigned long long (*)(int))dsym("fakecuda_charged_bytes");
    size_t f0 = mem_free_now();
    unsigned long long r0 = ranges(), c0 = charged(0), n0 = calls();

    /* the main thread allocates first: arena 0, bump from its start */
    CUdeviceptr a = 0, b = 0, c = 0, x = 0;
    EQ(alloc(&a, 1000), CUDA_SUCCESS, "cuMemAlloc_v2(1000)");
    EQ(alloc(&b, 1000), CUDA_SUCCESS, "cuMemAlloc_v2(1000)");
    EQ(alloc(&c, 4096), CUDA_SUCCESS, "cuMemAlloc_v2(4096)");
    EQ(calls(), n0, "fakecuda_driver_calls does not count arena allocations");
    EQ(a, ARENA_BASE, "first block at the start of arena 0 (0x600000000000)");
    CHECK(arena_of(b) == 0 && arena_of(c) == 0 && b % 512 == 0 && c % 512 == 0, "0x%llx, 0x%llx: arena 0, 512-aligned",
          (unsigned long long)b, (unsigned long long)c);
    CHECK(b == a + 1024 && c == b + 1024, "distinct, back to back (1000 rounds up to 1024)");

    /* LIFO reuse of a block of the same size */
    EQ(mfree(c), CUDA_SUCCESS, "cuMemFree_v2(4096 block)");
    EQ(mfree(b), CUDA_SUCCESS, "cuMemFree_v2(1024 block)");
    EQ(alloc(&x, 1000), CUDA_SUCCESS, "cuMemAlloc_v2(1000) again");
    EQ(x, b, "... the 1024 block freed last (LIFO)");
    EQ(alloc(&x, 4096), CUDA_SUCCESS, "cuMemAlloc_v2(4096) again");
    EQ(x, c, "... then the 4096 block freed before it");
    EQ(mfree(c), CUDA_SUCCESS, "cuMemFree_v2(4096 block)");
    EQ(alloc(&x, 1000), CUDA_SUCCESS, "cuMemAlloc_v2(1000) while a 4096 block is on top of the freed stack");
    CHECK(arena_of(x) == 0 && x > c, "... a fresh block 0x%llx (sizes differ: no reuse)", (unsigned long long)x);
    EQ(mfree(x), CUDA_SUCCESS, "cuMemFree_v2(it)");

    /* wrong frees answer CUDA_ERROR_INVALID_VALUE */
    EQ(mfree(b), CUDA_SUCCESS, "cuMemFree_v2(1024 block)");
    EQ(mfree(b), CUDA_ERROR_INVALID_VALUE, "double free -> CUDA_ERROR_INVALID_VALUE (1)");
    EQ(mfree(a + 512), CUDA_ERROR_INVALID_VALUE, "interior address of a live block -> 1");
    EQ(mfree(ARENA_BASE + ARENA_SPAN / 2), CUDA_ERROR_INVALID_VALUE, "arena 0 address never handed out -> 1");
    EQ(mfree(ARENA_BASE + 63 * ARENA_SPAN), CUDA_ERROR_INVALID_VALUE, "address of an arena nobody took -> 1");
    EQ(calls(), n0, "fakecuda_driver_calls does not count arena frees either");

    /* the rest of the driver does not know arena addresses */
    EQ(ranges(), r0, "fakecuda_live_ranges unchanged: not in the allocation map");
    EQ(charged(0), c0, "fakecuda_charged_bytes(0) unchanged");
    EQ(mem_free_now(), f0, "cuMemGetInfo free unchanged by a live arena block");
    unsigned int mt = 0;
    EQ(DRV(cuPointerGetAttribute)(&mt, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, a), CUDA_ERROR_INVALID_VALUE,
       "cuPointerGetAttribute(arena address) -> 1 (unknown pointer)");
    CUdeviceptr base = 0;
    size_t sz = 0;
    EQ(DRV(cuMemGetAddressRange_v2)(&base, &sz, a), CUDA_ERROR_NOT_FOUND, "cuMemGetAddressRange_v2 -> 500");

    /* cudart's cudaMalloc / cudaFree reach the same cuMemAlloc_v2 / cuMemFree_v2 */
    void *rp = NULL;
    EQ(cudaMalloc(&rp, 4096), cudaSuccess, "cudaMalloc(4096)");
    CHECK(arena_of((CUdeviceptr)(uintptr_t)rp) == 0, "... from the main thread's arena (%p)", rp);
    EQ(cudaFree(rp), cudaSuccess, "cudaFree");
    EQ(cudaFree(rp), cudaErrorInvalidValue, "cudaFree twice -> cudaErrorInvalidValue");
    cudaGetLastError();
    EQ(fakecudart_malloc_calls(), 0, "fakecudart_malloc_calls not kept in this mode");

    /* two threads holding blocks at once take the next two arenas, each from its start; one of them frees a
     * block of the main thread, the main thread frees theirs after they exited */
    struct arena_thr t[64];
    for (int i = 0; i < 2; i++)
        t[i] = (struct arena_thr){.ctx = ctx, .size = 1000, .other = i ? 0 : a};
    arena_batch_start(t, 2);
    CHECK(t[0].alloc_rc == CUDA_SUCCESS && t[1].alloc_rc == CUDA_SUCCESS, "both threads' cuMemAlloc_v2 succeed");
    CUdeviceptr lo = t[0].p < t[1].p ? t[0].p : t[1].p, hi = t[0].p ^ t[1].p ^ lo;
    CHECK(lo == ARENA_BASE + ARENA_SPAN && hi == lo + ARENA_SPAN,
          "two threads: arenas 1 and 2, 64 GiB apart (0x%llx, 0x%llx)", (unsigned long long)t[0].p,
          (unsigned long long)t[1].p);
    arena_batch_end(2);
    EQ(t[0].other_rc, CUDA_SUCCESS, "a thread frees a block the main thread allocated");
    EQ(mfree(a), CUDA_ERROR_INVALID_VALUE, "... gone for the main thread too");
    EQ(mfree(t[0].p), CUDA_SUCCESS, "the main thread frees a block of an exited thread");
    EQ(mfree(t[1].p), CUDA_SUCCESS, "... and of the other");

    /* an arena goes back when its thread exits: 70 threads in two batches of 35 all get one */
    int served = 0, distinct = 1;
    for (int batch = 0; batch < 2; batch++) {
        unsigned long long seen = 1; /* arena 0: the main thread's */
        for (int i = 0; i < 35; i++)
            t[i] = (struct arena_thr){.ctx = ctx, .size = 4096, .free_own = 1};
        arena_batch_start(t, 35);
        for (int i = 0; i < 35; i++) {
            int k = arena_of(t[i].p);
            if (t[i].alloc_rc != CUDA_SUCCESS || k < 0)
                continue;
            served++;
            distinct &= !(seen >> k & 1);
            seen |= 1ULL << k;
        }
        arena_batch_end(35);
        for (int i = 0; i < 35; i++)
            served -= t[i].free_rc != CUDA_SUCCESS;
    }
    EQ(served, 70, "70 threads (2 batches of 35 at once) each allocate and free from an arena: arenas are recycled");
    CHECK(distinct, "threads holding at once never share an arena, nor the main thread's");

    /* the limit: the main thread holds arena 0, so of 64 threads holding at once 63 get one, the last the
     * ordinary, charged path */
    size_t fh = mem_free_now();
    for (int i = 0; i < 64; i++)
        t[i] = (struct arena_thr){.ctx = ctx, .size = 4096, .free_own = 1};
    arena_batch_start(t, 64);
    int in_arena = 0, ordinary = 0;
    for (int i = 0; i < 64; i++) {
        in_arena += t[i].alloc_rc == CUDA_SUCCESS && arena_of(t[i].p) > 0;
        ordinary += t[i].alloc_rc == CUDA_SUCCESS && t[i].p >= DEV_BASE(0) && t[i].p < DEV_BASE(1);
    }
    EQ(in_arena, 63, "64 threads at once: 63 served from arenas");
    EQ(ordinary, 1, "... 1 from the ordinary path (0x7e0000000000 range)");
    EQ(mem_free_now(), fh - 4096, "... which alone is charged");
    arena_batch_end(64);
    int freed = 0;
    for (int i = 0; i < 64; i++)
        freed += t[i].free_rc == CUDA_SUCCESS;
    EQ(freed, 64, "all 64 freed");

    t[0] = (struct arena_thr){.ctx = ctx, .size = 4096, .free_own = 1};
    arena_batch_start(t, 1);
    CHECK(t[0].alloc_rc == CUDA_SUCCESS && arena_of(t[0].p) > 0, "after them a new thread gets an arena (0x%llx)",
          (unsigned long long)t[0].p);
    arena_batch_end(1);
    EQ(t[0].free_rc, CUDA_SUCCESS, "... and frees its block");

    arena_churn(ctx);
    EQ(mem_free_now(), f0, "cuMemGetInfo free back where it started");
}

/* ------------------------------------------------------------------------ */
/* Driver: one child process per scenario                                     */

static const struct scenario {
    const char *name;
    void (*fn)(void);
    const char *env[4]; /* extra NAME=VALUE; "TRACE": a trace file; "PRELOAD": fake_interposer.so */
    int no_ld_path;
    int static_only;
} k_scn[] = {
    {"trace", scn_trace, {"TRACE"}, 0, 0},
    {"gpa", scn_gpa, {"TRACE"}, 0, 0},
    {"driver", scn_driver, {0}, 0, 0},
    {"runtime", scn_runtime, {0}, 0, 0},
    {"legacy", scn_legacy, {"FAKECUDA_LEGACY_ALLOC=1"}, 0, 0},
    {"twodev", scn_twodev, {"FAKECUDA_DEVICES=2", "FAKECUDA_VRAM_BYTES=1048576", "FAKECUDA_PAGEABLE_ACCESS=1"}, 0, 0},
    {"badenv", scn_badenv, {"FAKECUDA_DEVICES=two", "FAKECUDA_VRAM_BYTES=1G", "FAKECUDA_THREAD_ARENAS=2"}, 0, 0},
    {"nodevice", scn_nodevice, {"FAKECUDA_DEVICES=0"}, 0, 0},
    {"nodriver", scn_nodriver, {0}, 1, 1},
    {"preload", scn_preload, {"PRELOAD"}, 0, 0},
    {"pools", scn_pools, {0}, 0, 0},
    {"capture", scn_capture, {0}, 0, 0},
    {"vmm", scn_vmm, {0}, 0, 0},
    {"arrays", scn_arrays, {0}, 0, 0},
    {"contexts", scn_contexts, {0}, 0, 0},
    {"sparse", scn_sparse, {0}, 0, 0},
    {"ipc", scn_ipc, {0}, 0, 0},
    {"twopools", scn_twopools, {"FAKECUDA_DEVICES=2", "FAKECUDA_VRAM_BYTES=67108864"}, 0, 0},
    {"rtmem", scn_rtmem, {0}, 0, 0},
    {"modules", scn_modules, {0}, 0, 0},
    {"arenas", scn_arenas, {"FAKECUDA_THREAD_ARENAS=1"}, 0, 0},
};

static int run_child(const struct scenario *s, const char *self)
{
    char trace_path[256] = "";
    char trace_env[300], preload_env[4200];
    const char *envp[256];
    int n = 0;
    for (char **e = environ; *e && n < 240; e++) {
        if (strncmp(*e, "FAKECUDA_", 9) == 0 || strncmp(*e, "LD_PRELOAD=", 11) == 0)
            continue;
        if (s->no_ld_path && strncmp(*e, "LD_LIBRARY_PATH=", 16) == 0)
            continue;
        envp[n++] = *e;
    }
    for (int i = 0; i < 4 && s->env[i]; i++) {
        if (strcmp(s->env[i], "TRACE") == 0) {
            snprintf(trace_path, sizeof trace_path, "/tmp/fakecuda-smoke-%s-%d-%s.trace", VARIANT, (int)getpid(),
                     s->name);
            unlink(trace_path);
            snprintf(trace_env, sizeof trace_env, "FAKECUDA_TRACE=%s", trace_path);
            envp[n++] = trace_env;
        } else if (strcmp(s->env[i], "PRELOAD") == 0) {
            /* fake_interposer.so lives next to this binary */
            char exe[4096];
            snprintf(exe, sizeof exe, "%s", self);
            char *slash = strrchr(exe, '/');
            if (slash)
                *slash = 0;
            snprintf(preload_env, sizeof preload_env, "LD_PRELOAD=%s/fake_interposer.so", exe);
            envp[n++] = preload_env;
        } else {
            envp[n++] = s->env[i];
        }
    }
    envp[n] = NULL;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = {(char *)self, (char *)s->name, NULL};
        execve(self, argv, (char **)envp);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (trace_path[0])
        unlink(trace_path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    size_t ns = sizeof k_scn / sizeof k_scn[0];
    if (argc > 1) {
        for (size_t i = 0; i < ns; i++)
            if (strcmp(argv[1], k_scn[i].name) == 0) {
                g_scn = k_scn[i].name;
                k_scn[i].fn();
                printf("%s %s/%s: %d passed, %d failed\n", g_fail ? "FAIL" : "PASS", VARIANT, g_scn, g_pass, g_fail);
                return g_fail ? 1 : 0;
            }
        fprintf(stderr, "unknown scenario %s\n", argv[1]);
        return 2;
    }
    /* re-execute by path (not /proc/self/exe, which is valgrind's under valgrind) */
    static char self[4096];
    if (!realpath(strchr(argv[0], '/') ? argv[0] : "/proc/self/exe", self))
        snprintf(self, sizeof self, "/proc/self/exe");
    int bad = 0;
    for (size_t i = 0; i < ns; i++) {
#ifdef FAKE_SMOKE_SHARED
        if (k_scn[i].static_only)
            continue;
#endif
        int rc = run_child(&k_scn[i], self);
        if (rc != 0) {
            printf("FAIL %s/%s: scenario exited with %d\n", VARIANT, k_scn[i].name, rc);
            bad++;
        }
    }
    printf("%s %s: %d scenario(s) failed\n", bad ? "FAIL" : "PASS", VARIANT, bad);
    return bad ? 1 : 0;
}
