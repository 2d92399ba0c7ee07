/* Unit tests for shim/model/allow.c (the VRAMGUARD_ALLOW grammar, matching,
 * caps, the narrowest rule) and for the policy's use of it
 * (vg_policy_decide_call in shim/model/policy.c). */
#include "allow.h"
#include "config.h"
#include "model.h"
#include "policy.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

Suite *make_allow_suite(void);

static char bad_rules[8][200];
static int n_bad;

static void record_bad(const char *rule, const char *why, void *ctx)
{
    (void)ctx;
    if (n_bad < 8)
        snprintf(bad_rules[n_bad], sizeof(bad_rules[0]), "%s|%s", rule, why);
    n_bad++;
}

static struct vg_allowances compile(const char *spec)
{
    struct vg_allowances a;
    n_bad = 0;
    vg_allow_compile(spec, &a, record_bad, NULL);
    return a;
}

START_TEST(test_accepted_forms)
{
    struct vg_allowances a = compile("pinned,pinned:libcudnn*,pinned:<=64K,pinned:libcudnn*,pinned:<=64K,"
                                     "registered:>=1M:<4MiB,managed:libfoo.so,pinned:libcudnn_graph.so.9:<=4");
    ck_assert_int_eq(n_bad, 0);
    ck_assert_int_eq(a.n, 8);
    ck_assert_str_eq(a.rule[2].text, "pinned:<=64K");
    ck_assert_uint_eq(a.rule[2].hi, 64 << 10);
    ck_assert_uint_eq(a.rule[5].lo, 1 << 20);
    ck_assert_uint_eq(a.rule[5].hi, (4 << 20) - 1);
    ck_assert_str_eq(a.rule[6].glob, "libfoo.so");
    ck_assert_uint_eq(a.bare, 1u << VG_AK_PINNED); /* only the bare `pinned` */
    a = compile("none");
    ck_assert_int_eq(a.n, 0);
    ck_assert_int_eq(n_bad, 0);
}
END_TEST

START_TEST(test_malformed_rules_dropped)
{
    struct vg_allowances a = compile("pinnned,pinned:<=4K,pinned:<=abc,pinned:a*:b*,,pinned:<0,managed:total<=x,"
                                     "pinned:>=2K:<=1K");
    ck_assert_int_eq(a.n, 1); /* only pinned:<=4K */
    ck_assert_str_eq(a.rule[0].text, "pinned:<=4K");
    ck_assert_int_eq(n_bad, 7);
    ck_assert_msg(strstr(bad_rules[0], "pinnned|unknown kind"), "%s", bad_rules[0]);
    ck_assert_msg(strstr(bad_rules[1], "pinned:<=abc|a size bound"), "%s", bad_rules[1]);
    ck_assert_msg(strstr(bad_rules[2], "more than one module glob"), "%s", bad_rules[2]);
    ck_assert_msg(strstr(bad_rules[3], "|an empty rule"), "%s", bad_rules[3]);
    ck_assert_msg(strstr(bad_rules[4], "<0 lets nothing through"), "%s", bad_rules[4]);
    ck_assert_msg(strstr(bad_rules[5], "the cap is not"), "%s", bad_rules[5]);
    ck_assert_msg(strstr(bad_rules[6], "leave no size"), "%s", bad_rules[6]);
    /* a dropped rule never loosens: nothing else is let through */
    ck_assert_int_eq(vg_allow_match(&a, VG_KIND_HOST_PINNED, 8192, NULL), -1);
}
END_TEST

/* Sizes past 2^64 - 1 and globs fnmatch cannot take as written are refused,
 * not read as "any size" or as a literal '['. */
START_TEST(test_overflow_and_unclosed_glob_dropped)
{
    struct vg_allowances a = compile("pinned:<=99999999999999999999,pinned:libcudnn[,managed:total<=16777216T,"
                                     "pinned:libnccl[.]so*:<=4K,pinned:lib\\");
    ck_assert_int_eq(a.n, 1); /* only the closed bracket */
    ck_assert_str_eq(a.rule[0].text, "pinned:libnccl[.]so*:<=4K");
    ck_assert_int_eq(n_bad, 4);
    ck_assert_msg(strstr(bad_rules[0], "a size bound"), "%s", bad_rules[0]);
    ck_assert_msg(strstr(bad_rules[1], "unclosed ["), "%s", bad_rules[1]);
    ck_assert_msg(strstr(bad_rules[2], "the cap is not"), "%s", bad_rules[2]);
    ck_assert_msg(strstr(bad_rules[3], "trailing"), "%s", bad_rules[3]);
    uint64_t v = 0;
    ck_assert(!vg_parse_size("18446744073709551616", &v));
    ck_assert(vg_parse_size("18446744073709551615", &v) && v == UINT64_MAX);
    ck_assert(vg_parse_size("16777215T", &v) && v == (uint64_t)16777215 << 40);
}
END_TEST

START_TEST(test_matching)
{
    struct vg_allowances a = compile("pinned:libcudnn*:<=64K,registered:<=1M,managed:libfoo.so");
    /* kind coverage: pinned covers registrations too */
    ck_assert_int_eq(vg_allow_match(&a, VG_KIND_HOST_PINNED, 4, "libcudnn_graph.so.9"), 0);
    ck_assert_int_eq(vg_allow_match(&a, VG_KIND_HOST_REGISTERED, 4, "libcudnn_graph.so.9"), 0);
    ck_assert_int_eq(vg_allow_match(&a, VG_KIND_HOST_REGISTERED, 4, "other.so"), 1);
    ck_assert_int_eq(vg_allow_match(&a, VG_KIND_HOST_PINNED, 4, "other.so"), -1);
    /* every condition must hold */
    ck_assert_int_eq(vg_allow_match(&a, VG_KIND_HOST_PINNED, 64 << 10, "libcudnn.so.9"), 0);
    ck_assert_int_eq(vg_allow_match(&a, VG_KIND_HOST_PINNED, (64 << 10) + 1, "libcudnn.so.9"), -1);
    ck_assert_int_eq(vg_allow_match(&a, VG_KIND_HOST_PINNED, 4, NULL), -1); /* unknown module: no glob matches */
    ck_assert_int_eq(vg_allow_match(&a, VG_KIND_MANAGED, 1ull << 40, "libfoo.so"), 2);
    ck_assert_int_eq(vg_allow_match(&a, VG_KIND_MANAGED, 1, "libfoo.so.1"), -1);
    /* an unknown size (0) meets no size bound; a rule without one still matches */
    ck_assert_int_eq(vg_allow_match(&a, VG_KIND_HOST_PINNED, 0, "libcudnn.so"), -1);
    ck_assert_int_eq(vg_allow_match(&a, VG_KIND_MANAGED, 0, "libfoo.so"), 2);
    /* VRAM kinds are never a matter of allowance */
    ck_assert_int_eq(vg_allow_match(&a, VG_KIND_DEVICE, 4, "libcudnn.so"), -1);
    ck_assert(vg_allow_needs_module(&a, VG_KIND_HOST_PINNED));
    ck_assert(vg_allow_needs_module(&a, VG_KIND_HOST_REGISTERED));
    struct vg_allowances b = compile("pinned:<=4K");
    ck_assert(!vg_allow_needs_module(&b, VG_KIND_HOST_PINNED));
}
END_TEST

START_TEST(test_caps)
{
    struct vg_allowances a = compile("pinned:<=1M,pinned:total<=2M,registered:total<=1M");
    /* pinned:total<=2M is a rule too: any pinned allocation, within the cap */
    ck_assert_int_eq(vg_allow_match(&a, VG_KIND_HOST_PINNED, 4 << 20, NULL), 1);
    ck_assert_int_eq(n_bad, 0);
    ck_assert_uint_eq(a.cap[VG_AK_PINNED], 2 << 20);
    ck_assert_uint_eq(a.bare, 0); /* a capped kind is never let through as a whole */
    ck_assert(vg_allow_take(&a, VG_KIND_HOST_PINNED, 1 << 20));
    ck_assert(vg_allow_take(&a, VG_KIND_HOST_PINNED, 1 << 20));
    ck_assert(!vg_allow_take(&a, VG_KIND_HOST_PINNED, 1)); /* 2 MiB live: full */
    vg_allow_give_back(VG_KIND_HOST_PINNED, 1 << 20);
    /* a registration counts against pinned's cap and its own */
    ck_assert(!vg_allow_take(&a, VG_KIND_HOST_REGISTERED, (1 << 20) + 1));
    ck_assert(vg_allow_take(&a, VG_KIND_HOST_REGISTERED, 1 << 20));
    ck_assert(!vg_allow_take(&a, VG_KIND_HOST_PINNED, 1)); /* pinned: 1 MiB + 1 MiB registered */
    struct vg_allow_stats st;
    vg_allow_stats(&st);
    ck_assert_uint_eq(st.live[VG_AK_PINNED], 2 << 20);
    ck_assert_uint_eq(st.live[VG_AK_REGISTERED], 1 << 20);
    vg_allow_give_back(VG_KIND_HOST_REGISTERED, 1 << 20);
    vg_allow_give_back(VG_KIND_HOST_PINNED, 1 << 20);
    vg_allow_stats(&st);
    ck_assert_uint_eq(st.live[VG_AK_PINNED], 0);
    ck_assert_uint_eq(st.live[VG_AK_REGISTERED], 0);
}
END_TEST

START_TEST(test_narrowest)
{
    char out[128];
    vg_allow_narrowest(VG_KIND_HOST_PINNED, 4, "libcudnn_graph.so.9", out, sizeof(out));
    ck_assert_str_eq(out, "pinned:libcudnn_graph.so.9:<=4");
    vg_allow_narrowest(VG_KIND_HOST_PINNED, 3000, NULL, out, sizeof(out));
    ck_assert_str_eq(out, "pinned:<=4K");
    vg_allow_narrowest(VG_KIND_HOST_REGISTERED, 3 << 20, "app", out, sizeof(out));
    ck_assert_str_eq(out, "registered:app:<=4M");
    vg_allow_narrowest(VG_KIND_MANAGED, 1ull << 30, "x.so", out, sizeof(out));
    ck_assert_str_eq(out, "managed:x.so:<=1G");
    vg_allow_narrowest(VG_KIND_HOST_PINNED, 0, "lib.so", out, sizeof(out)); /* unknown size: no bound */
    ck_assert_str_eq(out, "pinned:lib.so");
    /* what it writes parses back and matches the allocation */
    struct vg_allowances a = compile("registered:app:<=4M");
    ck_assert_int_eq(vg_allow_match(&a, VG_KIND_HOST_REGISTERED, 3 << 20, "app"), 0);
    ck_assert_int_eq(vg_allow_match(&a, VG_KIND_HOST_REGISTERED, (4 << 20) + 1, "app"), -1);
}
END_TEST

START_TEST(test_policy_with_rules)
{
    struct vg_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.policy = VG_POLICY_REJECT;
    /* one rule with a bound and the kind's cap; a rule of a cap alone would
     * let any pinned allocation through, within the cap */
    vg_allow_compile("pinned:<=4K:total<=8K", &cfg.allowances, NULL, NULL);
    cfg.allow = cfg.allowances.bare;
    struct vg_decision d = vg_policy_decide_call(&cfg, VG_KIND_HOST_PINNED, 4096, NULL);
    ck_assert_int_eq(d.action, VG_ACTION_ALLOW);
    ck_assert_int_eq(d.rule, 0);
    d = vg_policy_decide_call(&cfg, VG_KIND_HOST_PINNED, 4097, NULL); /* past the bound */
    ck_assert_int_eq(d.action, VG_ACTION_REJECT);
    ck_assert_int_eq(d.refusal, CUDA_ERROR_NOT_PERMITTED);
    ck_assert(!d.capped);
    d = vg_policy_decide_call(&cfg, VG_KIND_HOST_PINNED, 4096, NULL);
    ck_assert_int_eq(d.action, VG_ACTION_ALLOW); /* 8 KiB live now */
    d = vg_policy_decide_call(&cfg, VG_KIND_HOST_PINNED, 1, NULL);
    ck_assert_int_eq(d.action, VG_ACTION_REJECT);
    ck_assert(d.capped);
    d = vg_policy_decide_call(&cfg, VG_KIND_MANAGED, 1, NULL);
    ck_assert_int_eq(d.action, VG_ACTION_REJECT);
    ck_assert_int_eq(d.refusal, CUDA_ERROR_NOT_SUPPORTED);
    /* warn: what no rule lets through is a violation let through */
    cfg.policy = VG_POLICY_WARN;
    d = vg_policy_decide_call(&cfg, VG_KIND_MANAGED, 1, NULL);
    ck_assert_int_eq(d.action, VG_ACTION_WARN);
    ck_assert_int_eq(d.rule, -1);
    /* VRAM is not a matter of rules */
    d = vg_policy_decide_call(&cfg, VG_KIND_DEVICE, 1ull << 40, NULL);
    ck_assert_int_eq(d.action, VG_ACTION_ALLOW);
    ck_assert_int_eq(d.rule, -1);
}
END_TEST

Suite *make_allow_suite(void)
{
    Suite *s = suite_create("allow");
    TCase *t = tcase_create("allow");
    tcase_add_test(t, test_accepted_forms);
    tcase_add_test(t, test_malformed_rules_dropped);
    tcase_add_test(t, test_overflow_and_unclosed_glob_dropped);
    tcase_add_test(t, test_matching);
    tcase_add_test(t, test_caps);
    tcase_add_test(t, test_narrowest);
    tcase_add_test(t, test_policy_with_rules);
    suite_add_tcase(s, t);
    return s;
}
