/* Unit tests for shim/model/budget.c (the VRAMGUARD_LIMIT grammar and the
 * check's arithmetic) and its option row in config.c. */
#include "budget.h"
#include "config.h"
#include "model.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

Suite *make_budget_suite(void);

static char bad_entries[8][200];
static int n_bad;

static void record_bad(const char *entry, const char *why, void *ctx)
{
    (void)ctx;
    if (n_bad < 8)
        snprintf(bad_entries[n_bad], sizeof(bad_entries[0]), "%s|%s", entry, why);
    n_bad++;
}

static struct vg_budgets b;

static int compile(const char *spec)
{
    n_bad = 0;
    return vg_budget_compile(spec, &b, record_bad, NULL);
}

#define G (UINT64_C(1) << 30)
#define M (UINT64_C(1) << 20)

START_TEST(test_accepted_forms)
{
    ck_assert_int_eq(compile("total=40G,kv_cache=30G,weights=12G"), 3);
    ck_assert_int_eq(n_bad, 0);
    for (int d = 0; d < VG_MAX_DEVICES; d++) {
        ck_assert_uint_eq(b.limit[d][VG_BUDGET_TOTAL], 40 * G);
        ck_assert_uint_eq(b.limit[d][1 + VG_PURPOSE_KV_CACHE], 30 * G);
        ck_assert_uint_eq(b.limit[d][1 + VG_PURPOSE_WEIGHTS], 12 * G);
        ck_assert_uint_eq(b.limit[d][1 + VG_PURPOSE_INTERMEDIATE], VG_BUDGET_NONE);
        ck_assert_uint_eq(b.limit[d][1 + VG_PURPOSE_UNKNOWN], VG_BUDGET_NONE);
    }
    ck_assert(vg_budget_any(&b));

    ck_assert_int_eq(compile("0:total=40G,1:total=20G"), 2);
    ck_assert_uint_eq(b.limit[0][VG_BUDGET_TOTAL], 40 * G);
    ck_assert_uint_eq(b.limit[1][VG_BUDGET_TOTAL], 20 * G);
    ck_assert_uint_eq(b.limit[2][VG_BUDGET_TOTAL], VG_BUDGET_NONE);

    /* A device entry overrides the general one, whatever the order. */
    ck_assert_int_eq(compile("1:total=20G,total=40G"), 2);
    ck_assert_uint_eq(b.limit[0][VG_BUDGET_TOTAL], 40 * G);
    ck_assert_uint_eq(b.limit[1][VG_BUDGET_TOTAL], 20 * G);
    ck_assert_uint_eq(b.limit[7][VG_BUDGET_TOTAL], 40 * G);

    /* Sizes: K/M/G/T powers of 1024, optional i and B, plain bytes. */
    ck_assert_int_eq(compile("total=1Ki,weights=2MiB,kv_cache=3GB,intermediate=1T,unknown=512"), 5);
    ck_assert_uint_eq(b.limit[0][VG_BUDGET_TOTAL], 1024);
    ck_assert_uint_eq(b.limit[0][1 + VG_PURPOSE_WEIGHTS], 2 * M);
    ck_assert_uint_eq(b.limit[0][1 + VG_PURPOSE_KV_CACHE], 3 * G);
    ck_assert_uint_eq(b.limit[0][1 + VG_PURPOSE_INTERMEDIATE], UINT64_C(1) << 40);
    ck_assert_uint_eq(b.limit[0][1 + VG_PURPOSE_UNKNOWN], 512);

    ck_assert_int_eq(compile("none"), 0);
    ck_assert(!vg_budget_any(&b));
    ck_assert_int_eq(compile(""), 0);
    ck_assert(!vg_budget_any(&b));
}
END_TEST

START_TEST(test_malformed_entries_dropped)
{
    ck_assert_int_eq(compile("total=40G,kv_cache=lots,vram=1G,16:total=1G,x:total=1G,total,=1G,,weights=12G"), 2);
    ck_assert_int_eq(n_bad, 7);
    ck_assert_msg(strncmp(bad_entries[0], "kv_cache=lots|", 14) == 0, "%s", bad_entries[0]);
    ck_assert_msg(strncmp(bad_entries[1], "vram=1G|unknown scope", 21) == 0, "%s", bad_entries[1]);
    ck_assert_msg(strncmp(bad_entries[2], "16:total=1G|", 12) == 0, "%s", bad_entries[2]);
    ck_assert_msg(strncmp(bad_entries[3], "x:total=1G|", 11) == 0, "%s", bad_entries[3]);
    ck_assert_msg(strncmp(bad_entries[4], "total|", 6) == 0, "%s", bad_entries[4]);
    ck_assert_msg(strncmp(bad_entries[5], "=1G|", 4) == 0, "%s", bad_entries[5]);
    ck_assert_msg(strncmp(bad_entries[6], "|an empty entry", 15) == 0, "%s", bad_entries[6]);
    /* Nothing else tightened or loosened. */
    ck_assert_uint_eq(b.limit[3][VG_BUDGET_TOTAL], 40 * G);
    ck_assert_uint_eq(b.limit[3][1 + VG_PURPOSE_WEIGHTS], 12 * G);
    ck_assert_uint_eq(b.limit[3][1 + VG_PURPOSE_KV_CACHE], VG_BUDGET_NONE);
    ck_assert_int_eq(compile("total=99999999999T"), 0); /* overflows */
    ck_assert(!vg_budget_any(&b));
}
END_TEST

START_TEST(test_arithmetic)
{
    compile("total=64M,kv_cache=16M");
    /* Up to the budget exactly is allowed; one byte past is not. */
    ck_assert_int_eq(vg_budget_exceeded(&b, 0, VG_PURPOSE_UNKNOWN, 32 * M, 32 * M, 0, 32 * M), -1);
    ck_assert_int_eq(vg_budget_exceeded(&b, 0, VG_PURPOSE_UNKNOWN, 64 * M, 1, 0, 1), VG_BUDGET_TOTAL);
    /* Nothing new (a pool serving from its cache) passes nothing, even over budget. */
    ck_assert_int_eq(vg_budget_exceeded(&b, 0, VG_PURPOSE_UNKNOWN, 80 * M, 0, 0, 16 * M), -1);
    /* The purpose: its live bytes plus the size. */
    ck_assert_int_eq(vg_budget_exceeded(&b, 0, VG_PURPOSE_KV_CACHE, 0, 16 * M, 0, 16 * M), -1);
    ck_assert_int_eq(vg_budget_exceeded(&b, 0, VG_PURPOSE_KV_CACHE, 16 * M, 1, 16 * M, 1),
                     1 + VG_PURPOSE_KV_CACHE);
    ck_assert_int_eq(vg_budget_exceeded(&b, 0, VG_PURPOSE_WEIGHTS, 16 * M, 1, 16 * M, 1), -1);
    /* Total is named first when both would be passed. */
    ck_assert_int_eq(vg_budget_exceeded(&b, 0, VG_PURPOSE_KV_CACHE, 64 * M, 1, 16 * M, 1), VG_BUDGET_TOTAL);
    /* No overflow near the top. */
    ck_assert_int_eq(vg_budget_exceeded(&b, 0, VG_PURPOSE_UNKNOWN, 1, UINT64_MAX, 0, 0), VG_BUDGET_TOTAL);
    /* A device outside the table is never budgeted. */
    ck_assert_int_eq(vg_budget_exceeded(&b, -1, VG_PURPOSE_UNKNOWN, 64 * M, 1, 0, 1), -1);
    compile("1:total=8M");
    ck_assert_int_eq(vg_budget_exceeded(&b, 0, VG_PURPOSE_UNKNOWN, 64 * M, 1, 0, 1), -1);
    ck_assert_int_eq(vg_budget_exceeded(&b, 1, VG_PURPOSE_UNKNOWN, 8 * M, 1, 0, 1), VG_BUDGET_TOTAL);
}
END_TEST

static const char *env_limit;
static const char *getenv_limit(const char *name)
{
    if (strcmp(name, "VRAMGUARD_LIMIT") == 0)
        return env_limit;
    if (strcmp(name, "VRAMGUARD_LIMIT_MEMINFO") == 0)
        return "1";
    if (strcmp(name, "VRAMGUARD_FAIL_ON") == 0)
        return "oom,budget";
    if (strcmp(name, "VRAMGUARD_HEALTH_FAIL_ON") == 0)
        return "budget";
    return NULL;
}

static char warned[4][800];
static int n_warned;
static void warn(const char *m)
{
    if (n_warned < 4)
        snprintf(warned[n_warned], sizeof(warned[0]), "%s", m);
    n_warned++;
}

START_TEST(test_config_row)
{
    struct vg_config cfg;
    env_limit = "total=40G,kv_cache=lots";
    n_warned = 0;
    ck_assert_int_eq(vg_config_parse(&cfg, getenv_limit, warn), 1);
    ck_assert_int_eq(n_warned, 1);
    ck_assert_msg(strstr(warned[0], "VRAMGUARD_LIMIT") && strstr(warned[0], "\"kv_cache=lots\""), "%s", warned[0]);
    ck_assert_uint_eq(cfg.budgets.limit[0][VG_BUDGET_TOTAL], 40 * G);
    ck_assert(cfg.limit_meminfo);
    ck_assert_uint_eq(cfg.fail_on, VG_FAIL_ON_OOM | VG_FAIL_ON_BUDGET);
    ck_assert_uint_eq(cfg.health_fail_on, VG_FAIL_ON_BUDGET);
    char s[64];
    ck_assert_str_eq(vg_fail_on_string(cfg.fail_on, s, sizeof(s)), "oom,budget");
}
END_TEST

Suite *make_budget_suite(void)
{
    Suite *s = suite_create("budget");
    TCase *t = tcase_create("core");
    tcase_add_test(t, test_accepted_forms);
    tcase_add_test(t, test_malformed_entries_dropped);
    tcase_add_test(t, test_arithmetic);
    tcase_add_test(t, test_config_row);
    suite_add_tcase(s, t);
    return s;
}
