/* Unit tests for shim/model/pools.c: the pool registry. Every test runs in
 * its own forked process (CK_FORK), so the registry and table start empty. */
#include "pools.h"

#include <check.h>
#include <stdint.h>
#include <string.h>

Suite *make_pools_suite(void);

static CUmemoryPool handle(uintptr_t i)
{
    return (CUmemoryPool)(0x10000 + i * 16);
}

/* More pools than slots over a process's lifetime: a destroyed pool's slot
 * is given to a new one (issue 9 item 18b: no registration after 256). */
START_TEST(test_destroyed_slots_reused)
{
    for (uintptr_t i = 0; i < VG_MAX_POOLS; i++)
        ck_assert_uint_eq(vg_pool_register(handle(i), 0, VG_KIND_POOL), i + 1);
    ck_assert_uint_eq(vg_pool_register(handle(1000), 0, VG_KIND_POOL), 0); /* full, all live */
    vg_pool_destroyed(handle(7));
    uint16_t i = vg_pool_register(handle(1000), 1, VG_KIND_HOST_PINNED);
    ck_assert_uint_eq(i, 8);
    struct vg_pool p;
    ck_assert_uint_eq(vg_pool_find(handle(1000), &p), 8);
    ck_assert_int_eq(p.device, 1);
    ck_assert_int_eq(p.kind, VG_KIND_HOST_PINNED);
    ck_assert_uint_eq(vg_pool_find(handle(7), NULL), 0);
    /* the whole registry turned over twice */
    for (uintptr_t k = 0; k < VG_MAX_POOLS; k++)
        vg_pool_destroyed(k == 7 ? handle(1000) : handle(k));
    for (uintptr_t k = 0; k < 2 * VG_MAX_POOLS; k++) {
        ck_assert_uint_ne(vg_pool_register(handle(2000 + k), 0, VG_KIND_POOL), 0);
        vg_pool_destroyed(handle(2000 + k));
    }
}
END_TEST

/* A destroyed pool whose allocation is still live keeps its slot: the
 * entry names the pool by that index. */
START_TEST(test_slot_of_a_live_allocation_kept)
{
    for (uintptr_t i = 0; i < VG_MAX_POOLS; i++)
        vg_pool_register(handle(i), 0, VG_KIND_POOL);
    struct vg_alloc a;
    memset(&a, 0, sizeof(a));
    a.ptr = 0x7e0000001000;
    a.size = 4096;
    a.kind = VG_KIND_POOL;
    a.pool = 3;
    ck_assert(vg_table_insert(&a));
    vg_pool_destroyed(handle(2)); /* index 3, an allocation still live */
    ck_assert_uint_eq(vg_pool_register(handle(1000), 0, VG_KIND_POOL), 0);
    vg_pool_destroyed(handle(4)); /* index 5, nothing live */
    ck_assert_uint_eq(vg_pool_register(handle(1000), 0, VG_KIND_POOL), 5);
    ck_assert(vg_table_remove(0x7e0000001000, NULL));
    ck_assert_uint_eq(vg_pool_register(handle(1001), 0, VG_KIND_POOL), 3);
}
END_TEST

Suite *make_pools_suite(void)
{
    Suite *s = suite_create("pools");
    TCase *t = tcase_create("registry");
    tcase_add_test(t, test_destroyed_slots_reused);
    tcase_add_test(t, test_slot_of_a_live_allocation_kept);
    suite_add_tcase(s, t);
    return s;
}
