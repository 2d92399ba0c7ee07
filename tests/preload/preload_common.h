/* Shared by the self-checking preload programs. Each program prints one
 * "PASS name" or "FAIL name: why" line per check and exits 0 only when all
 * pass, so the same binaries run under Check (fake driver) and alone on a
 * real GPU. Expectations that depend on the policy are computed from the
 * same VRAMGUARD_* variables the shim reads. */
#ifndef PRELOAD_COMMON_H
#define PRELOAD_COMMON_H

#include "vramguard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KiB (1024ull)
#define MiB (1024ull * 1024ull)

static int failures;

#define CHECK(name, cond, ...)                                                                     \
    do {                                                                                           \
        if (cond) {                                                                                \
            printf("PASS %s\n", name);                                                             \
        } else {                                                                                   \
            failures++;                                                                            \
            printf("FAIL %s: ", name);                                                             \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

static inline void start(const char *program)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!vramguard_loaded()) {
        printf("FAIL %s: the vramguard shim is not loaded (run with LD_PRELOAD=libvramguard.so)\n", program);
        exit(2);
    }
}

static inline int finish(const char *program)
{
    printf("%s: %s (%d failed checks)\n", program, failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}

static inline const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

/* What the shim will do with non-VRAM memory under the current settings. */
static inline int policy_rejects(void)
{
    return strcmp(env_or("VRAMGUARD_POLICY", "reject"), "reject") == 0;
}

static inline int pinned_allowed(void)
{
    return strcmp(env_or("VRAMGUARD_ALLOW", "none"), "pinned") == 0;
}

static inline int expect_pinned_ok(void)
{
    return pinned_allowed() || !policy_rejects();
}

static inline int expect_pinned_violation(void)
{
    return !pinned_allowed() && strcmp(env_or("VRAMGUARD_POLICY", "reject"), "off") != 0;
}

static inline int expect_managed_violation(void)
{
    return strcmp(env_or("VRAMGUARD_POLICY", "reject"), "off") != 0;
}

static struct vramguard_usage usage_buf;

static inline const struct vramguard_usage *usage(void)
{
    usage_buf.size = sizeof(usage_buf);
    if (vramguard_usage(&usage_buf) != 0)
        memset(&usage_buf, 0, sizeof(usage_buf));
    return &usage_buf;
}

/* Live bytes of one kind across devices and purposes. */
static inline unsigned long long kind_bytes(const struct vramguard_usage *u, int kind)
{
    unsigned long long sum = 0;
    for (int d = 0; d < VRAMGUARD_MAX_DEVICES; d++)
        for (int p = 0; p < VRAMGUARD_PURPOSE_SLOTS; p++)
            sum += u->cell[d][kind][p].live_bytes;
    return sum;
}

/* Live bytes of one kind now. */
static inline unsigned long long kind_live(int kind)
{
    return kind_bytes(usage(), kind);
}

/* Live allocations of every device, kind and purpose. */
static inline unsigned long long live_allocations(void)
{
    const struct vramguard_usage *u = usage();
    unsigned long long n = 0;
    for (int d = 0; d < VRAMGUARD_MAX_DEVICES; d++)
        for (int k = 0; k < VRAMGUARD_KIND_SLOTS; k++)
            for (int p = 0; p < VRAMGUARD_PURPOSE_SLOTS; p++)
                n += u->cell[d][k][p].live_count;
    return n;
}

struct snapshot {
    unsigned long long purpose[VRAMGUARD_PURPOSE_SLOTS];
    unsigned long long vram, pinned, managed, violations, ooms;
};

static inline struct snapshot snap(void)
{
    const struct vramguard_usage *u = usage();
    struct snapshot s;
    for (int p = 0; p < VRAMGUARD_PURPOSE_SLOTS; p++)
        s.purpose[p] = u->purpose_bytes[p];
    s.vram = u->vram_bytes;
    s.pinned = kind_bytes(u, VRAMGUARD_KIND_HOST_PINNED);
    s.managed = kind_bytes(u, VRAMGUARD_KIND_MANAGED);
    s.violations = u->violations;
    s.ooms = u->oom_events;
    return s;
}

/* The change in the driver's own used-memory figure across `alloc`,
 * compared with the change in the shim's charged VRAM on device 0: they must
 * agree within the driver's 2 MiB allocation granularity. `info` is
 * cudaMemGetInfo or cuMemGetInfo; `note`: print both figures as a "note:"
 * line too (a GPU run's record). */
#define MEMGETINFO_CHECK(name, info, alloc_stmt, note)                                             \
    do {                                                                                           \
        size_t f0_ = 0, t0_ = 0, f1_ = 0, t1_ = 0;                                                 \
        info(&f0_, &t0_);                                                                          \
        unsigned long long c0_ = usage()->charged_bytes[0];                                        \
        alloc_stmt;                                                                                \
        info(&f1_, &t1_);                                                                          \
        long long driver_ = (long long)f0_ - (long long)f1_;                                       \
        long long shim_ = (long long)(usage()->charged_bytes[0] - c0_);                            \
        if (note)                                                                                  \
            printf("note: %s: driver used %lld bytes more, shim charged %lld more\n", name, driver_, shim_); \
        CHECK(name, driver_ - shim_ < (long long)(2 * MiB) && shim_ - driver_ < (long long)(2 * MiB), \
              "cuMemGetInfo moved %lld bytes, the shim's charged VRAM %lld", driver_, shim_);       \
    } while (0)
#define AGREES_WITH_MEMGETINFO(name, info, alloc_stmt) MEMGETINFO_CHECK(name, info, alloc_stmt, 0)

#endif
