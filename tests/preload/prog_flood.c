/* A program that retries refused allocations in a loop (issue 9 item 5:
 * 414 MB of journal and 420 MB of log in 10 s). The shim must write the
 * first few of each group and count the rest: its counts stay exact while
 * the log and the journal stay small.
 *
 *   PROG_FLOOD_RETRIES=N  refused cuMemAllocHost retries from one call site (default 100000)
 *   PROG_FLOOD_OOMS=N     cuMemAlloc of 1 TiB from one call site (OOM; default 1000)
 *   PROG_FLOOD_SITES=N    then 20 refusals from each of N distinct call sites (at most 256)
 *   PROG_FLOOD_FULL_STDERR=FD
 *                         first fill stderr (a pipe whose read end is FD) until it would block,
 *                         flood with it full (the shim's log must not block the program), then
 *                         drain it, refuse once more and find, in what the pipe then holds,
 *                         the shim saying how many log lines it lost. */
#include <cuda.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include "preload_common.h"

/* Call sites: one function each (noipa: never merged or inlined). */
#define SITE(n)                                                                                    \
    static __attribute__((noipa)) CUresult site_##n(void **p)                                      \
    {                                                                                              \
        return cuMemAllocHost(p, 4096);                                                            \
    }
#define SITES16(x)                                                                                 \
    SITE(x##0) SITE(x##1) SITE(x##2) SITE(x##3) SITE(x##4) SITE(x##5) SITE(x##6) SITE(x##7)        \
    SITE(x##8) SITE(x##9) SITE(x##a) SITE(x##b) SITE(x##c) SITE(x##d) SITE(x##e) SITE(x##f)
SITES16(s0) SITES16(s1) SITES16(s2) SITES16(s3) SITES16(s4) SITES16(s5) SITES16(s6) SITES16(s7)
SITES16(s8) SITES16(s9) SITES16(sa) SITES16(sb) SITES16(sc) SITES16(sd) SITES16(se) SITES16(sf)
#define LIST16(x)                                                                                  \
    site_##x##0, site_##x##1, site_##x##2, site_##x##3, site_##x##4, site_##x##5, site_##x##6,    \
    site_##x##7, site_##x##8, site_##x##9, site_##x##a, site_##x##b, site_##x##c, site_##x##d,    \
    site_##x##e, site_##x##f
static CUresult (*const sites[256])(void **) = {LIST16(s0), LIST16(s1), LIST16(s2), LIST16(s3), LIST16(s4),
                                                LIST16(s5), LIST16(s6), LIST16(s7), LIST16(s8), LIST16(s9),
                                                LIST16(sa), LIST16(sb), LIST16(sc), LIST16(sd), LIST16(se),
                                                LIST16(sf)};

static __attribute__((noipa)) CUresult retry_site(void **p)
{
    return cuMemAllocHost(p, 1 << 20);
}

static __attribute__((noipa)) CUresult fresh_site(void **p)
{
    return cuMemAllocHost(p, 2 << 20);
}

static __attribute__((noipa)) CUresult oom_site(CUdeviceptr *p)
{
    return cuMemAlloc(p, (size_t)1 << 40);
}

/* Write to stderr until the pipe would block (its flags restored after). */
static long fill_stderr(void)
{
    int flags = fcntl(2, F_GETFL);
    fcntl(2, F_SETFL, flags | O_NONBLOCK);
    static char junk[4096];
    memset(junk, '~', sizeof(junk) - 1);
    junk[sizeof(junk) - 1] = '\n';
    long total = 0;
    for (;;) {
        ssize_t n = write(2, junk, sizeof(junk));
        if (n <= 0)
            break;
        total += n;
    }
    fcntl(2, F_SETFL, flags);
    return total;
}

/* Read what the pipe holds (the read end is non-blocking), keeping the end. */
static size_t drain(int fd, char *keep, size_t size)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    size_t kept = 0;
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != '~' && kept + 1 < size)
                keep[kept++] = buf[i];
    }
    keep[kept] = '\0';
    return kept;
}

int main(void)
{
    start("prog_flood");
    CUdevice dev;
    CUcontext ctx;
    cuInit(0);
    cuDeviceGet(&dev, 0);
    cuDevicePrimaryCtxRetain(&ctx, dev);
    cuCtxSetCurrent(ctx);
    long retries = atol(env_or("PROG_FLOOD_RETRIES", "100000"));
    long ooms = atol(env_or("PROG_FLOOD_OOMS", "1000"));
    int n_sites = atoi(env_or("PROG_FLOOD_SITES", "0"));
    int pipe_fd = atoi(env_or("PROG_FLOOD_FULL_STDERR", "-1"));
    if (n_sites > 256)
        n_sites = 256;
    if (pipe_fd >= 0)
        CHECK("stderr filled until it would block", fill_stderr() > 0, "nothing written");
    struct snapshot s0 = snap();

    void *host = NULL;
    long refused = 0;
    for (long i = 0; i < retries; i++)
        refused += retry_site(&host) == CUDA_ERROR_NOT_PERMITTED;
    CHECK("every retry refused", refused == retries, "%ld of %ld", refused, retries);
    CUdeviceptr d = 0;
    long failed = 0;
    for (long i = 0; i < ooms; i++)
        failed += oom_site(&d) == CUDA_ERROR_OUT_OF_MEMORY;
    CHECK("every OOM returned unchanged", failed == ooms, "%ld of %ld", failed, ooms);
    long from_sites = 0;
    for (int s = 0; s < n_sites; s++)
        for (int i = 0; i < 20; i++)
            from_sites += sites[s](&host) == CUDA_ERROR_NOT_PERMITTED;
    CHECK("every call site refused", from_sites == 20L * n_sites, "%ld", from_sites);
    struct snapshot s1 = snap();
    CHECK("violations counted exactly", s1.violations - s0.violations == (unsigned long long)(retries + from_sites),
          "got %llu want %ld", s1.violations - s0.violations, retries + from_sites);
    CHECK("OOMs counted exactly", s1.ooms - s0.ooms == (unsigned long long)ooms, "got %llu want %ld",
          s1.ooms - s0.ooms, ooms);

    if (pipe_fd >= 0) {
        static char seen[1 << 20];
        char prefix[48], line_start[96]; /* the shim's lines: "vramguard[PID]: " */
        snprintf(prefix, sizeof(prefix), "vramguard[%d]: ", (int)getpid());
        snprintf(line_start, sizeof(line_start), "%sviolation: cuMemAllocHost", prefix);
        drain(pipe_fd, seen, sizeof(seen));
        CHECK("nothing of the shim's got through the full pipe", strstr(seen, prefix) == NULL, "%.300s", seen);
        fresh_site(&host); /* a new group: its line is written, after the note */
        drain(pipe_fd, seen, sizeof(seen));
        const char *note = strstr(seen, "log lines were lost: the log could not take them (it would have blocked");
        const char *line = strstr(seen, line_start);
        CHECK("the log says how many lines it lost, once it can", note != NULL && line != NULL && note < line,
              "pipe holds: %.600s", seen);
        printf("pipe after drain: %.300s\n", seen);
    }
    return finish("prog_flood");
}
