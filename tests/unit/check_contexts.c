/* Unit tests for shim/model/contexts.c (which context owns an allocation)
 * and the table's removal of a context's entries. CK_FORK: every test
 * starts with an empty registry and table. */
#include "contexts.h"
#include "table.h"

#include <check.h>
#include <string.h>

Suite *make_contexts_suite(void);

static int ctx_token[512];
#define CTX(i) ((void *)&ctx_token[i])

START_TEST(test_owner_indices)
{
    ck_assert_uint_eq(vg_context_owner_of(NULL), VG_CONTEXT_NONE);
    ck_assert_uint_eq(vg_context_owner_of(CTX(1)), VG_CONTEXT_NONE); /* never seen */
    vg_context_primary_seen(CTX(1), 0);
    vg_context_primary_seen(CTX(2), 3);
    ck_assert_uint_eq(vg_context_owner_of(CTX(1)), vg_context_primary(0));
    ck_assert_uint_eq(vg_context_owner_of(CTX(2)), vg_context_primary(3));
    ck_assert_int_eq(vg_context_primary_device(vg_context_primary(3)), 3);
    uint8_t c = vg_context_created(CTX(3));
    ck_assert_uint_ge(c, VG_CONTEXT_FIRST_CREATED);
    ck_assert_uint_eq(vg_context_owner_of(CTX(3)), c);
    ck_assert_int_eq(vg_context_primary_device(c), -1);
    /* a green context's allocations belong to its device's primary context */
    vg_context_green_seen(CTX(10), NULL, 3);
    vg_context_green_seen(CTX(10), CTX(11), -1);
    ck_assert_uint_eq(vg_context_owner_of(CTX(11)), vg_context_primary(3));
    ck_assert_int_eq(vg_context_green_forget(CTX(10)), 3);
    ck_assert_uint_eq(vg_context_owner_of(CTX(11)), VG_CONTEXT_NONE);
    ck_assert_int_eq(vg_context_green_forget(CTX(10)), -1);
    /* a destroyed created context frees its index */
    ck_assert_uint_eq(vg_context_destroyed(CTX(3)), c);
    ck_assert_uint_eq(vg_context_owner_of(CTX(3)), VG_CONTEXT_NONE);
    ck_assert_uint_eq(vg_context_destroyed(CTX(3)), VG_CONTEXT_NONE);
    ck_assert_uint_eq(vg_context_destroyed(CTX(1)), VG_CONTEXT_NONE); /* not a created one */
    ck_assert_int_eq(vg_context_device_of(CTX(1)), 0);
}
END_TEST

START_TEST(test_created_indices_run_out_and_come_back)
{
    int n = 0;
    for (int i = 0; i < 300; i++)
        n += vg_context_created(CTX(100 + i)) != VG_CONTEXT_NONE;
    ck_assert_int_eq(n, VG_CONTEXT_SLOTS - VG_CONTEXT_FIRST_CREATED);
    uint8_t freed = vg_context_destroyed(CTX(150));
    ck_assert_uint_ne(freed, VG_CONTEXT_NONE);
    ck_assert_uint_eq(vg_context_created(CTX(450)), freed);
}
END_TEST

static struct vg_alloc mk(uintptr_t ptr, uint64_t size, int kind, uint8_t owner, uint16_t pool)
{
    struct vg_alloc a;
    memset(&a, 0, sizeof(a));
    a.ptr = ptr;
    a.size = size;
    a.api = "cuMemAlloc_v2";
    a.kind = (uint8_t)kind;
    a.owner = owner;
    a.pool = pool;
    return a;
}

/* The index survives the table's packing, and removal takes exactly one
 * context's entries, counted as freed. */
START_TEST(test_table_removes_one_owner)
{
    uint8_t primary = vg_context_primary(0), created = VG_CONTEXT_FIRST_CREATED + 5;
    struct vg_alloc a = mk(0x7e0000001000, 1000, VG_KIND_DEVICE, primary, 0);
    struct vg_alloc b = mk(0x7e0000002000, 2000, VG_KIND_DEVICE, created, 0);
    struct vg_alloc c = mk(0x7e0000003000, 4000, VG_KIND_ARRAY, created, 0);
    struct vg_alloc p = mk(0x7e0000004000, 8000, VG_KIND_POOL, VG_CONTEXT_NONE, 255);
    ck_assert(vg_table_insert(&a) && vg_table_insert(&b) && vg_table_insert(&c) && vg_table_insert(&p));
    ck_assert(vg_table_add(0x7e0000005000, 16000, 0, created, "cuMemAlloc_v2", NULL,
                           vg_table_meta(0, VG_KIND_DEVICE, 0, 0, 0)));
    struct vg_alloc got;
    ck_assert(vg_table_lookup(0x7e0000002000, &got));
    ck_assert_uint_eq(got.owner, created);
    ck_assert_uint_eq(got.size, 2000);
    ck_assert(vg_table_lookup(0x7e0000004000, &got));
    ck_assert_uint_eq(got.pool, 255);
    ck_assert_uint_eq(got.owner, VG_CONTEXT_NONE);
    ck_assert(vg_table_lookup(0x7e0000005000, &got));
    ck_assert_uint_eq(got.owner, created);
    uint64_t bytes = 0;
    ck_assert_int_eq(vg_table_remove_owner(created, &bytes), 3);
    ck_assert_uint_eq(bytes, 2000 + 4000 + 16000);
    ck_assert_uint_eq(vg_table_live_count(), 2);
    ck_assert(vg_table_lookup(0x7e0000001000, NULL) && vg_table_lookup(0x7e0000004000, NULL));
    static struct vg_stats s;
    vg_table_stats(&s);
    ck_assert_uint_eq(s.cell[0][VG_KIND_DEVICE][0].live_bytes, 1000);
    ck_assert_uint_eq(s.cell[0][VG_KIND_DEVICE][0].frees, 2);
    ck_assert_uint_eq(s.cell[0][VG_KIND_ARRAY][0].live_bytes, 0);
    ck_assert_int_eq(vg_table_remove_owner(VG_CONTEXT_NONE, &bytes), 0); /* never dropped */
    ck_assert_uint_eq(vg_table_live_count(), 2);
}
END_TEST

Suite *make_contexts_suite(void)
{
    Suite *s = suite_create("contexts");
    TCase *t = tcase_create("registry");
    tcase_add_test(t, test_owner_indices);
    tcase_add_test(t, test_created_indices_run_out_and_come_back);
    tcase_add_test(t, test_table_removes_one_owner);
    suite_add_tcase(s, t);
    return s;
}
