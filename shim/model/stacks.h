/* Call stacks: a short stack per allocation where it pays, deduplicated in a
 * fixed-size depot (an allocation holds a 32-bit id). VRAMGUARD_BACKTRACE
 * picks where: `large` (the default) for allocations of VG_STACK_LARGE
 * bytes or more, whose driver call costs far more than a stack walk (not
 * stream-ordered ones: see vg_stack_min_size); `1` for every allocation;
 * `0` for none. Every refusal and OOM gets one too
 * (events.c), unless `0`. Captured with libgcc's unwinder, primed once at
 * configuration time; symbolised only
 * when an output is written (output/symbols.h), never on the allocation
 * path. */
#ifndef VG_STACKS_H
#define VG_STACKS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <unwind.h>

enum { VG_STACK_FRAMES = 8 };
#define VG_STACK_LARGE ((uint64_t)1 << 20)

enum vg_backtrace { VG_BACKTRACE_OFF, VG_BACKTRACE_LARGE, VG_BACKTRACE_ALL };

/* Capture stacks from now on, as `mode` says. */
void vg_stacks_enable(enum vg_backtrace mode);
/* The smallest allocation that gets a stack: UINT64_MAX while off (and until
 * configured), VG_STACK_LARGE, or 0 (every allocation). A stream-ordered
 * allocation has its own: a pool's cache serves it in about a microsecond,
 * as long as the walk takes, so it gets a stack only under `1` (0 there,
 * else UINT64_MAX). */
extern _Atomic uint64_t vg_stack_min_size, vg_stack_min_size_stream_ordered;
static inline bool vg_stacks_enabled(void)
{
    return atomic_load_explicit(&vg_stack_min_size, memory_order_relaxed) != UINT64_MAX;
}
enum { VG_STACK_OWN_MAX = 8 }; /* of our own frames, at most */
/* The depot id of these raw frames (vramguard's own leading frames
 * skipped): 0 when there are none left or the depot is full. */
uint32_t vg_stack_intern(void **raw, int got);
/* libgcc_s's unwinder, looked up by vg_stacks_enable (the shim links
 * nothing but libc; backtrace(3) loads the same library the same way). */
typedef _Unwind_Reason_Code (*vg_unwind_backtrace_fn)(_Unwind_Trace_Fn, void *);
extern _Atomic(vg_unwind_backtrace_fn) vg_unwind_backtrace;
/* One frame of a walk (stacks.c): its return address into `arg`. */
_Unwind_Reason_Code vg_stack_frame(struct _Unwind_Context *ctx, void *arg);
struct vg_stack_walk {
    void **out;
    int got, max;
};
/* Capture the caller's stack; 0 when disabled or the depot is full. Inline,
 * and _Unwind_Backtrace itself rather than backtrace(3) around it: the walk
 * starts in the wrapper's own frame, with no frame of backtrace's for
 * libgcc's unwinder to decode (about 2 200 instructions a frame, callgrind). */
static inline __attribute__((always_inline)) uint32_t vg_stack_capture(void)
{
    vg_unwind_backtrace_fn walk = atomic_load_explicit(&vg_unwind_backtrace, memory_order_acquire);
    if (!vg_stacks_enabled() || !walk)
        return 0;
    void *raw[VG_STACK_FRAMES + VG_STACK_OWN_MAX];
    struct vg_stack_walk w = {raw, 0, VG_STACK_FRAMES + VG_STACK_OWN_MAX};
    walk(vg_stack_frame, &w);
    return vg_stack_intern(raw, w.got);
}
/* An allocation of `size` bytes (`stream_ordered`: from a pool, a constant
 * in each wrapper): its stack when it gets one, else 0. The whole
 * per-allocation cost when it does not: one compare with a threshold and a
 * branch. */
static inline uint32_t vg_stack_for(uint64_t size, bool stream_ordered)
{
    _Atomic uint64_t *min = stream_ordered ? &vg_stack_min_size_stream_ordered : &vg_stack_min_size;
    if (__builtin_expect(size >= atomic_load_explicit(min, memory_order_relaxed), 0))
        return vg_stack_capture();
    return 0;
}
/* The frames of stack `id`; returns how many (0 for id 0). */
int vg_stack_frames(uint32_t id, void **out, int max);

#endif
