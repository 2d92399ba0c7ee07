/* Process-wide state, in one small place: whether this process has reached
 * the CUDA driver, and each thread's call state. Plain data: no CUDA call,
 * no output. Everything else reads it; only the interception layer sets it. */
#ifndef VG_PROCESS_H
#define VG_PROCESS_H

#include <stdbool.h>
#include <stdint.h>

/* Per-thread call state. A runtime wrapper (cudaMalloc) names the call and
 * records its caller; the driver wrapper underneath does the accounting with
 * that name and caller. A driver wrapper reached from inside another one
 * passes straight through, so nothing is counted twice. */
struct vg_tls_call {
    const char *rt_api;
    void *rt_caller;
    int rt_depth;
    int drv_depth;
    /* The device of this thread's current context, as last learned, valid
     * while device_epoch equals vg_process_ctx_epoch (see devices.h). */
    int device;
    uint32_t device_epoch;
};

extern __thread struct vg_tls_call vg_tls_call __attribute__((tls_model("initial-exec")));

/* Marks that the process reached the driver; true for the first caller only. */
bool vg_process_mark_reached(void);
bool vg_process_reached_driver(void);
/* After fork: the child has not reached the driver itself yet. */
void vg_process_forget_reached(void);

#endif
