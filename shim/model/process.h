/* Process-wide state, in one small place: whether this process has reached
 * the CUDA driver, and each thread's call state. Plain data: no CUDA call,
 * no output. Everything else reads it; only the interception layer sets it. */
#ifndef VG_PROCESS_H
#define VG_PROCESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Per-thread call state. A runtime wrapper (cudaMalloc) names the call and
 * records its caller; the driver wrapper underneath does the accounting with
 * that name and caller. A driver wrapper reached from inside another one
 * (the driver calling back into the process on the same thread: a CUPTI
 * callback, another interposer) passes straight through unless it
 * allocates memory of its own (hook_protocol.h), so nothing is counted
 * twice. */
enum { VG_OUTER_NONE = -1 };
/* Defined by peaks.c: the block every thread starts with (peaks.h). */
struct vg_peaks_block;
extern struct vg_peaks_block vg_peaks_none __attribute__((visibility("hidden")));
/* What a thread learned about a stream it allocated on: its device and the
 * pool cuMemAllocAsync draws from there (see hooks_pools.c). */
struct vg_stream_fact {
    void *stream;
    int16_t device;
    uint16_t pool;
    uint8_t kind;
    bool valid;
    uint16_t device_meta; /* `device` as the table packs it (table.h), for the hot path */
};
enum { VG_STREAM_FACTS = 4 };
/* What a thread learned about the device pool it last allocated from with
 * cuMemAllocFromPoolAsync (hooks_pools.c): valid while `epoch` equals
 * vg_process_epoch (a destroyed pool bumps it). */
struct vg_pool_fact {
    void *pool;
    uint32_t epoch;
    int16_t device;
    uint16_t index;       /* in the pool registry (pools.h) */
    uint16_t device_meta; /* `device` as the table packs it (table.h) */
};

struct vg_tls_call {
    const char *rt_api;
    void *rt_caller;
    int rt_depth;
    int drv_depth;
    /* The kind the outermost driver wrapper entered with, VG_OUTER_NONE for
     * one that allocates nothing (a free): decides whether a nested call is
     * an allocation of its own (hook_protocol.h). */
    int8_t outer_kind;
    /* The context index (contexts.h) of this thread's current context,
     * valid with `device` while `epoch` is. */
    uint8_t owner;
    /* Facts learned from the driver, valid while `epoch` equals
     * vg_process_epoch: the device of this thread's current context, and
     * its streams. A context switch on this thread sets `epoch` to 0; a
     * change that concerns every thread bumps vg_process_epoch. */
    uint32_t epoch;
    int device;
    struct vg_stream_fact streams[VG_STREAM_FACTS];
    struct vg_pool_fact pool;
    /* The context this thread last made current with cuCtxSetCurrent, NULL
     * when not known: setting the same one again changes nothing. */
    void *context;
    /* For the hot path, packed as the table packs an entry (table.h: meta):
     * `device`'s cell bits (valid with it), and the top purpose and label
     * pushed on this thread (0 when none: purposes.c keeps it). */
    uint32_t device_meta;
    uint32_t purpose_meta;
    /* This thread's slack of the peaks' budgets (peaks.h): a block that is
     * always locked until the thread's first take or give claims one. */
    struct vg_peaks_block *peaks;
};

extern __thread struct vg_tls_call vg_tls_call __attribute__((tls_model("initial-exec")));

/* Why an allocation cannot take the hot path (hot_path.h), one bit per
 * process-wide reason; 0 in the steady state of a process configured with
 * nothing that costs per call. Each bit is set by the module that owns the
 * reason. */
enum {
    VG_SLOW_STARTING = 1, /* the driver not reached yet, or the configuration and outputs still starting */
    VG_SLOW_STACKS = 2,   /* VRAMGUARD_BACKTRACE: a stack per allocation */
    VG_SLOW_BUDGETS = 4,  /* VRAMGUARD_LIMIT: each VRAM allocation is checked */
    VG_SLOW_RULES = 8,    /* VRAMGUARD_PURPOSE_RULES: the hot path asks the rules */
};
extern _Atomic uint32_t vg_process_slow;
static inline uint32_t vg_process_slow_reasons(void)
{
    return atomic_load_explicit(&vg_process_slow, memory_order_acquire);
}
/* Set (on) or clear a reason: after what it guards is in place. */
void vg_process_slow_set(uint32_t reason, bool on);

/* Starts at 1 and only grows, so a thread's 0 never matches it. */
extern _Atomic uint32_t vg_process_epoch;

/* This thread's current context changed (set, push, pop, create). */
static inline void vg_process_thread_context_changed(void)
{
    vg_tls_call.epoch = 0;
    vg_tls_call.context = NULL;
}
/* A change every thread must re-learn from: a context destroyed or reset, a
 * stream destroyed (its handle may come back), a device's pool replaced. */
void vg_process_facts_changed(void);

/* Stream captures in progress in this process (begun, not yet ended):
 * while 0, no stream is capturing and none needs to be asked. */
extern _Atomic int vg_process_captures;

/* Marks that the process reached the driver; true for the first caller only,
 * which then clears VG_SLOW_STARTING once the configuration and outputs
 * have started. */
bool vg_process_mark_reached(void);
extern atomic_bool vg_process_reached;
static inline bool vg_process_reached_driver(void)
{
    return atomic_load_explicit(&vg_process_reached, memory_order_acquire);
}
/* After fork, in the child: it has not reached the driver itself yet,
 * nothing the parent's threads learned holds, no capture is in progress. */
void vg_process_after_fork(void);

#endif
