/* Runtime calls after dlclose (issue 9 item 17). The shim remembers, per
 * calling module's address range, which cudart function that module's
 * runtime calls reach. Once a library is unloaded, another may be mapped in
 * its place, and the cudart it reached may be gone: the shim must not jump
 * to what it remembered. To make a stale jump certain to fault, the program
 * maps the unloaded cudart's addresses PROT_NONE before it loads the next
 * one (which then lands elsewhere).
 *
 * 1. The program calls cudaMalloc (the shim's) with a cudart it loaded
 *    RTLD_GLOBAL, unloads that cudart, loads the same file again.
 * 2. A library with its own cudart (libcudauser12.so, loaded RTLD_LOCAL, as
 *    Python loads an extension module) calls cudaMalloc; it is unloaded with
 *    its cudart and loaded again, usually at the same address.
 * 3. With VRAMGUARD_ALLOW=pinned:libreload_a* and
 *    VRAMGUARD_PURPOSE_RULES=libreload_a*=weights: libreload_a.so gets its
 *    pinned buffer and its purpose; it is unloaded, and libreload_b.so (the
 *    same code) loaded at its address must get neither: what the shim knows
 *    of a module by its address range (its name) is looked up again. */
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "preload_common.h"

typedef cudaError_t (*malloc_fn)(void **, size_t);
typedef cudaError_t (*free_fn)(void *);
typedef int (*calls_fn)(void);

struct range {
    uintptr_t addr, lo, hi;
};

static int find_range(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct range *r = data;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr, end = start + ph->p_memsz;
        lo = start < lo ? start : lo;
        hi = end > hi ? end : hi;
    }
    if (r->addr < lo || r->addr >= hi)
        return 0;
    long page = sysconf(_SC_PAGESIZE);
    r->lo = lo & ~(uintptr_t)(page - 1);
    r->hi = (hi + (uintptr_t)page - 1) & ~(uintptr_t)(page - 1);
    return 1;
}

/* The pages of the module holding `addr`. */
static struct range module_range(void *addr)
{
    struct range r = {.addr = (uintptr_t)addr};
    dl_iterate_phdr(find_range, &r);
    return r;
}

/* Nothing may run at an unloaded module's addresses: make them fault. */
static int fault_there(struct range r)
{
    if (r.hi <= r.lo)
        return 0;
    void *p = mmap((void *)r.lo, r.hi - r.lo, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p != MAP_FAILED && (uintptr_t)p != r.lo)
        munmap(p, r.hi - r.lo);
    return (uintptr_t)p == r.lo;
}

static int served(void *cudart)
{
    calls_fn f = cudart ? (calls_fn)dlsym(cudart, "fakecudart_malloc_calls") : NULL;
    return f ? f() : -1;
}

static void global_cudart_reloaded(void)
{
    malloc_fn m = (malloc_fn)dlsym(RTLD_DEFAULT, "cudaMalloc");
    free_fn f = (free_fn)dlsym(RTLD_DEFAULT, "cudaFree");
    Dl_info info;
    CHECK("cudaMalloc in the global scope is the shim's", m && dladdr((void *)m, &info) &&
          strstr(info.dli_fname, "libvramguard"), "it is not");
    void *rt = dlopen("libcudart.so.13", RTLD_NOW | RTLD_GLOBAL);
    CHECK("dlopen libcudart.so.13 RTLD_GLOBAL", rt != NULL, "%s", dlerror());
    if (!m || !f || !rt)
        return;
    void *p = NULL;
    unsigned long long v0 = snap().vram;
    CHECK("1: cudaMalloc through the loaded cudart", m(&p, 1 * MiB) == cudaSuccess && served(rt) == 1,
          "served %d", served(rt));
    CHECK("1: counted", snap().vram - v0 == 1 * MiB, "%llu", snap().vram - v0);
    CHECK("1: cudaFree", f(p) == cudaSuccess && snap().vram == v0, "vram %llu", snap().vram);

    struct range old = module_range(dlsym(rt, "cudaMalloc"));
    dlclose(rt);
    CHECK("1: the cudart is unloaded", dlopen("libcudart.so.13", RTLD_NOW | RTLD_NOLOAD) == NULL, "still loaded");
    CHECK("1: its old addresses now fault", fault_there(old), "cannot map %#lx-%#lx", (unsigned long)old.lo,
          (unsigned long)old.hi);

    rt = dlopen("libcudart.so.13", RTLD_NOW | RTLD_GLOBAL);
    CHECK("1: the same cudart loaded again, elsewhere", rt && module_range(dlsym(rt, "cudaMalloc")).lo != old.lo,
          "%s", rt ? "at the same address" : dlerror());
    if (!rt)
        return;
    p = NULL;
    cudaError_t r = m(&p, 2 * MiB); /* a stale jump faults here */
    CHECK("1: cudaMalloc reaches the cudart loaded now", r == cudaSuccess && served(rt) == 1, "result %d, served %d",
          (int)r, served(rt));
    CHECK("1: counted", snap().vram - v0 == 2 * MiB, "%llu", snap().vram - v0);
    CHECK("1: cudaFree", f(p) == cudaSuccess && snap().vram == v0, "vram %llu", snap().vram);
}

static void library_reloaded(void)
{
    void *lib = dlopen("libcudauser12.so", RTLD_NOW | RTLD_LOCAL);
    CHECK("dlopen libcudauser12.so RTLD_LOCAL", lib != NULL, "%s", dlerror());
    if (!lib)
        return;
    int (*alloc)(size_t, void **) = (int (*)(size_t, void **))dlsym(lib, "cudauser_alloc_free");
    int (*release)(void *) = (int (*)(void *))dlsym(lib, "cudauser_free");
    void *rt = dlopen("libcudart.so.12", RTLD_NOW | RTLD_NOLOAD);
    void *p = NULL;
    unsigned long long v0 = snap().vram;
    CHECK("2: cudaMalloc from the library, served by its cudart 12", alloc && alloc(1 * MiB, &p) == 0 && served(rt) == 1,
          "served %d", served(rt));
    CHECK("2: counted, freed", snap().vram - v0 == 1 * MiB && release(p) == 0 && snap().vram == v0, "vram %llu",
          snap().vram);

    struct range old_lib = module_range((void *)alloc), old_rt = module_range(dlsym(rt, "cudaMalloc"));
    dlclose(rt);
    dlclose(lib);
    CHECK("2: the library and its cudart are unloaded",
          dlopen("libcudauser12.so", RTLD_NOW | RTLD_NOLOAD) == NULL &&
              dlopen("libcudart.so.12", RTLD_NOW | RTLD_NOLOAD) == NULL,
          "still loaded");
    CHECK("2: the cudart's old addresses now fault", fault_there(old_rt), "cannot map");

    lib = dlopen("libcudauser12.so", RTLD_NOW | RTLD_LOCAL);
    CHECK("2: the library loaded again", lib != NULL, "%s", dlerror());
    if (!lib)
        return;
    alloc = (int (*)(size_t, void **))dlsym(lib, "cudauser_alloc_free");
    release = (int (*)(void *))dlsym(lib, "cudauser_free");
    rt = dlopen("libcudart.so.12", RTLD_NOW | RTLD_NOLOAD);
    printf("note: the library is %s\n",
           module_range((void *)alloc).lo == old_lib.lo ? "at its old address" : "at a new address");
    p = NULL;
    int r = alloc(2 * MiB, &p); /* a stale jump faults here */
    CHECK("2: cudaMalloc reaches the library's new cudart", r == 0 && served(rt) == 1, "result %d, served %d", r,
          served(rt));
    CHECK("2: counted, freed", snap().vram - v0 == 2 * MiB && release(p) == 0 && snap().vram == v0, "vram %llu",
          snap().vram);
}

struct reloader {
    void *lib;
    int (*pin)(void **);
    int (*alloc)(CUdeviceptr *);
};

static struct reloader load_reloader(const char *name)
{
    struct reloader r = {dlopen(name, RTLD_NOW | RTLD_LOCAL), NULL, NULL};
    if (r.lib) {
        r.pin = (int (*)(void **))dlsym(r.lib, "reload_pin");
        r.alloc = (int (*)(CUdeviceptr *))dlsym(r.lib, "reload_alloc");
    }
    return r;
}

static void names_after_reload(void)
{
    const char *allow = getenv("VRAMGUARD_ALLOW"), *rules = getenv("VRAMGUARD_PURPOSE_RULES");
    if (!allow || strcmp(allow, "pinned:libreload_a*") != 0 || !rules || strcmp(rules, "libreload_a*=weights") != 0) {
        printf("note: part 3 needs VRAMGUARD_ALLOW=pinned:libreload_a* VRAMGUARD_PURPOSE_RULES=libreload_a*=weights\n");
        return;
    }
    CUdevice dev;
    CUcontext ctx;
    CHECK("3: a current context", cuInit(0) == CUDA_SUCCESS && cuDeviceGet(&dev, 0) == CUDA_SUCCESS &&
          cuDevicePrimaryCtxRetain(&ctx, dev) == CUDA_SUCCESS && cuCtxSetCurrent(ctx) == CUDA_SUCCESS, "failed");
    struct reloader a = load_reloader("libreload_a.so");
    CHECK("3: dlopen libreload_a.so", a.pin && a.alloc, "%s", dlerror());
    if (!a.pin || !a.alloc)
        return;
    void *host = NULL;
    CUdeviceptr d = 0;
    unsigned long long w0 = snap().purpose[VRAMGUARD_WEIGHTS];
    CHECK("3: libreload_a's pinned buffer is allowed", a.pin(&host) == CUDA_SUCCESS, "refused");
    CHECK("3: its allocation is weights", a.alloc(&d) == CUDA_SUCCESS && snap().purpose[VRAMGUARD_WEIGHTS] - w0 == 1 * MiB,
          "weights moved by %llu", snap().purpose[VRAMGUARD_WEIGHTS] - w0);
    cuMemFreeHost(host);
    cuMemFree(d);
    struct range old = module_range((void *)a.pin);
    dlclose(a.lib);
    CHECK("3: libreload_a is unloaded", dlopen("libreload_a.so", RTLD_NOW | RTLD_NOLOAD) == NULL, "still loaded");

    struct reloader b = load_reloader("libreload_b.so");
    CHECK("3: dlopen libreload_b.so", b.pin && b.alloc, "%s", dlerror());
    if (!b.pin || !b.alloc)
        return;
    printf("note: libreload_b is %s\n",
           module_range((void *)b.pin).lo == old.lo ? "at the unloaded one's address" : "at a new address");
    host = NULL;
    CUresult r = (CUresult)b.pin(&host);
    CHECK("3: libreload_b's pinned buffer is refused (no rule names it)", r == CUDA_ERROR_NOT_PERMITTED, "result %d",
          (int)r);
    if (r == CUDA_SUCCESS)
        cuMemFreeHost(host);
    w0 = snap().purpose[VRAMGUARD_WEIGHTS];
    CHECK("3: its allocation is not weights", b.alloc(&d) == CUDA_SUCCESS && snap().purpose[VRAMGUARD_WEIGHTS] == w0,
          "weights moved by %llu", snap().purpose[VRAMGUARD_WEIGHTS] - w0);
    cuMemFree(d);
}

int main(void)
{
    start("prog_reload");
    global_cudart_reloaded();
    library_reloaded();
    names_after_reload();
    return finish("prog_reload");
}
