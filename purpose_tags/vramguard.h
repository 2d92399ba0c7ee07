/* vramguard.h: purpose tags and live numbers for programs run under the
 * vramguard shim (LD_PRELOAD=libvramguard.so). Header-only, C and C++.
 *
 * Without the shim everything here is a cheap no-op: no link dependency,
 * the program builds and runs normally. The shim's functions are found once
 * per translation unit with dlsym(RTLD_DEFAULT, ...) (glibc < 2.34: link
 * with -ldl).
 *
 *   VRAMGUARD_PURPOSE(VRAMGUARD_KV_CACHE) {
 *       cudaMalloc(&kv, bytes);           // counted as kv_cache
 *   }                                     // popped here, also on break,
 *                                         // return, goto (not longjmp)
 *
 *   VRAMGUARD_PURPOSE_LABEL(VRAMGUARD_WEIGHTS, "layer.0") { ... }
 *   vramguard_purpose_push(VRAMGUARD_INTERMEDIATE, NULL); ... vramguard_purpose_pop();
 *
 * Tags are per thread: a purpose pushed on one thread does not tag
 * allocations made by another. */
#ifndef VRAMGUARD_H
#define VRAMGUARD_H

#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Purposes. */
#define VRAMGUARD_UNKNOWN 0
#define VRAMGUARD_WEIGHTS 1
#define VRAMGUARD_KV_CACHE 2
#define VRAMGUARD_INTERMEDIATE 3

/* Kinds of memory (where it lives, how it was obtained). VRAM: DEVICE, POOL,
 * VMM, ARRAY. IMPORTED belongs to another process or device: not charged. */
#define VRAMGUARD_KIND_DEVICE 0
#define VRAMGUARD_KIND_HOST_PINNED 1
#define VRAMGUARD_KIND_MANAGED 2
#define VRAMGUARD_KIND_POOL 3
#define VRAMGUARD_KIND_VMM 4
#define VRAMGUARD_KIND_ARRAY 5
#define VRAMGUARD_KIND_HOST_REGISTERED 6
#define VRAMGUARD_KIND_IMPORTED 7

#define VRAMGUARD_MAX_DEVICES 16
#define VRAMGUARD_KIND_SLOTS 8
#define VRAMGUARD_PURPOSE_SLOTS 8

struct vramguard_cell {
    uint64_t live_bytes;
    uint64_t live_count;
    uint64_t peak_bytes;
};

/* Size-prefixed: set `size = sizeof(struct vramguard_usage)` before the
 * call. Later versions only append fields; the shim fills no more than
 * `size` bytes. */
struct vramguard_usage {
    uint64_t size;
    uint32_t device_count;        /* highest device index seen + 1 */
    uint32_t reserved;
    uint64_t vram_bytes;          /* live VRAM (the VRAM kinds), all devices */
    uint64_t violations;          /* policy violations so far */
    uint64_t oom_events;          /* out-of-memory failures so far */
    uint64_t purpose_bytes[VRAMGUARD_PURPOSE_SLOTS]; /* live VRAM by purpose, all devices */
    struct vramguard_cell cell[VRAMGUARD_MAX_DEVICES][VRAMGUARD_KIND_SLOTS][VRAMGUARD_PURPOSE_SLOTS];
    /* Per device: what its VRAM is charged with (live allocations outside
     * pools + device pools' reserve + graph-pool reserve), and those two
     * reserves as the driver reports them. */
    uint64_t charged_bytes[VRAMGUARD_MAX_DEVICES];
    uint64_t pool_reserved_bytes[VRAMGUARD_MAX_DEVICES];
    uint64_t graph_reserved_bytes[VRAMGUARD_MAX_DEVICES];
};

/* ---- implementation: resolve the shim once per translation unit --------- */

static inline void *vramguard__resolve(void **slot, const char *name)
{
    /* NULL = not tried yet; the slot's own address = tried, not found. */
    void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (f == NULL) {
        f = dlsym(RTLD_DEFAULT, name);
        if (f == NULL)
            f = (void *)slot;
        __atomic_store_n(slot, f, __ATOMIC_RELEASE);
    }
    return f == (void *)slot ? NULL : f;
}

#define VRAMGUARD__FN(ret, params, name)                                                           \
    typedef ret(*vramguard__fn_t) params;                                                          \
    static void *vramguard__slot;                                                                  \
    vramguard__fn_t vramguard__f = (vramguard__fn_t)vramguard__resolve(&vramguard__slot, name)

/* Is the shim loaded in this process? */
static inline int vramguard_loaded(void)
{
    VRAMGUARD__FN(const char *, (void), "vramguard_shim_version");
    return vramguard__f != NULL;
}

/* Push a purpose (and an optional label, copied; NULL for none) for
 * allocations made by this thread. Returns the new depth, 0 without the
 * shim. An invalid purpose is pushed as VRAMGUARD_UNKNOWN (so that every
 * push still pairs with one pop) and -1 is returned. */
static inline int vramguard_purpose_push(int purpose, const char *label)
{
    VRAMGUARD__FN(int, (int, const char *), "vramguard_shim_purpose_push");
    return vramguard__f ? vramguard__f(purpose, label) : 0;
}

/* Pop the innermost purpose. Returns the new depth. */
static inline int vramguard_purpose_pop(void)
{
    VRAMGUARD__FN(int, (void), "vramguard_shim_purpose_pop");
    return vramguard__f ? vramguard__f() : 0;
}

/* Fill `usage` (set usage->size first). 0 on success, -1 without the shim
 * or for a size smaller than the fixed header. */
static inline int vramguard_usage(struct vramguard_usage *usage)
{
    VRAMGUARD__FN(int, (struct vramguard_usage *), "vramguard_shim_usage");
    return vramguard__f ? vramguard__f(usage) : -1;
}

/* The text breakdown into `buf` (always NUL-terminated when size > 0).
 * Returns the length the whole text needs (as snprintf), 0 without the shim. */
static inline size_t vramguard_report(char *buf, size_t size)
{
    VRAMGUARD__FN(size_t, (char *, size_t), "vramguard_shim_report");
    if (vramguard__f)
        return vramguard__f(buf, size);
    if (buf && size)
        buf[0] = '\0';
    return 0;
}

/* Check every live tracked allocation with cuPointerGetAttribute: it must be
 * device memory and not managed. Returns the number of offenders (each is
 * named in the log), 0 without the shim, -1 when the shim could not check
 * (out of host memory; the log says so). */
static inline int vramguard_verify_residency(void)
{
    VRAMGUARD__FN(int, (void), "vramguard_shim_verify_residency");
    return vramguard__f ? vramguard__f() : 0;
}

/* ---- scope macro ---------------------------------------------------------- */

#define VRAMGUARD__CAT2(a, b) a##b
#define VRAMGUARD__CAT(a, b) VRAMGUARD__CAT2(a, b)

#ifdef __cplusplus
} /* extern "C" */

namespace vramguard {
/* RAII: pushes on construction, pops on destruction (any scope exit). */
class scope {
  public:
    explicit scope(int purpose, const char *label = nullptr) : once_(true)
    {
        vramguard_purpose_push(purpose, label);
    }
    ~scope() { vramguard_purpose_pop(); }
    scope(const scope &) = delete;
    scope &operator=(const scope &) = delete;
    bool once_;
};
} // namespace vramguard

#define VRAMGUARD__SCOPE(purpose, label, name)                                                     \
    for (::vramguard::scope name((purpose), (label)); name.once_; name.once_ = false)

#else /* C: the cleanup attribute pops on every exit from the block */

struct vramguard__scope {
    int once;
};

static inline void vramguard__scope_end(struct vramguard__scope *s)
{
    (void)s;
    vramguard_purpose_pop();
}

static inline struct vramguard__scope vramguard__scope_begin(int purpose, const char *label)
{
    vramguard_purpose_push(purpose, label);
    struct vramguard__scope s = {1};
    return s;
}

#define VRAMGUARD__SCOPE(purpose, label, name)                                                     \
    for (struct vramguard__scope name __attribute__((cleanup(vramguard__scope_end))) =             \
             vramguard__scope_begin((purpose), (label));                                           \
         name.once; name.once = 0)

#endif

/* Tag the allocations of the following statement or block. */
#define VRAMGUARD_PURPOSE_LABEL(purpose, label)                                                    \
    VRAMGUARD__SCOPE(purpose, label, VRAMGUARD__CAT(vramguard__scope_, __COUNTER__))
#define VRAMGUARD_PURPOSE(purpose) VRAMGUARD_PURPOSE_LABEL(purpose, NULL)

#endif /* VRAMGUARD_H */
