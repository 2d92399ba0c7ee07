#include "process.h"

#include <stdatomic.h>

__thread struct vg_tls_call vg_tls_call __attribute__((tls_model("initial-exec")));

_Atomic uint32_t vg_process_epoch = 1;
_Atomic int vg_process_captures;

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
    atomic_store(&reached, false);
    atomic_store(&vg_process_captures, 0);
    vg_process_facts_changed();
}
