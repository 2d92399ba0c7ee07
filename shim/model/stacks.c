#include "stacks.h"
#include "forksafe.h"

#include <execinfo.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

enum { DEPOT = 8192, /* ids fit the table entry's 13 bits */ SKIP = 2 /* stacks.c, the wrapper (the protocol is inline) */ };

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
    atomic_store(&vg_stacks_on, true);
}

uint32_t vg_stack_capture(void)
{
    if (!vg_stacks_enabled())
        return 0;
    void *raw[VG_STACK_FRAMES + SKIP];
    int n = backtrace(raw, VG_STACK_FRAMES + SKIP) - SKIP;
    if (n <= 0)
        return 0;
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++)
        h = (h ^ (uint64_t)(uintptr_t)raw[SKIP + i]) * 1099511628211ull;
    uint32_t slot = (uint32_t)(h % (DEPOT - 1)) + 1, id = 0;
    pthread_mutex_lock(&lock);
    for (int probe = 0; probe < 64 && id == 0; probe++, slot = slot % (DEPOT - 1) + 1) {
        struct stack *s = &depot[slot];
        if (s->depth == 0) {
            s->hash = h;
            s->depth = (uint8_t)n;
            memcpy(s->frames, &raw[SKIP], (size_t)n * sizeof(void *));
            id = slot;
        } else if (s->hash == h && s->depth == n && memcmp(s->frames, &raw[SKIP], (size_t)n * sizeof(void *)) == 0) {
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
