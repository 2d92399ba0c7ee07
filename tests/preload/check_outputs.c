/* Outputs suite (issue 9 items 5, 16, 8): what the shim writes stays
 * bounded, never blocks the program and never claims what it did not
 * measure. Real programs under the shim against the fake driver:
 *   prog_flood       refused allocations and OOMs retried in a loop
 *   prog_first_race  threads racing to a process's first CUDA call
 *   prog_leaky       a known workload, run with the shim's own malloc failing
 *                    (libmalloc_fail.so)
 * Facts about journals and reports come from tests/preload/journal_checks.py;
 * verdicts from the CLI (scripts/vramguard report).
 *
 * Issue 10 section 4, quiet and honest: every log line carries the pid,
 * VRAMGUARD_LOG_LEVEL decides what the log shows (passed-through lookups
 * only at debug), the exit line names a report only once it is written,
 * and `vramguard run` (demo worker) prints a line per process, only the
 * verdict with --quiet. */
#include "../check_support.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

Suite *make_outputs_suite(void);

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* The last line of `text` (without its newline). */
static const char *last_line(const char *text, char *out, size_t size)
{
    size_t len = strlen(text);
    while (len > 0 && text[len - 1] == '\n')
        len--;
    size_t start = len;
    while (start > 0 && text[start - 1] != '\n')
        start--;
    snprintf(out, size, "%.*s", (int)(len - start), text + start);
    return out;
}

/* Run a command (no shim) and return its output (stdout and stderr), its
 * exit status in *status. */
static char *output_of(const char *const *argv, const char *const *env, int *status)
{
    char out[700];
    snprintf(out, sizeof(out), "%s/cmd.out", vg_test_tmpdir());
    int st = vg_test_run(argv, env, 0, out);
    if (status)
        *status = st;
    return vg_test_read(out);
}

/* journal_checks.py COMMAND ARG [ARG2]: its one line of output. */
static char *facts(const char *command, const char *arg, const char *arg2)
{
    char script[600];
    snprintf(script, sizeof(script), "%s/tests/preload/journal_checks.py", vg_test_root());
    const char *argv[] = {"/usr/bin/python3", script, command, arg, arg2, NULL};
    int st = 0;
    char *text = output_of(argv, NULL, &st);
    ck_assert_msg(st == 0, "journal_checks.py %s %s failed:\n%s", command, arg, text);
    return text;
}

/* scripts/vramguard report [--fail-on LIST] PATH: its output, status in *status. */
static char *cli_report(const char *fail_on, const char *path, int *status)
{
    char cli[600];
    snprintf(cli, sizeof(cli), "%s/scripts/vramguard", vg_test_root());
    const char *argv[] = {"/usr/bin/python3", cli, "report", "--fail-on", fail_on, path, NULL};
    return output_of(argv, NULL, status);
}

static int validate(const char *path)
{
    char script[600];
    snprintf(script, sizeof(script), "%s/tests/cli/validate_report.py", vg_test_root());
    const char *argv[] = {"/usr/bin/python3", script, path, NULL};
    int st = 0;
    char *text = output_of(argv, NULL, &st);
    if (st != 0)
        fprintf(stderr, "validation of %s failed:\n%s\n", path, text);
    free(text);
    return st;
}

/* The one file in `dir` whose name ends with `suffix`; how many there are. */
static int find_file(const char *dir, const char *suffix, char *out, size_t size)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name), sl = strlen(suffix);
        if (len > sl && strcmp(e->d_name + len - sl, suffix) == 0 && strncmp(e->d_name, "vramguard.", 10) == 0) {
            snprintf(out, size, "%s/%s", dir, e->d_name);
            n++;
        }
    }
    if (d)
        closedir(d);
    return n;
}

struct run {
    int status;
    char dir[512];
    char log[600];
    char report[800];
    char journal[800];
    char *out;
    char *logged;
};

/* build/tests/<prog> under the shim, reports in a fresh directory, the
 * shim's log in <dir>/shim.log; `no_aslr`: through setarch -R (the same
 * addresses, so the same allocations of the shim's, from run to run). */
static struct run run_prog_as(const char *prog, const char *const *env, int no_aslr)
{
    struct run r = {0};
    snprintf(r.dir, sizeof(r.dir), "%s", vg_test_tmpdir());
    snprintf(r.log, sizeof(r.log), "%s/shim.log", r.dir);
    char path[700], out[700], log_env[700], report_env[700];
    snprintf(path, sizeof(path), "%s/tests/%s", vg_test_build(), prog);
    snprintf(out, sizeof(out), "%s/out.txt", r.dir);
    snprintf(log_env, sizeof(log_env), "VRAMGUARD_LOG=%s", r.log);
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s/vramguard.%%p.json", r.dir);
    const char *all_env[32] = {log_env, report_env};
    int n = 2;
    for (const char *const *e = env; e && *e && n < 31; e++)
        all_env[n++] = *e;
    const char *argv[] = {path, NULL}, *wrapped[] = {"setarch", "-R", path, NULL};
    r.status = vg_test_run(no_aslr ? wrapped : argv, all_env, 1, out);
    r.out = vg_test_read(out);
    r.logged = vg_test_read(r.log);
    find_file(r.dir, ".json", r.report, sizeof(r.report));
    find_file(r.dir, ".json.journal", r.journal, sizeof(r.journal));
    return r;
}

static struct run run_prog(const char *prog, const char *const *env)
{
    return run_prog_as(prog, env, 0);
}

#define ASSERT_PASSED(r)                                                                           \
    ck_assert_msg((r).status == 0, "exit %d\n--- output ---\n%s\n--- shim log (end) ---\n%s", (r).status, (r).out, \
                  strlen((r).logged) > 3000 ? (r).logged + strlen((r).logged) - 3000 : (r).logged)

/* A directory holding only a copy of `journal`: the process as if killed. */
static void journal_alone(const char *journal, char *dir, size_t size)
{
    snprintf(dir, size, "%s", vg_test_tmpdir());
    char cmd[2000];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s/'", journal, dir);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    int st = 0;
    free(output_of(argv, NULL, &st));
    ck_assert_int_eq(st, 0);
}

/* ---- item 5: repeated events, caps, a log nobody reads ---------------------- */

/* 100 000 refused retries and 1 000 OOMs from one call site each, then 20
 * refusals from each of 256 call sites (more groups than the shim tells
 * apart): every count exact (program, report, journal, CLI), the log and
 * the journal small. Without suppression they hold a line per event
 * (about 30 MB each). */
START_TEST(repeated_events_are_counted_not_written)
{
    const char *env[] = {"PROG_FLOOD_RETRIES=100000", "PROG_FLOOD_OOMS=1000", "PROG_FLOOD_SITES=256", NULL};
    struct run r = run_prog("prog_flood", env);
    ASSERT_PASSED(r);
    long log_bytes = file_size(r.log), journal_bytes = file_size(r.journal);
    ck_assert_msg(log_bytes > 0 && log_bytes < 1024 * 1024, "log of %ld bytes", log_bytes);
    ck_assert_msg(journal_bytes > 0 && journal_bytes < 1024 * 1024, "journal of %ld bytes", journal_bytes);
    /* the first 10 of a group are written, then a notice, and summaries */
    ck_assert_msg(strstr(r.logged, "more violations like this (cuMemAllocHost_v2 on device 0 from ") &&
                      strstr(r.logged, "are counted, not logged"),
                  "no notice:\n%.2000s", r.logged);
    ck_assert_msg(strstr(r.logged, "more OOM events like this"), "no OOM notice");
    ck_assert_msg(strstr(r.logged, "99990 more violations like this suppressed since "), "no summary of the retries");
    ck_assert_msg(strstr(r.logged, "990 more OOM events like this suppressed since "), "no summary of the OOMs");
    ck_assert_msg(strstr(r.logged, "more violations of kind host_pinned suppressed since "),
                  "no summary of the groups past the table");
    /* 192 groups told apart: the retries, the OOMs, 190 call sites; the other
     * 66 call sites share one group (kind host_pinned): 10 lines each. */
    ck_assert_int_eq(vg_test_count(r.logged, "vramguard: violation: "), 10 + 190 * 10 + 10);

    ck_assert_int_eq(validate(r.report), 0);
    ck_assert_int_eq(validate(r.journal), 0);
    char *v = facts("get", r.report, "violations.count");
    ck_assert_str_eq(v, "105120\n");
    free(v);
    v = facts("get", r.report, "oom_events.count");
    ck_assert_str_eq(v, "1000\n");
    free(v);
    v = facts("get", r.report, "output.suppressed");
    ck_assert_str_eq(v, "{\"violations\": 103200, \"oom_events\": 990, \"budget_oom_events\": 0}\n");
    free(v);
    char *c = facts("counts", r.journal, NULL);
    ck_assert_msg(strncmp(c, "violations 105120 ooms 1000 suppressed 104190 capped 0 first_start 1 ", 68) == 0, "%s",
                  c);
    free(c);

    /* The process killed before its report: the CLI counts from the journal. */
    char alone[512];
    journal_alone(r.journal, alone, sizeof(alone));
    int st = 0;
    char *text = cli_report("violation", alone, &st);
    ck_assert_msg(st == 3 && strstr(text, "violations 105120; OOM events 1000;") &&
                      strstr(text, "verdict: fail (violation: 105120 violations;"),
                  "exit %d\n%s", st, text);
    free(text);
}
END_TEST

/* VRAMGUARD_LOG_MAX=8K: the log and the journal stop at 8 KiB with a final
 * line saying so; the report keeps exact counts and says what was capped;
 * the CLI, reading the capped journal alone, never passes what the journal
 * could not hold. */
START_TEST(log_and_journal_capped)
{
    const char *env[] = {"VRAMGUARD_LOG_MAX=8K", "PROG_FLOOD_RETRIES=1000", "PROG_FLOOD_OOMS=0",
                         "PROG_FLOOD_SITES=100", NULL};
    struct run r = run_prog("prog_flood", env);
    ASSERT_PASSED(r);
    char last[600];
    long log_bytes = file_size(r.log), journal_bytes = file_size(r.journal);
    ck_assert_msg(log_bytes > 4096 && log_bytes <= 8192, "log of %ld bytes", log_bytes);
    ck_assert_msg(strstr(last_line(r.logged, last, sizeof(last)),
                         "vramguard: the log reached VRAMGUARD_LOG_MAX (8.0 KiB): pid "),
                  "last log line: %s", last);
    ck_assert_int_eq(vg_test_count(r.logged, "vramguard: the log reached VRAMGUARD_LOG_MAX"), 1);
    ck_assert_msg(journal_bytes > 4096 && journal_bytes <= 8192, "journal of %ld bytes", journal_bytes);
    char *jl = vg_test_read(r.journal);
    ck_assert_msg(strstr(last_line(jl, last, sizeof(last)), "{\"event\":\"capped\",\"pid\":") &&
                      strstr(last, ",\"max_bytes\":8192}"),
                  "last journal line: %s", last);
    free(jl);
    ck_assert_int_eq(validate(r.report), 0);
    ck_assert_int_eq(validate(r.journal), 0);
    char *v = facts("get", r.report, "violations.count");
    ck_assert_str_eq(v, "3000\n");
    free(v);
    v = facts("get", r.report, "output.log.capped");
    ck_assert_str_eq(v, "true\n");
    free(v);
    v = facts("get", r.report, "output.journal.capped");
    ck_assert_str_eq(v, "true\n");
    free(v);

    /* With the report: exact counts, so fail-on oom passes (there was none). */
    int st = 0;
    char *text = cli_report("oom", r.dir, &st);
    ck_assert_msg(st == 0 && strstr(text, "verdict: pass"), "exit %d\n%s", st, text);
    free(text);
    /* The capped journal alone: what came after the cap is not in it. */
    char alone[512];
    journal_alone(r.journal, alone, sizeof(alone));
    text = cli_report("oom", alone, &st);
    ck_assert_msg(st == 3 && strstr(text, "verdict: fail (oom: unknown for 1 process;") &&
                      strstr(text, "its journal reached VRAMGUARD_LOG_MAX") && strstr(text, "violations at least "),
                  "exit %d\n%s", st, text);
    free(text);
}
END_TEST

/* stderr a pipe nobody reads, full: the program's refusals and OOMs
 * (each would log a line) must not block it. The lines lost are counted
 * (report: output.log.lines_lost) and said once the pipe is read again
 * (the program drains it and checks). Without the non-blocking log the
 * program blocks in its first refusal and never ends. */
START_TEST(log_on_a_full_pipe_never_blocks)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0); /* no O_CLOEXEC: the program inherits both ends */
    char tmp[512], out[700], cmd[1200], report_env[700], drain_env[64];
    snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
    snprintf(out, sizeof(out), "%s/out.txt", tmp);
    snprintf(report_env, sizeof(report_env), "VRAMGUARD_REPORT=%s/vramguard.%%p.json", tmp);
    snprintf(drain_env, sizeof(drain_env), "PROG_FLOOD_FULL_STDERR=%d", p[0]);
    snprintf(cmd, sizeof(cmd), "exec %s/tests/prog_flood 2>&%d", vg_test_build(), p[1]);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    const char *env[] = {report_env, drain_env, "PROG_FLOOD_RETRIES=20000", "PROG_FLOOD_OOMS=100",
                         "PROG_FLOOD_SITES=100", NULL};
    pid_t pid = vg_test_spawn(argv, env, 1, out);
    ck_assert_int_gt(pid, 0);
    close(p[1]);
    int status = 0;
    time_t deadline = time(NULL) + 45; /* it takes well under a second */
    pid_t done = 0;
    while ((done = waitpid(pid, &status, WNOHANG)) == 0 && time(NULL) < deadline)
        usleep(20000);
    if (done == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    close(p[0]);
    char *text = vg_test_read(out);
    ck_assert_msg(done == pid, "the program was still blocked after 45 s (the log blocks it):\n%s", text);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d\n%s", status, text);
    ck_assert_int_eq(vg_test_count(text, "PASS the log says how many lines it lost, once it can"), 1);
    ck_assert_int_eq(vg_test_count(text, "PASS violations counted exactly"), 1);
    free(text);
    char report[800];
    ck_assert_int_eq(find_file(tmp, ".json", report, sizeof(report)), 1);
    ck_assert_int_eq(validate(report), 0);
    char *v = facts("get", report, "violations.count");
    ck_assert_str_eq(v, "22001\n");
    free(v);
    v = facts("get", report, "output.log.lines_lost");
    ck_assert_msg(atol(v) > 1000, "lines_lost %s", v);
    free(v);
}
END_TEST

/* ---- item 16: the start line first, whatever thread gets there first --------- */

/* 300 processes, each with 10 threads racing to the first CUDA call (a
 * refused allocation), each killed before its report: every journal starts
 * with its start line and the CLI counts all 3 000 violations. Without the
 * fix, some 6 journals in a hundred had violations before the start line,
 * which the CLI dropped (2 861 counted in one run). */
START_TEST(journal_starts_before_racing_violations)
{
    struct run r = run_prog("prog_first_race", NULL);
    ASSERT_PASSED(r);
    char *s = facts("starts", r.dir, NULL);
    ck_assert_str_eq(s, "journals 300 bad 0\n");
    free(s);
    int st = 0;
    char *text = cli_report("violation", r.dir, &st);
    ck_assert_msg(st == 3 && strstr(text, "verdict: fail (violation: 3000 violations;") &&
                      vg_test_count(text, ": killed, no report, fail (violation)") == 300,
                  "exit %d\n%.3000s", st, text);
    free(text);
}
END_TEST

/* ---- item 8: the shim's own allocations failing -------------------------------- */

/* prog_leaky with the Nth of the shim's own malloc/calloc/realloc failing
 * (or, `persist`, every one from the Nth on), N = 1, 2, ... until one run
 * has nothing left to fail. Each time: the program gets the driver's
 * answers (its checks pass), the log says the shim ran out of host memory,
 * the report is written and valid, and either right (3 allocations, 3 MiB
 * leaked, 1 violation) or says "unknown"; the CLI never passes fail-on
 * leak (there are leaks) nor violation. */
static void sweep_malloc_failures(int persist)
{
    if (vg_test_sanitized())
        return; /* a preloaded malloc cannot stand beside a sanitizer's */
    int no_aslr = access("/usr/bin/setarch", X_OK) == 0;
    int spare_used = 0;
    char preload[1200], at_env[64], fail_log[700], fail_log_env[800];
    snprintf(preload, sizeof(preload), "LD_PRELOAD=%s/libvramguard.so:%s/tests/libmalloc_fail.so", vg_test_build(),
             vg_test_build());
    int positions = 0, unknown = 0, correct = 0;
    for (int at = 1; at <= 200; at++) {
        char tmp[512];
        snprintf(tmp, sizeof(tmp), "%s", vg_test_tmpdir());
        snprintf(fail_log, sizeof(fail_log), "%s/failed.txt", tmp);
        snprintf(fail_log_env, sizeof(fail_log_env), "VG_MALLOC_FAIL_LOG=%s", fail_log);
        snprintf(at_env, sizeof(at_env), "VG_MALLOC_FAIL_AT=%d", at);
        const char *env[] = {preload, at_env, fail_log_env, persist ? "VG_MALLOC_FAIL_PERSIST=1" : "VG_MALLOC_FAIL_PERSIST=0",
                             "VRAMGUARD_FAIL_ON=violation,leak", NULL};
        struct run r = run_prog_as("prog_leaky", env, no_aslr);
        ASSERT_PASSED(r);
        char *failed = vg_test_read(fail_log);
        if (failed[0] == '\0') { /* past the last of the shim's allocations */
            free(failed);
            ck_assert_msg(at > 1 || persist, "the shim allocated nothing to fail");
            break;
        }
        positions++;
        ck_assert_msg(strstr(r.logged, "out of host memory"), "at %d (%s): the log does not say it:\n%s", at, failed,
                      r.logged);
        ck_assert_msg(r.report[0] && validate(r.report) == 0, "at %d (%s): no valid report\n%s", at, failed,
                      r.logged);
        char *verdict = facts("leaky", r.report, NULL);
        ck_assert_msg(strcmp(verdict, "correct\n") == 0 || strcmp(verdict, "unknown\n") == 0, "at %d (%s): %s", at,
                      failed, verdict);
        unknown += strcmp(verdict, "unknown\n") == 0;
        spare_used += strstr(r.logged, "the spare kept for it is used") != NULL;
        correct += strcmp(verdict, "correct\n") == 0;
        free(verdict);
        for (int k = 0; k < 2; k++) {
            int st = 0;
            char *text = cli_report(k ? "violation" : "leak", r.dir, &st);
            ck_assert_msg(st == 3 && strstr(text, "verdict: fail"), "at %d (%s), fail-on %s: exit %d\n%s", at, failed,
                          k ? "violation" : "leak", st, text);
            free(text);
        }
        free(failed);
    }
    ck_assert_msg(positions >= 5 && unknown > 0, "%d positions swept, %d unknown, %d correct", positions, unknown,
                  correct);
    /* The last of the shim's allocations is the exit report's scratch: its
     * failure leaves a whole report, from the spare. */
    ck_assert_msg(!no_aslr || spare_used > 0, "the report's scratch never failed (%d positions)", positions);
    printf("malloc failure sweep%s: %d positions, %d reports said unknown, %d were right\n",
           persist ? " (persistent)" : "", positions, unknown, correct);
}

START_TEST(shim_malloc_failing_once) { sweep_malloc_failures(0); }
END_TEST

START_TEST(shim_malloc_failing_from_then_on) { sweep_malloc_failures(1); }
END_TEST

/* ---- issue 10 section 4: quiet and honest ------------------------------------ */

/* The pid of the report `path` (vramguard.<pid>.json), 0 if none. */
static int report_pid(const char *path)
{
    const char *base = strrchr(path, '/');
    int pid = 0;
    return base && sscanf(base, "/vramguard.%d.json", &pid) == 1 ? pid : 0;
}

/* Lines of `text` that do not start with `prefix`: how many. */
static int lines_without(const char *text, const char *prefix)
{
    int n = 0;
    for (const char *p = text; *p;) {
        n += strncmp(p, prefix, strlen(prefix)) != 0;
        const char *end = strchr(p, '\n');
        p = end ? end + 1 : p + strlen(p);
    }
    return n;
}

/* VRAMGUARD_LOG_LEVEL: info (the default) has the exit line, naming the
 * report that is there, and no passed-through lookup; debug names every
 * passed-through entry point once, as many as the report lists; warn keeps
 * refusals and drops the exit line; quiet writes nothing. Every line of the
 * raw log starts with "vramguard[PID]: ", the process's pid. */
START_TEST(log_levels_and_the_pid)
{
    struct run r = run_prog("prog_runtime_static", NULL);
    ck_assert_msg(r.status == 0, "exit %d\n%s", r.status, r.out);
    int pid = report_pid(r.report);
    ck_assert_int_gt(pid, 0);
    char prefix[48], exit_line[1200];
    snprintf(prefix, sizeof(prefix), "vramguard[%d]: ", pid);
    char *raw = vg_test_read_raw(r.log);
    ck_assert_msg(raw[0] != '\0' && lines_without(raw, prefix) == 0, "lines without %s:\n%s", prefix, raw);
    snprintf(exit_line, sizeof(exit_line), "%sexit: pid %d, ", prefix, pid);
    ck_assert_int_eq(vg_test_count(raw, exit_line), 1);
    snprintf(exit_line, sizeof(exit_line), ", report %s\n", r.report);
    ck_assert_msg(strstr(raw, exit_line) && access(r.report, R_OK) == 0, "%s", raw);
    ck_assert_int_eq(vg_test_count(raw, "passes it through"), 0);
    ck_assert_int_eq(vg_test_count(raw, "passed through"), 0);
    ck_assert_int_eq(vg_test_count(raw, "violation: cuMemAllocManaged"), 1);
    free(raw);

    const char *debug[] = {"VRAMGUARD_LOG_LEVEL=debug", NULL};
    r = run_prog("prog_runtime_static", debug);
    ck_assert_int_eq(r.status, 0);
    char *n_listed = facts("get", r.report, "passthrough_lookups");
    int listed = vg_test_count(n_listed, "\"name\"");
    free(n_listed);
    ck_assert_int_gt(listed, 0);
    ck_assert_int_eq(vg_test_count(r.logged, " was looked up; vramguard passes it through ("), listed);
    char summary[128];
    snprintf(summary, sizeof(summary), "vramguard: %d allocation-related entry points were looked up and passed through",
             listed);
    ck_assert_msg(vg_test_count(r.logged, summary) == 1, "no \"%s\" in:\n%s", summary, r.logged);
    ck_assert_int_eq(vg_test_count(r.logged, "entry-points.md (docs/ in the source, share/doc/vramguard/ installed)"),
                     1);

    const char *warn[] = {"VRAMGUARD_LOG_LEVEL=warn", NULL};
    r = run_prog("prog_runtime_static", warn);
    ck_assert_int_eq(r.status, 0);
    ck_assert_int_eq(vg_test_count(r.logged, "violation: cuMemAllocManaged"), 1);
    ck_assert_int_eq(vg_test_count(r.logged, "exit: pid"), 0);
    ck_assert_int_eq(access(r.report, R_OK), 0);

    const char *quiet[] = {"VRAMGUARD_LOG_LEVEL=quiet", "VRAMGUARD_HEALTH_FAIL_ON=bogus", NULL};
    r = run_prog("prog_runtime_static", quiet);
    ck_assert_int_eq(r.status, 0);
    ck_assert_msg(r.logged[0] == '\0', "quiet logged:\n%s", r.logged);
    ck_assert_int_eq(access(r.report, R_OK), 0); /* the report is written all the same */

    const char *bad[] = {"VRAMGUARD_LOG_LEVEL=chatty", NULL};
    r = run_prog("prog_runtime_static", bad);
    ck_assert_int_eq(vg_test_count(r.logged, "VRAMGUARD_LOG_LEVEL=\"chatty\" is not valid (accepted: quiet, warn, "
                                             "info, debug); using the default: info"), 1);
    ck_assert_int_eq(vg_test_count(r.logged, "exit: pid"), 1);
}
END_TEST

/* The exit line names the report only when it was written: a report in a
 * directory that does not exist is said to fail, and the exit line names
 * no file. */
START_TEST(exit_line_names_only_a_written_report)
{
    char missing[700];
    snprintf(missing, sizeof(missing), "VRAMGUARD_REPORT=%s/no/such/dir/vramguard.%%p.json", vg_test_tmpdir());
    const char *env[] = {missing, NULL};
    struct run r = run_prog("prog_runtime_static", env);
    ck_assert_int_eq(r.status, 0);
    ck_assert_msg(strstr(r.logged, "cannot write the report "), "%s", r.logged);
    ck_assert_int_eq(vg_test_count(r.logged, "exit: pid "), 1);
    ck_assert_msg(strstr(r.logged, ", report ") == NULL, "the exit line names a report that is not there:\n%s",
                  r.logged);
}
END_TEST

/* `scripts/vramguard run OPTIONS -- demo_worker` (shim and fake driver),
 * `env_prefix` in its environment: stderr in *err, stdout in *out; the
 * exit status. */
static int cli_demo(const char *options, const char *env_prefix, char **out, char **err)
{
    char dir[512], cmd[3000], o[700], e[700];
    snprintf(dir, sizeof(dir), "%s", vg_test_tmpdir());
    snprintf(o, sizeof(o), "%s/cli.out", dir);
    snprintf(e, sizeof(e), "%s/cli.err", dir);
    snprintf(cmd, sizeof(cmd),
             "env -u LD_PRELOAD -u VRAMGUARD_LIBRARY -u VRAMGUARD_LOG -u VRAMGUARD_LOG_LEVEL %s "
             "LD_LIBRARY_PATH='%s/fakecuda' /usr/bin/python3 '%s/scripts/vramguard' run %s -- '%s/demo/demo_worker' "
             ">'%s' 2>'%s'",
             env_prefix, vg_test_build(), vg_test_root(), options, vg_test_build(), o, e);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    int st = vg_test_run(argv, NULL, 0, NULL);
    *out = vg_test_read_raw(o);
    *err = vg_test_read_raw(e);
    return st;
}

/* Under `vramguard run`: one line per process at exit (the CLI's; the
 * shim's exit line and its passed-through lookups are left out), the
 * refusal and the OOM breakdown with the pid; --quiet: the verdict line
 * only. An explicit VRAMGUARD_LOG_LEVEL=info brings the shim's exit lines
 * back: with a temporary report directory the CLI then says those reports
 * are removed; with --report-dir the line names a report that is there. */
START_TEST(cli_run_one_line_per_process)
{
    char *out, *err;
    int st = cli_demo("", "", &out, &err);
    ck_assert_msg(st == 3, "exit %d\n%s", st, err);
    ck_assert_int_eq(vg_test_count(err, "\nvramguard: pid "), 1);
    ck_assert_int_eq(vg_test_count(err, "exit: pid"), 0);
    ck_assert_int_eq(vg_test_count(err, "passes it through"), 0);
    ck_assert_int_eq(vg_test_count(err, "passed through"), 0);
    ck_assert_int_eq(vg_test_count(err, "/vramguard."), 0); /* names no file of the temporary directory */
    ck_assert_msg(strstr(err, "]: violation: cuMemAllocManaged of 16.0 MiB") &&
                      strstr(err, "]: ==== out of memory on device 0"),
                  "%s", err);
    ck_assert_msg(strstr(err, "\nvramguard: verdict: fail (violation: 1 violation;"), "%s", err);
    free(out);
    free(err);

    st = cli_demo("--quiet", "", &out, &err);
    ck_assert_int_eq(st, 3);
    ck_assert_str_eq(err, "vramguard: verdict: fail (violation: 1 violation; fail-on: violation; 1 process)\n");
    ck_assert_msg(strstr(out, "worker: done"), "%s", out); /* the program's own output is its own */
    free(out);
    free(err);

    st = cli_demo("", "VRAMGUARD_LOG_LEVEL=info", &out, &err);
    ck_assert_int_eq(st, 3);
    ck_assert_int_eq(vg_test_count(err, "]: exit: pid "), 1);
    ck_assert_int_eq(vg_test_count(err, "vramguard: note: the shim's exit lines name reports in a temporary "
                                        "directory, removed when vramguard returns"),
                     1);
    free(out);
    free(err);

    char reports[600], opt[700], want[800];
    snprintf(reports, sizeof(reports), "%s/kept", vg_test_tmpdir());
    snprintf(opt, sizeof(opt), "--report-dir '%s'", reports);
    st = cli_demo(opt, "VRAMGUARD_LOG_LEVEL=info", &out, &err);
    ck_assert_int_eq(st, 3);
    ck_assert_int_eq(vg_test_count(err, "temporary"), 0);
    const char *named = strstr(err, ", report ");
    ck_assert_msg(named != NULL, "%s", err);
    snprintf(want, sizeof(want), "%.*s", (int)strcspn(named + 9, "\n"), named + 9);
    ck_assert_msg(strncmp(want, reports, strlen(reports)) == 0 && access(want, R_OK) == 0, "the exit line names %s",
                  want);
    free(out);
    free(err);
}
END_TEST

/* The demo's banner prints the command it runs, whole: pasted into a shell
 * (from the repository root, no LD_LIBRARY_PATH of one's own) it runs the
 * demo worker under vramguard as `make demo` did (the banner used to leave
 * out LD_LIBRARY_PATH: "0 processes reached the CUDA driver", pass). In a
 * `make check-sanitize` run, SANITIZE (a command-line variable, so in the
 * environment) is unset too: it rebuilt the plain build/ instrumented. */
START_TEST(demo_banner_command_works)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES SANITIZE BUILD; cd '%s' && make -s demo 2>&1",
             vg_test_root());
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    int st = 0;
    char *text = output_of(argv, NULL, &st);
    ck_assert_msg(st == 0, "make demo: exit %d\n%s", st, text);
    const char *banner = strstr(text, "== make demo: ");
    ck_assert_msg(banner != NULL, "%s", text);
    const char *line = strchr(banner, '\n');
    ck_assert_ptr_nonnull(line);
    line++;
    char pasted[1000];
    snprintf(pasted, sizeof(pasted), "%.*s", (int)strcspn(line, "\n"), line);
    ck_assert_msg(strstr(pasted, "scripts/vramguard run ") != NULL, "the line after the banner: %s", pasted);
    free(text);
    snprintf(cmd, sizeof(cmd), "cd '%s' && env -u LD_LIBRARY_PATH -u LD_PRELOAD -u VRAMGUARD_LIBRARY %s", vg_test_root(),
             pasted);
    text = output_of(argv, NULL, &st);
    ck_assert_msg(st == 3 && strstr(text, "vramguard: 1 process reached the CUDA driver") &&
                      strstr(text, "verdict: fail (violation: 1 violation;"),
                  "pasted `%s`: exit %d\n%s", pasted, st, text);
    free(text);
}
END_TEST

/* `make check` says each suite's result and time as it ends, and the
 * README says how to run one suite. The runner itself, on the config suite
 * (fast), then on a name no suite has. */
START_TEST(check_prints_each_suite)
{
    char runner[800];
    snprintf(runner, sizeof(runner), "unset CK_RUN_CASE; exec '%s/tests/check_vramguard'", vg_test_build());
    const char *argv[] = {"/bin/sh", "-c", runner, NULL};
    const char *config[] = {"CK_RUN_SUITE=config", NULL};
    int st = 0;
    char *text = output_of(argv, config, &st);
    ck_assert_msg(st == 0, "exit %d\n%s", st, text);
    const char *line = strstr(text, "\n== config: ");
    ck_assert_msg(line && strstr(line, " checks, 0 failed, ") && strstr(line, " s\n== all: 1 suites, "), "%s", text);
    ck_assert_int_eq(vg_test_count(text, "Running suite(s): "), 1);
    free(text);
    const char *nope[] = {"CK_RUN_SUITE=no_such_suite", NULL};
    text = output_of(argv, nope, &st);
    ck_assert_msg(st != 0 && strstr(text, "no suite named \"no_such_suite\""), "exit %d\n%s", st, text);
    free(text);
    char readme[700];
    snprintf(readme, sizeof(readme), "%s/README.md", vg_test_root());
    text = vg_test_read_raw(readme);
    ck_assert_msg(strstr(text, "CK_RUN_SUITE=") != NULL, "README.md does not say how to run one suite");
    free(text);
}
END_TEST

Suite *make_outputs_suite(void)
{
    Suite *s = suite_create("outputs");
    TCase *t = tcase_create("programs");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, repeated_events_are_counted_not_written);
    tcase_add_test(t, log_and_journal_capped);
    tcase_add_test(t, log_on_a_full_pipe_never_blocks);
    tcase_add_test(t, journal_starts_before_racing_violations);
    tcase_add_test(t, shim_malloc_failing_once);
    tcase_add_test(t, shim_malloc_failing_from_then_on);
    suite_add_tcase(s, t);
    TCase *q = tcase_create("quiet_and_honest");
    tcase_set_timeout(q, 120);
    tcase_add_test(q, log_levels_and_the_pid);
    tcase_add_test(q, exit_line_names_only_a_written_report);
    tcase_add_test(q, cli_run_one_line_per_process);
    tcase_add_test(q, demo_banner_command_works);
    tcase_add_test(q, check_prints_each_suite);
    suite_add_tcase(s, q);
    return s;
}
