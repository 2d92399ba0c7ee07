/* Stress with exact totals, VMM included (README "Hardening"):
 *
 *   prog_vmm_threads THREADS OPS_PER_THREAD
 *
 * Each thread mixes, from a fixed seed, synchronous cuMemAlloc_v2 /
 * cuMemFree_v2 of 512 B .. 1 MiB and VMM mappings: it reserves 32 slots of
 * 2 MiB once, then maps a fresh 2 MiB handle into an empty slot
 * (cuMemCreate, cuMemMap, cuMemSetAccess, then cuMemRelease at once: the
 * memory lives until the unmap, as PyTorch's expandable segments do) or
 * unmaps a full one. Four times, with every thread parked on a barrier, the
 * main thread compares the shim's live device and VMM bytes and counts
 * (vramguard_usage) with the threads' own sums, and the shim's charged VRAM
 * with what the fake driver holds (fakecuda_charged_bytes): equal, not
 * close. Then everything is freed and checked again. Needs the shim. */
#include <cuda.h>
#include <pthread.h>
#include <stdint.h>

#include "preload_common.h"

unsigned long long fakecuda_charged_bytes(int dev);

enum { SLOTS = 32, LIVE_MAX = 256, CHECKPOINTS = 4 };
#define GRAN (2ull << 20)

struct worker {
    pthread_t tid;
    int index;
    long ops;
    uint64_t rng;
    CUdeviceptr live[LIVE_MAX];
    size_t live_size[LIVE_MAX];
    int n_live;
    CUdeviceptr va;
    int mapped[SLOTS];
    unsigned long long device_bytes, device_count, vmm_bytes, vmm_count;
    int errors;
};

static CUcontext ctx;
static pthread_barrier_t parked, resume;

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void alloc_or_free(struct worker *w)
{
    if (w->n_live > 0 && (w->n_live == LIVE_MAX || next(&w->rng) % 2)) {
        int i = (int)(next(&w->rng) % (uint64_t)w->n_live);
        if (cuMemFree_v2(w->live[i]) != CUDA_SUCCESS)
            w->errors++;
        w->device_bytes -= w->live_size[i];
        w->device_count--;
        w->live[i] = w->live[--w->n_live];
        w->live_size[i] = w->live_size[w->n_live];
        return;
    }
    size_t size = (size_t)512 << (next(&w->rng) % 12); /* 512 B .. 1 MiB */
    CUdeviceptr p;
    if (cuMemAlloc_v2(&p, size) != CUDA_SUCCESS) {
        w->errors++;
        return;
    }
    w->live[w->n_live] = p;
    w->live_size[w->n_live++] = size;
    w->device_bytes += size;
    w->device_count++;
}

static void map_or_unmap(struct worker *w)
{
    int slot = (int)(next(&w->rng) % SLOTS);
    CUdeviceptr at = w->va + (CUdeviceptr)slot * GRAN;
    if (w->mapped[slot]) {
        if (cuMemUnmap(at, GRAN) != CUDA_SUCCESS)
            w->errors++;
        w->mapped[slot] = 0;
        w->vmm_bytes -= GRAN;
        w->vmm_count--;
        return;
    }
    CUmemAllocationProp prop = {.type = CU_MEM_ALLOCATION_TYPE_PINNED,
                                .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
    CUmemAccessDesc acc = {.location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0},
                           .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
    CUmemGenericAllocationHandle h;
    if (cuMemCreate(&h, GRAN, &prop, 0) != CUDA_SUCCESS || cuMemMap(at, GRAN, 0, h, 0) != CUDA_SUCCESS ||
        cuMemSetAccess(at, GRAN, &acc, 1) != CUDA_SUCCESS || cuMemRelease(h) != CUDA_SUCCESS) {
        w->errors++;
        return;
    }
    w->mapped[slot] = 1;
    w->vmm_bytes += GRAN;
    w->vmm_count++;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    if (cuCtxSetCurrent(ctx) != CUDA_SUCCESS || cuMemAddressReserve(&w->va, SLOTS * GRAN, 0, 0, 0) != CUDA_SUCCESS)
        w->errors++;
    for (int c = 0; c < CHECKPOINTS; c++) {
        for (long i = 0; i < w->ops / CHECKPOINTS; i++) {
            if (next(&w->rng) % 8 == 0)
                map_or_unmap(w);
            else
                alloc_or_free(w);
        }
        pthread_barrier_wait(&parked);
        pthread_barrier_wait(&resume);
    }
    while (w->n_live > 0) /* drain */
        alloc_or_free(w);
    for (int s = 0; s < SLOTS; s++)
        if (w->mapped[s]) {
            if (cuMemUnmap(w->va + (CUdeviceptr)s * GRAN, GRAN) != CUDA_SUCCESS)
                w->errors++;
            w->mapped[s] = 0;
            w->vmm_bytes -= GRAN;
            w->vmm_count--;
        }
    if (cuMemAddressFree(w->va, SLOTS * GRAN) != CUDA_SUCCESS)
        w->errors++;
    return NULL;
}

static void compare(const char *when, struct worker *ws, int n)
{
    unsigned long long dev_b = 0, dev_n = 0, vmm_b = 0, vmm_n = 0, shim[4] = {0};
    for (int i = 0; i < n; i++) {
        dev_b += ws[i].device_bytes;
        dev_n += ws[i].device_count;
        vmm_b += ws[i].vmm_bytes;
        vmm_n += ws[i].vmm_count;
    }
    const struct vramguard_usage *u = usage();
    for (int p = 0; p < VRAMGUARD_PURPOSE_SLOTS; p++) {
        shim[0] += u->cell[0][VRAMGUARD_KIND_DEVICE][p].live_bytes;
        shim[1] += u->cell[0][VRAMGUARD_KIND_DEVICE][p].live_count;
        shim[2] += u->cell[0][VRAMGUARD_KIND_VMM][p].live_bytes;
        shim[3] += u->cell[0][VRAMGUARD_KIND_VMM][p].live_count;
    }
    char name[128];
    snprintf(name, sizeof name, "%s: device and VMM live bytes and counts exact", when);
    CHECK(name, shim[0] == dev_b && shim[1] == dev_n && shim[2] == vmm_b && shim[3] == vmm_n,
          "shim %llu B/%llu, %llu B/%llu; threads %llu B/%llu, %llu B/%llu", shim[0], shim[1], shim[2], shim[3],
          dev_b, dev_n, vmm_b, vmm_n);
    unsigned long long charged = u->charged_bytes[0], driver = fakecuda_charged_bytes(0);
    snprintf(name, sizeof name, "%s: charged VRAM equals the driver's", when);
    CHECK(name, charged == driver, "shim %llu, driver %llu", charged, driver);
}

int main(int argc, char **argv)
{
    start("prog_vmm_threads");
    int threads = argc > 1 ? atoi(argv[1]) : 16;
    long ops = argc > 2 ? atol(argv[2]) : 20000;
    if (threads < 1 || threads > 64)
        threads = 16;
    CUdevice dev;
    if (cuInit(0) != CUDA_SUCCESS || cuDeviceGet(&dev, 0) != CUDA_SUCCESS ||
        cuDevicePrimaryCtxRetain(&ctx, dev) != CUDA_SUCCESS || cuCtxSetCurrent(ctx) != CUDA_SUCCESS) {
        printf("FAIL CUDA did not start\n");
        return 1;
    }
    static struct worker ws[64];
    pthread_barrier_init(&parked, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&resume, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) {
        ws[i].index = i;
        ws[i].ops = ops;
        ws[i].rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
        pthread_create(&ws[i].tid, NULL, run, &ws[i]);
    }
    for (int c = 0; c < CHECKPOINTS; c++) {
        pthread_barrier_wait(&parked);
        char when[64];
        snprintf(when, sizeof when, "checkpoint %d", c + 1);
        compare(when, ws, threads);
        pthread_barrier_wait(&resume);
    }
    int errors = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(ws[i].tid, NULL);
        errors += ws[i].errors;
    }
    compare("after the drain", ws, threads);
    CHECK("no CUDA errors", errors == 0, "%d", errors);
    CHECK("the driver holds nothing", fakecuda_charged_bytes(0) == 0, "%llu", fakecuda_charged_bytes(0));
    printf("%d threads x %ld operations\n", threads, ops);
    return finish("prog_vmm_threads");
}
