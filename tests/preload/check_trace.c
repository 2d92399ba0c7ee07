/* Trace suite (issue 10, section 2): VRAMGUARD_TRACE and `vramguard
 * timeline`.
 *
 * writer: tests/preload/prog_trace.c's workloads under the shim; what each
 * trace must hold is checked by tests/preload/trace_checks.py (the CLI's own
 * reader): the records and the exit's writing, rings written when full and
 * when their thread ends (a process killed afterwards keeps them), a forked
 * child's own stream, the bound VRAMGUARD_TRACE_MAX, bad settings.
 *
 * timeline: the demo worker under `vramguard run --trace`, drawn as HTML and
 * SVG and checked against the run's report (tests/preload/timeline_checks.py);
 * then the page in a real headless Chromium: its DOM after the script ran,
 * and a screenshot with the series and markers in their colours. Without
 * chromium that test says so and passes, unless VG_REQUIRE_CHROMIUM=1 (CI),
 * where its absence fails. */
#include "../check_support.h"
#include "table.h"
#include "trace.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

Suite *make_trace_suite(void);

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Run argv (no shim), its output and status. */
static char *output_of(const char *const *argv, const char *const *env, int *status)
{
    char out[700];
    snprintf(out, sizeof(out), "%s/cmd.out", vg_test_tmpdir());
    int st = vg_test_run(argv, env, 0, out);
    if (status)
        *status = st;
    return vg_test_read(out);
}

/* tests/preload/SCRIPT ARGS...: must print "ok". */
static void checks_ok(const char *script, const char *const *args)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/tests/preload/%s", vg_test_root(), script);
    const char *argv[16] = {"/usr/bin/python3", path};
    int n = 2;
    for (const char *const *a = args; *a && n < 15; a++)
        argv[n++] = *a;
    argv[n] = NULL;
    int st = 0;
    char *text = output_of(argv, NULL, &st);
    ck_assert_msg(st == 0 && strcmp(text, "ok\n") == 0, "%s %s:\n%s", script, args[0], text);
    free(text);
}

struct run {
    int status;
    char dir[512];
    char trace[600];
    char report[700];
    char *out;
    char *logged;
};

/* prog_trace MODE [ARG] under the shim, tracing to <dir>/TRACE_NAME
 * (VRAMGUARD_TRACE), reporting to <dir>/vramguard.%p.json, logging to
 * <dir>/shim.log; `extra`: more variables. */
static struct run trace_prog(const char *mode, const char *arg, const char *trace_name, const char *extra)
{
    struct run r = {0};
    snprintf(r.dir, sizeof(r.dir), "%s", vg_test_tmpdir());
    snprintf(r.trace, sizeof(r.trace), "%s/%s", r.dir, trace_name);
    char prog[600], out[600], log[600], trace_env[700], report_env[700], log_env[700];
    snprintf(prog, sizeof(prog), "%s/tests/prog_trace", vg_test_build());
    snprintf(out, sizeof(out), "%s/out.txt", r.dir);
    snprintf(log, sizeof(log), "%s/shim.log", r.dir);
    snprintf(trace_env, sizeof(trace_env), "VRAMGUARD_TRACE=%s", r.trace);
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s/vramguard.%%p.json", r.dir);
    snprintf(log_env, sizeof(log_env), "VRAMGUARD_LOG=%s", log);
    const char *env[] = {trace_env, report_env, log_env, extra, NULL};
    const char *argv[] = {prog, mode, arg, NULL};
    r.status = vg_test_run(argv, env, 1, out);
    r.out = vg_test_read(out);
    r.logged = vg_test_read(log);
    return r;
}

/* The pid of the first report vramguard.<pid>.json in `dir` (0: none). */
static int report_pid_in(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int pid = 0;
    while (d && pid == 0 && (e = readdir(d)) != NULL) {
        char tail[16] = "";
        int n = 0;
        if (sscanf(e->d_name, "vramguard.%d%15s", &n, tail) == 2 && strcmp(tail, ".json") == 0)
            pid = n;
    }
    if (d)
        closedir(d);
    ck_assert_msg(pid > 0, "no report in %s", dir);
    return pid;
}

static void the_report(struct run *r)
{
    snprintf(r->report, sizeof(r->report), "%s/vramguard.%d.json", r->dir, report_pid_in(r->dir));
}

#define ASSERT_RAN(r, want)                                                                        \
    ck_assert_msg((r).status == (want), "exit %d (want %d)\n--- output ---\n%s\n--- shim log ---\n%s", (r).status, \
                  (want), (r).out, (r).logged)

/* Every record of a short program is in its trace: the exit writes the
 * rings (it ends before the writer's first round), and the end frame. */
START_TEST(records_and_exit_flush)
{
    struct run r = trace_prog("basic", NULL, "t.trace", NULL);
    ASSERT_RAN(r, 0);
    the_report(&r);
    const char *args[] = {"basic", r.trace, r.report, NULL};
    checks_ok("trace_checks.py", args);
}
END_TEST

/* 4 threads x 3000 pairs, then SIGKILL: the rings were written as they
 * filled (by the writer, or by their thread when it fell behind) and when
 * their threads ended; nothing waited for an exit. */
START_TEST(rings_written_when_full_and_at_thread_exit)
{
    struct run r = trace_prog("threads", NULL, "t.trace", NULL);
    ASSERT_RAN(r, 128 + 9);
    const char *args[] = {"threads", r.trace, NULL};
    checks_ok("trace_checks.py", args);
}
END_TEST

static int child_pid(const struct run *r)
{
    const char *c = strstr(r->out, "child pid ");
    ck_assert_msg(c != NULL, "no child pid in:\n%s", r->out);
    return atoi(c + 10);
}

/* A forked child traces its own events to its own stream: in the same file
 * (a path without %p: appended whole, frame by frame) or its own (%p). */
START_TEST(fork_child_traces_its_own)
{
    struct run r = trace_prog("fork", NULL, "t.trace", NULL);
    ASSERT_RAN(r, 0);
    char child[32];
    snprintf(child, sizeof(child), "%d", child_pid(&r));
    const char *args[] = {"fork", child, r.trace, NULL};
    checks_ok("trace_checks.py", args);

    struct run s = trace_prog("fork", NULL, "t.%p.trace", NULL);
    ASSERT_RAN(s, 0);
    int c = child_pid(&s);
    /* the parent's report is the one that is not the child's: its pid names its trace */
    char parent_trace[700], child_trace[700], child_report[700];
    snprintf(child_trace, sizeof(child_trace), "%s/t.%d.trace", s.dir, c);
    snprintf(child_report, sizeof(child_report), "%s/vramguard.%d.json", s.dir, c);
    ck_assert_int_eq(unlink(child_report), 0);
    snprintf(parent_trace, sizeof(parent_trace), "%s/t.%d.trace", s.dir, report_pid_in(s.dir));
    snprintf(child, sizeof(child), "%d", c);
    const char *args2[] = {"fork", child, parent_trace, child_trace, NULL};
    checks_ok("trace_checks.py", args2);
}
END_TEST

/* 200 000 events under VRAMGUARD_TRACE_MAX=1M: the file stays under it,
 * the events past 5/8 of it are coalesced and counted, and the peak (a
 * 512 MiB allocation while coalescing) is still the report's. */
START_TEST(bounded_by_trace_max)
{
    struct run r = trace_prog("flood", "100000", "t.trace", "VRAMGUARD_TRACE_MAX=1M");
    ASSERT_RAN(r, 0);
    the_report(&r);
    ck_assert_msg(file_size(r.trace) > 0 && file_size(r.trace) <= 1 << 20, "trace of %ld bytes", file_size(r.trace));
    const char *args[] = {"flood", r.trace, r.report, "1048576", "100000", NULL};
    checks_ok("trace_checks.py", args);
}
END_TEST

/* A trace that cannot be opened, a symbolic link in its place, a bad
 * VRAMGUARD_TRACE_MAX: one line each, and the program runs as without. */
START_TEST(bad_settings_are_said_and_harmless)
{
    struct run r = trace_prog("basic", NULL, "no/such/dir/t.trace", NULL);
    ASSERT_RAN(r, 0);
    ck_assert_msg(strstr(r.logged, "cannot open the trace ") && strstr(r.logged, "no/such/dir/t.trace") &&
                      strstr(r.logged, "; no trace"),
                  "log:\n%s", r.logged);

    struct run s = trace_prog("basic", NULL, "t.trace", "VRAMGUARD_TRACE_MAX=12");
    ASSERT_RAN(s, 0);
    ck_assert_msg(strstr(s.logged, "VRAMGUARD_TRACE_MAX=\"12\" is not valid") &&
                      strstr(s.logged, "using the default: 256M"),
                  "log:\n%s", s.logged);
    ck_assert_msg(file_size(s.trace) > 0, "no trace with the default bound");

    /* a link at the path is not followed: its target stays as it was */
    char dir[512], target[600], link[600], env[700];
    snprintf(dir, sizeof(dir), "%s", vg_test_tmpdir());
    snprintf(target, sizeof(target), "%s/target", dir);
    snprintf(link, sizeof(link), "%s/link.trace", dir);
    FILE *f = fopen(target, "w");
    fputs("keep", f);
    fclose(f);
    ck_assert_int_eq(symlink(target, link), 0);
    snprintf(env, sizeof(env), "VRAMGUARD_TRACE=%s", link);
    char prog[600], out[700];
    snprintf(prog, sizeof(prog), "%s/tests/prog_trace", vg_test_build());
    snprintf(out, sizeof(out), "%s/out.txt", dir);
    const char *argv[] = {prog, "basic", NULL}, *envs[] = {env, NULL};
    ck_assert_int_eq(vg_test_run(argv, envs, 1, out), 0);
    char *text = vg_test_read(out);
    ck_assert_msg(strstr(text, "a symbolic link is not followed"), "output:\n%s", text);
    ck_assert_int_eq(file_size(target), 4);
    free(text);
}
END_TEST

/* ---- the format ---------------------------------------------------------------- */

/* A record is made straight from the entry's meta as the table packs it (no
 * unpacking on the allocation and free paths): it must say what
 * vg_table_unpack says, for every device, kind, purpose and label,
 * whatever else the entry holds. */
START_TEST(free_record_reads_the_table_entry)
{
    const uint16_t labels[] = {0, 1, 77, 255};
    for (int device = -1; device < VG_MAX_DEVICES; device++)
        for (int kind = 0; kind < VG_KIND_COUNT; kind++)
            for (int purpose = 0; purpose < VG_PURPOSE_COUNT; purpose++)
                for (int l = 0; l < 4; l++) {
                    struct vg_table_saved e = {0x7e0000001000, ((uint64_t)5 << 56) | ((uint64_t)9 << 48) | 123456789,
                                               (void *)0x1234, 0,
                                               vg_table_meta(device, kind, purpose, labels[l], 4321) | VG_TABLE_ALLOWED};
                    struct vg_alloc a;
                    vg_table_unpack(&e, &a);
                    uint64_t w0 = 0, w1 = vg_trace_word_of_meta(e.size_pool, e.meta, &w0);
                    ck_assert_uint_eq(w1 & ((UINT64_C(1) << 48) - 1), a.size);
                    ck_assert_int_eq((int)(w1 >> 48 & 31) - 1, a.device);
                    ck_assert_int_eq((int)(w1 >> 53 & 3), a.purpose);
                    ck_assert_int_eq((int)(w1 >> 55 & 7), a.kind);
                    ck_assert_int_eq((int)(w1 >> 58), 0);
                    ck_assert_uint_eq(w0 >> 56, a.label);
                    ck_assert_uint_eq(w0 & ((UINT64_C(1) << 56) - 1), 0);
                }
}
END_TEST

/* ---- the timeline ------------------------------------------------------------ */

struct demo {
    char dir[512], trace[600], reports[600], report[800], html[600], svg[600];
};

/* The demo worker under `vramguard run --trace`, drawn both ways. */
static struct demo demo_drawn(void)
{
    struct demo d;
    snprintf(d.dir, sizeof(d.dir), "%s", vg_test_tmpdir());
    snprintf(d.trace, sizeof(d.trace), "%s/demo.trace", d.dir);
    snprintf(d.reports, sizeof(d.reports), "%s/reports", d.dir);
    snprintf(d.html, sizeof(d.html), "%s/timeline.html", d.dir);
    snprintf(d.svg, sizeof(d.svg), "%s/timeline.svg", d.dir);
    char cli[600], worker[600], libpath[700];
    snprintf(cli, sizeof(cli), "%s/scripts/vramguard", vg_test_root());
    snprintf(worker, sizeof(worker), "%s/demo/demo_worker", vg_test_build());
    snprintf(libpath, sizeof(libpath), "LD_LIBRARY_PATH=%s/fakecuda", vg_test_build());
    const char *env[] = {libpath, NULL};
    const char *run[] = {"/usr/bin/python3", cli, "run", "--trace", d.trace, "--report-dir", d.reports, "--",
                         worker, NULL};
    int st = 0;
    char *out = output_of(run, env, &st);
    ck_assert_msg(st == 3, "vramguard run exit %d (want 3: the demo's violation)\n%s", st, out);
    ck_assert_msg(strstr(out, "vramguard: trace: ") && strstr(out, "vramguard timeline "), "no trace line:\n%s", out);
    free(out);
    snprintf(d.report, sizeof(d.report), "%s/vramguard.%d.json", d.reports, report_pid_in(d.reports));
    const char *outputs[] = {d.html, d.svg};
    for (int i = 0; i < 2; i++) {
        const char *draw[] = {"/usr/bin/python3", cli, "timeline", d.trace, "-o", outputs[i], NULL};
        out = output_of(draw, NULL, &st);
        ck_assert_msg(st == 0 && strstr(out, "peak 672.0 MiB (704643072 B)"), "vramguard timeline exit %d:\n%s", st,
                      out);
        free(out);
    }
    return d;
}

/* The series by purpose, the markers, the peak and the largest allocations
 * at the peak, exactly as the run's report has them, in the page and in
 * the SVG; nothing fetched from outside. */
START_TEST(demo_timeline_html_and_svg)
{
    struct demo d = demo_drawn();
    const char *html[] = {"html", d.html, d.report, NULL}, *svg[] = {"svg", d.svg, d.report, NULL};
    checks_ok("timeline_checks.py", html);
    checks_ok("timeline_checks.py", svg);
}
END_TEST

static int chromium_required(void)
{
    const char *r = getenv("VG_REQUIRE_CHROMIUM");
    return r && strcmp(r, "1") == 0;
}

/* The page in a real headless Chromium: the DOM after its script ran, and
 * a screenshot on which the series and markers are drawn. */
START_TEST(timeline_in_chromium)
{
    const char *which[] = {"/bin/sh", "-c", "command -v chromium || command -v chromium-browser", NULL};
    int st = 0;
    char *browser = output_of(which, NULL, &st);
    browser[strcspn(browser, "\n")] = '\0';
    if (st != 0 || browser[0] == '\0') {
        ck_assert_msg(!chromium_required(), "VG_REQUIRE_CHROMIUM=1 but chromium is missing");
        fprintf(stderr, "trace:timeline_in_chromium: chromium is not installed (apt-get install chromium); "
                        "the browser checks did not run\n");
        free(browser);
        return;
    }
    struct demo d = demo_drawn();
    char url[700], shot[700], dom[700], shot_arg[800], cmd[2000];
    snprintf(url, sizeof(url), "file://%s", d.html);
    snprintf(shot, sizeof(shot), "%s/shot.png", d.dir);
    snprintf(dom, sizeof(dom), "%s/dom.html", d.dir);
    snprintf(shot_arg, sizeof(shot_arg), "--screenshot=%s", shot);
    /* a fresh profile each run; --no-sandbox: the tests run as root in CI */
    const char *flags = "--headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run "
                        "--disable-extensions --user-data-dir=\"$2\"/profile";
    snprintf(cmd, sizeof(cmd), "\"$1\" %s --window-size=1600,760 \"$3\" \"$4\" >/dev/null 2>&1 && "
                               "\"$1\" %s --virtual-time-budget=2000 --dump-dom \"$4\" > \"$5\" 2>/dev/null",
             flags, flags);
    const char *argv[] = {"/bin/sh", "-c", cmd, "sh", browser, d.dir, shot_arg, url, dom, NULL};
    char *out = output_of(argv, NULL, &st);
    ck_assert_msg(st == 0, "chromium failed (%d):\n%s", st, out);
    free(out);
    ck_assert_msg(file_size(shot) > 10000, "screenshot of %ld bytes", file_size(shot));
    const char *dom_args[] = {"dom", dom, d.report, NULL}, *png_args[] = {"png", shot, NULL};
    checks_ok("timeline_checks.py", dom_args);
    checks_ok("timeline_checks.py", png_args);
    free(browser);
}
END_TEST

Suite *make_trace_suite(void)
{
    Suite *s = suite_create("trace");
    TCase *f = tcase_create("format");
    tcase_add_test(f, free_record_reads_the_table_entry);
    suite_add_tcase(s, f);
    TCase *w = tcase_create("writer");
    tcase_set_timeout(w, 120);
    tcase_add_test(w, records_and_exit_flush);
    tcase_add_test(w, rings_written_when_full_and_at_thread_exit);
    tcase_add_test(w, fork_child_traces_its_own);
    tcase_add_test(w, bounded_by_trace_max);
    tcase_add_test(w, bad_settings_are_said_and_harmless);
    suite_add_tcase(s, w);
    TCase *t = tcase_create("timeline");
    tcase_set_timeout(t, 180);
    tcase_add_test(t, demo_timeline_html_and_svg);
    tcase_add_test(t, timeline_in_chromium);
    suite_add_tcase(s, t);
    return s;
}
