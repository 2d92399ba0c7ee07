#include "stacks.h"
#include "forksafe.h"
#include "modules.h"
#include "process.h"

#include <execinfo.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

/* The shim's own frames (this file, a wrapper, its general path) come first
 * and are skipped: every leading frame whose return address lies in the
 * shim's module (learned when stacks are enabled; unknown: the first two). */
enum { DEPOT = 8192, /* ids fit the table entry's 13 bits */ MAX_SKIP = 4 };
static uintptr_t shim_lo, shim_hi;

static bool in_shim(const void *frame, int index)
{
    if (shim_hi == 0)
        return index < 2;
    return (uintptr_t)frame >= shim_lo && (uintptr_t)frame < shim_hi;
}

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
atomic_bool vg_stacks_on;

void vg_stacks_enable(void)
{
    void *prime[2];
    backtrace(prime, 2); /* loads libgcc_s now, not in an allocation */
    struct vg_module self;
    if (vg_module_of((void *)vg_stack_capture, &self)) {
        shim_lo = self.lo;
        shim_hi = self.hi;
    }
    atomic_store(&vg_stacks_on, true);
    vg_process_slow_set(VG_SLOW_STACKS, true);
}

uint32_t vg_stack_capture(void)
{
    if (!vg_stacks_enabled())
        return 0;
    void *raw[VG_STACK_FRAMES + MAX_SKIP];
    int got = backtrace(raw, VG_STACK_FRAMES + MAX_SKIP), skip = 0;
    while (skip < got && skip < MAX_SKIP && in_shim(raw[skip], skip))
        skip++;
    int n = got - skip < VG_STACK_FRAMES ? got - skip : VG_STACK_FRAMES;
    if (n <= 0)
        return 0;
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++)
        h = (h ^ (uint64_t)(uintptr_t)raw[skip + i]) * 1099511628211ull;
    uint32_t slot = (uint32_t)(h % (DEPOT - 1)) + 1, id = 0;
    pthread_mutex_lock(&lock);
    for (int probe = 0; probe < 64 && id == 0; probe++, slot = slot % (DEPOT - 1) + 1) {
        struct stack *s = &depot[slot];
        if (s->depth == 0) {
            s->hash = h;
            s->depth = (uint8_t)n;
            memcpy(s->frames, &raw[skip], (size_t)n * sizeof(void *));
            id = slot;
        } else if (s->hash == h && s->depth == n && memcmp(s->frames, &raw[skip], (size_t)n * sizeof(void *)) == 0) {
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
