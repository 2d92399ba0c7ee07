#include "devices.h"
#include "contexts.h"
#include "process.h"
#include "table.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { UNSEEN = 0, LEARNING = 1, KNOWN = VG_DEVICE_KNOWN };

static struct vg_device_info devices[VG_MAX_DEVICES];
atomic_int vg_device_state[VG_MAX_DEVICES];
#define device_state vg_device_state

/* Installed by the interception layer (driver_queries.c); NULL in a unit
 * test that links the model alone: every reading is then unavailable. */
static _Atomic(const struct vg_driver_probes *) probes;

void vg_install_driver_probes(const struct vg_driver_probes *p)
{
    atomic_store_explicit(&probes, p, memory_order_release);
}

const struct vg_driver_probes *vg_driver_probes(void)
{
    return atomic_load_explicit(&probes, memory_order_acquire);
}

void vg_device_learn(int dev)
{
    if (dev < 0 || dev >= VG_MAX_DEVICES ||
        atomic_load_explicit(&device_state[dev], memory_order_acquire) == KNOWN)
        return;
    int expected = UNSEEN;
    if (atomic_compare_exchange_strong(&device_state[dev], &expected, LEARNING)) {
        const struct vg_driver_probes *p = vg_driver_probes();
        if (p)
            p->learn_device(dev, &devices[dev]);
        else
            strcpy(devices[dev].name, "unknown");
        devices[dev].known = true;
        atomic_store_explicit(&device_state[dev], KNOWN, memory_order_release);
    }
}

int vg_current_device_learn(void)
{
    struct vg_tls_call *t = &vg_tls_call;
    uint32_t epoch = atomic_load_explicit(&vg_process_epoch, memory_order_acquire);
    const struct vg_driver_probes *p = vg_driver_probes();
    int dev = p ? p->current_device() : -1;
    if (dev < 0) {
        t->owner = VG_CONTEXT_NONE;
        return -1; /* no context: not cached, asked again next time */
    }
    /* The owner of what this thread allocates until its context changes. */
    t->owner = vg_context_owner_of(p->current_context());
    vg_device_seen(dev);
    /* New facts: the thread's stream facts were learned under the old ones. */
    for (int i = 0; i < VG_STREAM_FACTS; i++)
        t->streams[i].valid = false;
    t->device = dev;
    t->device_meta = vg_table_device_meta(dev);
    t->epoch = epoch;
    return dev;
}

bool vg_device_info(int device, struct vg_device_info *out)
{
    if (device < 0 || device >= VG_MAX_DEVICES ||
        atomic_load_explicit(&device_state[device], memory_order_acquire) != KNOWN)
        return false;
    *out = devices[device];
    return true;
}

bool vg_device_mem_info(uint64_t *free_bytes, uint64_t *total_bytes)
{
    const struct vg_driver_probes *p = vg_driver_probes();
    return p && p->mem_info(free_bytes, total_bytes);
}

bool vg_device_process_usage(int device, uint64_t *used_bytes)
{
    const struct vg_driver_probes *p = vg_driver_probes();
    return p && p->process_usage(device, used_bytes);
}

bool vg_device_nvml_memory(int device, uint64_t *total_bytes, uint64_t *free_bytes)
{
    const struct vg_driver_probes *p = vg_driver_probes();
    return p && p->nvml_memory(device, total_bytes, free_bytes);
}
