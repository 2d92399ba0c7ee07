/* Per-thread call context: which vramguard entry is outermost. A runtime
 * wrapper (cudaMalloc) names the call and records its caller; the driver
 * wrapper underneath does the accounting with that name and caller. A
 * driver wrapper reached from inside another one passes straight through, so
 * nothing is counted twice. */
#ifndef VG_CALLCTX_H
#define VG_CALLCTX_H

struct vg_tls_call {
    const char *rt_api;
    void *rt_caller;
    int rt_depth;
    int drv_depth;
};

extern __thread struct vg_tls_call vg_tls_call __attribute__((tls_model("initial-exec")));

#endif
