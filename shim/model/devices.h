/* What the shim knows of each device: learned once, when the program first
 * allocates on it (outside any lock), so the OOM path only reads. */
#ifndef VG_DEVICES_H
#define VG_DEVICES_H

#include "model.h"
#include "process.h"
#include <stdbool.h>

int vg_current_device_learn(void);

struct vg_device_info {
    bool known;
    char name[96];
    uint64_t total_bytes;
    int pageable_memory_access; /* 1, 0, or -1 when the driver did not say */
    char pci_bus_id[32];
    char uuid[48];              /* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", as nvidia-smi shows it */
};

/* The calling thread's current device, -1 without a context. Asked of the
 * driver (cuCtxGetDevice, and cuCtxGetCurrent for the context that owns what
 * the thread allocates: vg_tls_call.owner) only when this thread's context
 * may have changed since it was last asked (process.h: set, push, pop,
 * create on this thread; destroy or reset anywhere); otherwise remembered.
 * Learns the device's properties the first time it is seen. */
static inline int vg_current_device(void)
{
    const struct vg_tls_call *t = &vg_tls_call;
    if (t->epoch == atomic_load_explicit(&vg_process_epoch, memory_order_relaxed))
        return t->device;
    return vg_current_device_learn();
}
/* Learn a device's properties the first time it is named (by a pool, a VMM
 * location or a pointer's attributes rather than the current context). */
enum { VG_DEVICE_KNOWN = 2 };
extern atomic_int vg_device_state[VG_MAX_DEVICES];
void vg_device_learn(int device);
static inline void vg_device_seen(int device)
{
    if (device < 0 || device >= VG_MAX_DEVICES ||
        atomic_load_explicit(&vg_device_state[device], memory_order_acquire) != VG_DEVICE_KNOWN)
        vg_device_learn(device);
}
/* Snapshot of a device's properties; false if never seen. */
bool vg_device_info(int device, struct vg_device_info *out);

/* Readings that need the driver or NVML, installed by the interception
 * layer (driver_queries.c): the model and the outputs ask through these and
 * never include the CUDA boundary. Each returns false (current_device: -1)
 * when the driver does not answer. */
struct vg_driver_probes {
    void (*learn_device)(int device, struct vg_device_info *out);
    int (*current_device)(void);
    void *(*current_context)(void); /* the calling thread's CUcontext, NULL without one */
    bool (*mem_info)(uint64_t *free_bytes, uint64_t *total_bytes);
    bool (*process_usage)(int device, uint64_t *used_bytes);
    bool (*nvml_memory)(int device, uint64_t *total_bytes, uint64_t *free_bytes);
    bool (*pool_reserved)(void *pool, uint64_t *bytes);
    bool (*graph_reserved)(int device, uint64_t *bytes);
};
void vg_install_driver_probes(const struct vg_driver_probes *p);
/* NULL until installed. */
const struct vg_driver_probes *vg_driver_probes(void);

/* cuMemGetInfo_v2 for the calling thread's context. */
bool vg_device_mem_info(uint64_t *free_bytes, uint64_t *total_bytes);
/* This process's memory on `device` as nvidia-smi shows it (NVML). False
 * without NVML or when the driver does not say. No heap. */
bool vg_device_process_usage(int device, uint64_t *used_bytes);

/* Device memory as NVML sees it: needs no CUDA context (for threads that
 * have none, such as the endpoint's). False without NVML. */
bool vg_device_nvml_memory(int device, uint64_t *total_bytes, uint64_t *free_bytes);

#endif
