/* VRAM budgets (VRAMGUARD_LIMIT), driver API, run by check_preload.c with
 * VRAMGUARD_LIMIT=total=64M,kv_cache=16M: a synchronous allocation up to the
 * device total exactly is allowed and one byte past it refused with
 * CUDA_ERROR_OUT_OF_MEMORY (2) (no heap allocation on that path when the
 * malloc spy is preloaded); a purpose budget; VMM physical memory counted;
 * a stream-ordered allocation served from the pool's cache allowed while
 * one needing new VRAM is refused; budget OOMs are not device OOMs.
 * With VRAMGUARD_LIMIT_MEMINFO=1 cuMemGetInfo reports the budget. With
 * PROG_BUDGET_SOCKET=<path> (the endpoint's unix socket, VRAMGUARD_LISTEN)
 * it prints the budget lines of GET /metrics ("METRICS ...") and the status
 * of GET /health ("HEALTH <code>") at the end. */
#include <cuda.h>
#include <dlfcn.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "preload_common.h"

/* GET `what` on the endpoint's unix socket at `path`; the response, or NULL. */
static char *http_get(const char *path, const char *what)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            char req[128];
            int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", what);
            static char buf[1 << 17];
            size_t len = 0;
            ssize_t got;
            if (write(fd, req, (size_t)n) == n)
                while (len < sizeof(buf) - 1 && (got = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
                    len += (size_t)got;
            close(fd);
            buf[len] = '\0';
            return len ? buf : NULL;
        }
        if (fd >= 0)
            close(fd);
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL); /* the endpoint may still be starting */
    }
    return NULL;
}

static void print_endpoint(const char *socket_path)
{
    char *m = http_get(socket_path, "/metrics");
    for (char *line = m; line && *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        if (strncmp(line, "vramguard_budget_", 17) == 0)
            printf("METRICS %s\n", line);
        line = end ? end + 1 : NULL;
    }
    char *h = http_get(socket_path, "/health");
    printf("HEALTH %s\n", h && strstr(h, " 503 ") ? "503" : h && strstr(h, " 200 ") ? "200" : "?");
}

int main(void)
{
    start("prog_budget");
    CUdevice dev;
    CUcontext ctx;
    cuInit(0);
    cuDeviceGet(&dev, 0);
    cuDevicePrimaryCtxRetain(&ctx, dev);
    cuCtxSetCurrent(ctx);
    int meminfo = strcmp(env_or("VRAMGUARD_LIMIT_MEMINFO", "0"), "1") == 0;
    size_t f = 0, t = 0;
    if (meminfo) {
        CHECK("meminfo: total is the budget", cuMemGetInfo(&f, &t) == CUDA_SUCCESS && t == 64 * MiB,
              "total %zu", t);
        CHECK("meminfo: all of it free", f == 64 * MiB, "free %zu", f);
    }

    struct snapshot s0 = snap();
    CUdeviceptr a = 0, b = 0, c = 0;
    CHECK("32 MiB", cuMemAlloc(&a, 32 * MiB) == CUDA_SUCCESS, "failed");
    CHECK("up to the total budget exactly", cuMemAlloc(&b, 32 * MiB) == CUDA_SUCCESS, "failed");
    if (meminfo) {
        CHECK("meminfo: nothing free at the budget", cuMemGetInfo(&f, &t) == CUDA_SUCCESS && f == 0 &&
              t == 64 * MiB, "free %zu total %zu", f, t);
        CHECK("meminfo: cuMemGetInfo_v2 too", cuMemGetInfo_v2(&f, &t) == CUDA_SUCCESS && f == 0 && t == 64 * MiB,
              "free %zu total %zu", f, t);
    }
    long (*spy)(void) = (long (*)(void))dlsym(RTLD_DEFAULT, "spy_malloc_count");
    long before = spy ? spy() : 0;
    CUresult r = cuMemAlloc(&c, 1);
    long after = spy ? spy() : 0;
    CHECK("one byte past the total budget refused with CUDA_ERROR_OUT_OF_MEMORY", r == CUDA_ERROR_OUT_OF_MEMORY,
          "got %d", r);
    if (spy)
        CHECK("no heap allocation on the budget OOM path (breakdown included)", after == before,
              "%ld allocations", after - before);
    CHECK("a budget OOM is not a device OOM", snap().ooms == s0.ooms, "oom events %llu", snap().ooms - s0.ooms);
    CHECK("a budget OOM is not a violation", snap().violations == s0.violations, "violations");
    cuMemFree(b);

    /* Purpose budget: kv_cache=16M; 32 MiB charged. */
    CUdeviceptr k1 = 0, k2 = 0, u1 = 0;
    {
        VRAMGUARD_PURPOSE(VRAMGUARD_KV_CACHE)
        {
            CHECK("kv_cache up to its budget", cuMemAlloc(&k1, 16 * MiB) == CUDA_SUCCESS, "failed");
            r = cuMemAlloc(&k2, 1 * MiB);
            CHECK("kv_cache past its budget refused with 2", r == CUDA_ERROR_OUT_OF_MEMORY, "got %d", r);
        }
    }
    CHECK("another purpose still fits the total", cuMemAlloc(&u1, 1 * MiB) == CUDA_SUCCESS, "failed");
    cuMemFree(u1);

    /* VMM physical memory: 48 MiB charged. */
    CUmemAllocationProp prop = {0};
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = 0;
    size_t gran = 0;
    cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
    CUmemGenericAllocationHandle h = 0, h2 = 0;
    CHECK("cuMemCreate up to the budget", cuMemCreate(&h, 16 * MiB, &prop, 0) == CUDA_SUCCESS, "failed");
    r = cuMemCreate(&h2, gran, &prop, 0);
    CHECK("cuMemCreate past the budget refused with 2", r == CUDA_ERROR_OUT_OF_MEMORY, "got %d", r);
    cuMemRelease(h);

    /* Stream-ordered: 48 MiB charged, the pool keeps its reserve. */
    CUmemoryPool pool = NULL;
    CUstream s = NULL;
    cuStreamCreate(&s, CU_STREAM_NON_BLOCKING);
    cuDeviceGetDefaultMemPool(&pool, 0);
    cuuint64_t keep = UINT64_MAX;
    cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &keep);
    CUdeviceptr p1 = 0, p2 = 0, p3 = 0;
    CHECK("async 16 MiB up to the budget", cuMemAllocAsync(&p1, 16 * MiB, s) == CUDA_SUCCESS, "failed");
    cuMemFreeAsync(p1, s);
    cuStreamSynchronize(s);
    CHECK("async 16 MiB served from the pool's cache", cuMemAllocAsync(&p2, 16 * MiB, s) == CUDA_SUCCESS,
          "failed");
    cuMemFreeAsync(p2, s);
    cuStreamSynchronize(s);
    r = cuMemAllocAsync(&p3, 18 * MiB, s);
    CHECK("async needing 2 MiB of new VRAM refused with 2", r == CUDA_ERROR_OUT_OF_MEMORY, "got %d", r);
    cuStreamSynchronize(s);
    CHECK("still no device OOM", snap().ooms == s0.ooms, "oom events %llu", snap().ooms - s0.ooms);
    cuMemFree(k1);
    cuMemFree(a);
    const char *sock = getenv("PROG_BUDGET_SOCKET");
    if (sock && sock[0])
        print_endpoint(sock);
    return finish("prog_budget");
}
