/* Unit tests for shim/model/table.c: the allocation table and its per device x
 * kind x purpose totals. Every test runs in its own forked process (CK_FORK),
 * so the table starts empty. */
#include "table.h"

#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static struct vg_alloc mk(uintptr_t ptr, uint64_t size, int device, int kind, int purpose)
{
    struct vg_alloc a;
    memset(&a, 0, sizeof(a));
    a.ptr = ptr;
    a.size = size;
    a.api = "cuMemAlloc_v2";
    a.caller = NULL;
    a.device = (int16_t)device;
    a.kind = (uint8_t)kind;
    a.purpose = (uint8_t)purpose;
    a.label = 0;
    return a;
}

static struct vg_stats *stats_now(void)
{
    static struct vg_stats s; /* large: keep it off the stack */
    vg_table_stats(&s);
    return &s;
}

static const struct vg_cell *cell(int d, int k, int p)
{
    return &stats_now()->cell[d][k][p];
}

START_TEST(test_insert_lookup_remove)
{
    struct vg_alloc a = mk(0x7f0000001000, 4096, 0, VG_KIND_DEVICE, VG_PURPOSE_WEIGHTS);
    a.label = 7;
    a.caller = (void *)0x1234;
    ck_assert(vg_table_insert(&a));
    ck_assert_uint_eq(vg_table_live_count(), 1);

    struct vg_alloc got;
    memset(&got, 0, sizeof(got));
    ck_assert(vg_table_lookup(0x7f0000001000, &got));
    ck_assert_uint_eq(got.ptr, 0x7f0000001000);
    ck_assert_uint_eq(got.size, 4096);
    ck_assert_str_eq(got.api, "cuMemAlloc_v2");
    ck_assert_ptr_eq(got.caller, (void *)0x1234);
    ck_assert_int_eq(got.device, 0);
    ck_assert_int_eq(got.kind, VG_KIND_DEVICE);
    ck_assert_int_eq(got.purpose, VG_PURPOSE_WEIGHTS);
    ck_assert_int_eq(got.label, 7);
    /* lookup with NULL out is allowed */
    ck_assert(vg_table_lookup(0x7f0000001000, NULL));
    ck_assert(!vg_table_lookup(0x7f0000002000, &got));

    const struct vg_cell *c = cell(0, VG_KIND_DEVICE, VG_PURPOSE_WEIGHTS);
    ck_assert_uint_eq(c->live_bytes, 4096);
    ck_assert_uint_eq(c->live_count, 1);
    ck_assert_uint_eq(c->allocations, 1);
    ck_assert_uint_eq(c->frees, 0);

    struct vg_alloc out;
    memset(&out, 0, sizeof(out));
    ck_assert(vg_table_remove(0x7f0000001000, &out));
    ck_assert_uint_eq(out.size, 4096);
    ck_assert_int_eq(out.purpose, VG_PURPOSE_WEIGHTS);
    ck_assert_uint_eq(vg_table_live_count(), 0);
    ck_assert(!vg_table_lookup(0x7f0000001000, NULL));
    /* second remove of the same pointer: not found, totals untouched */
    ck_assert(!vg_table_remove(0x7f0000001000, &out));

    c = cell(0, VG_KIND_DEVICE, VG_PURPOSE_WEIGHTS);
    ck_assert_uint_eq(c->live_bytes, 0);
    ck_assert_uint_eq(c->live_count, 0);
    ck_assert_uint_eq(c->allocations, 1);
    ck_assert_uint_eq(c->frees, 1);
    ck_assert_uint_eq(c->peak_bytes, 4096);
}
END_TEST

START_TEST(test_empty_table_queries)
{
    /* Nothing inserted yet (capacity 0): every query must be safe. */
    struct vg_alloc out;
    ck_assert(!vg_table_lookup(0x1000, &out));
    ck_assert(!vg_table_remove(0x1000, &out));
    ck_assert_uint_eq(vg_table_live_count(), 0);
    struct vg_alloc big[4];
    ck_assert_int_eq(vg_table_largest(big, 4, -1), 0);
    struct vg_alloc *snap = (struct vg_alloc *)0x1;
    ck_assert_uint_eq(vg_table_snapshot(&snap), 0);
    ck_assert_ptr_null(snap);
    ck_assert_int_eq(stats_now()->device_count, 0);
}
END_TEST

START_TEST(test_ptr_zero_rejected)
{
    struct vg_alloc a = mk(0, 100, 0, VG_KIND_DEVICE, 0);
    ck_assert(!vg_table_insert(&a));
    ck_assert_uint_eq(vg_table_live_count(), 0);
    ck_assert_uint_eq(cell(0, VG_KIND_DEVICE, 0)->allocations, 0);
    ck_assert_uint_eq(cell(0, VG_KIND_DEVICE, 0)->live_bytes, 0);
    ck_assert(!vg_table_remove(0, NULL));
    ck_assert(!vg_table_lookup(0, NULL));
    /* rejection is not a drop for lack of memory */
    ck_assert_uint_eq(stats_now()->dropped, 0);
}
END_TEST

START_TEST(test_restore_after_failed_free)
{
    struct vg_alloc a = mk(0x5000, 1000, 1, VG_KIND_DEVICE, VG_PURPOSE_KV_CACHE);
    struct vg_alloc b = mk(0x6000, 24, 1, VG_KIND_DEVICE, VG_PURPOSE_KV_CACHE);
    ck_assert(vg_table_insert(&a));
    ck_assert(vg_table_insert(&b));

    struct vg_alloc removed;
    ck_assert(vg_table_remove(0x5000, &removed));
    const struct vg_cell *c = cell(1, VG_KIND_DEVICE, VG_PURPOSE_KV_CACHE);
    ck_assert_uint_eq(c->live_bytes, 24);
    ck_assert_uint_eq(c->frees, 1);

    /* the real free failed: put it back */
    vg_table_restore(&removed);
    c = cell(1, VG_KIND_DEVICE, VG_PURPOSE_KV_CACHE);
    ck_assert_uint_eq(c->live_bytes, 1024);
    ck_assert_uint_eq(c->live_count, 2);
    ck_assert_uint_eq(c->frees, 0);       /* the failed free does not count */
    ck_assert_uint_eq(c->allocations, 2); /* nor is the restore a new allocation */
    ck_assert_uint_eq(c->peak_bytes, 1024);
    ck_assert_uint_eq(vg_table_live_count(), 2);

    struct vg_alloc got;
    ck_assert(vg_table_lookup(0x5000, &got));
    ck_assert_uint_eq(got.size, 1000);

    /* and a later successful free works normally */
    ck_assert(vg_table_remove(0x5000, NULL));
    c = cell(1, VG_KIND_DEVICE, VG_PURPOSE_KV_CACHE);
    ck_assert_uint_eq(c->live_bytes, 24);
    ck_assert_uint_eq(c->frees, 1);
}
END_TEST

START_TEST(test_peaks_per_cell_and_device_peak)
{
    /* weights: 100 then 50 -> live 150, then free 100 -> live 50, peak 150 */
    struct vg_alloc w1 = mk(0x1000, 100, 0, VG_KIND_DEVICE, VG_PURPOSE_WEIGHTS);
    struct vg_alloc w2 = mk(0x2000, 50, 0, VG_KIND_DEVICE, VG_PURPOSE_WEIGHTS);
    struct vg_alloc kv = mk(0x3000, 200, 0, VG_KIND_DEVICE, VG_PURPOSE_KV_CACHE);
    struct vg_alloc pin = mk(0x4000, 10000, 0, VG_KIND_HOST_PINNED, VG_PURPOSE_WEIGHTS);
    ck_assert(vg_table_insert(&w1));
    ck_assert(vg_table_insert(&w2));
    ck_assert(vg_table_remove(0x1000, NULL));
    /* device VRAM now 50; add kv 200 -> 250 */
    ck_assert(vg_table_insert(&kv));
    /* pinned host memory must not count toward device_peak */
    ck_assert(vg_table_insert(&pin));
    ck_assert(vg_table_remove(0x3000, NULL));

    struct vg_stats *s = stats_now();
    ck_assert_uint_eq(s->cell[0][VG_KIND_DEVICE][VG_PURPOSE_WEIGHTS].peak_bytes, 150);
    ck_assert_uint_eq(s->cell[0][VG_KIND_DEVICE][VG_PURPOSE_WEIGHTS].live_bytes, 50);
    ck_assert_uint_eq(s->cell[0][VG_KIND_DEVICE][VG_PURPOSE_KV_CACHE].peak_bytes, 200);
    ck_assert_uint_eq(s->cell[0][VG_KIND_DEVICE][VG_PURPOSE_KV_CACHE].live_bytes, 0);
    ck_assert_uint_eq(s->cell[0][VG_KIND_HOST_PINNED][VG_PURPOSE_WEIGHTS].peak_bytes, 10000);
    /* device peak is the peak of the sum across purposes (50 + 200), not the
     * sum of per-cell peaks (150 + 200), and excludes pinned memory */
    ck_assert_uint_eq(s->device_peak[0], 250);
    ck_assert_uint_eq(s->device_peak[1], 0);
}
END_TEST

START_TEST(test_cells_per_device_kind_purpose)
{
    uintptr_t p = 0x10000;
    uint64_t expect[3][VG_KIND_COUNT][VG_PURPOSE_COUNT];
    memset(expect, 0, sizeof(expect));
    for (int d = 0; d < 3; d++)
        for (int k = 0; k < VG_KIND_COUNT; k++)
            for (int pu = 0; pu < VG_PURPOSE_COUNT; pu++) {
                /* a distinct size per cell, and (d+k+pu+1) allocations each */
                for (int n = 0; n <= d + k + pu; n++) {
                    uint64_t size = (uint64_t)(1 + d * 100 + k * 10 + pu);
                    struct vg_alloc a = mk(p, size, d, k, pu);
                    p += 0x100;
                    ck_assert(vg_table_insert(&a));
                    expect[d][k][pu] += size;
                }
            }
    struct vg_stats *s = stats_now();
    ck_assert_int_eq(s->device_count, 3);
    for (int d = 0; d < 3; d++)
        for (int k = 0; k < VG_KIND_COUNT; k++)
            for (int pu = 0; pu < VG_PURPOSE_COUNT; pu++) {
                const struct vg_cell *c = &s->cell[d][k][pu];
                ck_assert_msg(c->live_bytes == expect[d][k][pu], "cell %d/%d/%d live %llu expected %llu", d,
                              k, pu, (unsigned long long)c->live_bytes,
                              (unsigned long long)expect[d][k][pu]);
                ck_assert_uint_eq(c->live_count, (uint64_t)(d + k + pu + 1));
                ck_assert_uint_eq(c->allocations, (uint64_t)(d + k + pu + 1));
            }
    /* untouched cells stay zero */
    ck_assert_uint_eq(s->cell[3][0][0].allocations, 0);
    ck_assert_uint_eq(s->cell[0][0][VG_PURPOSE_COUNT].allocations, 0);
}
END_TEST

START_TEST(test_growth_thousands_exact_totals)
{
    enum { N = 5000 };
    uint64_t total = 0;
    for (int i = 0; i < N; i++) {
        /* addresses aligned like real allocations (hash uses ptr >> 4) */
        struct vg_alloc a = mk(0x700000000000 + (uintptr_t)i * 0x200, (uint64_t)(i + 1), 0,
                               VG_KIND_DEVICE, VG_PURPOSE_INTERMEDIATE);
        ck_assert(vg_table_insert(&a));
        total += (uint64_t)(i + 1);
    }
    ck_assert_uint_eq(vg_table_live_count(), N);
    ck_assert_uint_eq(cell(0, VG_KIND_DEVICE, VG_PURPOSE_INTERMEDIATE)->live_bytes, total);
    ck_assert_uint_eq(stats_now()->dropped, 0);
    /* every entry is still found with its own size after the rehashes */
    for (int i = 0; i < N; i++) {
        struct vg_alloc got;
        ck_assert(vg_table_lookup(0x700000000000 + (uintptr_t)i * 0x200, &got));
        ck_assert_uint_eq(got.size, (uint64_t)(i + 1));
    }
    /* remove every even index */
    uint64_t removed = 0;
    for (int i = 0; i < N; i += 2) {
        struct vg_alloc out;
        ck_assert(vg_table_remove(0x700000000000 + (uintptr_t)i * 0x200, &out));
        ck_assert_uint_eq(out.size, (uint64_t)(i + 1));
        removed += (uint64_t)(i + 1);
    }
    ck_assert_uint_eq(vg_table_live_count(), N / 2);
    const struct vg_cell *c = cell(0, VG_KIND_DEVICE, VG_PURPOSE_INTERMEDIATE);
    ck_assert_uint_eq(c->live_bytes, total - removed);
    ck_assert_uint_eq(c->live_count, N / 2);
    ck_assert_uint_eq(c->frees, N / 2);
    ck_assert_uint_eq(c->allocations, N);
    ck_assert_uint_eq(c->peak_bytes, total);
    for (int i = 0; i < N; i++)
        ck_assert(vg_table_lookup(0x700000000000 + (uintptr_t)i * 0x200, NULL) == (i % 2 == 1));
}
END_TEST

START_TEST(test_tombstone_churn_same_addresses)
{
    /* 64 addresses inserted and removed 2000 times each round-robin, with a
     * few long-lived entries that must survive every rehash. */
    for (int k = 0; k < 10; k++) {
        struct vg_alloc keep = mk(0x900000 + (uintptr_t)k * 0x40, 7, 0, VG_KIND_DEVICE, 0);
        ck_assert(vg_table_insert(&keep));
    }
    for (int round = 0; round < 2000; round++) {
        for (int j = 0; j < 64; j++) {
            struct vg_alloc a = mk(0x100000 + (uintptr_t)j * 0x1000, 3, 0, VG_KIND_DEVICE, 1);
            ck_assert(vg_table_insert(&a));
        }
        ck_assert_uint_eq(vg_table_live_count(), 74);
        for (int j = 0; j < 64; j++)
            ck_assert(vg_table_remove(0x100000 + (uintptr_t)j * 0x1000, NULL));
    }
    /* plus churn through ever-new addresses, which leaves real tombstones */
    for (int i = 0; i < 20000; i++) {
        struct vg_alloc a = mk(0x40000000 + (uintptr_t)i * 0x100, 1, 0, VG_KIND_DEVICE, 2);
        ck_assert(vg_table_insert(&a));
        ck_assert(vg_table_remove(a.ptr, NULL));
    }
    ck_assert_uint_eq(vg_table_live_count(), 10);
    for (int k = 0; k < 10; k++)
        ck_assert(vg_table_lookup(0x900000 + (uintptr_t)k * 0x40, NULL));
    const struct vg_cell *c1 = cell(0, VG_KIND_DEVICE, 1);
    ck_assert_uint_eq(c1->live_bytes, 0);
    ck_assert_uint_eq(c1->allocations, 2000 * 64);
    ck_assert_uint_eq(c1->frees, 2000 * 64);
    ck_assert_uint_eq(c1->peak_bytes, 64 * 3);
    const struct vg_cell *c2 = cell(0, VG_KIND_DEVICE, 2);
    ck_assert_uint_eq(c2->live_count, 0);
    ck_assert_uint_eq(c2->allocations, 20000);
    ck_assert_uint_eq(cell(0, VG_KIND_DEVICE, 0)->live_bytes, 70);
    ck_assert_uint_eq(stats_now()->dropped, 0);
}
END_TEST

START_TEST(test_replace_reused_address)
{
    struct vg_alloc old = mk(0xabc000, 500, 0, VG_KIND_DEVICE, VG_PURPOSE_WEIGHTS);
    struct vg_alloc fresh = mk(0xabc000, 80, 0, VG_KIND_DEVICE, VG_PURPOSE_KV_CACHE);
    ck_assert(vg_table_insert(&old));
    /* the driver hands out the same address again: the old one was freed
     * behind our back */
    ck_assert(vg_table_insert(&fresh));
    ck_assert_uint_eq(vg_table_live_count(), 1);
    struct vg_alloc got;
    ck_assert(vg_table_lookup(0xabc000, &got));
    ck_assert_uint_eq(got.size, 80);
    ck_assert_int_eq(got.purpose, VG_PURPOSE_KV_CACHE);

    const struct vg_cell *w = cell(0, VG_KIND_DEVICE, VG_PURPOSE_WEIGHTS);
    ck_assert_uint_eq(w->live_bytes, 0);
    ck_assert_uint_eq(w->live_count, 0);
    ck_assert_uint_eq(w->frees, 1);
    const struct vg_cell *k = cell(0, VG_KIND_DEVICE, VG_PURPOSE_KV_CACHE);
    ck_assert_uint_eq(k->live_bytes, 80);
    ck_assert_uint_eq(k->live_count, 1);
    ck_assert_uint_eq(k->allocations, 1);

    ck_assert(vg_table_remove(0xabc000, NULL));
    ck_assert_uint_eq(vg_table_live_count(), 0);
    ck_assert_uint_eq(cell(0, VG_KIND_DEVICE, VG_PURPOSE_KV_CACHE)->live_bytes, 0);
}
END_TEST

START_TEST(test_largest_order_filter_max)
{
    static const uint64_t sizes[] = {300, 10, 5000, 42, 999, 7, 5000, 1};
    static const int devs[] = {0, 1, 0, 1, 0, 1, 1, 0};
    for (int i = 0; i < 8; i++) {
        struct vg_alloc a = mk(0x1000 * (uintptr_t)(i + 1), sizes[i], devs[i], VG_KIND_DEVICE, 0);
        ck_assert(vg_table_insert(&a));
    }
    struct vg_alloc out[16];
    memset(out, 0xee, sizeof(out));

    int n = vg_table_largest(out, 16, -1);
    ck_assert_int_eq(n, 8);
    for (int i = 1; i < n; i++)
        ck_assert_msg(out[i - 1].size >= out[i].size, "not descending at %d", i);
    ck_assert_uint_eq(out[0].size, 5000);
    ck_assert_uint_eq(out[1].size, 5000);
    ck_assert_uint_eq(out[7].size, 1);

    /* max limits the count and keeps the largest */
    memset(out, 0xee, sizeof(out));
    n = vg_table_largest(out, 3, -1);
    ck_assert_int_eq(n, 3);
    ck_assert_uint_eq(out[0].size, 5000);
    ck_assert_uint_eq(out[1].size, 5000);
    ck_assert_uint_eq(out[2].size, 999);
    /* nothing written past max */
    unsigned char guard[sizeof(out[3])];
    memset(guard, 0xee, sizeof(guard));
    ck_assert(memcmp(&out[3], guard, sizeof(guard)) == 0);

    /* device filter */
    n = vg_table_largest(out, 16, 1);
    ck_assert_int_eq(n, 4);
    ck_assert_uint_eq(out[0].size, 5000);
    ck_assert_uint_eq(out[0].ptr, 0x7000);
    ck_assert_uint_eq(out[1].size, 42);
    ck_assert_uint_eq(out[2].size, 10);
    ck_assert_uint_eq(out[3].size, 7);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(out[i].device, 1);

    n = vg_table_largest(out, 2, 0);
    ck_assert_int_eq(n, 2);
    ck_assert_uint_eq(out[0].ptr, 0x3000);
    ck_assert_uint_eq(out[1].size, 999);

    ck_assert_int_eq(vg_table_largest(out, 16, 5), 0);
    ck_assert_int_eq(vg_table_largest(out, 0, -1), 0);
    ck_assert_int_eq(vg_table_largest(out, -3, -1), 0);
}
END_TEST

START_TEST(test_largest_many_entries)
{
    /* 3000 entries with shuffled sizes: the top 10 must be exactly the 10
     * largest, in order. */
    enum { N = 3000 };
    for (int i = 0; i < N; i++) {
        uint64_t size = (uint64_t)((i * 7919) % N) + 1; /* permutation of 1..N */
        struct vg_alloc a = mk(0x800000 + (uintptr_t)i * 0x80, size, 0, VG_KIND_DEVICE, 0);
        ck_assert(vg_table_insert(&a));
    }
    struct vg_alloc out[10];
    ck_assert_int_eq(vg_table_largest(out, 10, -1), 10);
    for (int i = 0; i < 10; i++)
        ck_assert_uint_eq(out[i].size, (uint64_t)(N - i));
}
END_TEST

static int cmp_ptr(const void *a, const void *b)
{
    const struct vg_alloc *x = a, *y = b;
    return x->ptr < y->ptr ? -1 : x->ptr > y->ptr;
}

START_TEST(test_snapshot)
{
    for (int i = 0; i < 100; i++) {
        struct vg_alloc a = mk(0x10000 + (uintptr_t)i * 0x100, (uint64_t)i + 1, i % 3, i % 2, i % 4);
        ck_assert(vg_table_insert(&a));
    }
    for (int i = 0; i < 100; i += 3)
        ck_assert(vg_table_remove(0x10000 + (uintptr_t)i * 0x100, NULL));

    struct vg_alloc *snap = NULL;
    size_t n = vg_table_snapshot(&snap);
    ck_assert_uint_eq(n, 66);
    ck_assert_ptr_nonnull(snap);
    qsort(snap, n, sizeof(*snap), cmp_ptr);
    size_t k = 0;
    for (int i = 0; i < 100; i++) {
        if (i % 3 == 0)
            continue;
        ck_assert_uint_eq(snap[k].ptr, 0x10000 + (uintptr_t)i * 0x100);
        ck_assert_uint_eq(snap[k].size, (uint64_t)i + 1);
        ck_assert_int_eq(snap[k].device, i % 3);
        ck_assert_int_eq(snap[k].kind, i % 2);
        ck_assert_int_eq(snap[k].purpose, i % 4);
        k++;
    }
    ck_assert_uint_eq(k, n);
    free(snap);
}
END_TEST

START_TEST(test_reset)
{
    for (int i = 0; i < 50; i++) {
        struct vg_alloc a = mk(0x2000 + (uintptr_t)i * 0x10, 10, 2, VG_KIND_DEVICE, 1);
        ck_assert(vg_table_insert(&a));
    }
    ck_assert_int_eq(stats_now()->device_count, 3);
    vg_table_reset();
    ck_assert_uint_eq(vg_table_live_count(), 0);
    ck_assert(!vg_table_lookup(0x2000, NULL));
    struct vg_stats *s = stats_now();
    ck_assert_int_eq(s->device_count, 0);
    ck_assert_uint_eq(s->device_peak[2], 0);
    ck_assert_uint_eq(s->cell[2][VG_KIND_DEVICE][1].live_bytes, 0);
    ck_assert_uint_eq(s->cell[2][VG_KIND_DEVICE][1].allocations, 0);
    ck_assert_uint_eq(s->cell[2][VG_KIND_DEVICE][1].peak_bytes, 0);
    /* usable again after a reset */
    struct vg_alloc a = mk(0x2000, 77, 0, VG_KIND_DEVICE, 0);
    ck_assert(vg_table_insert(&a));
    ck_assert_uint_eq(vg_table_live_count(), 1);
    ck_assert_uint_eq(cell(0, VG_KIND_DEVICE, 0)->live_bytes, 77);
}
END_TEST

START_TEST(test_device_out_of_range_last_slot)
{
    struct vg_alloc hi = mk(0x1000, 11, 99, VG_KIND_DEVICE, 0);
    struct vg_alloc neg = mk(0x2000, 22, -1, VG_KIND_DEVICE, 0);
    struct vg_alloc at = mk(0x3000, 33, VG_MAX_DEVICES, VG_KIND_DEVICE, 0);
    ck_assert(vg_table_insert(&hi));
    ck_assert(vg_table_insert(&neg));
    ck_assert(vg_table_insert(&at));
    struct vg_stats *s = stats_now();
    const struct vg_cell *c = &s->cell[VG_MAX_DEVICES - 1][VG_KIND_DEVICE][0];
    ck_assert_uint_eq(c->live_bytes, 66);
    ck_assert_uint_eq(c->live_count, 3);
    ck_assert_int_eq(s->device_count, VG_MAX_DEVICES);
    ck_assert_uint_eq(s->device_peak[VG_MAX_DEVICES - 1], 66);
    ck_assert_uint_eq(s->cell[0][VG_KIND_DEVICE][0].live_bytes, 0);
    /* removing keeps totals consistent */
    ck_assert(vg_table_remove(0x2000, NULL));
    ck_assert_uint_eq(stats_now()->cell[VG_MAX_DEVICES - 1][VG_KIND_DEVICE][0].live_bytes, 44);
}
END_TEST

/* A reference model: a plain array of what should be live. Random inserts,
 * removes (some of addresses never inserted), failed frees put back,
 * address reuse, pool removal; after every step batch the table must agree
 * entry by entry and in its totals. Keys are chosen so that many share a
 * probe run (backward-shift deletion is exercised across runs and the
 * wrap-around of a shard). */
enum { REF_MAX = 6000 };
static struct vg_alloc ref[REF_MAX];
static int ref_n;

static int ref_find(uintptr_t p)
{
    for (int i = 0; i < ref_n; i++)
        if (ref[i].ptr == p)
            return i;
    return -1;
}

static void check_against_ref(void)
{
    uint64_t live[VG_KIND_SLOTS] = {0};
    for (int i = 0; i < ref_n; i++) {
        struct vg_alloc got;
        ck_assert_msg(vg_table_lookup(ref[i].ptr, &got), "0x%lx missing", (unsigned long)ref[i].ptr);
        ck_assert_uint_eq(got.size, ref[i].size);
        ck_assert_int_eq(got.device, ref[i].device);
        ck_assert_int_eq(got.kind, ref[i].kind);
        ck_assert_int_eq(got.pool, ref[i].pool);
        live[ref[i].kind] += ref[i].size;
    }
    ck_assert_uint_eq(vg_table_live_count(), (uint64_t)ref_n);
    for (int k = 0; k < VG_KIND_SLOTS; k++) {
        uint64_t sum = 0;
        for (int p = 0; p < VG_PURPOSE_SLOTS; p++)
            sum += cell(0, k, p)->live_bytes;
        ck_assert_uint_eq(sum, live[k]);
    }
}

START_TEST(test_random_against_reference)
{
    srand(12345);
    for (int step = 0; step < 60000; step++) {
        int op = rand() % 10;
        /* Few distinct addresses, densely packed: long probe runs. */
        uintptr_t p = 0x7e0000000000u + (uintptr_t)(rand() % 8000) * 512;
        int i = ref_find(p);
        if (op < 5) {
            struct vg_alloc a = mk(p, 1 + (uint64_t)(rand() % 100000), 0, rand() % 2 ? VG_KIND_DEVICE : VG_KIND_POOL,
                                   rand() % VG_PURPOSE_COUNT);
            a.pool = a.kind == VG_KIND_POOL ? (uint16_t)(1 + rand() % 3) : 0;
            a.owner = (uint8_t)(1 + rand() % 3);
            ck_assert(vg_table_insert(&a));
            if (i >= 0)
                ref[i] = a; /* reused address: replaced */
            else if (ref_n < REF_MAX)
                ref[ref_n++] = a;
            else
                ck_assert(vg_table_remove(p, NULL)); /* keep the model bounded */
        } else if (op < 9) {
            struct vg_table_saved saved;
            bool had = vg_table_take(p, &saved);
            ck_assert_int_eq(had, i >= 0);
            if (had && rand() % 4 == 0) {
                vg_table_put_back(&saved); /* the real free failed */
            } else if (had) {
                ref[i] = ref[--ref_n];
            }
        } else if (rand() % 50 == 0) {
            uint8_t owner = (uint8_t)(1 + rand() % 3); /* a context that ended */
            int removed = vg_table_remove_owner(owner, NULL), expected = 0;
            for (int k = 0; k < ref_n;)
                if (ref[k].owner == owner) {
                    ref[k] = ref[--ref_n];
                    expected++;
                } else {
                    k++;
                }
            ck_assert_int_eq(removed, expected);
        }
        if (step % 5000 == 0)
            check_against_ref();
    }
    check_against_ref();
}
END_TEST

/* The hot path's insert and removal (table_hot.h) keep the same peaks as
 * the general ones: a device's VRAM counters (which share a cache line with
 * its first cells) move with its VRAM kinds only, per device; a removed
 * pinned entry on the same device leaves them alone. */
START_TEST(test_hot_insert_take_device_peaks)
{
    uint32_t dev1 = vg_table_meta(1, VG_KIND_DEVICE, VG_PURPOSE_UNKNOWN, 0, 0);
    uint32_t pool1 = vg_table_meta(1, VG_KIND_POOL, VG_PURPOSE_KV_CACHE, 0, 0);
    int32_t api = vg_table_api_of(vg_table_api_anchor);
    ck_assert(vg_table_add_vram(0x10000, 100, vg_table_place(0, 1), api, NULL, dev1));
    ck_assert(vg_table_add_vram(0x20000, 40, vg_table_place(2, 1), api, NULL, pool1));
    struct vg_alloc pin = mk(0x30000, 1000, 1, VG_KIND_HOST_PINNED, VG_PURPOSE_UNKNOWN);
    ck_assert(vg_table_insert(&pin));
    struct vg_table_saved saved;
    ck_assert(vg_table_take(0x30000, &saved)); /* pinned: not the device's VRAM */
    ck_assert(vg_table_take(0x10000, &saved)); /* VRAM now 40 */
    ck_assert_uint_eq(saved.size_pool & VG_TABLE_SIZE_MASK, 100);
    ck_assert(vg_table_add_vram(0x40000, 70, vg_table_place(0, 1), api, NULL, dev1)); /* 110 */
    ck_assert(vg_table_add_vram(0x50000, 5, vg_table_place(0, 1), api, NULL,
                                vg_table_meta(0, VG_KIND_DEVICE, VG_PURPOSE_UNKNOWN, 0, 0)));
    struct vg_stats *s = stats_now();
    ck_assert_int_eq(s->device_count, 2);
    ck_assert_uint_eq(s->device_peak[1], 140); /* 100 + 40 */
    ck_assert_uint_eq(s->device_peak[0], 5);
    ck_assert_uint_eq(vg_table_device_vram(s, 1), 110);
    ck_assert_uint_eq(s->cell[1][VG_KIND_DEVICE][VG_PURPOSE_UNKNOWN].peak_bytes, 100);
    ck_assert_uint_eq(s->cell[1][VG_KIND_POOL][VG_PURPOSE_KV_CACHE].peak_bytes, 40);
    ck_assert_uint_eq(s->cell[1][VG_KIND_HOST_PINNED][VG_PURPOSE_UNKNOWN].peak_bytes, 1000);
    /* a new device peak from the hot path: 110 + 50 */
    ck_assert(vg_table_add_vram(0x60000, 50, vg_table_place(0, 1), api, NULL, dev1));
    ck_assert_uint_eq(stats_now()->device_peak[1], 160);
}
END_TEST

/* ---- exact peaks with threads (peaks.h: budgets held by the threads) ---- */

enum { PT_THREADS = 8, PT_ROUNDS = 60, PT_PER = 64 };
static pthread_barrier_t pt_barrier;
static uint64_t pt_size[PT_THREADS][PT_ROUNDS][PT_PER]; /* 0: not allocated or freed */

static uintptr_t pt_addr(int t, int r, int i)
{
    return 0x10000000 + (((uintptr_t)t * PT_ROUNDS + (uintptr_t)r) * PT_PER + (uintptr_t)i) * 4096;
}

static uint32_t pt_meta(int i)
{
    return vg_table_meta(0, i & 1 ? VG_KIND_POOL : VG_KIND_DEVICE, i % 3 == 0 ? VG_PURPOSE_KV_CACHE : 0, 0, 0);
}

/* Each round: every thread allocates (hot and general inserts), then, after
 * a barrier, frees a share of what the thread after it allocated (its slack
 * lands in another thread's block), then another barrier. */
static void *pt_worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    int32_t api = vg_table_api_of(vg_table_api_anchor);
    for (int r = 0; r < PT_ROUNDS; r++) {
        for (int i = 0; i < PT_PER; i++) {
            uint64_t size = pt_size[t][r][i];
            if (i % 4 == 3) {
                struct vg_alloc a = mk(pt_addr(t, r, i), size, 0, i & 1 ? VG_KIND_POOL : VG_KIND_DEVICE,
                                       i % 3 == 0 ? VG_PURPOSE_KV_CACHE : 0);
                ck_assert(vg_table_insert(&a));
            } else {
                ck_assert(vg_table_add_vram(pt_addr(t, r, i), size, 0, api, NULL, pt_meta(i)));
            }
        }
        pthread_barrier_wait(&pt_barrier); /* the main thread checks the peaks */
        pthread_barrier_wait(&pt_barrier);
        int o = (t + 1) % PT_THREADS;
        for (int q = 0; q <= r; q++)
            for (int i = 0; i < PT_PER; i++)
                if (pt_size[o][q][i] && (i * 7 + q + r) % 3 == 0) {
                    struct vg_table_saved saved;
                    ck_assert(vg_table_take(pt_addr(o, q, i), &saved));
                }
        pthread_barrier_wait(&pt_barrier);
    }
    return NULL;
}

/* Allocations only between two barriers, frees only between the next two:
 * the live bytes are highest at the end of each allocation phase, so the
 * exact peak is the largest of those, per device and per cell. Sizes vary
 * by round, so some rounds set new peaks and others stay below. */
START_TEST(test_peaks_exact_with_threads)
{
    srand(7);
    for (int t = 0; t < PT_THREADS; t++)
        for (int r = 0; r < PT_ROUNDS; r++)
            for (int i = 0; i < PT_PER; i++)
                pt_size[t][r][i] = 512 + (uint64_t)(rand() % (r % 5 == 0 ? 64 : 8)) * 512;
    pthread_barrier_init(&pt_barrier, NULL, PT_THREADS + 1);
    pthread_t th[PT_THREADS];
    for (int t = 0; t < PT_THREADS; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, pt_worker, (void *)(intptr_t)t), 0);
    uint64_t live = 0, peak = 0, cell_live[VG_KIND_SLOTS][VG_PURPOSE_SLOTS] = {{0}},
             cell_peak[VG_KIND_SLOTS][VG_PURPOSE_SLOTS] = {{0}};
    int new_peaks = 0;
    for (int r = 0; r < PT_ROUNDS; r++) {
        for (int t = 0; t < PT_THREADS; t++)
            for (int i = 0; i < PT_PER; i++) {
                live += pt_size[t][r][i];
                cell_live[i & 1 ? VG_KIND_POOL : VG_KIND_DEVICE][i % 3 == 0 ? VG_PURPOSE_KV_CACHE : 0] +=
                    pt_size[t][r][i];
            }
        pthread_barrier_wait(&pt_barrier);
        new_peaks += live > peak;
        peak = live > peak ? live : peak;
        struct vg_stats *s = stats_now();
        ck_assert_uint_eq(vg_table_device_vram(s, 0), live);
        ck_assert_msg(s->device_peak[0] == peak, "round %d: device peak %llu, exact %llu", r,
                      (unsigned long long)s->device_peak[0], (unsigned long long)peak);
        for (int k = 0; k < VG_KIND_SLOTS; k++)
            for (int p = 0; p < VG_PURPOSE_COUNT; p++) {
                if (cell_live[k][p] > cell_peak[k][p])
                    cell_peak[k][p] = cell_live[k][p];
                ck_assert_msg(s->cell[0][k][p].peak_bytes == cell_peak[k][p], "round %d cell %d/%d: %llu, exact %llu",
                              r, k, p, (unsigned long long)s->cell[0][k][p].peak_bytes,
                              (unsigned long long)cell_peak[k][p]);
            }
        pthread_barrier_wait(&pt_barrier); /* the workers free */
        pthread_barrier_wait(&pt_barrier);
        for (int t = 0; t < PT_THREADS; t++) {
            int o = (t + 1) % PT_THREADS;
            for (int q = 0; q <= r; q++)
                for (int i = 0; i < PT_PER; i++)
                    if (pt_size[o][q][i] && (i * 7 + q + r) % 3 == 0) {
                        live -= pt_size[o][q][i];
                        cell_live[i & 1 ? VG_KIND_POOL : VG_KIND_DEVICE][i % 3 == 0 ? VG_PURPOSE_KV_CACHE : 0] -=
                            pt_size[o][q][i];
                        pt_size[o][q][i] = 0;
                    }
        }
    }
    for (int t = 0; t < PT_THREADS; t++)
        pthread_join(th[t], NULL);
    ck_assert_uint_eq(vg_table_device_vram(stats_now(), 0), live);
    ck_assert_msg(new_peaks >= 3 && new_peaks < PT_ROUNDS - 3, "%d rounds set a new peak: both kinds wanted",
                  new_peaks);
}
END_TEST

static void *alloc_free_exit(void *arg)
{
    (void)arg;
    int32_t api = vg_table_api_of(vg_table_api_anchor);
    uint32_t meta = vg_table_meta(0, VG_KIND_DEVICE, 0, 0, 0);
    ck_assert(vg_table_add_vram(0x900000, 1000, 0, api, NULL, meta));
    struct vg_table_saved saved;
    ck_assert(vg_table_take(0x900000, &saved)); /* its slack stays in this thread's block */
    return NULL;
}

static void *hold_one(void *arg)
{
    uintptr_t ptr = (uintptr_t)arg;
    struct vg_alloc a = mk(ptr, 10, 0, VG_KIND_DEVICE, 0);
    ck_assert(vg_table_insert(&a));
    pthread_barrier_wait(&pt_barrier); /* every thread holds its own block (or none is left) */
    pthread_barrier_wait(&pt_barrier);
    struct vg_table_saved saved;
    ck_assert(vg_table_take(ptr, &saved));
    return NULL;
}

/* A thread that ended left its slack behind: it still counts (no false new
 * peak). More threads than blocks: those without one work through the
 * pool, and the peaks stay exact. */
START_TEST(test_peaks_thread_exit_and_many_threads)
{
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, alloc_free_exit, NULL), 0);
    pthread_join(th, NULL);
    int32_t api = vg_table_api_of(vg_table_api_anchor);
    uint32_t meta = vg_table_meta(0, VG_KIND_DEVICE, 0, 0, 0);
    ck_assert(vg_table_add_vram(0xa00000, 1000, 0, api, NULL, meta));
    ck_assert_uint_eq(stats_now()->device_peak[0], 1000);
    ck_assert(vg_table_add_vram(0xa10000, 1, 0, api, NULL, meta));
    ck_assert_uint_eq(stats_now()->device_peak[0], 1001);
    struct vg_table_saved saved;
    ck_assert(vg_table_take(0xa00000, &saved));
    ck_assert(vg_table_take(0xa10000, &saved));

    enum { MANY = 300 }; /* more than the 256 blocks */
    static pthread_t many[MANY];
    pthread_barrier_init(&pt_barrier, NULL, MANY + 1);
    for (int i = 0; i < MANY; i++)
        ck_assert_int_eq(pthread_create(&many[i], NULL, hold_one, (void *)(uintptr_t)(0xb00000 + i * 512)), 0);
    pthread_barrier_wait(&pt_barrier);
    ck_assert_uint_eq(stats_now()->device_peak[0], MANY * 10); /* above the 1001 before */
    ck_assert_uint_eq(vg_table_device_vram(stats_now(), 0), MANY * 10);
    pthread_barrier_wait(&pt_barrier);
    for (int i = 0; i < MANY; i++)
        pthread_join(many[i], NULL);
    ck_assert_uint_eq(vg_table_device_vram(stats_now(), 0), 0);
    ck_assert(vg_table_add_vram(0xa00000, MANY * 10, 0, api, NULL, meta)); /* the peak again, not above */
    ck_assert_uint_eq(stats_now()->device_peak[0], MANY * 10);
    ck_assert(vg_table_add_vram(0xa10000, 1, 0, api, NULL, meta));
    ck_assert_uint_eq(stats_now()->device_peak[0], MANY * 10 + 1);
}
END_TEST

/* Host memory per live allocation stays within 64 bytes: at many sizes of
 * the live set (a shard grows by half, so just after growing is the worst
 * case), and under churn at a constant live set (freed slots are reused,
 * nothing accumulates). */
START_TEST(test_bytes_per_live_allocation)
{
    uintptr_t next = 0x100000;
    uint64_t worst = 0, live = 0;
    for (int n = 0; n < 300000; n++) {
        struct vg_alloc a = mk(next, 4096, 0, VG_KIND_DEVICE, 0);
        next += 4096;
        ck_assert(vg_table_insert(&a));
        live++;
        if (live >= 10000 && live % 997 == 0) {
            uint64_t per = vg_table_heap_bytes() / live;
            if (per > worst)
                worst = per;
        }
    }
    ck_assert_msg(worst <= 64, "%llu bytes per live allocation while growing", (unsigned long long)worst);
    uint64_t before = vg_table_heap_bytes();
    uintptr_t oldest = 0x100000;
    for (int n = 0; n < 600000; n++) { /* churn: free the oldest, allocate a new one */
        ck_assert(vg_table_remove(oldest, NULL));
        oldest += 4096;
        struct vg_alloc a = mk(next, 4096, 0, VG_KIND_DEVICE, 0);
        next += 4096;
        ck_assert(vg_table_insert(&a));
    }
    ck_assert_uint_eq(vg_table_live_count(), live);
    ck_assert_uint_eq(vg_table_heap_bytes(), before);
    ck_assert_msg(before / live <= 64, "%llu bytes per live allocation after churn",
                  (unsigned long long)(before / live));
}
END_TEST

Suite *make_table_suite(void)
{
    Suite *s = suite_create("table");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_insert_lookup_remove);
    tcase_add_test(tc, test_empty_table_queries);
    tcase_add_test(tc, test_ptr_zero_rejected);
    tcase_add_test(tc, test_restore_after_failed_free);
    tcase_add_test(tc, test_peaks_per_cell_and_device_peak);
    tcase_add_test(tc, test_cells_per_device_kind_purpose);
    tcase_add_test(tc, test_growth_thousands_exact_totals);
    tcase_add_test(tc, test_tombstone_churn_same_addresses);
    tcase_add_test(tc, test_replace_reused_address);
    tcase_add_test(tc, test_largest_order_filter_max);
    tcase_add_test(tc, test_largest_many_entries);
    tcase_add_test(tc, test_snapshot);
    tcase_add_test(tc, test_reset);
    tcase_add_test(tc, test_device_out_of_range_last_slot);
    tcase_add_test(tc, test_random_against_reference);
    tcase_add_test(tc, test_hot_insert_take_device_peaks);
    tcase_add_test(tc, test_peaks_exact_with_threads);
    tcase_add_test(tc, test_peaks_thread_exit_and_many_threads);
    tcase_add_test(tc, test_bytes_per_live_allocation);
    suite_add_tcase(s, tc);
    return s;
}
