#include "process.h"

#include <stdatomic.h>

__thread struct vg_tls_call vg_tls_call __attribute__((tls_model("initial-exec")));

static atomic_bool reached;

bool vg_process_mark_reached(void)
{
    if (atomic_load_explicit(&reached, memory_order_acquire))
        return false;
    return !atomic_exchange(&reached, true);
}

bool vg_process_reached_driver(void)
{
    return atomic_load_explicit(&reached, memory_order_acquire);
}

void vg_process_forget_reached(void)
{
    atomic_store(&reached, false);
}
