/* A stand-in for another driver interposer preloaded with the shim
 * (HAMi-core's libvgpu, a profiler): it exports cuMemAlloc_v2 and
 * cuMemFree_v2, counts the calls that reach it and forwards them.
 *
 * Built twice. libinterposer.so forwards to the next definition with
 * dlsym(RTLD_NEXT), as a profiler does. libinterposer_dlsym.so
 * (-DREPLACE_DLSYM) also replaces dlsym, as libvgpu does: a lookup of one of
 * its names, in any handle that defines it, answers its hook, which forwards
 * to the driver's function looked up with glibc's own dlsym. */
#include <cuda.h>
#include <dlfcn.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef CUresult (*alloc_fn)(CUdeviceptr *, size_t);
typedef CUresult (*free_fn)(CUdeviceptr);
typedef void *(*dlsym_fn)(void *, const char *);

static unsigned long long allocs, frees, recursions, dlsym_calls;

EXPORT unsigned long long interposer_allocs(void);
EXPORT unsigned long long interposer_frees(void);
EXPORT unsigned long long interposer_recursions(void);
EXPORT unsigned long long interposer_dlsym_calls(void);
unsigned long long interposer_allocs(void) { return allocs; }
unsigned long long interposer_frees(void) { return frees; }
unsigned long long interposer_recursions(void) { return recursions; }
unsigned long long interposer_dlsym_calls(void) { return dlsym_calls; }

#ifdef REPLACE_DLSYM
static dlsym_fn glibc_dlsym(void)
{
    static dlsym_fn f;
    if (f == NULL)
        f = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
    if (f == NULL)
        f = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
    return f;
}
#endif

/* What the hooks forward to. `self` is this library's own definition. */
static void *next_of(const char *name, void *self)
{
#ifdef REPLACE_DLSYM
    (void)self;
    void *driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    void *f = driver ? glibc_dlsym()(driver, name) : NULL;
    if (driver)
        dlclose(driver);
    return f;
#else
    void *f = dlsym(RTLD_NEXT, name);
    if (f == self) { /* handed its own definition back: it would call itself forever */
        recursions++;
        return NULL;
    }
    return f;
#endif
}

/* The hooks are static (their addresses are this library's own: the
 * address of an exported name would be the first definition in the global
 * scope) and exported under the driver's names as aliases. */
static CUresult hook_alloc(CUdeviceptr *dptr, size_t bytesize)
{
    allocs++;
    alloc_fn next = (alloc_fn)next_of("cuMemAlloc_v2", (void *)hook_alloc);
    return next ? next(dptr, bytesize) : CUDA_ERROR_UNKNOWN;
}

static CUresult hook_free(CUdeviceptr dptr)
{
    frees++;
    free_fn next = (free_fn)next_of("cuMemFree_v2", (void *)hook_free);
    return next ? next(dptr) : CUDA_ERROR_UNKNOWN;
}

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize) __attribute__((alias("hook_alloc")));
EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr) __attribute__((alias("hook_free")));

#ifdef REPLACE_DLSYM
EXPORT void *dlsym(void *handle, const char *name);
void *dlsym(void *handle, const char *name)
{
    dlsym_calls++;
    void *f = glibc_dlsym()(handle, name);
    if (f != NULL && strcmp(name, "cuMemAlloc_v2") == 0)
        return (void *)hook_alloc;
    if (f != NULL && strcmp(name, "cuMemFree_v2") == 0)
        return (void *)hook_free;
    return f;
}
#endif
