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

VG_NO_SANITIZE void *vg_real_dlsym_fn(void)
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

VG_NO_SANITIZE void *vg_next_dlsym_fn(void)
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
    HELPER(cuMemGetAllocationPropertiesFromHandle), HELPER(cuCtxGetCurrent),
    HELPER(cuDevicePrimaryCtxGetState),
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

/* What one calling module's runtime calls resolve to. */
struct scope {
    uintptr_t lo, hi;
    void *fn[VG_RT_COUNT];
};

/* The cache: a slot is filled once per calling module and read without a
 * lock on every runtime call. After a module is unloaded the slots are
 * refilled from the first (another module may now lie in a remembered
 * range, and a remembered cudart may be gone), so a reader checks a
 * per-slot sequence number: odd while the slot is being written, changed
 * once it was. */
struct scope_slot {
    atomic_uint seq;
    _Atomic uintptr_t lo, hi;
    _Atomic(void *) fn[VG_RT_COUNT];
};

enum { MAX_SCOPES = 64 };
static struct scope_slot scopes[MAX_SCOPES];
static atomic_int scope_count;
/* vg_modules_unloads() when the slots in use were filled. */
static _Atomic unsigned long long scopes_unloads;
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
static void resolve_scope(struct scope *s, void *caller, void *const *own_wrappers)
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

/* The hot path: one comparison of two counters, then the slots. */
static inline __attribute__((always_inline)) void *cached_runtime(enum vg_runtime_fn fn, uintptr_t a, bool *found)
{
    *found = false;
    if (vg_modules_unloads() != atomic_load_explicit(&scopes_unloads, memory_order_acquire))
        return NULL; /* something was unloaded since the slots were filled */
    int n = atomic_load_explicit(&scope_count, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        struct scope_slot *s = &scopes[i];
        unsigned seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (a < atomic_load_explicit(&s->lo, memory_order_relaxed) ||
            a >= atomic_load_explicit(&s->hi, memory_order_relaxed))
            continue;
        void *f = atomic_load_explicit(&s->fn[fn], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if ((seq & 1) != 0 || atomic_load_explicit(&s->seq, memory_order_relaxed) != seq)
            continue; /* refilled meanwhile: resolve again */
        *found = true;
        return f;
    }
    return NULL;
}

/* Under scope_lock. */
static void fill_slot(struct scope_slot *slot, const struct scope *s)
{
    unsigned seq = atomic_load_explicit(&slot->seq, memory_order_relaxed);
    atomic_store_explicit(&slot->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&slot->lo, s->lo, memory_order_relaxed);
    atomic_store_explicit(&slot->hi, s->hi, memory_order_relaxed);
    for (int i = 0; i < VG_RT_COUNT; i++)
        atomic_store_explicit(&slot->fn[i], s->fn[i], memory_order_relaxed);
    atomic_store_explicit(&slot->seq, seq + 2, memory_order_release);
}

/* Resolve the caller's scope and keep it: the first call from a module, and
 * the first after an unload. Out of line, to keep the hit path short. */
static __attribute__((noinline)) void *resolve_runtime(enum vg_runtime_fn fn, void *caller)
{
    /* Resolve without holding our lock: dladdr and dlopen take the loader's
     * lock, and a library constructor running under it may call cudaMalloc
     * and come here. Two threads may both resolve; one result is kept. */
    unsigned long long unloads = vg_modules_unloads();
    struct scope s;
    resolve_scope(&s, caller, vg_runtime_wrappers);
    if (s.fn[fn] == NULL)
        return NULL; /* not cached: the caller's cudart may not be loaded yet */
    bool found = false;
    void *f = NULL;
    pthread_mutex_lock(&scope_lock);
    /* Not kept when a module was unloaded while resolving. */
    if (vg_modules_unloads() == unloads) {
        if (atomic_load_explicit(&scopes_unloads, memory_order_relaxed) != unloads) {
            atomic_store_explicit(&scope_count, 0, memory_order_relaxed);
            atomic_store_explicit(&scopes_unloads, unloads, memory_order_release);
        }
        f = cached_runtime(fn, (uintptr_t)caller, &found);
        int n = atomic_load_explicit(&scope_count, memory_order_relaxed);
        if (!found && n < MAX_SCOPES) {
            fill_slot(&scopes[n], &s);
            atomic_store_explicit(&scope_count, n + 1, memory_order_release);
        }
    }
    pthread_mutex_unlock(&scope_lock);
    return found ? f : s.fn[fn];
}

void *vg_real_runtime(enum vg_runtime_fn fn, void *caller)
{
    bool found;
    void *f = cached_runtime(fn, (uintptr_t)caller, &found);
    return found ? f : resolve_runtime(fn, caller);
}

/* ---- dlclose: the one way modules leave the process ----------------------- */

typedef int (*dlclose_fn)(void *);

/* The exported dlclose forwards to the next one (glibc's, or another
 * interposer's) and then reads how many modules the process has unloaded:
 * that moves the counter every cache by address range compares with
 * (model/modules.h). One dl_iterate_phdr per dlclose; nothing per call. */
__attribute__((visibility("default"))) int dlclose(void *handle);
int dlclose(void *handle)
{
    static _Atomic(dlclose_fn) next;
    dlclose_fn f = atomic_load_explicit(&next, memory_order_acquire);
    if (f == NULL) {
        f = (dlclose_fn)vg_real_dlsym(RTLD_NEXT, "dlclose");
        if (f == NULL)
            return -1; /* cannot happen with a dynamic linker */
        atomic_store_explicit(&next, f, memory_order_release);
    }
    int r = f(handle);
    vg_modules_recount();
    return r;
}
