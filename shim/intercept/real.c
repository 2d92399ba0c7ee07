#include "real.h"
#include "forksafe.h"
#include "modules.h"
#include "log.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef void *(*dlsym_fn)(void *, const char *);

static _Atomic(dlsym_fn) real_dlsym, next_dlsym;

void *vg_real_dlsym_fn(void)
{
    dlsym_fn f = atomic_load_explicit(&real_dlsym, memory_order_acquire);
    if (f == NULL) {
        /* dlvsym is not wrapped; RTLD_NEXT from the shim is libc's dlsym. */
        f = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
        if (f == NULL)
            f = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
        if (f != NULL)
            atomic_store_explicit(&real_dlsym, f, memory_order_release);
    }
    return (void *)f;
}

void *vg_real_dlsym(void *handle, const char *name)
{
    dlsym_fn f = (dlsym_fn)vg_real_dlsym_fn();
    return f ? f(handle, name) : NULL;
}

void *vg_next_dlsym_fn(void)
{
    dlsym_fn f = atomic_load_explicit(&next_dlsym, memory_order_acquire);
    if (f == NULL) {
        /* An unversioned dlsym of an interposer preloaded after the shim
         * (HAMi-core's libvgpu) comes before glibc's default one here;
         * dlvsym would skip it. */
        dlsym_fn libc = (dlsym_fn)vg_real_dlsym_fn();
        f = libc ? (dlsym_fn)libc(RTLD_NEXT, "dlsym") : NULL;
        if (f == NULL)
            f = libc;
        if (f != NULL)
            atomic_store_explicit(&next_dlsym, f, memory_order_release);
    }
    return (void *)f;
}

void *vg_next_dlsym(void *handle, const char *name)
{
    dlsym_fn f = (dlsym_fn)vg_next_dlsym_fn();
    return f ? f(handle, name) : NULL;
}

static _Atomic(void *) driver_handle;

void *vg_driver_handle(void)
{
    void *h = atomic_load_explicit(&driver_handle, memory_order_acquire);
    if (h == NULL) {
        /* Racing threads may both dlopen: harmless, it only bumps a refcount. */
        h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
        if (h == NULL)
            h = dlopen("libcuda.so.1", RTLD_NOW);
        if (h != NULL)
            atomic_store_explicit(&driver_handle, h, memory_order_release);
    }
    return h;
}

bool vg_symbol_at(void *addr, struct vg_symbol_info *out)
{
    Dl_info info;
    struct link_map *map = NULL, *driver = NULL;
    if (addr == NULL || !dladdr1(addr, &info, (void **)&map, RTLD_DL_LINKMAP))
        return false;
    void *h = vg_driver_handle();
    if (h == NULL || dlinfo(h, RTLD_DI_LINKMAP, &driver) != 0)
        driver = NULL;
    out->name = info.dli_sname != NULL && info.dli_saddr == addr ? info.dli_sname : NULL;
    out->module = info.dli_fname;
    out->in_driver = driver != NULL && map == driver;
    return true;
}

#define HELPER(name) [VG_H_##name] = #name
static const char *const helper_names[VG_H_COUNT] = {
    HELPER(cuCtxGetDevice),          HELPER(cuDeviceGetName),
    HELPER(cuDeviceTotalMem_v2),     HELPER(cuDeviceGetAttribute),
    HELPER(cuDeviceGetPCIBusId),     HELPER(cuDeviceGetUuid_v2),
    HELPER(cuMemGetInfo_v2),         HELPER(cuPointerGetAttribute),
    HELPER(cuPointerGetAttributes),  HELPER(cuStreamIsCapturing),
    HELPER(cuStreamIsCapturing_ptsz), HELPER(cuMemPoolGetAttribute),
    HELPER(cuDeviceGetGraphMemAttribute), HELPER(cuMemGetAddressRange_v2),
    HELPER(cuArrayGetMemoryRequirements), HELPER(cuMipmappedArrayGetMemoryRequirements),
    HELPER(cuMemGetAllocationPropertiesFromHandle),
};
#undef HELPER
static _Atomic(void *) helper_fns[VG_H_COUNT];

void *vg_helper_fn(enum vg_helper id)
{
    void *f = atomic_load_explicit(&helper_fns[id], memory_order_acquire);
    if (f == NULL) {
        void *h = vg_driver_handle();
        f = h ? vg_real_dlsym(h, helper_names[id]) : NULL;
        if (f != NULL)
            atomic_store_explicit(&helper_fns[id], f, memory_order_release);
    }
    return f;
}

/* ---- runtime functions, per calling module -------------------------------- */

/* One calling module: its address range and what its calls resolve to. */
struct caller_scope {
    uintptr_t lo, hi;
    void *fn[VG_RT_COUNT];
};

enum { MAX_SCOPES = 64 };
static struct caller_scope scopes[MAX_SCOPES];
static atomic_int scope_count;
static pthread_mutex_t scope_lock = PTHREAD_MUTEX_INITIALIZER;

pthread_mutex_t *vg_scopes_fork_mutex(void)
{
    return &scope_lock;
}

static const char *base_name(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash ? slash + 1 : (path ? path : "");
}

static bool is_cudart(void *fn)
{
    Dl_info info;
    return fn && dladdr(fn, &info) && strncmp(base_name(info.dli_fname), "libcudart", 9) == 0;
}

static bool same_module(void *a, void *b)
{
    Dl_info ia, ib;
    return dladdr(a, &ia) && dladdr(b, &ib) && ia.dli_fbase == ib.dli_fbase;
}

/* Fill `s` for the module containing `caller`. No CUDA call is made. */
static void resolve_scope(struct caller_scope *s, void *caller, void *const *own_wrappers)
{
    struct vg_module m;
    if (!vg_module_of(caller, &m)) {
        /* Unknown code (JIT, anonymous mapping): cache only this address. */
        m.lo = (uintptr_t)caller;
        m.hi = m.lo + 1;
        m.is_main = false;
    }
    s->lo = m.lo;
    s->hi = m.hi;

    void *module = NULL;
    Dl_info info;
    if (!m.is_main && dladdr(caller, &info) && info.dli_fname && info.dli_fname[0])
        module = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);

    for (int i = 0; i < VG_RT_COUNT; i++) {
        void *next = vg_real_dlsym(RTLD_NEXT, vg_runtime_names[i]);
        void *own = module ? vg_real_dlsym(module, vg_runtime_names[i]) : NULL;
        if (own == own_wrappers[i])
            own = NULL;
        void *chosen = next ? next : own;
        /* Two cudart majors: the caller's versioned reference binds to its
         * own cudart, not to another major that happens to be global. */
        if (next && own && next != own && is_cudart(next) && is_cudart(own) &&
            !same_module(next, own))
            chosen = own;
        s->fn[i] = chosen;
    }
    if (module)
        dlclose(module);
}

/* Our own exported runtime wrappers, to avoid resolving to ourselves. */
extern void *vg_runtime_wrappers[VG_RT_COUNT];

static void *cached_runtime(enum vg_runtime_fn fn, uintptr_t a, bool *found)
{
    int n = atomic_load_explicit(&scope_count, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (a >= scopes[i].lo && a < scopes[i].hi) {
            *found = true;
            return scopes[i].fn[fn];
        }
    *found = false;
    return NULL;
}

void *vg_real_runtime(enum vg_runtime_fn fn, void *caller)
{
    bool found;
    void *f = cached_runtime(fn, (uintptr_t)caller, &found);
    if (found)
        return f;
    /* Resolve without holding our lock: dladdr and dlopen take the loader's
     * lock, and a library constructor running under it may call cudaMalloc
     * and come here. Two threads may both resolve; one result is kept. */
    struct caller_scope s;
    resolve_scope(&s, caller, vg_runtime_wrappers);
    if (s.fn[fn] == NULL)
        return NULL; /* not cached: the caller's cudart may not be loaded yet */
    pthread_mutex_lock(&scope_lock);
    f = cached_runtime(fn, (uintptr_t)caller, &found);
    int n = atomic_load_explicit(&scope_count, memory_order_relaxed);
    if (!found && n < MAX_SCOPES) {
        scopes[n] = s;
        atomic_store_explicit(&scope_count, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&scope_lock);
    return found ? f : s.fn[fn];
}
