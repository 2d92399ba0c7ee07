/* Preload suite: the self-checking programs of tests/preload run under
 * LD_PRELOAD=libvramguard.so against the fake CUDA driver. Each test checks
 * the program's exit status (its own PASS/FAIL lines) and what the shim
 * logged or wrote. */
#include "../check_support.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/wait.h>
#include <string.h>
#include <unistd.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>

Suite *make_preload_suite(void);

struct run {
    int status;
    char dir[512];
    char log_path[600];
    char *out; /* program output (stdout+stderr) */
    char *log; /* the shim's log (VRAMGUARD_LOG) */
};

/* Run build/tests/<prog> under the shim with extra environment; the shim logs
 * to <dir>/shim.log. */
static struct run run_prog(const char *prog, const char *const *env)
{
    struct run r;
    snprintf(r.dir, sizeof(r.dir), "%s", vg_test_tmpdir());
    snprintf(r.log_path, sizeof(r.log_path), "%s/shim.log", r.dir);
    char path[700], out_path[700], log_env[700];
    snprintf(path, sizeof(path), "%s/tests/%s", vg_test_build(), prog);
    snprintf(out_path, sizeof(out_path), "%s/out.txt", r.dir);
    snprintf(log_env, sizeof(log_env), "VRAMGUARD_LOG=%s", r.log_path);
    const char *all_env[32];
    int n = 0;
    all_env[n++] = log_env;
    for (const char *const *e = env; e && *e && n < 31; e++)
        all_env[n++] = *e;
    all_env[n] = NULL;
    const char *argv[] = {path, NULL};
    r.status = vg_test_run(argv, all_env, 1, out_path);
    r.out = vg_test_read(out_path);
    r.log = vg_test_read(r.log_path);
    return r;
}

#define ASSERT_PASSED(r)                                                                           \
    ck_assert_msg((r).status == 0, "exit %d\n--- output ---\n%s\n--- shim log ---\n%s", (r).status, (r).out, \
                  (r).log)

/* ---- the three ways in, counting, policy ---------------------------------- */

START_TEST(runtime_static_reject)
{
    struct run r = run_prog("prog_runtime_static", NULL);
    ASSERT_PASSED(r);
    /* Static cudart: the runtime call is invisible, the driver call is named. */
    ck_assert_int_eq(vg_test_count(r.log, "vramguard: violation: cuMemAllocManaged of 1.0 MiB"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "vramguard: violation: cuMemHostAlloc of 1.0 MiB"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "CUDA_ERROR_NOT_SUPPORTED (801)"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "CUDA_ERROR_NOT_PERMITTED (800)"), 1);
    ck_assert_msg(strstr(r.log, "from ") && strstr(r.log, "prog_runtime_static+0x"), "caller module missing:\n%s",
                  r.log);
    /* Passed-through lookups are the report's (and a debug log's), not the
     * default log's: nothing a user can act on. */
    ck_assert_int_eq(vg_test_count(r.log, "passes it through"), 0);
    ck_assert_int_eq(vg_test_count(r.log, "passed through"), 0);
}
END_TEST

START_TEST(runtime_shared_reject_names_runtime_call)
{
    struct run r = run_prog("prog_runtime_shared", NULL);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.log, "violation: cudaMallocManaged via cuMemAllocManaged"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "violation: cudaMallocHost via cuMemHostAlloc"), 1);
    ck_assert_msg(strstr(r.log, "prog_runtime_shared+0x"), "true caller missing:\n%s", r.log);
}
END_TEST

START_TEST(runtime_allow_pinned)
{
    const char *env[] = {"VRAMGUARD_ALLOW=pinned", NULL};
    struct run r = run_prog("prog_runtime_shared", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.log, "vramguard: violation: "), 1);
    ck_assert_int_eq(vg_test_count(r.log, "cudaMallocManaged"), 1);
    /* The allowed pinned buffer is named by the residency check. */
    ck_assert_int_eq(vg_test_count(r.log, "residency: 0x"), 1);
    ck_assert_msg(strstr(r.log, "is not VRAM: host memory"), "%s", r.log);
}
END_TEST

START_TEST(runtime_warn)
{
    const char *env[] = {"VRAMGUARD_POLICY=warn", NULL};
    struct run r = run_prog("prog_runtime_static", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.log, "allowed by VRAMGUARD_POLICY=warn"), 2);
    ck_assert_msg(strstr(r.log, "is not VRAM: managed (unified) memory"), "%s", r.log);
}
END_TEST

START_TEST(runtime_off)
{
    const char *env[] = {"VRAMGUARD_POLICY=off", NULL};
    struct run r = run_prog("prog_runtime_shared", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.log, "vramguard: violation"), 0);
}
END_TEST

START_TEST(driver_api)
{
    struct run r = run_prog("prog_driver", NULL);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.log, "vramguard: violation: "), 3);
}
END_TEST

START_TEST(driver_api_allow_pinned)
{
    const char *env[] = {"VRAMGUARD_ALLOW=pinned", NULL};
    struct run r = run_prog("prog_driver", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.log, "vramguard: violation: "), 1);
}
END_TEST

START_TEST(legacy_like_real_driver)
{
    struct run r = run_prog("prog_legacy", NULL);
    ASSERT_PASSED(r);
    ck_assert_msg(strstr(r.out, "legacy cuMemAlloc answered 201"), "%s", r.out);
    ck_assert_int_eq(vg_test_count(r.log, "violation: cuMemAllocHost of 1.0 MiB"), 1);
}
END_TEST

START_TEST(legacy_allocations_succeed)
{
    const char *env[] = {"FAKECUDA_LEGACY_ALLOC=1", "VRAMGUARD_ALLOW=pinned", NULL};
    struct run r = run_prog("prog_legacy", env);
    ASSERT_PASSED(r);
    ck_assert_msg(strstr(r.out, "legacy cuMemAlloc succeeded"), "%s", r.out);
    ck_assert_int_eq(vg_test_count(r.out, "PASS legacy pitch counted"), 1);
}
END_TEST

START_TEST(rtld_local_cudart)
{
    struct run r = run_prog("prog_rtld_local", NULL);
    ASSERT_PASSED(r);
}
END_TEST

START_TEST(two_cudart_majors)
{
    struct run r = run_prog("prog_two_majors", NULL);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "PASS served by cudart 12"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS both counted"), 1);
}
END_TEST

START_TEST(cxx_scopes_with_and_without_shim)
{
    struct run r = run_prog("prog_cxx", NULL);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "PASS RAII + exception: kv_cache"), 1);

    /* The same binary without the shim: builds, runs, every call a no-op. */
    char tmp[512], prog[600], out[700], lib[700];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    snprintf(prog, sizeof(prog), "%s/tests/prog_cxx", vg_test_build());
    snprintf(out, sizeof(out), "%s/out.txt", tmp);
    snprintf(lib, sizeof(lib), "LD_LIBRARY_PATH=%s/fakecuda", vg_test_build());
    const char *env[] = {lib, NULL};
    const char *argv[] = {prog, NULL};
    int st = vg_test_run(argv, env, 0, out);
    char *text = vg_test_read(out);
    ck_assert_msg(st == 0, "exit %d\n%s", st, text);
    ck_assert_int_eq(vg_test_count(text, "note: shim not loaded"), 1);
    ck_assert_int_eq(vg_test_count(text, "PASS without the shim"), 4);
    free(text);
}
END_TEST

START_TEST(other_libraries_dlsym_next)
{
    struct run r = run_prog("prog_dlsym_next", NULL);
    ASSERT_PASSED(r);
    /* Never reached the driver: nothing logged at exit. */
    ck_assert_int_eq(vg_test_count(r.log, "vramguard:"), 0);
}
END_TEST

START_TEST(eight_threads_exact)
{
    struct run r = run_prog("prog_threads", NULL);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "PASS purpose"), 4);
}
END_TEST

START_TEST(fork_child_owns_nothing)
{
    struct run r = run_prog("prog_fork", NULL);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "PASS child starts with no tracked memory"), 1);
}
END_TEST

/* ---- OOM ---------------------------------------------------------------- */

START_TEST(oom_breakdown_once_then_lines)
{
    const char *env[] = {"FAKECUDA_VRAM_BYTES=67108864", NULL};
    struct run r = run_prog("prog_oom", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.log, "==== out of memory on device 0"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "vramguard: out of memory again"), 3);
    ck_assert_msg(strstr(r.log, "failed request: cudaMalloc") == NULL, "static cudart names the driver call");
    ck_assert_msg(strstr(r.log, "failed request: cuMemAlloc_v2 of 1.0 TiB (1099511627776 bytes)"), "%s", r.log);
    ck_assert_msg(strstr(r.log, "purpose kv_cache"), "%s", r.log);
    ck_assert_msg(strstr(r.log, "device 0: total 64.0 MiB, free 56.0 MiB"), "%s", r.log);
    ck_assert_msg(strstr(r.log, "untracked (device-wide"), "%s", r.log);
    ck_assert_msg(strstr(r.log, "\"embedding\""), "largest allocations missing:\n%s", r.log);
    ck_assert_msg(strstr(r.log, "1 largest live allocations on device 0"), "%s", r.log);
}
END_TEST

START_TEST(oom_path_allocates_no_heap)
{
    if (vg_test_sanitized())
        return; /* the spy's malloc cannot stand beside a sanitizer's */
    char preload[1200];
    snprintf(preload, sizeof(preload), "LD_PRELOAD=%s/libvramguard.so:%s/tests/libmalloc_spy.so", vg_test_build(),
             vg_test_build());
    const char *env[] = {preload, "FAKECUDA_VRAM_BYTES=67108864", NULL};
    struct run r = run_prog("prog_oom", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "PASS no heap allocation on the OOM path"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "==== out of memory on device 0"), 1);
}
END_TEST

/* ---- reports and journals ---------------------------------------------------- */

static int validate(const char *path)
{
    char script[600], out[700];
    snprintf(script, sizeof(script), "%s/tests/cli/validate_report.py", vg_test_root());
    snprintf(out, sizeof(out), "%s.validation", path);
    const char *argv[] = {"/usr/bin/python3", script, path, NULL};
    int st = vg_test_run(argv, NULL, 0, out);
    if (st != 0) {
        char *text = vg_test_read(out);
        fprintf(stderr, "validation of %s failed:\n%s\n", path, text);
        free(text);
    }
    return st;
}

/* The one file in `dir` whose name starts with `prefix` and ends with `suffix`. */
static int find_file(const char *dir, const char *prefix, const char *suffix, char *out, size_t size)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name), sl = strlen(suffix);
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && len > sl && strcmp(e->d_name + len - sl, suffix) == 0) {
            snprintf(out, size, "%s/%s", dir, e->d_name);
            n++;
        }
    }
    if (d)
        closedir(d);
    return n;
}

START_TEST(json_report_and_journal)
{
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    char report_env[700];
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s/r.%%p.json", tmp);
    const char *env[] = {report_env, NULL};
    struct run r = run_prog("prog_runtime_shared", env);
    ASSERT_PASSED(r);
    char report[800], journal[800];
    ck_assert_int_eq(find_file(tmp, "r.", ".json", report, sizeof(report)), 1);
    ck_assert_int_eq(find_file(tmp, "r.", ".json.journal", journal, sizeof(journal)), 1);
    ck_assert_int_eq(validate(report), 0);
    char *json = vg_test_read(report);
    ck_assert_msg(strstr(json, "\"status\": \"fail\", \"reasons\": [\"violation\"], \"violations\": 2"), "%s", json);
    ck_assert_msg(strstr(json, "\"pageable_memory_access\": false"), "%s", json);
    ck_assert_msg(strstr(json, "\"kind\": \"device\", \"purpose\": \"weights\""), "%s", json);
    ck_assert_msg(strstr(json, "\"live_at_exit\": {\"count\": 0"), "%s", json);
    char *jl = vg_test_read(journal);
    ck_assert_int_eq(vg_test_count(jl, "{\"event\":\"start\""), 1);
    ck_assert_int_eq(vg_test_count(jl, "{\"event\":\"violation\""), 2);
    ck_assert_int_eq(vg_test_count(jl, "\"action\":\"rejected\",\"result\":801"), 1);
    ck_assert_int_eq(vg_test_count(jl, "\"action\":\"rejected\",\"result\":800"), 1);
    free(json);
    free(jl);
}
END_TEST

START_TEST(report_pass_with_allow_and_leak_fail)
{
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    char report_env[700];
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s/r.%%p.json", tmp);
    const char *env[] = {report_env, "VRAMGUARD_POLICY=off", "FAKECUDA_PAGEABLE_ACCESS=1", NULL};
    struct run r = run_prog("prog_runtime_static", env);
    ASSERT_PASSED(r);
    char report[800];
    ck_assert_int_eq(find_file(tmp, "r.", ".json", report, sizeof(report)), 1);
    ck_assert_int_eq(validate(report), 0);
    char *json = vg_test_read(report);
    ck_assert_msg(strstr(json, "\"status\": \"pass\""), "%s", json);
    ck_assert_msg(strstr(json, "\"pageable_memory_access\": true"), "%s", json);
    ck_assert_msg(strstr(json, "\"kind\": \"managed\""), "%s", json);
    free(json);

    /* prog_oom leaves nothing live; prog_fork's parent neither: use the OOM
     * program with fail-on leak and oom. */
    char tmp2[512];
    snprintf(tmp2, sizeof(tmp2), "%s", vg_test_tmpdir());
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s/r.%%p.json", tmp2);
    const char *env2[] = {report_env, "VRAMGUARD_FAIL_ON=oom,leak", "FAKECUDA_VRAM_BYTES=67108864", NULL};
    r = run_prog("prog_oom", env2);
    ASSERT_PASSED(r);
    ck_assert_int_eq(find_file(tmp2, "r.", ".json", report, sizeof(report)), 1);
    ck_assert_int_eq(validate(report), 0);
    json = vg_test_read(report);
    ck_assert_msg(strstr(json, "\"status\": \"fail\", \"reasons\": [\"oom\"], \"violations\": 0, \"oom_events\": 4"),
                  "%s", json);
    free(json);
}
END_TEST

/* VRAMGUARD_REPORT without %p, a child forked before CUDA and both using it:
 * the child writes "<path>.<pid>", the parent's report stays the parent's. */
START_TEST(fork_child_never_overwrites_parent_report)
{
    char tmp[512], report_env[800], parent_report[600], child_report[700];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    snprintf(parent_report, sizeof(parent_report), "%s/r.json", tmp);
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s", parent_report);
    const char *env[] = {report_env, "PROG_FORK_FIRST=1", NULL};
    struct run r = run_prog("prog_fork", env);
    ASSERT_PASSED(r);
    int parent = 0, child = 0;
    const char *ids = strstr(r.out, "parent pid ");
    ck_assert_msg(ids && sscanf(ids, "parent pid %d child pid %d", &parent, &child) == 2, "%s", r.out);
    snprintf(child_report, sizeof(child_report), "%s.%d", parent_report, child);
    char want[64];
    char *json = vg_test_read(parent_report);
    snprintf(want, sizeof(want), "\"pid\": %d,", parent);
    ck_assert_msg(strstr(json, want), "the parent's report is not the parent's:\n%s", json);
    free(json);
    json = vg_test_read(child_report);
    snprintf(want, sizeof(want), "\"pid\": %d,", child);
    ck_assert_msg(json[0] && strstr(json, want), "no child report at %s:\n%s", child_report, r.log);
    free(json);
    ck_assert_int_eq(validate(child_report), 0);
    ck_assert_msg(strstr(r.log, "has no %p: this forked child"), "%s", r.log);
}
END_TEST

/* A full disk (here a file size limit, EFBIG) never puts a truncated report
 * in place: the previous report stays whole, no temporary file is left, the
 * log says so. */
START_TEST(report_write_error_keeps_previous_report)
{
    char tmp[512], report[600], report_env[700], log_env[700], log[600], out[600], cmd[900], probe[800];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    snprintf(report, sizeof(report), "%s/r.json", tmp);
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s", report);
    snprintf(log, sizeof(log), "%s/shim.log", tmp);
    snprintf(log_env, sizeof(log_env), "VRAMGUARD_LOG=%s", log);
    snprintf(out, sizeof(out), "%s/out.txt", tmp);
    FILE *f = fopen(report, "w");
    ck_assert_ptr_nonnull(f);
    fputs("previous report\n", f);
    fclose(f);
    /* dash counts 512-byte blocks: 1 KiB, less than this report (> 2 KiB),
     * more than the program's output and log. SIGXFSZ ignored: write fails. */
    snprintf(cmd, sizeof(cmd), "trap '' XFSZ; ulimit -f 2; exec %s/tests/prog_threads", vg_test_build());
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    const char *env[] = {report_env, log_env, NULL};
    int st = vg_test_run(argv, env, 1, out);
    char *text = vg_test_read(out), *logged = vg_test_read(log), *kept = vg_test_read(report);
    ck_assert_msg(st == 0, "exit %d\n%s\n%s", st, text, logged);
    ck_assert_msg(strcmp(kept, "previous report\n") == 0, "the report was replaced:\n%.400s", kept);
    ck_assert_int_eq(find_file(tmp, "r.json.tmp", "", probe, sizeof(probe)), 0);
    ck_assert_msg(strstr(logged, "cannot write the report") && strstr(logged, "the previous report is left as it was"),
                  "%s", logged);
    free(text);
    free(logged);
    free(kept);
}
END_TEST

/* VRAMGUARD_LOG with %p, opened by the parent before it forks: the child's
 * lines go to the child's own log, not its parent's. */
START_TEST(fork_child_writes_its_own_pid_log)
{
    char tmp[512], log_env[700], path[800];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    snprintf(log_env, sizeof(log_env), "VRAMGUARD_LOG=%s/log.%%p", tmp);
    const char *env[] = {log_env, "PROG_FORK_CHILD_LOGS=1", NULL};
    struct run r = run_prog("prog_fork", env);
    ASSERT_PASSED(r);
    int child = 0;
    const char *id = strstr(r.out, "child pid ");
    ck_assert_msg(id && sscanf(id, "child pid %d", &child) == 1, "%s", r.out);
    snprintf(path, sizeof(path), "%s/log.%d", tmp, child);
    char *mine = vg_test_read(path);
    ck_assert_msg(strstr(mine, "violation: cuMemHostAlloc"), "child log %s: '%s'", path, mine);
    free(mine);
    char parent_log[800]; /* two logs: the parent's and the child's */
    ck_assert_int_eq(find_file(tmp, "log.", "", parent_log, sizeof(parent_log)), 2);
    DIR *d = opendir(tmp);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "log.", 4) != 0 || atoi(e->d_name + 4) == child)
            continue;
        snprintf(path, sizeof(path), "%s/%s", tmp, e->d_name);
        char *theirs = vg_test_read(path);
        ck_assert_msg(strstr(theirs, "violation: cuMemHostAlloc") == NULL, "the child wrote into %s:\n%s", path,
                      theirs);
        free(theirs);
    }
    if (d)
        closedir(d);
}
END_TEST

/* The log on a stderr pipe whose reader is gone: the shim's writes fail
 * with EPIPE and the host is not killed by SIGPIPE (its disposition is the
 * default here). */
START_TEST(log_to_a_closed_pipe_never_kills_the_host)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0); /* no O_CLOEXEC: the program inherits the write end */
    close(p[0]);
    signal(SIGPIPE, SIG_DFL);
    char tmp[512], out[700], cmd[900];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    snprintf(out, sizeof(out), "%s/out.txt", tmp);
    snprintf(cmd, sizeof(cmd), "exec %s/tests/prog_runtime_static 2>&%d", vg_test_build(), p[1]);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    int st = vg_test_run(argv, NULL, 1, out);
    close(p[1]);
    char *text = vg_test_read(out);
    ck_assert_msg(st == 0, "exit %d (141: killed by SIGPIPE)\n%s", st, text);
    ck_assert_msg(vg_test_count(text, "PASS") > 3 && strstr(text, "vramguard:") == NULL, "%s", text);
    free(text);
}
END_TEST

/* Temporary report files left by a process killed while writing (SIGKILL
 * runs no cleanup) are removed by the next writer once their pid is gone; a
 * live pid's and names of another shape stay. */
START_TEST(stale_report_temps_removed)
{
    char tmp[512], report[600], report_env[700], stale[700], live[700], other[700];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    snprintf(report, sizeof(report), "%s/r.json", tmp);
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s", report);
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);
    snprintf(stale, sizeof(stale), "%s.tmp.%d.0123456789abcdef", report, (int)dead);
    snprintf(live, sizeof(live), "%s.tmp.%d.0123456789abcdef", report, (int)getpid());
    snprintf(other, sizeof(other), "%s.tmp.keep-me", report);
    const char *files[] = {stale, live, other};
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(files[i], "w");
        ck_assert_ptr_nonnull(f);
        fputs("{\"partial\":", f);
        fclose(f);
    }
    const char *env[] = {report_env, NULL};
    struct run r = run_prog("prog_threads", env);
    ASSERT_PASSED(r);
    ck_assert_msg(access(report, F_OK) == 0, "no report\n%s", r.log);
    ck_assert_msg(access(stale, F_OK) != 0, "the dead writer's temporary file stayed: %s", stale);
    ck_assert_msg(access(live, F_OK) == 0, "a live pid's temporary file was removed");
    ck_assert_msg(access(other, F_OK) == 0, "a file of another shape was removed");
}
END_TEST

START_TEST(no_report_without_driver)
{
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    char report_env[700], probe[800];
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s/r.%%p.json", tmp);
    const char *env[] = {report_env, NULL};
    const char *argv[] = {"/bin/sh", "-c", "echo hello; ls / >/dev/null", NULL};
    char out[700];
    snprintf(out, sizeof(out), "%s/out.txt", tmp);
    ck_assert_int_eq(vg_test_run(argv, env, 1, out), 0);
    ck_assert_int_eq(find_file(tmp, "r.", ".json", probe, sizeof(probe)), 0);
    ck_assert_int_eq(find_file(tmp, "r.", ".journal", probe, sizeof(probe)), 0);
    char *text = vg_test_read(out);
    ck_assert_str_eq(text, "hello\n");
    free(text);
}
END_TEST

/* ---- bootstrap, configuration, exports ------------------------------------- */

START_TEST(static_cudart_bootstrap_through_the_shim)
{
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    char trace_env[800], trace[700];
    snprintf(trace, sizeof(trace), "%s/trace.txt", tmp);
    snprintf(trace_env, sizeof(trace_env), "FAKECUDA_TRACE=%s", trace);
    const char *env[] = {trace_env, NULL};
    struct run r = run_prog("prog_runtime_static", env);
    ASSERT_PASSED(r);
    char *t = vg_test_read(trace);
    /* The sequence DESIGN.md measured, as the shim forwarded it. */
    const char *order[] = {"gpa abi=v2 symbol= version=0", "symbol=cuInit version=2000", "fakecuda: cuInit",
                           "symbol=cuGetProcAddress version=11030", "symbol=cuGetProcAddress version=12000",
                           "symbol=cuMemAlloc version=3020", "symbol=cuMemAllocAsync version=11020 flags=2"};
    const char *at = t;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        const char *next = strstr(at, order[i]);
        ck_assert_msg(next != NULL, "missing or out of order: %s\n%s", order[i], t);
        at = next;
    }
    free(t);
}
END_TEST

START_TEST(invalid_config_warns_once_keeps_default)
{
    const char *env[] = {"VRAMGUARD_ALLOW=everything", "VRAMGUARD_FAIL_ON=violation,never", NULL};
    struct run r = run_prog("prog_driver", env);
    ASSERT_PASSED(r); /* prog_driver expects the default: pinned refused */
    ck_assert_int_eq(vg_test_count(r.log, "VRAMGUARD_ALLOW: rule \"everything\" is not valid (unknown kind"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "VRAMGUARD_FAIL_ON=\"violation,never\" is not valid"), 1);
}
END_TEST

/* Exported: every exported symbol of the interposition table, the runtime
 * wrappers, dlsym and the vramguard_shim_* API; nothing else. */
static const char *const runtime_exports[] = {
    "cudaFree",      "cudaFreeAsync",    "cudaFreeHost",      "cudaHostAlloc",           "cudaHostRegister",
    "cudaMalloc",    "cudaMalloc3D",     "cudaMallocArray",   "cudaMallocAsync",         "cudaMallocFromPoolAsync",
    "cudaMallocHost", "cudaMallocManaged", "cudaMallocPitch", NULL};
static const char *const api_exports[] = {"dlclose", "dlsym", "vramguard_shim_purpose_pop", "vramguard_shim_purpose_push",
                                          "vramguard_shim_report", "vramguard_shim_usage",
                                          "vramguard_shim_verify_residency", "vramguard_shim_version", NULL};

START_TEST(exported_symbols_exact)
{
    char tmp[512], cmd[4000], out[700], want_path[700];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    snprintf(out, sizeof(out), "%s/nm.txt", tmp);
    snprintf(want_path, sizeof(want_path), "%s/want.txt", tmp);
    FILE *w = fopen(want_path, "w");
    ck_assert_ptr_nonnull(w);
    for (const char *const *n = runtime_exports; *n; n++)
        fprintf(w, "%s\n", *n);
    for (const char *const *n = api_exports; *n; n++)
        fprintf(w, "%s\n", *n);
    fclose(w);
    snprintf(cmd, sizeof(cmd),
             "nm -D --defined-only %s/libvramguard.so | awk '{print $3}' | LC_ALL=C sort > %s.got; "
             "{ cat %s; sed -n 's/^ENTRY(\"[^\"]*\", \"\\([^\"]*\\)\".*/\\1/p' %s/shim/entry_points.def; } "
             "| LC_ALL=C sort -u > %s.want; diff %s.want %s.got",
             vg_test_build(), out, want_path, vg_test_root(), out, out, out);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    int st = vg_test_run(argv, NULL, 0, out);
    char *diff = vg_test_read(out);
    ck_assert_msg(st == 0, "exports differ from the table (< expected, > exported):\n%s", diff);
    free(diff);
}
END_TEST

START_TEST(runtime_dependencies_only_libc)
{
    if (vg_test_sanitized())
        return; /* an instrumented shim needs its sanitizer runtimes */
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    char cmd[1200], out[700];
    snprintf(out, sizeof(out), "%s/needed.txt", tmp);
    snprintf(cmd, sizeof(cmd), "readelf -d %s/libvramguard.so | grep NEEDED | grep -v -e libc.so -e libdl.so -e "
                               "libpthread.so; true", vg_test_build());
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    ck_assert_int_eq(vg_test_run(argv, NULL, 0, out), 0);
    char *got = vg_test_read(out);
    ck_assert_msg(got[0] == '\0', "unexpected dependencies: %s", got);
    free(got);
}
END_TEST

/* ---- the CLI with the real shim and the fake driver ---------------------- */

START_TEST(cli_run_with_real_shim)
{
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    char cli[600], prog[600], dir[700], out[700], env_lib[700];
    snprintf(cli, sizeof(cli), "%s/scripts/vramguard", vg_test_root());
    snprintf(prog, sizeof(prog), "%s/tests/prog_runtime_shared", vg_test_build());
    snprintf(dir, sizeof(dir), "%s/reports", tmp);
    snprintf(out, sizeof(out), "%s/cli.txt", tmp);
    snprintf(env_lib, sizeof(env_lib), "LD_LIBRARY_PATH=%s/fakecuda:%s/tests", vg_test_build(), vg_test_build());
    const char *env[] = {env_lib, NULL};
    const char *argv[] = {cli, "run", "--report-dir", dir, "--", prog, NULL};
    int st = vg_test_run(argv, env, 0, out);
    char *text = vg_test_read(out);
    ck_assert_msg(st == 3, "exit %d (want 3: violations)\n%s", st, text);
    ck_assert_msg(strstr(text, "verdict: fail"), "%s", text);
    free(text);
    char report[800];
    ck_assert_int_eq(find_file(dir, "vramguard.", ".json", report, sizeof(report)), 1);
    ck_assert_int_eq(validate(report), 0);

    const char *argv2[] = {cli, "run", "--policy", "off", "--", prog, NULL};
    st = vg_test_run(argv2, env, 0, out);
    text = vg_test_read(out);
    ck_assert_msg(st == 0, "exit %d (want 0 under --policy off)\n%s", st, text);
    free(text);
}
END_TEST

/* ---- issue 3: pools, VMM, arrays, registration, graphs, two devices ---------- */

/* A program passes under extra environment, with `violations` log lines. */
static void passes_with(const char *prog, const char *const *env, int violations)
{
    struct run r = run_prog(prog, env);
    ASSERT_PASSED(r);
    ck_assert_msg(vg_test_count(r.log, "vramguard: violation: ") == violations, "%d violations logged, want %d:\n%s",
                  vg_test_count(r.log, "vramguard: violation: "), violations, r.log);
}

START_TEST(pools_reject) { passes_with("prog_pools", NULL, 3); }
END_TEST
START_TEST(pools_allow_pinned)
{
    const char *env[] = {"VRAMGUARD_ALLOW=pinned", NULL};
    passes_with("prog_pools", env, 1); /* the managed pool */
}
END_TEST
START_TEST(pools_warn)
{
    const char *env[] = {"VRAMGUARD_POLICY=warn", NULL};
    passes_with("prog_pools", env, 4); /* host pool create + its alloc + default host pool alloc + managed pool */
}
END_TEST
START_TEST(vmm_reject) { passes_with("prog_vmm", NULL, 1); }
END_TEST
START_TEST(vmm_allow_pinned)
{
    const char *env[] = {"VRAMGUARD_ALLOW=pinned", NULL};
    passes_with("prog_vmm", env, 0);
}
END_TEST
START_TEST(misc_reject)
{
    passes_with("prog_misc", NULL, 4);
    struct run r = run_prog("prog_misc", NULL);
    ck_assert_int_eq(vg_test_count(r.out, "PASS mapped external buffer shown as imported"), 1);
}
END_TEST
START_TEST(misc_allow_pinned)
{
    const char *env[] = {"VRAMGUARD_ALLOW=pinned", NULL};
    passes_with("prog_misc", env, 0);
}
END_TEST
START_TEST(misc_warn)
{
    const char *env[] = {"VRAMGUARD_POLICY=warn", NULL};
    passes_with("prog_misc", env, 4);
}
END_TEST
START_TEST(two_devices)
{
    const char *env[] = {"FAKECUDA_DEVICES=2", NULL};
    struct run r = run_prog("prog_multi", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "SKIP"), 0);
    ck_assert_int_eq(vg_test_count(r.out, "PASS device 1: 5 MiB device only"), 1);
}
END_TEST

START_TEST(runtime_names_with_shared_cudart)
{
    struct run r = run_prog("prog_misc_shared", NULL);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.log, "violation: cudaHostAlloc via cuMemHostAlloc"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "violation: cudaHostRegister via cuMemHostRegister_v2"), 1);
    ck_assert_msg(strstr(r.log, "prog_misc_shared+0x"), "true caller missing:\n%s", r.log);
}
END_TEST

START_TEST(attribution_by_module)
{
    char tmp[512], report_env[700], report[800];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s/r.%%p.json", tmp);
    const char *env[] = {report_env, NULL};
    struct run r = run_prog("prog_attrib", env);
    ASSERT_PASSED(r);
    /* Runtime path (cudaMalloc from libattrib_a) and driver path (cuMemAlloc
     * from libattrib_b) each name their own module. */
    ck_assert_msg(strstr(r.out, "libattrib_b.so                                6.0 MiB        2"), "%s", r.out);
    ck_assert_msg(strstr(r.out, "libattrib_a.so                                3.0 MiB        1"), "%s", r.out);
    ck_assert_msg(strstr(r.out, "cudaMalloc from ") && strstr(r.out, "libattrib_a.so+0x"), "%s", r.out);
    ck_assert_int_eq(find_file(tmp, "r.", ".json", report, sizeof(report)), 1);
    ck_assert_int_eq(validate(report), 0);
    char *json = vg_test_read(report);
    ck_assert_msg(strstr(json, "{\"module\": \"libattrib_b.so\", \"live_bytes\": 6291456, \"live_count\": 2}"), "%s",
                  json);
    ck_assert_msg(strstr(json, "{\"address\": \"0x7e0000300000\", \"handle\": false, \"size\": 5242880"), "%s", json);
    free(json);
}
END_TEST

START_TEST(backtraces_in_the_report)
{
    char tmp[512], report_env[700], report[800];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s/r.%%p.json", tmp);
    const char *env[] = {report_env, "VRAMGUARD_BACKTRACE=1", NULL};
    struct run r = run_prog("prog_attrib", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(find_file(tmp, "r.", ".json", report, sizeof(report)), 1);
    ck_assert_int_eq(validate(report), 0);
    char *json = vg_test_read(report);
    /* The first frame is the allocating function itself, symbolised. */
    ck_assert_msg(strstr(json, "\"stack\": [\"libattrib_b.so+0x") && strstr(json, "(attrib_b_alloc+0x"), "%s", json);
    ck_assert_msg(strstr(json, "(attrib_a_alloc+0x"), "%s", json);
    free(json);

    /* VRAMGUARD_BACKTRACE=0: no stacks (by default, allocations of 1 MiB
     * or more have one: tests/preload/check_who.c). */
    char tmp2[512];
    snprintf(tmp2, sizeof(tmp2), "%s", vg_test_tmpdir());
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s/r.%%p.json", tmp2);
    const char *env2[] = {report_env, "VRAMGUARD_BACKTRACE=0", NULL};
    r = run_prog("prog_attrib", env2);
    ASSERT_PASSED(r);
    ck_assert_int_eq(find_file(tmp2, "r.", ".json", report, sizeof(report)), 1);
    json = vg_test_read(report);
    ck_assert_msg(strstr(json, "\"stack\"") == NULL, "%s", json);
    free(json);
}
END_TEST

START_TEST(purpose_rules)
{
    const char *env[] = {"VRAMGUARD_PURPOSE_RULES=libattrib_a*=intermediate,>=4M=weights", NULL};
    struct run r = run_prog("prog_attrib", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "PASS module rule"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS size rule"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS a pushed purpose wins"), 1);
}
END_TEST

START_TEST(purpose_rules_invalid)
{
    const char *env[] = {"VRAMGUARD_PURPOSE_RULES=libfoo*=bogus", NULL};
    struct run r = run_prog("prog_runtime_static", env);
    ASSERT_PASSED(r); /* the rules are ignored, the program runs */
    ck_assert_msg(strstr(r.log, "VRAMGUARD_PURPOSE_RULES=\"libfoo*=bogus\" is not valid (rule 1 names an unknown "
                                "purpose 'bogus'"),
                  "%s", r.log);
}
END_TEST

START_TEST(imported_across_processes)
{
    struct run r = run_prog("prog_ipc", NULL);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "PASS imported memory is not charged"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "prog_ipc child: ok"), 1);
}
END_TEST

START_TEST(pool_report_fields)
{
    char tmp[512], report_env[700], report[800];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s/r.%%p.json", tmp);
    const char *env[] = {report_env, "VRAMGUARD_ALLOW=pinned", NULL};
    struct run r = run_prog("prog_pools", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(find_file(tmp, "r.", ".json", report, sizeof(report)), 1);
    ck_assert_int_eq(validate(report), 0);
    char *json = vg_test_read(report);
    ck_assert_msg(strstr(json, "\"kind\": \"pool\", \"purpose\": \"weights\""), "%s", json);
    ck_assert_msg(strstr(json, "\"pool_cache_bytes\": "), "%s", json);
    ck_assert_msg(strstr(json, "\"graph_reserved_bytes\": "), "%s", json);
    ck_assert_msg(strstr(json, "\"passthrough_lookups\": [{\"name\": "), "%s", json);
    free(json);
}
END_TEST

/* ---- hot path: exact totals under stress, device switching, capture ---------- */

/* The report's cell {"kind": K, "purpose": P, ...} on the line that starts
 * with it: its allocations and frees (-1 when absent). */
static void report_cell_counters(const char *json, const char *kind, const char *purpose, long long *allocations,
                                 long long *frees)
{
    char head[128];
    snprintf(head, sizeof(head), "{\"kind\": \"%s\", \"purpose\": \"%s\", ", kind, purpose);
    *allocations = *frees = -1;
    const char *at = strstr(json, head);
    if (at == NULL)
        return;
    const char *eol = strchr(at, '\n');
    const char *a = strstr(at, "\"allocations\": ");
    const char *f = strstr(at, "\"frees\": ");
    if (a && (!eol || a < eol))
        *allocations = atoll(a + strlen("\"allocations\": "));
    if (f && (!eol || f < eol))
        *frees = atoll(f + strlen("\"frees\": "));
}

START_TEST(stress_sixteen_threads_exact)
{
    char tmp[512], report_env[700], listen_env[700], report[800];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s/r.%%p.json", tmp);
    snprintf(listen_env, sizeof(listen_env), "VRAMGUARD_LISTEN=unix:%s/vg.sock", tmp);
    const char *env[] = {report_env, listen_env, "FAKECUDA_VRAM_BYTES=1099511627776", NULL};
    struct run r = run_prog("prog_stress", env);
    ASSERT_PASSED(r);
    /* Five checkpoints (four with every worker parked, one after the drain),
     * eight checks each: live bytes, live counts, purpose and VRAM totals, peaks,
     * nothing elsewhere, no violation, GET /metrics, allocation/free counters. */
    ck_assert_int_eq(vg_test_count(r.out, "PASS checkpoint "), 40);
    ck_assert_int_eq(vg_test_count(r.out, ": allocation and free counters exact"), 5);
    ck_assert_int_eq(vg_test_count(r.out, "SKIP"), 0);
    ck_assert_int_eq(vg_test_count(r.out, "PASS peak after "), 3);
    ck_assert_int_eq(vg_test_count(r.out, "PASS at least 1 000 000 calls"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS allocations crossed threads"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS snapshots taken while the workers ran are sane"), 1);
    ck_assert_msg(strstr(r.log, ", 0 live allocations, 0 violations, 0 OOM events"), "%s", r.log);
    /* The report written at exit: the same counters, nothing live. */
    ck_assert_int_eq(find_file(tmp, "r.", ".json", report, sizeof(report)), 1);
    ck_assert_int_eq(validate(report), 0);
    char *json = vg_test_read(report);
    ck_assert_msg(strstr(json, "\"live_at_exit\": {\"count\": 0, \"bytes\": 0"), "%s", json);
    ck_assert_int_eq(vg_test_count(json, "\"purpose\": \""), 8); /* usage rows: device and pool x 4 purposes, device 0 */
    ck_assert_int_eq(vg_test_count(r.out, "EXPECT "), 8);
    long long total = 0;
    for (const char *e = strstr(r.out, "EXPECT "); e; e = strstr(e + 1, "EXPECT ")) {
        char kind[32], purpose[32];
        long long want_a = -2, want_f = -2, got_a, got_f;
        ck_assert_int_eq(sscanf(e, "EXPECT %31s %31s allocations=%lld frees=%lld", kind, purpose, &want_a, &want_f), 4);
        report_cell_counters(json, kind, purpose, &got_a, &got_f);
        ck_assert_msg(got_a == want_a && got_f == want_f, "%s/%s: report %lld allocations %lld frees, program %lld %lld",
                      kind, purpose, got_a, got_f, want_a, want_f);
        ck_assert_msg(want_a == want_f && want_a > 10000, "%s/%s: %lld allocations %lld frees", kind, purpose, want_a,
                      want_f);
        total += want_a + want_f;
    }
    ck_assert_msg(total >= 1000000, "%lld allocation and free calls", total);
    free(json);
}
END_TEST

/* prog_ctx_switch's steps, each an exact comparison per device after a way
 * of changing the current device or a capture transition. */
static const char *const ctx_switch_steps[] = {
    "PASS step: cudaSetDevice 0,1,2,1,0,2,2,0,1, each followed by cudaMalloc",
    "PASS step: a refused cudaSetDevice changes nothing",
    "PASS step: stream-ordered allocations on the default streams follow cudaSetDevice",
    "PASS step: cuCtxSetCurrent through exported symbols",
    "PASS step: cuCtxSetCurrent through cuGetProcAddress",
    "PASS step: cuCtxSetCurrent through cudaGetDriverEntryPointByVersion",
    "PASS step: cuCtxSetCurrent through dlsym(libcuda)",
    "PASS step: cuCtxSetCurrent through cuGetProcAddress (4-argument ABI)",
    "PASS step: cuCtxSetCurrent through dlsym(RTLD_DEFAULT)",
    "PASS step: cuCtxPushCurrent/cuCtxPopCurrent nesting through exported symbols",
    "PASS step: cuCtxPushCurrent/cuCtxPopCurrent nesting through cuGetProcAddress",
    "PASS step: cuCtxPushCurrent/cuCtxPopCurrent nesting through cudaGetDriverEntryPointByVersion",
    "PASS step: cuCtxPushCurrent/cuCtxPopCurrent nesting through dlsym(libcuda)",
    "PASS step: cuCtxPushCurrent/cuCtxPopCurrent nesting through cuGetProcAddress (4-argument ABI)",
    "PASS step: cuCtxPushCurrent/cuCtxPopCurrent nesting through dlsym(RTLD_DEFAULT)",
    "PASS step: cuDevicePrimaryCtxRelease",
    "PASS step: a new thread allocates at once on its own device",
    "PASS step: 48 short-lived threads, 6 at a time, each on its own device",
    "PASS step: 4 threads at once, 1000 iterations each: allocate, switch, allocate, switch back, allocate",
    "PASS interleaving: 12000 allocations checked",
    "PASS step: stream-ordered allocations go to the stream's device, not the current one",
    "PASS step: device-1 memory freed on a device-0 stream",
    "PASS step: explicit pools of other devices",
    "PASS step: current pools set with cuDeviceSetMemPool / cuMemSetMemPool",
    "PASS step: destroying the current pool makes the default current again",
    "PASS step: stream and pool handles destroyed and created again on other devices",
    "PASS step: another thread's streams destroyed here and their handles reused on other devices",
    "PASS step: another thread's allocations after the current pool was set back and the old one destroyed empty",
    "PASS step: inside a capture: graph nodes, nothing live; other streams unaffected",
    "PASS step: after cudaStreamEndCapture: live again",
    "PASS the launched graph's memory is in device 1's graph-pool reserve",
    "PASS step: after the graph ran: its memory is not a live pool allocation",
    "PASS step: a refused second begin or an end on the wrong stream does not end a capture",
    "PASS step: refused begins and ends change nothing",
    "PASS step: every begin x allocation x end variant",
    "PASS step: another thread's allocations on a capturing stream are graph nodes",
    "PASS step: another thread's allocations after the capture ended are live",
    "PASS step: a capture ended by another thread",
    "PASS step: capture of the per-thread stream, as the driver answered",
    "PASS step: a capturing stream destroyed, a new stream created",
    "PASS step: end: nothing live",
    NULL};

static void ctx_switch_passes(const char *prog)
{
    char tmp[512], report_env[700], report[800];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s/r.%%p.json", tmp);
    const char *env[] = {report_env, "FAKECUDA_DEVICES=3", "FAKECUDA_VRAM_BYTES=8589934592", NULL};
    struct run r = run_prog(prog, env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "SKIP prog_ctx_switch"), 0);
    for (const char *const *s = ctx_switch_steps; *s; s++) {
        char line[300];
        snprintf(line, sizeof(line), "%s\n", *s); /* the whole line: some are prefixes of others */
        ck_assert_msg(vg_test_count(r.out, line) == 1, "missing: %s\n%s", *s, r.out);
    }
    /* Each of the 11 sections ends by freeing everything and checking that nothing is left. */
    ck_assert_int_eq(vg_test_count(r.out, ": all freed"), 11);
    ck_assert_msg(strstr(r.log, ", 0 live allocations, 0 violations, 0 OOM events"), "%s", r.log);
    ck_assert_int_eq(find_file(tmp, "r.", ".json", report, sizeof(report)), 1);
    ck_assert_int_eq(validate(report), 0);
    char *json = vg_test_read(report);
    ck_assert_msg(strstr(json, "\"live_at_exit\": {\"count\": 0, \"bytes\": 0"), "%s", json);
    /* Three devices used, each with device and pool memory. */
    ck_assert_int_eq(vg_test_count(json, "{\"kind\": \"device\", \"purpose\": \"unknown\""), 3);
    ck_assert_int_eq(vg_test_count(json, "{\"kind\": \"pool\", \"purpose\": \"unknown\""), 3);
    free(json);
}

START_TEST(device_switching_exact_static_cudart) { ctx_switch_passes("prog_ctx_switch"); }
END_TEST

START_TEST(device_switching_exact_shared_cudart) { ctx_switch_passes("prog_ctx_switch_shared"); }
END_TEST

/* ---- issue 8, section 4: the remaining ways around reject ----------------------- */

/* prog_imports under extra environment: it passes, with `violations` log
 * lines; the exporter ran without the shim and the managed cases ran. */
static struct run imports_with(const char *const *env, int violations)
{
    struct run r = run_prog("prog_imports", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "SKIP"), 0);
    ck_assert_int_eq(vg_test_count(r.out, "PASS the exporter finished cleanly"), 1);
    ck_assert_msg(vg_test_count(r.log, "vramguard: violation: ") == violations, "%d violations logged, want %d:\n%s",
                  vg_test_count(r.log, "vramguard: violation: "), violations, r.log);
    /* Another process's VRAM stays imported, whatever the policy. */
    ck_assert_int_eq(vg_test_count(r.out, "PASS device VMM handle: tracked as kind 7 once mapped"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS device pool pointer: tracked as kind 7"), 1);
    return r;
}

START_TEST(imports_of_host_and_managed_refused)
{
    struct run r = imports_with(NULL, 4);
    ck_assert_int_eq(vg_test_count(r.log, "violation: cuMemImportFromShareableHandle of 0 B (0 bytes), kind host_pinned"),
                     1);
    ck_assert_int_eq(vg_test_count(r.log, "violation: cuMemImportFromShareableHandle of 0 B (0 bytes), kind managed"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "violation: cuMemPoolImportPointer of 1.0 MiB (1048576 bytes), kind host_pinned"),
                     1);
    ck_assert_int_eq(vg_test_count(r.log, "violation: cuMemPoolImportPointer of 1.0 MiB (1048576 bytes), kind managed"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "refused with CUDA_ERROR_NOT_PERMITTED (800)"), 2);
    ck_assert_int_eq(vg_test_count(r.log, "refused with CUDA_ERROR_NOT_SUPPORTED (801)"), 2);
    ck_assert_msg(strstr(r.log, "prog_imports+0x"), "caller module missing:\n%s", r.log);
    /* Given back to the driver: the handles released, the pointers freed. */
    ck_assert_int_eq(vg_test_count(r.out, "PASS host-NUMA VMM handle: import refused with 800"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS host-NUMA VMM handle: the refused handle was released"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS managed VMM handle: import refused with 801"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS managed VMM handle: the refused handle was released"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS host-NUMA pool pointer: import refused with 800"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS host-NUMA pool pointer: the refused pointer was freed"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS managed pool pointer: import refused with 801"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS managed pool pointer: the refused pointer was freed"), 1);
}
END_TEST

START_TEST(imports_allow_pinned)
{
    const char *env[] = {"VRAMGUARD_ALLOW=pinned", NULL};
    struct run r = imports_with(env, 2); /* the managed ones */
    ck_assert_int_eq(vg_test_count(r.log, "refused with CUDA_ERROR_NOT_SUPPORTED (801)"), 2);
    ck_assert_int_eq(vg_test_count(r.out, "PASS host-NUMA VMM handle: tracked as kind 1 once mapped"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS host-NUMA pool pointer: tracked as kind 1"), 1);
}
END_TEST

START_TEST(imports_warn)
{
    const char *env[] = {"VRAMGUARD_POLICY=warn", NULL};
    struct run r = imports_with(env, 4);
    ck_assert_int_eq(vg_test_count(r.log, "allowed by VRAMGUARD_POLICY=warn"), 4);
    ck_assert_int_eq(vg_test_count(r.out, "PASS host-NUMA VMM handle: tracked as kind 1 once mapped"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS managed VMM handle: tracked as kind 2 once mapped"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS host-NUMA pool pointer: tracked as kind 1"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS managed pool pointer: tracked as kind 2"), 1);
}
END_TEST

START_TEST(imports_off)
{
    const char *env[] = {"VRAMGUARD_POLICY=off", NULL};
    struct run r = imports_with(env, 0);
    ck_assert_int_eq(vg_test_count(r.out, "PASS host-NUMA VMM handle: tracked as kind 1 once mapped"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS managed VMM handle: tracked as kind 2 once mapped"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS host-NUMA pool pointer: tracked as kind 1"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS managed pool pointer: tracked as kind 2"), 1);
}
END_TEST

/* The three managed globals of prog_managed_globals, as the log names them. */
static const char *const managed_global_lines[] = {
    "violation: cuModuleGetGlobal_v2 of 4 B (4 bytes), kind managed, device 0",
    "violation: cuModuleGetGlobal_v2 of 64.0 KiB (65536 bytes), kind managed, device 0",
    "violation: cuLibraryGetManaged of 24 B (24 bytes), kind managed, device 0", NULL};

START_TEST(managed_globals_reported_once_not_refused)
{
    char tmp[512], report_env[700], report[800], journal[800];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s/r.%%p.json", tmp);
    const char *env[] = {report_env, NULL};
    struct run r = run_prog("prog_managed_globals", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.log, "vramguard: violation: "), 3);
    for (const char *const *l = managed_global_lines; *l; l++)
        ck_assert_msg(vg_test_count(r.log, *l) == 1, "want once: %s\n%s", *l, r.log);
    ck_assert_int_eq(vg_test_count(r.log, "prog_managed_globals+0x"), 3); /* the calling module */
    ck_assert_int_eq(vg_test_count(r.log, "refused with"), 0);
    ck_assert_int_eq(vg_test_count(r.log, "__managed__ globals are violations but are never refused"), 1);
    ck_assert_int_eq(find_file(tmp, "r.", ".json", report, sizeof(report)), 1);
    ck_assert_int_eq(validate(report), 0);
    char *json = vg_test_read(report);
    ck_assert_msg(strstr(json, "\"status\": \"fail\", \"reasons\": [\"violation\"], \"violations\": 3"), "%s", json);
    ck_assert_msg(strstr(json, "\"live_at_exit\": {\"count\": 0, \"bytes\": 0"), "%s", json);
    free(json);
    ck_assert_int_eq(find_file(tmp, "r.", ".json.journal", journal, sizeof(journal)), 1);
    char *jl = vg_test_read(journal);
    ck_assert_int_eq(vg_test_count(jl, "{\"event\":\"violation\""), 3);
    ck_assert_int_eq(vg_test_count(jl, "\"kind\":\"managed\",\"size\":65536"), 1);
    ck_assert_int_eq(vg_test_count(jl, "\"action\":\"allowed\",\"result\":0"), 3);
    free(jl);
}
END_TEST

START_TEST(managed_globals_are_no_leak)
{
    /* Only leaks fail this run: the globals are not live allocations. */
    char tmp[512], report_env[700], report[800];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s/r.%%p.json", tmp);
    const char *env[] = {report_env, "VRAMGUARD_FAIL_ON=leak", NULL};
    struct run r = run_prog("prog_managed_globals", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(find_file(tmp, "r.", ".json", report, sizeof(report)), 1);
    ck_assert_int_eq(validate(report), 0);
    char *json = vg_test_read(report);
    ck_assert_msg(strstr(json, "\"status\": \"pass\""), "%s", json);
    ck_assert_msg(strstr(json, "\"leaked_allocations\": 0, \"leaked_bytes\": 0"), "%s", json);
    free(json);
}
END_TEST

START_TEST(managed_globals_warn_and_off)
{
    const char *warn[] = {"VRAMGUARD_POLICY=warn", NULL};
    struct run r = run_prog("prog_managed_globals", warn);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.log, "vramguard: violation: "), 3);
    ck_assert_int_eq(vg_test_count(r.log, "allowed by VRAMGUARD_POLICY=warn"), 3);
    for (const char *const *l = managed_global_lines; *l; l++)
        ck_assert_msg(vg_test_count(r.log, *l) == 1, "want once: %s\n%s", *l, r.log);
    ck_assert_int_eq(vg_test_count(r.log, "never refused"), 0);

    const char *off[] = {"VRAMGUARD_POLICY=off", NULL};
    r = run_prog("prog_managed_globals", off);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.log, "vramguard: violation"), 0);
}
END_TEST

START_TEST(managed_globals_allow_rules)
{
    /* A rule lets the small globals through (counted for the rule), the 64 KiB one stays a violation. */
    const char *narrow[] = {"VRAMGUARD_ALLOW=managed:<=32", "PROG_MANAGED_ALLOWED_UPTO=32", NULL};
    struct run r = run_prog("prog_managed_globals", narrow);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.log, "vramguard: violation: "), 1);
    ck_assert_int_eq(vg_test_count(r.log, managed_global_lines[1]), 1);
    /* The narrowest rule for all three (what vramguard suggest proposes): no violation. */
    const char *all[] = {"VRAMGUARD_ALLOW=managed:prog_managed_globals:<=64K", "PROG_MANAGED_ALLOWED_UPTO=65536", NULL};
    r = run_prog("prog_managed_globals", all);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.log, "vramguard: violation"), 0);
}
END_TEST


/* ---- VRAMGUARD_ALLOW rules (prog_allow_rules) ---------------------------------- */

/* Run prog_allow_rules with VRAMGUARD_ALLOW (and more environment), a report
 * in the run's directory; the report's text in *json. */
static struct run run_allow(const char *allow, const char *extra, char **json)
{
    static char report_env[700], allow_env[400];
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s/r.%%p.json", tmp);
    snprintf(allow_env, sizeof(allow_env), "VRAMGUARD_ALLOW=%s", allow);
    const char *env[] = {report_env, allow_env, extra, NULL};
    struct run r = run_prog("prog_allow_rules", env);
    char report[800];
    *json = NULL;
    if (find_file(tmp, "r.", ".json", report, sizeof(report)) == 1) {
        ck_assert_int_eq(validate(report), 0);
        *json = vg_test_read(report);
    }
    ck_assert_msg(*json, "no report\n%s\n%s", r.out, r.log);
    return r;
}

#define RESULT_IS(r, step, code)                                                                     \
    ck_assert_msg(strstr((r).out, "RESULT " step " " #code "\n"), "%s: want %s\n%s\n--- log ---\n%s", step, #code, \
                  (r).out, (r).log)

START_TEST(allow_rules_module_and_size)
{
    char *json;
    struct run r = run_allow("pinned:libpinned_helper.so:<=64K,pinned:<=4K", NULL, &json);
    ck_assert_int_eq(r.status, 0);
    RESULT_IS(r, "main_4K", 0);               /* pinned:<=4K, any module */
    RESULT_IS(r, "main_8K", 800);             /* past the bound */
    RESULT_IS(r, "lib_4K", 0);                /* the library's own rule (the first that matches) */
    RESULT_IS(r, "lib_1M", 800);              /* past its bound */
    RESULT_IS(r, "main_register_64K", 800);   /* pinned covers registrations, but 64K > 4K */
    RESULT_IS(r, "main_managed_4K", 801);     /* no managed rule */
    RESULT_IS(r, "main_4K_after_frees", 0);
    /* Each refusal names the narrowest rule that would have allowed it. */
    ck_assert_int_eq(vg_test_count(r.log, "vramguard: violation: "), 4);
    ck_assert_int_eq(vg_test_count(r.log, "; VRAMGUARD_ALLOW=pinned:prog_allow_rules:<=8K would allow it"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "; VRAMGUARD_ALLOW=pinned:libpinned_helper.so:<=1M would allow it"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "; VRAMGUARD_ALLOW=registered:prog_allow_rules:<=64K would allow it"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "; VRAMGUARD_ALLOW=managed:prog_allow_rules:<=4K would allow it"), 1);
    /* Let through: tracked as its kind, counted per rule, no violation. */
    ck_assert_msg(strstr(json, "\"allow\": [\"pinned:libpinned_helper.so:<=64K\", \"pinned:<=4K\"]"), "%s", json);
    ck_assert_msg(strstr(json, "{\"rule\": \"pinned:libpinned_helper.so:<=64K\", \"kind\": \"pinned\", "
                               "\"allocations\": 1, \"bytes\": 4096}"), "%s", json);
    ck_assert_msg(strstr(json, "{\"rule\": \"pinned:<=4K\", \"kind\": \"pinned\", \"allocations\": 2, "
                               "\"bytes\": 8192}"), "%s", json);
    ck_assert_msg(strstr(json, "{\"kind\": \"pinned\", \"live_bytes\": 0, \"cap_bytes\": null}"), "%s", json);
    ck_assert_msg(strstr(json, "\"violations\": {\"count\": 4"), "%s", json);
    ck_assert_msg(strstr(json, "\"allow_rule\":\"pinned:libpinned_helper.so:<=1M\""), "%s", json);
    ck_assert_msg(strstr(json, "\"kind\": \"host_pinned\", \"purpose\": \"unknown\", \"live_bytes\": 0, "
                               "\"live_count\": 0"), "%s", json);
    free(json);
}
END_TEST

/* A live allocation a rule let through names the rule in the report. */
START_TEST(allow_rules_live_names_the_rule)
{
    char *json;
    struct run r = run_allow("pinned:libpinned_helper.so:<=64K,pinned:<=4K", "PROG_ALLOW_KEEP=1", &json);
    ck_assert_int_eq(r.status, 0);
    RESULT_IS(r, "lib_4K", 0);
    ck_assert_msg(strstr(json, "\"kind\": \"host_pinned\", \"purpose\": \"unknown\", \"label\": null, "
                               "\"api\": \"cuMemHostAlloc\", \"caller\": "), "%s", json);
    ck_assert_msg(strstr(json, "\"allowed_by\": \"pinned:libpinned_helper.so:<=64K\""), "%s", json);
    ck_assert_int_eq(vg_test_count(json, "\"allowed_by\": "), 1);
    ck_assert_msg(strstr(json, "{\"kind\": \"pinned\", \"live_bytes\": 4096, \"cap_bytes\": null}"), "%s", json);
    free(json);
}
END_TEST

START_TEST(allow_rules_cap)
{
    char *json;
    struct run r = run_allow("pinned:total<=8K", NULL, &json);
    ck_assert_int_eq(r.status, 0);
    RESULT_IS(r, "main_4K", 0);
    RESULT_IS(r, "main_8K", 800);             /* 4K + 8K would pass the cap */
    RESULT_IS(r, "lib_4K", 0);                /* 8K live: the cap, exactly */
    RESULT_IS(r, "lib_1M", 800);
    RESULT_IS(r, "main_register_64K", 800);   /* registrations count against pinned's cap */
    RESULT_IS(r, "main_managed_4K", 801);
    RESULT_IS(r, "main_4K_after_frees", 0);   /* freed memory gave its bytes back */
    ck_assert_int_eq(vg_test_count(r.log, "a VRAMGUARD_ALLOW rule matches but its kind's cap (total<=) is reached"), 3);
    ck_assert_msg(strstr(json, "{\"kind\": \"pinned\", \"live_bytes\": 0, \"cap_bytes\": 8192}"), "%s", json);
    ck_assert_msg(strstr(json, "{\"rule\": \"pinned:total<=8K\", \"kind\": \"pinned\", \"allocations\": 3, "
                               "\"bytes\": 12288}"), "%s", json);
    free(json);
}
END_TEST

START_TEST(allow_rules_warn_and_bad_rules)
{
    char *json;
    /* warn: what no rule lets through is a violation let through; what a
     * rule lets through is none. A malformed rule is dropped with a warning
     * and never loosens (managed stays a violation). */
    struct run r = run_allow("pinned:<=4K,managed:<=zz", "VRAMGUARD_POLICY=warn", &json);
    ck_assert_int_eq(r.status, 0);
    RESULT_IS(r, "main_4K", 0);
    RESULT_IS(r, "main_8K", 0);
    RESULT_IS(r, "main_managed_4K", 0);
    ck_assert_int_eq(vg_test_count(r.log, "VRAMGUARD_ALLOW: rule \"managed:<=zz\" is not valid"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "allowed by VRAMGUARD_POLICY=warn"), 4); /* 8K, 1M, register, managed */
    ck_assert_msg(strstr(json, "\"violations\": {\"count\": 4"), "%s", json);
    ck_assert_msg(strstr(json, "\"allow\": [\"pinned:<=4K\"]"), "%s", json);
    free(json);
}
END_TEST

/* ---- issue 8: allowances, audit then suggest, with the real shim ------------- */

/* The last `n` bytes of `text` at most: Check's messages are limited to 4 KiB. */
static const char *tail_of(const char *text, size_t n)
{
    size_t len = strlen(text);
    return len > n ? text + len - n : text;
}

/* The first line of `text` that starts with `prefix`, copied into `out`. */
static int line_starting(const char *text, const char *prefix, char *out, size_t size)
{
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, prefix, strlen(prefix)) == 0) {
            size_t n = strcspn(p, "\n");
            snprintf(out, size, "%.*s", (int)n, p);
            return 1;
        }
    return 0;
}

/* A run under warn, `vramguard suggest` on its reports, then the same program
 * under reject with the suggested --allow passes; with one more large pinned
 * allocation it still fails, and the refusal names the rule that would allow it. */
START_TEST(allow_round_trip)
{
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    char cli[600], prog[600], audit[700], out[700], env_lib[700];
    snprintf(cli, sizeof(cli), "%s/scripts/vramguard", vg_test_root());
    snprintf(prog, sizeof(prog), "%s/tests/prog_allow", vg_test_build());
    snprintf(audit, sizeof(audit), "%s/audit", tmp);
    snprintf(out, sizeof(out), "%s/cli.txt", tmp);
    snprintf(env_lib, sizeof(env_lib), "LD_LIBRARY_PATH=%s/fakecuda:%s/tests", vg_test_build(), vg_test_build());
    const char *env[] = {env_lib, NULL};

    /* 1. the audit: everything let through and recorded */
    const char *warn[] = {cli, "run", "--policy", "warn", "--report-dir", audit, "--", prog, NULL};
    int st = vg_test_run(warn, env, 0, out);
    char *text = vg_test_read(out);
    ck_assert_msg(st == 3, "warn run: exit %d (want 3: violations let through)\n%s", st, tail_of(text, 3000));
    ck_assert_msg(strstr(text, "violations 7;") && strstr(text, "prog_allow: 0 refused"), "%s", tail_of(text, 3000));
    free(text);

    /* 2. the suggestion: one rule per kind and module, most bytes first */
    const char *sug[] = {cli, "suggest", audit, NULL};
    st = vg_test_run(sug, env, 0, out);
    text = vg_test_read(out);
    ck_assert_msg(st == 0, "suggest: exit %d\n%s", st, tail_of(text, 3000));
    const char *want[] = {"7 violations in 1 process; 4 rules allow them",
                          "\npinned:liballow_helper.so:<=2M    3 allocations, 1.6 MiB\n",
                          "\nmanaged:prog_allow:<=256K         1 allocation, 256.0 KiB\n",
                          "\nregistered:prog_allow:<=8K        1 allocation, 8.0 KiB\n",
                          "\npinned:prog_allow:<=4K            2 allocations, 2.9 KiB\n",
                          "\n--allow 'pinned:liballow_helper.so:<=2M' --allow 'managed:prog_allow:<=256K' "
                          "--allow 'registered:prog_allow:<=8K' --allow 'pinned:prog_allow:<=4K'\n",
                          "\nVRAMGUARD_ALLOW='pinned:liballow_helper.so:<=2M,managed:prog_allow:<=256K,"
                          "registered:prog_allow:<=8K,pinned:prog_allow:<=4K'\n"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(strstr(text, want[i]), "suggest lacks \"%s\":\n%s", want[i], tail_of(text, 3000));
    char allow[1024];
    ck_assert_int_eq(line_starting(text, "--allow ", allow, sizeof(allow)), 1);
    free(text);

    /* 3. the same program under reject with the suggested --allow, as printed */
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "exec '%s' run %s -- '%s'", cli, allow, prog);
    const char *reject[] = {"/bin/sh", "-c", cmd, NULL};
    st = vg_test_run(reject, env, 0, out);
    text = vg_test_read(out);
    ck_assert_msg(st == 0, "reject with the suggested allowance: exit %d (want 0)\n%s", st, tail_of(text, 3000));
    ck_assert_msg(strstr(text, "verdict: pass") && strstr(text, "prog_allow: 0 refused"), "%s", tail_of(text, 3000));
    free(text);

    /* ... and through the environment, from suggest --quiet */
    snprintf(cmd, sizeof(cmd), "VRAMGUARD_ALLOW=$('%s' suggest --quiet '%s') && export VRAMGUARD_ALLOW && "
                               "exec '%s' run -- '%s'", cli, audit, cli, prog);
    st = vg_test_run(reject, env, 0, out);
    text = vg_test_read(out);
    ck_assert_msg(st == 0, "VRAMGUARD_ALLOW=$(vramguard suggest --quiet): exit %d (want 0)\n%s", st, tail_of(text, 3000));
    free(text);

    /* 4. one more pinned allocation of 64 MiB: refused, the run fails */
    snprintf(cmd, sizeof(cmd), "exec '%s' run --suggest %s -- '%s' big", cli, allow, prog);
    st = vg_test_run(reject, env, 0, out);
    text = vg_test_read(out);
    ck_assert_msg(st == 3, "with a large pinned allocation: exit %d (want 3)\n%s", st, tail_of(text, 3000));
    ck_assert_msg(strstr(text, "prog_allow: 1 refused") && strstr(text, "violations 1;"), "%s", tail_of(text, 3000));
    /* the shim's refusal line names the narrowest rule, and so does --suggest,
     * which keeps the run's own rules but the one it widens */
    ck_assert_msg(vg_test_count(text, "pinned:prog_allow:<=64M") >= 2, "%s", tail_of(text, 3000));
    ck_assert_msg(strstr(text, "\nvramguard: pinned:prog_allow:<=64M    1 allocation, 64.0 MiB\n"
                               "vramguard: with the allowance the run already had: pinned:liballow_helper.so:<=2M,"
                               "managed:prog_allow:<=256K,registered:prog_allow:<=8K\n"),
                  "%s", tail_of(text, 3000));
    free(text);

    /* without any allowance, under reject: every one refused */
    const char *bare[] = {cli, "run", "--", prog, NULL};
    st = vg_test_run(bare, env, 0, out);
    text = vg_test_read(out);
    ck_assert_msg(st == 3 && strstr(text, "prog_allow: 7 refused"), "exit %d\n%s", st, tail_of(text, 3000));
    free(text);
}
END_TEST

/* ---- Issue 8, section 3: VRAM budgets (VRAMGUARD_LIMIT) ---------------------- */

START_TEST(budget_refuses_with_oom)
{
    const char *env[] = {"VRAMGUARD_LIMIT=total=64M,kv_cache=16M", NULL};
    struct run r = run_prog("prog_budget", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "PASS one byte past the total budget refused"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS kv_cache past its budget refused with 2"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS cuMemCreate past the budget refused with 2"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS async 16 MiB served from the pool's cache"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS async needing 2 MiB of new VRAM refused with 2"), 1);
    /* Counted apart, explained once with the budget named, then one line each. */
    ck_assert_int_eq(vg_test_count(r.log, "==== over VRAM budget on device 0"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "==== out of memory on device"), 0);
    ck_assert_msg(strstr(r.log, "budget hit: VRAMGUARD_LIMIT total=64.0 MiB (67108864 bytes) on device 0; "
                                "charged VRAM 64.0 MiB"), "%s", r.log);
    ck_assert_int_eq(vg_test_count(r.log, "over budget again"), 3);
    ck_assert_int_eq(vg_test_count(r.log, "VRAMGUARD_LIMIT kv_cache=16.0 MiB, live in the purpose 16.0 MiB"), 1);
}
END_TEST

/* /metrics shows each budget and its budget OOMs; /health answers 503 on
 * them when VRAMGUARD_HEALTH_FAIL_ON asks for it. */
START_TEST(budget_metrics_and_health)
{
    char sock[700], listen[800], sock_env[800];
    snprintf(sock, sizeof(sock), "%s/vg.sock", vg_test_tmpdir());
    snprintf(listen, sizeof(listen), "VRAMGUARD_LISTEN=unix:%s", sock);
    snprintf(sock_env, sizeof(sock_env), "PROG_BUDGET_SOCKET=%s", sock);
    const char *env[] = {"VRAMGUARD_LIMIT=total=64M,kv_cache=16M", "VRAMGUARD_HEALTH_FAIL_ON=budget", listen, sock_env,
                         NULL};
    struct run r = run_prog("prog_budget", env);
    ASSERT_PASSED(r);
    ck_assert_msg(strstr(r.out, "METRICS vramguard_budget_bytes{device=\"0\",scope=\"total\"} 67108864\n"), "%s", r.out);
    ck_assert_msg(strstr(r.out, "METRICS vramguard_budget_bytes{device=\"0\",scope=\"kv_cache\"} 16777216\n"), "%s",
                  r.out);
    ck_assert_msg(strstr(r.out, "METRICS vramguard_budget_oom_events_total{device=\"0\",scope=\"total\"} 3\n"), "%s",
                  r.out);
    ck_assert_msg(strstr(r.out, "METRICS vramguard_budget_oom_events_total{device=\"0\",scope=\"kv_cache\"} 1\n"),
                  "%s", r.out);
    ck_assert_msg(strstr(r.out, "HEALTH 503\n"), "%s", r.out);
    /* Without the setting /health stays 200: a liveness probe must not restart a worker by default. */
    const char *env2[] = {"VRAMGUARD_LIMIT=total=64M,kv_cache=16M", listen, sock_env, NULL};
    r = run_prog("prog_budget", env2);
    ASSERT_PASSED(r);
    ck_assert_msg(strstr(r.out, "HEALTH 200\n"), "%s", r.out);
}
END_TEST

/* A device-specific budget overrides the general one for its device; each
 * device's allocations count against its own budget only. */
START_TEST(budget_per_device)
{
    const char *env[] = {"FAKECUDA_DEVICES=2", "VRAMGUARD_LIMIT=total=8M,1:total=4M", NULL};
    struct run r = run_prog("prog_budget_devices", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "PASS "), 5);
    ck_assert_int_eq(vg_test_count(r.log, "==== over VRAM budget on device 1"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "==== over VRAM budget on device 0"), 1);
}
END_TEST

/* NVML's figure for every device: a device first reached while another
 * thread was still loading NVML (slowly) gets its handle at the first reading. */
START_TEST(nvml_for_a_device_first_seen_during_nvml_init)
{
    char lib_env[1200];
    snprintf(lib_env, sizeof(lib_env), "LD_LIBRARY_PATH=%s/fakecuda:%s/tests:%s/tests/nvml", vg_test_build(),
             vg_test_build(), vg_test_build());
    const char *env[] = {"FAKECUDA_DEVICES=2", "FAKE_NVML_INIT_MS=300", lib_env, NULL};
    struct run r = run_prog("prog_nvml", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "PASS "), 3);
    ck_assert_int_eq(vg_test_count(r.log, "==== out of memory on device "), 2);
    ck_assert_msg(vg_test_count(r.log, "this process (NVML, as nvidia-smi shows it): 64.0 MiB") == 2,
                  "both breakdowns should show NVML's 64 MiB for this process:\n%s", r.log);
}
END_TEST

/* Inside a PID namespace NVML lists the host's pid: said once, and no
 * per-process figure is claimed. */
START_TEST(nvml_without_this_pid_says_so)
{
    char lib_env[1200];
    snprintf(lib_env, sizeof(lib_env), "LD_LIBRARY_PATH=%s/fakecuda:%s/tests:%s/tests/nvml", vg_test_build(),
             vg_test_build(), vg_test_build());
    const char *env[] = {"FAKECUDA_DEVICES=2", "FAKE_NVML_PID_SHIFT=100000", lib_env, NULL};
    struct run r = run_prog("prog_nvml", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.log, "==== out of memory on device "), 2);
    ck_assert_int_eq(vg_test_count(r.log, "this process (NVML"), 0);
    ck_assert_int_eq(vg_test_count(r.log, "none with this pid"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "no NVML figure for this process"), 2);
}
END_TEST

START_TEST(budget_oom_path_allocates_no_heap)
{
    if (vg_test_sanitized())
        return; /* the spy's malloc cannot stand beside a sanitizer's */
    char preload[1200];
    snprintf(preload, sizeof(preload), "LD_PRELOAD=%s/libvramguard.so:%s/tests/libmalloc_spy.so", vg_test_build(),
             vg_test_build());
    const char *env[] = {preload, "VRAMGUARD_LIMIT=total=64M,kv_cache=16M", NULL};
    struct run r = run_prog("prog_budget", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "PASS no heap allocation on the budget OOM path"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "==== over VRAM budget on device 0"), 1);
}
END_TEST

START_TEST(budget_malformed_entry_dropped)
{
    /* The bad entry is named once and dropped; the good ones still hold. */
    const char *env[] = {"VRAMGUARD_LIMIT=total=64M,kv_cache=lots,kv_cache=16M", NULL};
    struct run r = run_prog("prog_budget", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.log, "VRAMGUARD_LIMIT: entry \"kv_cache=lots\" is not valid"), 1);
}
END_TEST

START_TEST(budget_meminfo_reports_the_budget)
{
    const char *env[] = {"VRAMGUARD_LIMIT=total=64M,kv_cache=16M", "VRAMGUARD_LIMIT_MEMINFO=1", NULL};
    struct run r = run_prog("prog_budget", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "PASS meminfo: total is the budget"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS meminfo: nothing free at the budget"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS meminfo: cuMemGetInfo_v2 too"), 1);
}
END_TEST

START_TEST(budget_report_section)
{
    char report[700];
    snprintf(report, sizeof(report), "VRAMGUARD_REPORT=%s/budget.json", vg_test_tmpdir());
    const char *env[] = {"VRAMGUARD_LIMIT=total=64M,kv_cache=16M", report, NULL};
    struct run r = run_prog("prog_budget", env);
    ASSERT_PASSED(r);
    char *json = vg_test_read(report + strlen("VRAMGUARD_REPORT="));
    ck_assert_ptr_nonnull(json);
    ck_assert_msg(strstr(json, "\"budgets\": {\"oom_events\": 4, \"budgets\": [{\"device\": 0, \"scope\": \"total\", "
                               "\"bytes\": 67108864, \"oom_events\": 3}, {\"device\": 0, \"scope\": \"kv_cache\", "
                               "\"bytes\": 16777216, \"oom_events\": 1}]"), "%s", json);
    ck_assert_msg(strstr(json, "\"budget\":\"kv_cache\",\"budget_limit\":16777216"), "%s", json);
    ck_assert_msg(strstr(json, "\"oom_events\": {\"count\": 0, \"recorded\": []}"), "%s", json);
    ck_assert_int_eq(validate(report + strlen("VRAMGUARD_REPORT=")), 0);
    free(json);
    /* VRAMGUARD_FAIL_ON=budget: the report fails for it (and validates). */
    const char *env2[] = {"VRAMGUARD_LIMIT=total=64M,kv_cache=16M", "VRAMGUARD_FAIL_ON=budget", report, NULL};
    r = run_prog("prog_budget", env2);
    ASSERT_PASSED(r);
    json = vg_test_read(report + strlen("VRAMGUARD_REPORT="));
    ck_assert_msg(strstr(json, "\"summary\": {\"status\": \"fail\", \"reasons\": [\"budget\"]"), "%s", json);
    ck_assert_int_eq(validate(report + strlen("VRAMGUARD_REPORT=")), 0);
    free(json);
}
END_TEST


/* ---- Issue 9, items 1 and 2: report targets that must not be replaced or followed ---- */

START_TEST(report_never_replaces_a_fifo_or_device)
{
    char fifo[700], node[700], env1[800], env2[800];
    snprintf(fifo, sizeof(fifo), "%s/report.fifo", vg_test_tmpdir());
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    snprintf(env1, sizeof(env1), "VRAMGUARD_REPORT=%s", fifo);
    const char *e1[] = {env1, NULL};
    struct run r = run_prog("prog_runtime_shared", e1);
    ASSERT_PASSED(r);
    struct stat st;
    ck_assert_int_eq(lstat(fifo, &st), 0);
    ck_assert_msg(S_ISFIFO(st.st_mode), "the FIFO was replaced");
    ck_assert_int_eq(vg_test_count(r.log, "it exists and is not a regular file (left as it is)"), 1);
    /* A character device (as root, what /dev/null is): never renamed over. */
    snprintf(node, sizeof(node), "%s/report.chr", vg_test_tmpdir());
    if (mknod(node, S_IFCHR | 0666, makedev(1, 3)) == 0) {
        snprintf(env2, sizeof(env2), "VRAMGUARD_REPORT=%s", node);
        const char *e2[] = {env2, NULL};
        r = run_prog("prog_runtime_shared", e2);
        ASSERT_PASSED(r);
        ck_assert_int_eq(lstat(node, &st), 0);
        ck_assert_msg(S_ISCHR(st.st_mode), "the device node was replaced");
    }
}
END_TEST

START_TEST(report_to_dev_null_is_no_report)
{
    struct stat before, after;
    ck_assert_int_eq(stat("/dev/null", &before), 0);
    const char *e[] = {"VRAMGUARD_REPORT=/dev/null", NULL};
    struct run r = run_prog("prog_runtime_shared", e);
    ASSERT_PASSED(r);
    ck_assert_int_eq(stat("/dev/null", &after), 0);
    ck_assert(S_ISCHR(after.st_mode) && after.st_rdev == before.st_rdev);
    ck_assert_msg(!strstr(r.log, "cannot write the report"), "%s", r.log);
    ck_assert_int_eq(access("/dev/null.journal", F_OK), -1);
}
END_TEST

START_TEST(journal_and_log_never_follow_a_link)
{
    char report[700], victim[700], link[800], env1[800], logpath[700], logenv[800];
    snprintf(report, sizeof(report), "%s/r.json", vg_test_tmpdir());
    snprintf(victim, sizeof(victim), "%s/victim.txt", vg_test_tmpdir());
    snprintf(link, sizeof(link), "%s.journal", report);
    FILE *f = fopen(victim, "w");
    ck_assert_ptr_nonnull(f);
    fputs("untouched\n", f);
    fclose(f);
    ck_assert_int_eq(symlink(victim, link), 0);
    snprintf(env1, sizeof(env1), "VRAMGUARD_REPORT=%s", report);
    const char *e1[] = {env1, NULL};
    struct run r = run_prog("prog_runtime_shared", e1);
    ASSERT_PASSED(r);
    char *text = vg_test_read(victim);
    ck_assert_str_eq(text, "untouched\n");
    free(text);
    ck_assert_int_eq(vg_test_count(r.log, "a symbolic link is not followed"), 1);
    /* The log too: a link in its place is not written through (stderr then). */
    snprintf(logpath, sizeof(logpath), "%s/vg.log", vg_test_tmpdir());
    unlink(link);
    ck_assert_int_eq(symlink(victim, logpath), 0);
    snprintf(logenv, sizeof(logenv), "VRAMGUARD_LOG=%s", logpath);
    const char *e2[] = {logenv, NULL};
    r = run_prog("prog_runtime_shared", e2);
    ASSERT_PASSED(r);
    text = vg_test_read(victim);
    ck_assert_str_eq(text, "untouched\n");
    free(text);
    ck_assert_msg(strstr(r.out, "cannot open VRAMGUARD_LOG file") && strstr(r.out, "a symbolic link is not followed"),
                  "%s", r.out);
}
END_TEST

/* ---- issue 9, the intercept layer: unknown variants, composition with
 * ---- another interposer, runtime scopes after dlclose ------------------ */

/* A newer driver's variant (cuMemAlloc_v9) is handed out as the driver
 * answered: a wrapper of another variant would drop its arguments. It is
 * logged and listed in the report; so is an unexported address above the
 * versions the table knows. Without the future driver nothing is listed. */
START_TEST(unknown_variants_pass_through_as_holes)
{
    char tmp[512], report_env[700], report[800];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s/r.json", tmp);
    snprintf(report, sizeof(report), "%s/r.json", tmp);
    const char *env[] = {"FAKECUDA_FUTURE_VARIANTS=1", report_env, NULL};
    struct run r = run_prog("prog_variants", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "PASS the call keeps its own argument list"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "cuGetProcAddress(\"cuMemAlloc\", 14000) returned cuMemAlloc_v9, a variant "
                                          "vramguard does not know"),
                     1);
    ck_assert_int_eq(vg_test_count(r.log, "cuGetProcAddress(\"cuMemFree\", 14000) returned an address that is no "
                                          "exported variant"),
                     1);
    ck_assert_int_eq(validate(report), 0);
    char *json = vg_test_read(report);
    ck_assert_msg(strstr(json, "{\"name\": \"cuMemAlloc_v9\", \"reason\": \"a variant vramguard does not know"), "%s",
                  json);
    ck_assert_msg(strstr(json, "{\"name\": \"cuMemFree\", \"reason\": \"the driver answered with an address"), "%s",
                  json);
    free(json);

    /* The driver of this CUDA version: the lookups select known variants.
     * dlsym of an unknown one is handed out and listed the same way; of one
     * the driver does not have, nothing is listed. */
    const char *plain[] = {report_env, NULL};
    r = run_prog("prog_variants", plain);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "PASS cuGetProcAddress(cuMemAlloc, 14000) selects cuMemAlloc_v2, wrapped"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "cuGetProcAddress(\""), 0);
    ck_assert_int_eq(vg_test_count(r.log, "dlsym(\"cuMemAlloc_v9\"): a variant vramguard does not know"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "cuMemAlloc_v8"), 0);
    json = vg_test_read(report);
    ck_assert_msg(strstr(json, "\"passthrough_lookups\": [{\"name\": \"cuMemAlloc_v9\", \"reason\": \"a variant "
                               "vramguard does not know (newer driver): not wrapped\"}]"),
                  "%s", json);
    free(json);
}
END_TEST

/* prog_compose with another driver interposer (tests/preload/libinterposer.c)
 * preloaded before or after the shim. */
static struct run run_composed(const char *mode, const char *preload)
{
    char env_preload[1200];
    snprintf(env_preload, sizeof(env_preload), "LD_PRELOAD=%s", preload);
    char path[800];
    snprintf(path, sizeof(path), "%s/tests/prog_compose", vg_test_build());
    struct run r;
    snprintf(r.dir, sizeof(r.dir), "%s", vg_test_tmpdir());
    snprintf(r.log_path, sizeof(r.log_path), "%s/shim.log", r.dir);
    char out_path[700], log_env[700];
    snprintf(out_path, sizeof(out_path), "%s/out.txt", r.dir);
    snprintf(log_env, sizeof(log_env), "VRAMGUARD_LOG=%s", r.log_path);
    const char *env[] = {log_env, env_preload, NULL};
    const char *argv[] = {path, mode, NULL};
    r.status = vg_test_run(argv, env, 1, out_path);
    r.out = vg_test_read(out_path);
    r.log = vg_test_read(r.log_path);
    return r;
}

/* A dlsym of a CUDA name that resolves to another interposer hands out its
 * function, never the shim's wrapper (which would skip it and go to the
 * driver), in either preload order; what it forwards to the driver still
 * reaches the shim once. An interposer that replaces dlsym (HAMi-core)
 * after the shim still gets the lookups, and its hooks stay in the chain. */
START_TEST(composes_with_another_interposer)
{
    const char *b = vg_test_build();
    char first[1200], second[1200], replaced[1200];
    snprintf(first, sizeof(first), "%s/tests/libinterposer.so:%s/libvramguard.so", b, b);
    snprintf(second, sizeof(second), "%s/libvramguard.so:%s/tests/libinterposer.so", b, b);
    snprintf(replaced, sizeof(replaced), "%s/libvramguard.so:%s/tests/libinterposer_dlsym.so", b, b);

    struct run r = run_composed("first", first);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "PASS through the interposer's definition: the shim counts it once"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS dlsym(RTLD_NEXT) from the program finds the interposer too"), 1);

    r = run_composed("second", second);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "PASS through the interposer's handle: the interposer saw it 1 time(s)"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS its dlsym(RTLD_NEXT) never found itself"), 1);
    /* Said once, naming the library. */
    ck_assert_int_eq(vg_test_count(r.log, "dlsym(\"cuMemAlloc_v2\") resolves to "), 1);
    ck_assert_msg(strstr(r.log, "libinterposer.so, not to libcuda: handed out unchanged"), "%s", r.log);

    if (vg_test_sanitized())
        return; /* the stand-in's dlsym is called by ASan before it can answer */
    r = run_composed("dlsym", replaced);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "PASS dlsym(libcuda), answered by both: the interposer saw it 1 time(s)"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "resolves to"), 0);
}
END_TEST

/* A runtime call after a library was unloaded reaches what is loaded now,
 * never the remembered function of an unloaded cudart (prog_reload maps the
 * unloaded cudart's addresses PROT_NONE: a stale jump faults); and a library
 * loaded at an unloaded one's address is not taken for it by allowance and
 * purpose rules that name modules. */
START_TEST(runtime_calls_after_dlclose)
{
    const char *env[] = {"VRAMGUARD_ALLOW=pinned:libreload_a*", "VRAMGUARD_PURPOSE_RULES=libreload_a*=weights", NULL};
    struct run r = run_prog("prog_reload", env);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "PASS 1: cudaMalloc reaches the cudart loaded now"), 1);
    ck_assert_int_eq(vg_test_count(r.out, "PASS 2: cudaMalloc reaches the library's new cudart"), 1);
    /* Part 3 shows something only when the second library took the first
     * one's place, which Linux's top-down mmap does. */
    ck_assert_msg(strstr(r.out, "note: libreload_b is at the unloaded one's address"), "%s", r.out);
    ck_assert_int_eq(vg_test_count(r.out, "PASS 3: libreload_b's pinned buffer is refused (no rule names it)"), 1);
    ck_assert_int_eq(vg_test_count(r.log, "violation: cuMemAllocHost_v2 of 4.0 KiB"), 1);
    ck_assert_msg(strstr(r.log, "libreload_b.so+0x") && !strstr(r.log, "libreload_a.so+0x"), "%s", r.log);
}
END_TEST

/* What the shim does not cover, shown: dlvsym finds no CUDA name (the
 * driver's exports are unversioned), and a library in a dlmopen namespace
 * is not seen (README "Limits"). */
START_TEST(dlvsym_and_dlmopen_limits)
{
    if (vg_test_sanitized())
        return; /* a second namespace would start a second ASan runtime */
    struct run r = run_prog("prog_compose", NULL);
    ASSERT_PASSED(r);
    ck_assert_int_eq(vg_test_count(r.out, "PASS dlvsym("), 2);
    ck_assert_int_eq(vg_test_count(r.out, "PASS and is not seen: a limit"), 1);
}
END_TEST

Suite *make_preload_suite(void)
{
    Suite *s = suite_create("preload");
    TCase *t = tcase_create("programs");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, runtime_static_reject);
    tcase_add_test(t, runtime_shared_reject_names_runtime_call);
    tcase_add_test(t, runtime_allow_pinned);
    tcase_add_test(t, runtime_warn);
    tcase_add_test(t, runtime_off);
    tcase_add_test(t, driver_api);
    tcase_add_test(t, driver_api_allow_pinned);
    tcase_add_test(t, legacy_like_real_driver);
    tcase_add_test(t, legacy_allocations_succeed);
    tcase_add_test(t, rtld_local_cudart);
    tcase_add_test(t, two_cudart_majors);
    tcase_add_test(t, cxx_scopes_with_and_without_shim);
    tcase_add_test(t, other_libraries_dlsym_next);
    tcase_add_test(t, eight_threads_exact);
    tcase_add_test(t, fork_child_owns_nothing);
    tcase_add_test(t, oom_breakdown_once_then_lines);
    tcase_add_test(t, oom_path_allocates_no_heap);
    tcase_add_test(t, json_report_and_journal);
    tcase_add_test(t, report_pass_with_allow_and_leak_fail);
    tcase_add_test(t, no_report_without_driver);
    tcase_add_test(t, static_cudart_bootstrap_through_the_shim);
    tcase_add_test(t, invalid_config_warns_once_keeps_default);
    tcase_add_test(t, exported_symbols_exact);
    tcase_add_test(t, runtime_dependencies_only_libc);
    tcase_add_test(t, cli_run_with_real_shim);
    tcase_add_test(t, pools_reject);
    tcase_add_test(t, pools_allow_pinned);
    tcase_add_test(t, pools_warn);
    tcase_add_test(t, vmm_reject);
    tcase_add_test(t, vmm_allow_pinned);
    tcase_add_test(t, misc_reject);
    tcase_add_test(t, misc_allow_pinned);
    tcase_add_test(t, misc_warn);
    tcase_add_test(t, two_devices);
    tcase_add_test(t, pool_report_fields);
    tcase_add_test(t, imported_across_processes);
    tcase_add_test(t, runtime_names_with_shared_cudart);
    tcase_add_test(t, attribution_by_module);
    tcase_add_test(t, purpose_rules);
    tcase_add_test(t, backtraces_in_the_report);
    tcase_add_test(t, purpose_rules_invalid);
    tcase_add_test(t, stress_sixteen_threads_exact);
    tcase_add_test(t, device_switching_exact_static_cudart);
    tcase_add_test(t, device_switching_exact_shared_cudart);
    tcase_add_test(t, imports_of_host_and_managed_refused);
    tcase_add_test(t, imports_allow_pinned);
    tcase_add_test(t, imports_warn);
    tcase_add_test(t, imports_off);
    tcase_add_test(t, managed_globals_reported_once_not_refused);
    tcase_add_test(t, managed_globals_are_no_leak);
    tcase_add_test(t, managed_globals_warn_and_off);
    tcase_add_test(t, managed_globals_allow_rules);
    tcase_add_test(t, allow_round_trip);
    tcase_add_test(t, allow_rules_module_and_size);
    tcase_add_test(t, allow_rules_cap);
    tcase_add_test(t, allow_rules_live_names_the_rule);
    tcase_add_test(t, allow_rules_warn_and_bad_rules);
    tcase_add_test(t, budget_refuses_with_oom);
    tcase_add_test(t, budget_oom_path_allocates_no_heap);
    tcase_add_test(t, budget_malformed_entry_dropped);
    tcase_add_test(t, budget_meminfo_reports_the_budget);
    tcase_add_test(t, budget_report_section);
    tcase_add_test(t, budget_metrics_and_health);
    tcase_add_test(t, budget_per_device);
    tcase_add_test(t, nvml_for_a_device_first_seen_during_nvml_init);
    tcase_add_test(t, nvml_without_this_pid_says_so);
    tcase_add_test(t, report_never_replaces_a_fifo_or_device);
    tcase_add_test(t, report_to_dev_null_is_no_report);
    tcase_add_test(t, journal_and_log_never_follow_a_link);
    tcase_add_test(t, fork_child_never_overwrites_parent_report);
    tcase_add_test(t, report_write_error_keeps_previous_report);
    tcase_add_test(t, fork_child_writes_its_own_pid_log);
    tcase_add_test(t, log_to_a_closed_pipe_never_kills_the_host);
    tcase_add_test(t, stale_report_temps_removed);
    tcase_add_test(t, unknown_variants_pass_through_as_holes);
    tcase_add_test(t, composes_with_another_interposer);
    tcase_add_test(t, dlvsym_and_dlmopen_limits);
    tcase_add_test(t, runtime_calls_after_dlclose);
    suite_add_tcase(s, t);
    return s;
}
