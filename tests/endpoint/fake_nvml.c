/* A stand-in for libnvidia-ml.so.1 (only what shim/model/devices.c asks for), so
 * that the endpoint's NVML figures can be tested without a GPU: every device
 * has 1 GiB with 700 MiB free, and the calling process uses 64 MiB on it.
 * Built as build/tests/nvml/libnvidia-ml.so.1; found through LD_LIBRARY_PATH.
 *   FAKE_NVML_INIT_MS=N    nvmlInit_v2 takes N ms (a real one can take long)
 *   FAKE_NVML_PID_SHIFT=N  the process is listed as pid + N, as NVML lists
 *                          the host's pid of a process in a PID namespace */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} fake_process_info; /* nvmlProcessInfo_t (v3 calls) */

typedef struct {
    unsigned long long total, free, used;
} fake_memory; /* nvmlMemory_t */

enum { NVML_SUCCESS = 0, NVML_ERROR_INVALID_ARGUMENT = 2, NVML_ERROR_INSUFFICIENT_SIZE = 7 };
#define MiB (1024ull * 1024ull)

int nvmlInit_v2(void);
int nvmlDeviceGetHandleByPciBusId_v2(const char *bus_id, void **device);
int nvmlDeviceGetComputeRunningProcesses_v3(void *device, unsigned int *count, fake_process_info *infos);
int nvmlDeviceGetMemoryInfo(void *device, fake_memory *memory);

static char handle;

static long env_number(const char *name)
{
    const char *v = getenv(name);
    return v ? strtol(v, NULL, 10) : 0;
}

int nvmlInit_v2(void)
{
    long ms = env_number("FAKE_NVML_INIT_MS");
    struct timespec t = {ms / 1000, ms % 1000 * 1000000L};
    if (ms > 0)
        nanosleep(&t, NULL);
    return NVML_SUCCESS;
}

int nvmlDeviceGetHandleByPciBusId_v2(const char *bus_id, void **device)
{
    if (bus_id == 0 || bus_id[0] == '\0' || device == 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    *device = &handle;
    return NVML_SUCCESS;
}

int nvmlDeviceGetComputeRunningProcesses_v3(void *device, unsigned int *count, fake_process_info *infos)
{
    if (device != &handle || count == 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (*count < 1 || infos == 0) {
        *count = 1;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    infos[0].pid = (unsigned int)(getpid() + env_number("FAKE_NVML_PID_SHIFT"));
    infos[0].usedGpuMemory = 64 * MiB;
    infos[0].gpuInstanceId = infos[0].computeInstanceId = 0xffffffffu;
    *count = 1;
    return NVML_SUCCESS;
}

int nvmlDeviceGetMemoryInfo(void *device, fake_memory *memory)
{
    if (device != &handle || memory == 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    memory->total = 1024 * MiB;
    memory->free = 700 * MiB;
    memory->used = memory->total - memory->free;
    return NVML_SUCCESS;
}
