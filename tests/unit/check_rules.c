/* Unit tests for shim/model/rules.c: the VRAMGUARD_PURPOSE_RULES grammar and
 * matching (size rules here; module rules run in the preload suite). */
#include "model.h"
#include "modules.h"
#include "rules.h"

#include <check.h>
#include <gnu/libc-version.h>
#include <stdint.h>
#include <string.h>

Suite *make_rules_suite(void);

static const char *const accepted[] = {
    "libcublas*=intermediate",
    ">=256M=weights",
    "libcublas*=intermediate,>=256M=weights",
    "<1K=unknown,>4096=kv_cache",
    ">=1G=weights,<=2MiB=intermediate",
    "*nccl*=intermediate",
    ">=1TB=weights",
};

struct rejected {
    const char *spec;
    const char *reason;
};
static const struct rejected rejected[] = {
    {"", "empty"},
    {"libcublas*", "is not MATCH=PURPOSE"},
    {"=weights", "is not MATCH=PURPOSE"},
    {"libfoo*=bogus", "unknown purpose 'bogus'"},
    {">=abc=weights", "is not a number"},
    {">=12X=weights", "is not NUMBER[K|M|G|T]"},
    {">=99999999999999999999=weights", "below 2^64"},
    {">=16777216T=weights", "below 2^64"},
    {"libcudnn[=weights", "unclosed ["},
    {"libcudnn[!]=weights", "unclosed ["},
    {"libcudnn\\=weights", "trailing"},
    {"libcublas*=intermediate,,>=1M=weights", "empty"},
    {"a=weights,b=weights,c=weights,d=weights,e=weights,f=weights,g=weights,h=weights,i=weights,j=weights,"
     "k=weights,l=weights,m=weights,n=weights,o=weights,p=weights,q=weights",
     "more than 16 rules"},
};

START_TEST(test_rules_accepted)
{
    char err[200] = "";
    ck_assert_msg(vg_rules_valid(accepted[_i], err, sizeof(err)), "%s refused: %s", accepted[_i], err);
}
END_TEST

START_TEST(test_rules_rejected_with_reason)
{
    char err[200] = "";
    ck_assert_msg(!vg_rules_valid(rejected[_i].spec, err, sizeof(err)), "%s accepted", rejected[_i].spec);
    ck_assert_msg(strstr(err, rejected[_i].reason), "%s: reason '%s' lacks '%s'", rejected[_i].spec, err,
                  rejected[_i].reason);
}
END_TEST

START_TEST(test_size_rules_first_match_wins)
{
    vg_rules_load(">=256M=weights,>=1M=kv_cache,<4K=intermediate");
    ck_assert(vg_rules_active());
    ck_assert_int_eq(vg_rules_purpose(NULL, 512ull << 20), VG_PURPOSE_WEIGHTS);
    ck_assert_int_eq(vg_rules_purpose(NULL, 256ull << 20), VG_PURPOSE_WEIGHTS);
    ck_assert_int_eq(vg_rules_purpose(NULL, (256ull << 20) - 1), VG_PURPOSE_KV_CACHE);
    ck_assert_int_eq(vg_rules_purpose(NULL, 1ull << 20), VG_PURPOSE_KV_CACHE);
    ck_assert_int_eq(vg_rules_purpose(NULL, 100000), -1);
    ck_assert_int_eq(vg_rules_purpose(NULL, 4095), VG_PURPOSE_INTERMEDIATE);
    ck_assert_int_eq(vg_rules_purpose(NULL, 4096), -1);
}
END_TEST

/* Every comparison at its boundary, and the ranges that match nothing;
 * the hot path tests a size rule as one unsigned range compare. */
START_TEST(test_size_rule_boundaries)
{
    vg_rules_load(">1K=weights");
    ck_assert_int_eq(vg_rules_purpose(NULL, 1024), -1);
    ck_assert_int_eq(vg_rules_purpose(NULL, 1025), VG_PURPOSE_WEIGHTS);
    ck_assert_int_eq(vg_rules_purpose(NULL, UINT64_MAX), VG_PURPOSE_WEIGHTS);
    vg_rules_load(">=1K=weights");
    ck_assert_int_eq(vg_rules_purpose(NULL, 1023), -1);
    ck_assert_int_eq(vg_rules_purpose(NULL, 1024), VG_PURPOSE_WEIGHTS);
    vg_rules_load("<1K=kv_cache");
    ck_assert_int_eq(vg_rules_purpose(NULL, 0), VG_PURPOSE_KV_CACHE);
    ck_assert_int_eq(vg_rules_purpose(NULL, 1023), VG_PURPOSE_KV_CACHE);
    ck_assert_int_eq(vg_rules_purpose(NULL, 1024), -1);
    vg_rules_load("<=1K=kv_cache");
    ck_assert_int_eq(vg_rules_purpose(NULL, 1024), VG_PURPOSE_KV_CACHE);
    ck_assert_int_eq(vg_rules_purpose(NULL, 1025), -1);
    vg_rules_load("<0=kv_cache,>=0=intermediate"); /* < 0 matches nothing; >= 0 everything */
    ck_assert_int_eq(vg_rules_purpose(NULL, 0), VG_PURPOSE_INTERMEDIATE);
    ck_assert_int_eq(vg_rules_purpose(NULL, 1), VG_PURPOSE_INTERMEDIATE);
    vg_rules_load(">18446744073709551615=weights,<=0=kv_cache"); /* > the largest size: nothing */
    ck_assert_int_eq(vg_rules_purpose(NULL, UINT64_MAX), -1);
    ck_assert_int_eq(vg_rules_purpose(NULL, 0), VG_PURPOSE_KV_CACHE);
    ck_assert_int_eq(vg_rules_purpose(NULL, 1), -1);
}
END_TEST

START_TEST(test_module_rule_against_this_binary)
{
    /* The test runner's own module is check_vramguard. */
    vg_rules_load("libnothing*=weights,check_vram*=kv_cache,>=1=intermediate");
    ck_assert_int_eq(vg_rules_purpose((void *)test_module_rule_against_this_binary, 10), VG_PURPOSE_KV_CACHE);
    vg_rules_load("libnothing*=weights,>=1=intermediate");
    ck_assert_int_eq(vg_rules_purpose((void *)test_module_rule_against_this_binary, 10), VG_PURPOSE_INTERMEDIATE);
}
END_TEST

/* Module rules are answered per module by the slot modules.c caches its
 * name in; alternating call sites (so this thread's last answer misses),
 * each module keeps its own answer, and answers of earlier rules are not
 * used once rules are loaded again. */
START_TEST(test_module_answers_by_slot)
{
    void *here = (void *)test_module_answers_by_slot, *libc = (void *)&gnu_get_libc_version;
    char name[128];
    ck_assert(vg_module_name(here, name, sizeof(name)));
    int mine = vg_module_slot(here);
    ck_assert_int_ge(mine, 0);
    ck_assert_int_eq(vg_module_slot((char *)here + 1), mine);
    ck_assert(vg_module_name(libc, name, sizeof(name)));
    ck_assert_msg(strncmp(name, "libc.so", 7) == 0, "%s", name);
    int theirs = vg_module_slot(libc);
    ck_assert(theirs >= 0 && theirs != mine && theirs < VG_MODULE_SLOTS);
    vg_rules_load("libc.so*=weights,check_vram*=kv_cache");
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(vg_rules_purpose(here, 10), VG_PURPOSE_KV_CACHE);
        ck_assert_int_eq(vg_rules_purpose(libc, 10), VG_PURPOSE_WEIGHTS);
    }
    vg_rules_load("check_vram*=intermediate");
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(vg_rules_purpose(libc, 10), -1);
        ck_assert_int_eq(vg_rules_purpose(here, 10), VG_PURPOSE_INTERMEDIATE);
    }
}
END_TEST

/* The hot path keeps, per thread, the last call site's answer for the sizes
 * that the same rules decide: every size must still get its own rule, and
 * another call site its own module's. */
START_TEST(test_remembered_answers_follow_sizes_and_call_sites)
{
    vg_rules_load(">=1K=weights,<512=kv_cache");
    static const struct {
        uint64_t size;
        int purpose;
    } sizes[] = {{600, -1}, {1023, -1}, {1024, VG_PURPOSE_WEIGHTS}, {5000, VG_PURPOSE_WEIGHTS}, {511, VG_PURPOSE_KV_CACHE},
                 {0, VG_PURPOSE_KV_CACHE}, {512, -1}, {UINT64_MAX, VG_PURPOSE_WEIGHTS}, {700, -1}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        ck_assert_msg(vg_rules_purpose(NULL, sizes[i].size) == sizes[i].purpose, "size %llu",
                      (unsigned long long)sizes[i].size);
    /* A module rule between size rules; two call sites, one in this binary. */
    vg_rules_load(">=1M=weights,check_vram*=kv_cache,<=16=intermediate");
    void *here = (void *)test_remembered_answers_follow_sizes_and_call_sites;
    ck_assert_int_eq(vg_rules_purpose(here, 10), VG_PURPOSE_KV_CACHE);
    ck_assert_int_eq(vg_rules_purpose(here, 2u << 20), VG_PURPOSE_WEIGHTS);
    ck_assert_int_eq(vg_rules_purpose(here, 10), VG_PURPOSE_KV_CACHE);
    ck_assert_int_eq(vg_rules_purpose(NULL, 10), VG_PURPOSE_INTERMEDIATE);
    ck_assert_int_eq(vg_rules_purpose(here, 11), VG_PURPOSE_KV_CACHE);
    ck_assert_int_eq(vg_rules_purpose(NULL, 100), -1);
    ck_assert_int_eq(vg_rules_purpose(NULL, 16), VG_PURPOSE_INTERMEDIATE);
    ck_assert_int_eq(vg_rules_purpose(here, 100), VG_PURPOSE_KV_CACHE);
    /* The vg_rules_meta form keeps every other bit and leaves the purpose
     * alone when nothing matches. */
    ck_assert_uint_eq(vg_rules_meta(0xfff0u | 2u, NULL, 100), 0xfff0u | 2u);
    ck_assert_uint_eq(vg_rules_meta(0xfff0u | 2u, NULL, 8), 0xfff0u | VG_PURPOSE_INTERMEDIATE);
    /* A rule may name the purpose "unknown": it matches (and stops the
     * search) like any other. */
    vg_rules_load("<1K=unknown,>=0=weights");
    ck_assert_int_eq(vg_rules_purpose(NULL, 10), VG_PURPOSE_UNKNOWN);
    ck_assert_int_eq(vg_rules_purpose(NULL, 11), VG_PURPOSE_UNKNOWN);
    ck_assert_int_eq(vg_rules_purpose(NULL, 2000), VG_PURPOSE_WEIGHTS);
    ck_assert_uint_eq(vg_rules_meta(0xfff0u | 2u, NULL, 10), 0xfff0u | VG_PURPOSE_UNKNOWN);
}
END_TEST

START_TEST(test_no_rules_inactive)
{
    vg_rules_load("");
    ck_assert(!vg_rules_active());
    vg_rules_load("not a rule");
    ck_assert(!vg_rules_active());
}
END_TEST

Suite *make_rules_suite(void)
{
    Suite *s = suite_create("rules");
    TCase *t = tcase_create("grammar");
    tcase_add_loop_test(t, test_rules_accepted, 0, sizeof(accepted) / sizeof(accepted[0]));
    tcase_add_loop_test(t, test_rules_rejected_with_reason, 0, sizeof(rejected) / sizeof(rejected[0]));
    tcase_add_test(t, test_size_rules_first_match_wins);
    tcase_add_test(t, test_size_rule_boundaries);
    tcase_add_test(t, test_module_rule_against_this_binary);
    tcase_add_test(t, test_module_answers_by_slot);
    tcase_add_test(t, test_remembered_answers_follow_sizes_and_call_sites);
    tcase_add_test(t, test_no_rules_inactive);
    suite_add_tcase(s, t);
    return s;
}
