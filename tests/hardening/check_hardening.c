/* Hardening suite (README "Hardening"): fork safety of the fake driver and
 * of the shim, fault injection swept over every failure position, scaled
 * down stress (make stress runs the full sizes: tests/hardening/stress.sh). */
#include "../check_support.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct out {
    int status;
    char *text;
};

/* Run a program of the build with `args`, stdout and stderr captured. */
static struct out run_in(const char *tmp, const char *const *argv, const char *const *env, int preload)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/out.txt", tmp);
    struct out o;
    o.status = vg_test_run(argv, env, preload, path);
    o.text = vg_test_read(path);
    return o;
}

static const char *prog(const char *name)
{
    static char paths[4][1024];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof(paths[0]), "%s/tests/%s", vg_test_build(), name);
    return p;
}

/* Forks per run: 100; 20 in an instrumented build, where every child's exit
 * runs the leak checker. */
static const char *forks(void)
{
    return vg_test_sanitized() ? "20" : "100";
}

static const char *forks_line(void)
{
    static char line[64];
    snprintf(line, sizeof(line), "forks %s hung 0 failed 0", forks());
    return line;
}

/* ASAN_OPTIONS for prog_forks in an instrumented build: no leak check at
 * the children's exit, which would wait forever for an ASan allocator lock
 * a parent thread held at fork (a sanitizer runtime limit, not ours). */
static const char *asan_forks_env(void)
{
    static char env[1200];
    const char *asan = getenv("ASAN_OPTIONS");
    snprintf(env, sizeof(env), "ASAN_OPTIONS=%s%sdetect_leaks=0", asan ? asan : "", asan && *asan ? ":" : "");
    return vg_test_sanitized() ? env : "VG_UNUSED=1";
}

/* The fake driver alone: forks while 4 threads call it. Before its
 * pthread_atfork handlers the first fork's child hung in the driver lock. */
START_TEST(fake_driver_survives_forks_while_threads_call_it)
{
    char tmp[512], libpath[1200];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    snprintf(libpath, sizeof(libpath), "LD_LIBRARY_PATH=%s/fakecuda", vg_test_build());
    const char *argv[] = {prog("prog_forks"), forks(), "4", "20", NULL};
    const char *env[] = {libpath, asan_forks_env(), NULL};
    struct out o = run_in(tmp, argv, env, 0);
    ck_assert_msg(o.status == 0 && strstr(o.text, forks_line()), "status %d\n%s", o.status, o.text);
    free(o.text);
}
END_TEST

/* The same under the shim: every child's report is its own. */
START_TEST(shim_forks_while_threads_allocate_reports_per_process)
{
    char tmp[512], report_env[700];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s/r.%%p.json", tmp);
    const char *argv[] = {prog("prog_forks"), forks(), "4", "20", NULL};
    const char *env[] = {report_env, "VRAMGUARD_LOG=/dev/null", asan_forks_env(), NULL};
    struct out o = run_in(tmp, argv, env, 1);
    ck_assert_msg(o.status == 0 && strstr(o.text, forks_line()), "status %d\n%s", o.status, o.text);
    free(o.text);

    char script[1024];
    snprintf(script, sizeof(script), "%s/tests/hardening/check_fork_reports.py", vg_test_root());
    const char *check[] = {"python3", script, tmp, forks(), NULL};
    o = run_in(tmp, check, NULL, 0);
    char want[64];
    snprintf(want, sizeof(want), "reports ok: %s children", forks());
    ck_assert_msg(o.status == 0 && strstr(o.text, want), "status %d\n%s", o.status, o.text);
    free(o.text);
}
END_TEST

/* FAKECUDA_FAIL: one run per failure position of the workload; after each
 * step the shim's charged VRAM equals what the driver holds. */
START_TEST(every_failure_position_keeps_the_table_equal_to_the_driver)
{
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    const char *argv[] = {prog("prog_faults"), "sweep", NULL};
    const char *env[] = {"VRAMGUARD_LOG=/dev/null", NULL};
    struct out o = run_in(tmp, argv, env, 1);
    int positions = 0, points = 0, failed = -1;
    const char *line = strstr(o.text, "swept ");
    ck_assert_msg(line && sscanf(line, "swept %d positions of %d entry points, %d failed", &positions, &points,
                                 &failed) == 3,
                  "%s", o.text);
    ck_assert_msg(o.status == 0 && failed == 0, "status %d\n%s", o.status, o.text);
    /* every allocation path of the workload was failed at least once */
    ck_assert_msg(positions >= 60 && points >= 20, "only %d positions of %d entry points\n%s", positions, points,
                  o.text);
    free(o.text);
}
END_TEST

/* make stress runs 16 x 1 000 000; here 16 x 20 000. */
START_TEST(sixteen_threads_sync_and_vmm_exact)
{
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    const char *argv[] = {prog("prog_vmm_threads"), "16", "20000", NULL};
    const char *env[] = {"FAKECUDA_VRAM_BYTES=1099511627776", "VRAMGUARD_LOG=/dev/null", NULL};
    struct out o = run_in(tmp, argv, env, 1);
    ck_assert_msg(o.status == 0, "status %d\n%s", o.status, o.text);
    ck_assert_int_eq(vg_test_count(o.text, ": device and VMM live bytes and counts exact"), 5);
    ck_assert_int_eq(vg_test_count(o.text, ": charged VRAM equals the driver's"), 5);
    ck_assert_int_eq(vg_test_count(o.text, "FAIL"), 0);
    free(o.text);
}
END_TEST

/* make stress kills 200 times; here 3. */
START_TEST(sigkill_leaves_a_journal_the_cli_reads)
{
    char tmp[512], script[1024];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    snprintf(script, sizeof(script), "%s/tests/hardening/kill_journal.sh", vg_test_root());
    const char *argv[] = {"/bin/sh", script, vg_test_build(), "3", NULL};
    struct out o = run_in(tmp, argv, NULL, 0);
    ck_assert_msg(o.status == 0 && strstr(o.text, "killed 3 processes at random points: 3 journals read by the CLI"),
                  "status %d\n%s", o.status, o.text);
    free(o.text);
}
END_TEST

Suite *make_hardening_suite(void);
Suite *make_hardening_suite(void)
{
    Suite *s = suite_create("hardening");
    TCase *tc = tcase_create("forks_and_faults");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, fake_driver_survives_forks_while_threads_call_it);
    tcase_add_test(tc, shim_forks_while_threads_allocate_reports_per_process);
    tcase_add_test(tc, every_failure_position_keeps_the_table_equal_to_the_driver);
    tcase_add_test(tc, sixteen_threads_sync_and_vmm_exact);
    tcase_add_test(tc, sigkill_leaves_a_journal_the_cli_reads);
    suite_add_tcase(s, tc);
    return s;
}
