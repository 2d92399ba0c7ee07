#include "stacks.h"
#include "forksafe.h"
#include "modules.h"
#include "process.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

enum { DEPOT = 8192 /* ids fit the table entry's 13 bits */ };

struct stack {
    uint64_t hash;
    uint8_t depth;
    void *frames[VG_STACK_FRAMES];
};

static struct stack depot[DEPOT]; /* slot 0 unused: id 0 = none */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

pthread_mutex_t *vg_stacks_fork_mutex(void)
{
    return &lock;
}
_Atomic uint64_t vg_stack_min_size = UINT64_MAX, vg_stack_min_size_stream_ordered = UINT64_MAX;

/* The shim's own code: leading frames in it are skipped. How many there are
 * depends on where the stack is taken (a wrapper, a refusal, an OOM) and on
 * inlining, so they are told by address, not counted. Unknown (the shim
 * linked into the program itself, as the unit tests do): none is (the
 * first frame is the function that captured, inlining vg_stack_capture). */
static uintptr_t own_lo, own_hi;

_Atomic(vg_unwind_backtrace_fn) vg_unwind_backtrace; /* set after unwind_get_ip (release) */
static _Unwind_Ptr (*unwind_get_ip)(struct _Unwind_Context *);

/* libgcc_s's unwinder (already loaded in any C++ or Python process);
 * dlvsym, which the shim does not wrap, by the versions libgcc_s has given
 * them since GCC 3. */
static bool find_unwinder(void)
{
    if (atomic_load_explicit(&vg_unwind_backtrace, memory_order_acquire))
        return true;
    void *h = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (!h)
        h = dlopen("libgcc_s.so.1", RTLD_NOW);
    if (!h)
        return false;
    unwind_get_ip = (_Unwind_Ptr(*)(struct _Unwind_Context *))dlvsym(h, "_Unwind_GetIP", "GCC_3.0");
    void *bt = dlvsym(h, "_Unwind_Backtrace", "GCC_3.3");
    if (!unwind_get_ip || !bt)
        return false;
    atomic_store_explicit(&vg_unwind_backtrace, (vg_unwind_backtrace_fn)bt, memory_order_release);
    return true;
}

void vg_stacks_enable(enum vg_backtrace mode)
{
    if (mode == VG_BACKTRACE_OFF)
        return;
    if (!find_unwinder())
        return; /* no libgcc_s: no stacks, as backtrace(3) would find none */
    void *prime[2];
    struct vg_stack_walk w = {prime, 0, 2};
    atomic_load(&vg_unwind_backtrace)(vg_stack_frame, &w); /* the unwinder's first-use work now, not in an allocation */
    struct vg_module m;
    if (vg_module_of((void *)vg_stack_intern, &m) && !m.is_main) {
        own_lo = m.lo;
        own_hi = m.hi;
    }
    atomic_store(&vg_stack_min_size_stream_ordered, mode == VG_BACKTRACE_ALL ? 0 : UINT64_MAX);
    atomic_store(&vg_stack_min_size, mode == VG_BACKTRACE_ALL ? 0 : VG_STACK_LARGE);
    /* Every allocation: the general path (the hot path takes the large ones itself). */
    vg_process_slow_set(VG_SLOW_STACKS, mode == VG_BACKTRACE_ALL);
}

static inline bool own(const void *pc)
{
    return (uintptr_t)pc >= own_lo && (uintptr_t)pc < own_hi;
}

_Unwind_Reason_Code vg_stack_frame(struct _Unwind_Context *ctx, void *arg)
{
    struct vg_stack_walk *w = arg;
    uintptr_t ip = unwind_get_ip(ctx);
    if (ip == 0 || w->got == w->max)
        return _URC_END_OF_STACK;
    w->out[w->got++] = (void *)ip;
    return _URC_NO_REASON;
}

uint32_t vg_stack_intern(void **raw, int got)
{
    /* Our frames lead (the walk starts in the capturing function), unless
     * something interposed on the unwinder adds one of its own (as ASan's
     * backtrace(3) interceptor did when that was the walk): skip up to our
     * first frame among the leading few, then past our last. */
    int skip = 0;
    while (skip < got && skip < 2 && own_hi != 0 && !own(raw[skip]))
        skip++;
    if (skip == got || !own(raw[skip]))
        skip = 0; /* none of ours there (the shim linked into the program) */
    while (skip < got && own(raw[skip]))
        skip++;
    int n = got - skip < VG_STACK_FRAMES ? got - skip : VG_STACK_FRAMES;
    if (n <= 0)
        return 0;
    void **frames = &raw[skip];
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++)
        h = (h ^ (uint64_t)(uintptr_t)frames[i]) * 1099511628211ull;
    uint32_t slot = (uint32_t)(h % (DEPOT - 1)) + 1, id = 0;
    pthread_mutex_lock(&lock);
    for (int probe = 0; probe < 64 && id == 0; probe++, slot = slot % (DEPOT - 1) + 1) {
        struct stack *s = &depot[slot];
        if (s->depth == 0) {
            s->hash = h;
            s->depth = (uint8_t)n;
            memcpy(s->frames, frames, (size_t)n * sizeof(void *));
            id = slot;
        } else if (s->hash == h && s->depth == n && memcmp(s->frames, frames, (size_t)n * sizeof(void *)) == 0) {
            id = slot;
        }
    }
    pthread_mutex_unlock(&lock);
    return id; /* 0 when the neighbourhood is full: no stack, still counted */
}

int vg_stack_frames(uint32_t id, void **out, int max)
{
    if (id == 0 || id >= DEPOT)
        return 0;
    pthread_mutex_lock(&lock);
    int n = depot[id].depth < max ? depot[id].depth : max;
    memcpy(out, depot[id].frames, (size_t)n * sizeof(void *));
    pthread_mutex_unlock(&lock);
    return n;
}
