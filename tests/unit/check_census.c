/* Unit tests for one-pass reading of the table (shim/output/census.c) and for
 * naming code addresses (shim/output/callers.c): the K largest equal a full sort,
 * untagged VRAM by call site and by module adds up, and the module snapshot
 * names every address exactly as dladdr does. Entries go straight into the
 * table; no CUDA driver is involved. */
#include "callers.h"
#include "census.h"
#include "symbols.h"
#include "table.h"

#include <check.h>
#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *make_census_suite(void);

static struct vg_alloc entry(uintptr_t ptr, uint64_t size, int device, int kind, int purpose, void *caller)
{
    struct vg_alloc a;
    memset(&a, 0, sizeof(a));
    a.ptr = ptr;
    a.size = size;
    a.api = "cuMemAlloc_v2";
    a.caller = caller;
    a.device = (int16_t)device;
    a.kind = (uint8_t)kind;
    a.purpose = (uint8_t)purpose;
    return a;
}

/* Larger first, equal sizes by address: the order the census promises. */
static int by_size_then_key(const void *x, const void *y)
{
    const struct vg_alloc *a = x, *b = y;
    if (a->size != b->size)
        return a->size > b->size ? -1 : 1;
    return a->ptr < b->ptr ? -1 : (a->ptr > b->ptr);
}

enum { N = 3000 };
static struct vg_alloc all[N];

/* N entries on devices 0..2, sizes with many ties, a fixed pseudo-random order. */
static void fill(void)
{
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        all[i] = entry(0x7f0000000000ull + (x % 1000003) * 0x1000 + (uint64_t)i * 0x10, 4096 * (1 + x % 50),
                       (int)(x >> 20) % 3, VG_KIND_DEVICE, (int)(x >> 30) % 4, (void *)(uintptr_t)(0x1000 + i % 7));
        ck_assert(vg_table_insert(&all[i]));
    }
}

static void assert_top(const struct vg_top *t, int device, int k)
{
    static struct vg_alloc want[N];
    int n = 0;
    for (int i = 0; i < N; i++)
        if (device < 0 || all[i].device == device)
            want[n++] = all[i];
    qsort(want, (size_t)n, sizeof(want[0]), by_size_then_key);
    ck_assert_int_eq(t->n, n < k ? n : k);
    for (int i = 0; i < t->n; i++) {
        ck_assert_uint_eq(t->e[i].ptr, want[i].ptr);
        ck_assert_uint_eq(t->e[i].size, want[i].size);
    }
}

START_TEST(test_top_k_equals_a_full_sort)
{
    fill();
    static struct vg_alloc s10[10], s1000[1000], s5000[5000];
    struct vg_top t10, t1000, t5000;
    int ks[] = {10, 1000, 5000};
    struct vg_top *tops[] = {&t10, &t1000, &t5000};
    struct vg_alloc *storage[] = {s10, s1000, s5000};
    for (int i = 0; i < 3; i++) {
        vg_top_init(tops[i], storage[i], ks[i]);
        struct vg_census c = {.device = -1, .top = tops[i]};
        vg_census_take(&c);
        ck_assert_uint_eq(c.count, N);
        uint64_t bytes = 0;
        for (int j = 0; j < N; j++)
            bytes += all[j].size;
        ck_assert_uint_eq(c.bytes, bytes);
        assert_top(tops[i], -1, ks[i]);
    }
}
END_TEST

START_TEST(test_top_of_one_device_and_per_device)
{
    fill();
    static struct vg_alloc one[10], per[VG_MAX_DEVICES][10];
    struct vg_top t, by_device[VG_MAX_DEVICES];
    vg_top_init(&t, one, 10);
    struct vg_census c = {.device = 1, .top = &t};
    vg_census_take(&c);
    assert_top(&t, 1, 10);
    for (int d = 0; d < VG_MAX_DEVICES; d++)
        vg_top_init(&by_device[d], per[d], 10);
    struct vg_census all_devices = {.device = -1, .top_by_device = by_device};
    vg_census_take(&all_devices);
    for (int d = 0; d < 3; d++)
        assert_top(&by_device[d], d, 10);
    ck_assert_int_eq(by_device[3].n, 0);
}
END_TEST

/* The OOM breakdown's pass (one device, its largest and its call sites at
 * once): it glances at each entry and unpacks only those that may join the
 * largest, ties included (equal sizes by address). */
START_TEST(test_breakdown_pass_of_one_device)
{
    fill();
    static struct vg_alloc storage[1000];
    static struct vg_sites by_site;
    int ks[] = {0, 1, 10, 1000};
    for (int d = 0; d < 3; d++)
        for (int i = 0; i < 4; i++) {
            struct vg_top t;
            vg_top_init(&t, storage, ks[i]);
            vg_sites_init(&by_site, 1);
            struct vg_census c = {.device = d, .top = &t, .sites = &by_site};
            vg_census_take(&c);
            assert_top(&t, d, ks[i]);
            uint64_t count = 0, bytes = 0, untagged = 0, in_sites = 0;
            for (int j = 0; j < N; j++)
                if (all[j].device == d) {
                    count++;
                    bytes += all[j].size;
                    untagged += all[j].purpose == VG_PURPOSE_UNKNOWN ? all[j].size : 0;
                }
            for (int j = 0; j < by_site.n; j++) {
                ck_assert_int_eq(by_site.site[j].device, d);
                in_sites += by_site.site[j].bytes;
            }
            ck_assert_uint_eq(c.count, count);
            ck_assert_uint_eq(c.bytes, bytes);
            ck_assert_uint_eq(in_sites, untagged);
            ck_assert_int_eq(by_site.n, 7); /* the seven callers of fill() */
        }
}
END_TEST

START_TEST(test_top_of_nothing)
{
    static struct vg_alloc s[4];
    struct vg_top t;
    vg_top_init(&t, s, 4);
    struct vg_census c = {.device = -1, .top = &t};
    vg_census_take(&c);
    ck_assert_int_eq(t.n, 0);
    ck_assert_uint_eq(c.count, 0);
}
END_TEST

static struct vg_sites sites;

/* Untagged VRAM only: tagged, host and imported memory are not counted; the
 * 256th call site onwards add up under "(other call sites)". */
START_TEST(test_sites_untagged_vram_and_overflow)
{
    uint64_t untagged = 0;
    for (int i = 0; i < 300; i++) {
        struct vg_alloc a = entry(0x100000 + (uint64_t)i * 0x1000, 1000 + (uint64_t)i, 0, VG_KIND_DEVICE,
                                  VG_PURPOSE_UNKNOWN, (void *)(uintptr_t)(0x5000 + 16 * i));
        ck_assert(vg_table_insert(&a));
        untagged += a.size;
    }
    struct vg_alloc tagged = entry(0x900000, 7, 0, VG_KIND_DEVICE, VG_PURPOSE_WEIGHTS, (void *)0x5000);
    struct vg_alloc host = entry(0x901000, 7, 0, VG_KIND_HOST_PINNED, VG_PURPOSE_UNKNOWN, (void *)0x5000);
    struct vg_alloc other = entry(0x902000, 11, 1, VG_KIND_POOL, VG_PURPOSE_UNKNOWN, (void *)0x5000);
    ck_assert(vg_table_insert(&tagged) && vg_table_insert(&host) && vg_table_insert(&other));

    vg_sites_init(&sites, VG_MAX_DEVICES);
    struct vg_census c = {.device = -1, .sites = &sites};
    vg_census_take(&c);
    ck_assert_int_eq(sites.per_device[0], VG_SITES_PER_DEVICE);
    ck_assert_int_eq(sites.per_device[1], 1);
    uint64_t bytes = 0, count = 0, overflow = 0;
    int named = 0;
    for (int i = 0; i < sites.n; i++) {
        if (sites.site[i].device != 0)
            continue;
        bytes += sites.site[i].bytes;
        count += sites.site[i].count;
        if (sites.site[i].caller == NULL)
            overflow = sites.site[i].count;
        else
            named++;
    }
    ck_assert_uint_eq(bytes, untagged);
    ck_assert_uint_eq(count, 300);
    ck_assert_int_eq(named, VG_SITES_PER_DEVICE - 1);
    ck_assert_uint_eq(overflow, 300 - (VG_SITES_PER_DEVICE - 1));

    /* One device only (the OOM dump's pass): the same figures for it. */
    vg_sites_init(&sites, 1);
    struct vg_census one = {.device = 1, .sites = &sites};
    static struct vg_alloc s[1];
    struct vg_top t;
    vg_top_init(&t, s, 1);
    one.top = &t;
    vg_census_take(&one);
    ck_assert_int_eq(sites.n, 1);
    ck_assert_uint_eq(sites.site[0].bytes, 11);
    ck_assert_uint_eq(t.e[0].ptr, 0x902000);
}
END_TEST

static void anchor_function(void)
{
}

static void *code_in_this_binary(void)
{
    void (*fn)(void) = anchor_function;
    void *p;
    memcpy(&p, &fn, sizeof(p));
    return p;
}

static void *code_in_libc(void)
{
    /* not printf: sanitizer runtimes interpose it */
    const char *(*fn)(void) = gnu_get_libc_version;
    void *p;
    memcpy(&p, &fn, sizeof(p));
    return (char *)p + 3;
}

static struct vg_modules modules;

START_TEST(test_by_module_groups_call_sites)
{
    void *mine = code_in_this_binary(), *libc = code_in_libc();
    struct vg_alloc a[] = {
        entry(0x10000, 100, 0, VG_KIND_DEVICE, 0, mine),
        entry(0x20000, 200, 0, VG_KIND_DEVICE, 0, (char *)mine + 1),
        entry(0x30000, 1000, 0, VG_KIND_VMM, 0, libc),
        entry(0x40000, 5, 0, VG_KIND_ARRAY, 0, NULL),
    };
    for (size_t i = 0; i < sizeof(a) / sizeof(a[0]); i++)
        ck_assert(vg_table_insert(&a[i]));
    vg_sites_init(&sites, 1);
    vg_modules_init(&modules);
    struct vg_census c = {.device = 0, .sites = &sites};
    vg_census_take(&c);
    struct vg_module_bytes rows[VG_MODULES_SHOWN];
    int m = vg_census_by_module(&sites, 0, &modules, rows, VG_MODULES_SHOWN);
    ck_assert_int_eq(m, 3);
    ck_assert_str_eq(rows[0].name, "libc.so.6");
    ck_assert_uint_eq(rows[0].bytes, 1000);
    char base[64];
    vg_caller_text(mine, false, base, sizeof(base));
    ck_assert_str_eq(rows[1].name, base);
    ck_assert_uint_eq(rows[1].bytes, 300);
    ck_assert_uint_eq(rows[1].count, 2);
    ck_assert_str_eq(rows[2].name, "(other call sites)");
    ck_assert_uint_eq(rows[2].bytes, 5);

    /* Rows beyond `max` add up in the last one. */
    ck_assert_int_eq(vg_census_by_module(&sites, 0, &modules, rows, 2), 2);
    ck_assert_uint_eq(rows[0].bytes + rows[1].bytes, 1305);
}
END_TEST

/* The snapshot names an address exactly as dladdr does. */
START_TEST(test_snapshot_names_like_dladdr)
{
    void *mine = code_in_this_binary(), *libc = code_in_libc();
    int stack_var = 0;
    void *dl = dlsym(RTLD_DEFAULT, "dlsym");
    void *addrs[] = {mine, (char *)mine + 7, libc, dl, NULL, (void *)0x1234, &stack_var};
    vg_modules_init(&modules);
    for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++)
        for (int offset = 0; offset < 2; offset++) {
            char want[512], got[512];
            vg_caller_text(addrs[i], offset, want, sizeof(want));
            vg_modules_caller_text(&modules, addrs[i], offset, got, sizeof(got));
            ck_assert_msg(strcmp(want, got) == 0, "address %p: dladdr says \"%s\", the snapshot \"%s\"", addrs[i],
                          want, got);
        }
    ck_assert(modules.taken && modules.complete);
    ck_assert_int_ge(modules.n_modules, 2);
    ck_assert_int_ge(vg_modules_find(&modules, libc), 0);
    ck_assert_int_eq(vg_modules_find(&modules, (void *)0x1234), -1);
    ck_assert_str_eq(vg_modules_base_name(&modules, vg_modules_find(&modules, libc)), "libc.so.6");
}
END_TEST

/* A snapshot that lacks a module (it had no room) prints the raw address
 * and never asks dladdr: the breakdowns look up under their scratch lock,
 * and dladdr takes the loader's lock, which a thread inside dlopen holds
 * while a constructor allocates, OOMs and waits for that scratch lock. */
START_TEST(test_incomplete_snapshot_never_asks_dladdr)
{
    static struct vg_modules full;
    vg_modules_init(&full);
    full.taken = true; /* as if taken with no room for any module */
    full.complete = false;
    full.n_modules = full.n_segments = 0;
    void *libc = code_in_libc();
    char got[512], want[64];
    vg_modules_caller_text(&full, libc, true, got, sizeof(got));
    snprintf(want, sizeof(want), "%p", libc);
    ck_assert_msg(strcmp(got, want) == 0, "address %p not in the snapshot: \"%s\" (dladdr was asked?)", libc, got);
}
END_TEST

START_TEST(test_caller_text_unknown_and_null)
{
    char out[64];
    vg_caller_text(NULL, true, out, sizeof(out));
    ck_assert_str_eq(out, "(unknown)");
    vg_caller_text((void *)0x1234, true, out, sizeof(out));
    ck_assert_str_eq(out, "0x1234");
    struct vg_symbols *symbols = malloc(sizeof(*symbols));
    vg_symbols_init(symbols);
    vg_symbols_frame_text(symbols, code_in_libc(), out, sizeof(out));
    vg_symbols_done(symbols);
    free(symbols);
    ck_assert_msg(strncmp(out, "libc.so.6+0x", 12) == 0, "%s", out);
}
END_TEST

Suite *make_census_suite(void)
{
    Suite *s = suite_create("census");
    TCase *t = tcase_create("census");
    tcase_add_test(t, test_top_k_equals_a_full_sort);
    tcase_add_test(t, test_top_of_one_device_and_per_device);
    tcase_add_test(t, test_breakdown_pass_of_one_device);
    tcase_add_test(t, test_top_of_nothing);
    tcase_add_test(t, test_sites_untagged_vram_and_overflow);
    tcase_add_test(t, test_by_module_groups_call_sites);
    suite_add_tcase(s, t);
    TCase *c = tcase_create("callers");
    tcase_add_test(c, test_snapshot_names_like_dladdr);
    tcase_add_test(c, test_caller_text_unknown_and_null);
    tcase_add_test(c, test_incomplete_snapshot_never_asks_dladdr);
    suite_add_tcase(s, c);
    return s;
}
