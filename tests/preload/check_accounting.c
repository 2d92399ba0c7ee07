/* Accounting suite (issue 9 items 13, 15, 18): contexts that end, sparse
 * and deferred-mapping arrays, and the protocol's edge cases, run as
 * self-checking programs under the shim against the fake driver. */
#include "../check_support.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *make_accounting_suite(void);

struct run {
    int status;
    char dir[512];
    char *out, *log;
};

/* build/tests/<prog> under the shim with extra environment; the shim logs
 * to <dir>/shim.log. */
static struct run run_prog(const char *prog, const char *const *env)
{
    struct run r;
    snprintf(r.dir, sizeof(r.dir), "%s", vg_test_tmpdir());
    char path[700], out_path[700], log_path[700], log_env[720];
    snprintf(path, sizeof(path), "%s/tests/%s", vg_test_build(), prog);
    snprintf(out_path, sizeof(out_path), "%s/out.txt", r.dir);
    snprintf(log_path, sizeof(log_path), "%s/shim.log", r.dir);
    snprintf(log_env, sizeof(log_env), "VRAMGUARD_LOG=%s", log_path);
    const char *all[32];
    int n = 0;
    all[n++] = log_env;
    for (const char *const *e = env; e && *e && n < 31; e++)
        all[n++] = *e;
    all[n] = NULL;
    const char *argv[] = {path, NULL};
    r.status = vg_test_run(argv, all, 1, out_path);
    r.out = vg_test_read(out_path);
    r.log = vg_test_read(log_path);
    return r;
}

#define ASSERT_PASSED(r)                                                                           \
    ck_assert_msg((r).status == 0, "exit %d\n--- output ---\n%s\n--- shim log ---\n%s", (r).status, (r).out, \
                  (r).log)

/* The one report written into `dir`, read back (NULL if none). */
static char *report_in(const char *dir)
{
    DIR *d = opendir(dir);
    char path[1024] = "";
    for (struct dirent *e; d && (e = readdir(d));)
        if (strncmp(e->d_name, "r.", 2) == 0 && strstr(e->d_name, ".json") &&
            !strstr(e->d_name, ".journal"))
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    if (d)
        closedir(d);
    return path[0] ? vg_test_read(path) : NULL;
}

/* ---- item 13: contexts that end --------------------------------------------- */

/* What the driver freed with a context is dropped: under fail-on leak the
 * report passes (every allocation the program did not free itself went with
 * its context), and the program's own checks pass. */
static void contexts_pass(const char *allow)
{
    char dir[512], report_env[700], allow_env[128];
    snprintf(dir, sizeof(dir), "%s", vg_test_tmpdir());
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s/r.%%p.json", dir);
    snprintf(allow_env, sizeof(allow_env), "VRAMGUARD_ALLOW=%s", allow);
    const char *env[] = {report_env, "VRAMGUARD_FAIL_ON=leak,violation", allow_env, NULL};
    struct run r = run_prog("prog_contexts", env);
    ASSERT_PASSED(r);
    ck_assert_msg(strstr(r.out, "PASS C: its allocations and array are dropped"), "%s", r.out);
    char *json = report_in(dir);
    ck_assert_msg(json != NULL, "no report in %s", dir);
    ck_assert_msg(strstr(json, "\"leaked_allocations\": 0,") && strstr(json, "\"status\": \"pass\""), "%s", json);
    free(json);
}

START_TEST(contexts_drop_what_the_driver_freed) { contexts_pass("none"); }
END_TEST

START_TEST(contexts_drop_host_memory_too) { contexts_pass("pinned"); }
END_TEST

/* ---- item 15: sparse and deferred-mapping arrays ------------------------------ */

START_TEST(sparse_arrays_charged_by_their_mapped_handles)
{
    struct run r = run_prog("prog_sparse", NULL);
    ASSERT_PASSED(r);
    ck_assert_msg(strstr(r.out, "PASS deferred-mapping array: created, charged what the driver allocated"), "%s",
                  r.out);
    ck_assert_msg(strstr(r.out, "PASS the array destroyed with h3 mapped: uncharged"), "%s", r.out);
}
END_TEST

/* ---- item 18: the protocol's edges -------------------------------------------- */

static struct run edge(const char *which, const char *extra)
{
    char case_env[64];
    snprintf(case_env, sizeof(case_env), "PROG_CASE=%s", which);
    const char *env[] = {case_env, extra, NULL};
    return run_prog("prog_edges", env);
}

START_TEST(nested_host_allocation_refused)
{
    struct run r = edge("nested", NULL);
    ASSERT_PASSED(r);
    ck_assert_msg(vg_test_count(r.log, "vramguard: violation: cuMemAllocHost_v2") == 1, "%s", r.log);
}
END_TEST

START_TEST(nested_host_allocation_tracked_when_allowed)
{
    struct run r = edge("nested", "VRAMGUARD_ALLOW=pinned");
    ASSERT_PASSED(r);
    ck_assert_msg(strstr(r.out, "PASS ... takes it out of the table"), "%s", r.out);
}
END_TEST

START_TEST(host_oom_is_no_device_oom)
{
    struct run r = edge("host_oom", "VRAMGUARD_ALLOW=pinned");
    ASSERT_PASSED(r);
    ck_assert_msg(vg_test_count(r.log, "out of memory on device") == 1, "one breakdown (the device's):\n%s", r.log);
}
END_TEST

START_TEST(pool_slots_reused)
{
    struct run r = edge("pool_slots", NULL);
    ASSERT_PASSED(r);
}
END_TEST

START_TEST(refused_pool_pointer_not_left_behind)
{
    struct run r = edge("pool_refused", "VRAMGUARD_ALLOW=pinned:total<=1M");
    ASSERT_PASSED(r);
    ck_assert_msg(vg_test_count(r.log, "vramguard: violation: cuMemAllocFromPoolAsync") == 1, "%s", r.log);
}
END_TEST

START_TEST(vmm_uncharged_when_the_shim_runs_out_of_memory)
{
    if (vg_test_sanitized())
        return; /* a preloaded malloc cannot stand beside a sanitizer's */
    char preload[700];
    snprintf(preload, sizeof(preload), "LD_PRELOAD=%s/libvramguard.so:%s/tests/libmalloc_spy.so", vg_test_build(),
             vg_test_build());
    struct run r = edge("vmm_nomem", preload);
    ASSERT_PASSED(r);
    ck_assert_msg(strstr(r.out, "PASS 3: uncharged when the last mapping went"), "%s", r.out);
}
END_TEST

Suite *make_accounting_suite(void)
{
    Suite *s = suite_create("accounting");
    TCase *t = tcase_create("programs");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, contexts_drop_what_the_driver_freed);
    tcase_add_test(t, contexts_drop_host_memory_too);
    tcase_add_test(t, sparse_arrays_charged_by_their_mapped_handles);
    tcase_add_test(t, nested_host_allocation_refused);
    tcase_add_test(t, nested_host_allocation_tracked_when_allowed);
    tcase_add_test(t, host_oom_is_no_device_oom);
    tcase_add_test(t, pool_slots_reused);
    tcase_add_test(t, refused_pool_pointer_not_left_behind);
    tcase_add_test(t, vmm_uncharged_when_the_shim_runs_out_of_memory);
    suite_add_tcase(s, t);
    return s;
}
