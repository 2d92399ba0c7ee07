#include "process.h"

#include <stdatomic.h>

__thread struct vg_tls_call vg_tls_call __attribute__((tls_model("initial-exec"))) = {.peaks = &vg_peaks_none};

_Atomic uint32_t vg_process_epoch = 1;
_Atomic int vg_process_captures;
_Atomic uint32_t vg_process_slow = VG_SLOW_STARTING;

void vg_process_slow_set(uint32_t reason, bool on)
{
    if (on)
        atomic_fetch_or_explicit(&vg_process_slow, reason, memory_order_release);
    else
        atomic_fetch_and_explicit(&vg_process_slow, ~reason, memory_order_release);
}

atomic_bool vg_process_reached;
#define reached vg_process_reached

void vg_process_facts_changed(void)
{
    if (atomic_fetch_add(&vg_process_epoch, 1) + 1 == 0) /* wrapped: 0 means "not learned" */
        atomic_fetch_add(&vg_process_epoch, 1);
}

bool vg_process_mark_reached(void)
{
    if (atomic_load_explicit(&reached, memory_order_acquire))
        return false;
    return !atomic_exchange(&reached, true);
}

void vg_process_after_fork(void)
{
    vg_process_slow_set(VG_SLOW_STARTING, true);
    atomic_store(&reached, false);
    atomic_store(&vg_process_captures, 0);
    vg_process_facts_changed();
}
