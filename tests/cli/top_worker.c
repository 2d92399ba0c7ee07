/* A worker for the `vramguard top` tests (tests/python/test_top.py): run
 * under the shim with VRAMGUARD_LISTEN set, it allocates what its arguments
 * say, prints "ready" and stays up until the file $TOP_WORKER_STOP exists
 * (at most 300 s), then frees everything and exits 0 (1 if a call that
 * should have succeeded failed).
 *
 *   top_worker [DEVICE:]PURPOSE=MIB... [[DEVICE:]oom=N] [[DEVICE:]managed=N]
 *              [[DEVICE:]pool=MIB]
 *
 * PURPOSE: weights, kv_cache, intermediate or unknown; MIB: whole MiB, one
 * cudaMalloc (kind device) on DEVICE (default 0). The others act on DEVICE,
 * else on the current device (that of the argument before).
 *   oom=N      N requests of 64 GiB, which the fake driver refuses (OOM
 *              events), or a VRAMGUARD_LIMIT budget first (budget OOMs);
 *   managed=N  N cudaMallocManaged of 1 MiB, refused by the default policy
 *              (violations);
 *   pool=MIB   MIB taken from the device's default pool (cudaMallocAsync)
 *              and given back (cudaFreeAsync, no synchronize): the pool
 *              keeps it as its cache, charged to the process. */
#include <cuda_runtime_api.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include "../preload/preload_common.h"

enum { MAX_BUFFERS = 64, MAX_SECONDS = 300 };

static int purpose_of(const char *name)
{
    static const char *const names[] = {"unknown", "weights", "kv_cache", "intermediate"};
    static const int values[] = {VRAMGUARD_UNKNOWN, VRAMGUARD_WEIGHTS, VRAMGUARD_KV_CACHE, VRAMGUARD_INTERMEDIATE};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return values[i];
    return -1;
}

static void wait_for_stop(void)
{
    const char *stop = getenv("TOP_WORKER_STOP");
    for (int tick = 0; tick < MAX_SECONDS * 20; tick++) {
        if (stop && access(stop, F_OK) == 0)
            return;
        struct timespec t = {0, 50 * 1000 * 1000};
        nanosleep(&t, NULL);
    }
}

int main(int argc, char **argv)
{
    start("top_worker");
    void *buffers[MAX_BUFFERS] = {0};
    int devices[MAX_BUFFERS], n = 0;
    for (int i = 1; i < argc; i++) {
        char what[64];
        unsigned long long count = 0;
        int device = 0;
        bool on_device = sscanf(argv[i], "%d:%63[a-z_]=%llu", &device, what, &count) == 3;
        if (!on_device && sscanf(argv[i], "%63[a-z_]=%llu", what, &count) != 2) {
            printf("FAIL top_worker: bad argument %s\n", argv[i]);
            return 2;
        }
        if (on_device || purpose_of(what) >= 0)
            CHECK("cudaSetDevice", cudaSetDevice(device) == cudaSuccess, "device %d", device);
        if (strcmp(what, "oom") == 0) {
            for (unsigned long long k = 0; k < count; k++) {
                void *p = NULL;
                CHECK("oom refused", cudaMalloc(&p, 64ull << 30) == cudaErrorMemoryAllocation, "not refused");
            }
        } else if (strcmp(what, "managed") == 0) {
            for (unsigned long long k = 0; k < count; k++) {
                void *p = NULL;
                CHECK("managed refused", cudaMallocManaged(&p, MiB, cudaMemAttachGlobal) != cudaSuccess,
                      "cudaMallocManaged succeeded");
            }
        } else if (strcmp(what, "pool") == 0) {
            void *p = NULL;
            CHECK("cudaMallocAsync", cudaMallocAsync(&p, count * MiB, 0) == cudaSuccess, "failed");
            CHECK("cudaFreeAsync", cudaFreeAsync(p, 0) == cudaSuccess, "failed");
        } else if (purpose_of(what) >= 0 && n < MAX_BUFFERS) {
            vramguard_purpose_push(purpose_of(what), NULL);
            CHECK("cudaMalloc", cudaMalloc(&buffers[n], count * MiB) == cudaSuccess, "%s", argv[i]);
            vramguard_purpose_pop();
            devices[n++] = device;
        } else {
            printf("FAIL top_worker: unknown %s\n", what);
            return 2;
        }
    }
    printf("ready\n");
    fflush(stdout);
    wait_for_stop();
    for (int i = 0; i < n; i++) {
        cudaSetDevice(devices[i]);
        CHECK("cudaFree", cudaFree(buffers[i]) == cudaSuccess, "buffer %d", i);
    }
    return finish("top_worker");
}
