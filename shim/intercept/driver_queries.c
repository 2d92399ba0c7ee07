/* What the shim itself asks the driver (and NVML): a device's properties,
 * the calling thread's current device, memory info, pool and graph-pool
 * reserves. The model and the outputs reach these only through the probes
 * installed here (devices.h), so that neither includes the CUDA boundary. */
#include "devices.h"
#include "log.h"
#include "real.h"

#include <cuda.h>
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---- NVML, loaded with dlopen when present ------------------------------- */

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} vg_nvml_process_info; /* nvmlProcessInfo_t as of NVML 11+ */

typedef int (*nvml_init_fn)(void);
typedef int (*nvml_by_pci_fn)(const char *, void **);
typedef int (*nvml_procs_fn)(void *, unsigned int *, vg_nvml_process_info *);
typedef struct {
    unsigned long long total, free, used;
} vg_nvml_memory;
typedef int (*nvml_memory_fn)(void *, vg_nvml_memory *);

static nvml_procs_fn nvml_processes;
static nvml_by_pci_fn nvml_by_pci;
static nvml_memory_fn nvml_memory;
static atomic_int nvml_state; /* 0 untried, 1 trying, 2 ready, 3 absent */
/* NVML's handle per device, looked up from its PCI bus id at the first
 * reading: a device first seen while another thread was still loading NVML
 * gets its handle then, not never. */
static _Atomic(void *) nvml_handle[VG_MAX_DEVICES];

/* Load NVML once, with the first device learned. */
static void nvml_load(void)
{
    int expected = 0;
    if (atomic_compare_exchange_strong(&nvml_state, &expected, 1)) {
        void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
        nvml_init_fn init = lib ? (nvml_init_fn)vg_real_dlsym(lib, "nvmlInit_v2") : NULL;
        nvml_processes = lib ? (nvml_procs_fn)vg_real_dlsym(lib, "nvmlDeviceGetComputeRunningProcesses_v3") : NULL;
        nvml_by_pci = lib ? (nvml_by_pci_fn)vg_real_dlsym(lib, "nvmlDeviceGetHandleByPciBusId_v2") : NULL;
        nvml_memory = lib ? (nvml_memory_fn)vg_real_dlsym(lib, "nvmlDeviceGetMemoryInfo") : NULL;
        bool ok = init && nvml_processes && nvml_by_pci && init() == 0;
        atomic_store(&nvml_state, ok ? 2 : 3);
    }
}

/* NVML's handle of `device`, NULL while NVML is absent or still loading. */
static void *nvml_device(int device)
{
    if (device < 0 || device >= VG_MAX_DEVICES || atomic_load(&nvml_state) != 2)
        return NULL;
    void *h = atomic_load(&nvml_handle[device]);
    struct vg_device_info info;
    if (h == NULL && vg_device_info(device, &info) && info.pci_bus_id[0] != '\0' &&
        nvml_by_pci(info.pci_bus_id, &h) == 0)
        atomic_store(&nvml_handle[device], h);
    return h;
}

static bool process_usage(int device, uint64_t *used_bytes)
{
    void *h = nvml_device(device);
    if (h == NULL)
        return false;
    vg_nvml_process_info procs[64];
    unsigned int count = 64;
    if (nvml_processes(h, &count, procs) != 0)
        return false;
    unsigned int pid = (unsigned int)getpid();
    for (unsigned int i = 0; i < count && i < 64; i++) {
        if (procs[i].pid == pid && procs[i].usedGpuMemory != ~0ull) {
            *used_bytes = procs[i].usedGpuMemory;
            return true;
        }
    }
    /* This process has a context on the device, so NVML should list it:
     * inside a PID namespace (a container) NVML gives the host's pids. */
    static atomic_bool warned;
    if (count > 0 && count <= 64 && !atomic_exchange(&warned, true))
        vg_log("WARNING: NVML lists %u process(es) on device %d, none with this pid %u: a PID namespace "
               "(containers see their own pids, NVML gives the host's)? This process's NVML usage and "
               "'untracked' bytes are not available; the outputs leave them out",
               count, device, pid);
    return false;
}

static bool nvml_memory_of(int device, uint64_t *total_bytes, uint64_t *free_bytes)
{
    void *h = nvml_device(device);
    if (h == NULL || !nvml_memory)
        return false;
    vg_nvml_memory m;
    if (nvml_memory(h, &m) != 0)
        return false;
    *total_bytes = m.total;
    *free_bytes = m.free;
    return true;
}

/* ---- device properties --------------------------------------------------- */

static void format_uuid(const CUuuid *u, char *out, size_t size)
{
    const unsigned char *b = (const unsigned char *)u->bytes;
    snprintf(out, size, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
             b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static void learn_device(int d, struct vg_device_info *info)
{
    CUdevice dev = d;
    __typeof__(&cuDeviceGetName) get_name = vg_helper_fn(VG_H_cuDeviceGetName);
    __typeof__(&cuDeviceTotalMem_v2) get_total = vg_helper_fn(VG_H_cuDeviceTotalMem_v2);
    __typeof__(&cuDeviceGetAttribute) get_attr = vg_helper_fn(VG_H_cuDeviceGetAttribute);
    __typeof__(&cuDeviceGetPCIBusId) get_pci = vg_helper_fn(VG_H_cuDeviceGetPCIBusId);

    if (!get_name || get_name(info->name, sizeof(info->name), dev) != CUDA_SUCCESS)
        strcpy(info->name, "unknown");
    size_t total = 0;
    if (get_total && get_total(&total, dev) == CUDA_SUCCESS)
        info->total_bytes = total;
    int value = 0;
    info->pageable_memory_access = -1;
    if (get_attr && get_attr(&value, CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS, dev) == CUDA_SUCCESS)
        info->pageable_memory_access = value != 0;
    if (!get_pci || get_pci(info->pci_bus_id, sizeof(info->pci_bus_id), dev) != CUDA_SUCCESS)
        info->pci_bus_id[0] = '\0';
    __typeof__(&cuDeviceGetUuid_v2) get_uuid = vg_helper_fn(VG_H_cuDeviceGetUuid_v2);
    CUuuid uuid;
    if (get_uuid && get_uuid(&uuid, dev) == CUDA_SUCCESS)
        format_uuid(&uuid, info->uuid, sizeof(info->uuid));
    else
        strcpy(info->uuid, "unknown");
    nvml_load();
}

static int current_device(void)
{
    __typeof__(&cuCtxGetDevice) get_device = vg_helper_fn(VG_H_cuCtxGetDevice);
    CUdevice dev = -1;
    if (get_device == NULL || get_device(&dev) != CUDA_SUCCESS)
        return -1;
    return dev;
}

static void *current_context(void)
{
    __typeof__(&cuCtxGetCurrent) get_current = vg_helper_fn(VG_H_cuCtxGetCurrent);
    CUcontext ctx = NULL;
    if (get_current == NULL || get_current(&ctx) != CUDA_SUCCESS)
        return NULL;
    return ctx;
}

static bool mem_info(uint64_t *free_bytes, uint64_t *total_bytes)
{
    __typeof__(&cuMemGetInfo_v2) get_info = vg_helper_fn(VG_H_cuMemGetInfo_v2);
    size_t f = 0, t = 0;
    if (get_info == NULL || get_info(&f, &t) != CUDA_SUCCESS)
        return false;
    *free_bytes = f;
    *total_bytes = t;
    return true;
}

static bool pool_reserved(void *pool, uint64_t *bytes)
{
    __typeof__(&cuMemPoolGetAttribute) get_attr = vg_helper_fn(VG_H_cuMemPoolGetAttribute);
    cuuint64_t reserved = 0;
    if (get_attr == NULL || get_attr((CUmemoryPool)pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT, &reserved) != CUDA_SUCCESS)
        return false;
    *bytes = reserved;
    return true;
}

static bool graph_reserved(int device, uint64_t *bytes)
{
    __typeof__(&cuDeviceGetGraphMemAttribute) get_graph = vg_helper_fn(VG_H_cuDeviceGetGraphMemAttribute);
    cuuint64_t graph = 0;
    if (get_graph == NULL || get_graph(device, CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT, &graph) != CUDA_SUCCESS)
        return false;
    *bytes = graph;
    return true;
}

static const struct vg_driver_probes probes = {
    .learn_device = learn_device,
    .current_device = current_device,
    .current_context = current_context,
    .mem_info = mem_info,
    .process_usage = process_usage,
    .nvml_memory = nvml_memory_of,
    .pool_reserved = pool_reserved,
    .graph_reserved = graph_reserved,
};

/* Installing is setting one pointer: nothing is loaded or asked until the
 * first probe is used (never from here: children such as compilers inherit
 * LD_PRELOAD). */
__attribute__((constructor)) static void install_probes(void)
{
    vg_install_driver_probes(&probes);
}
