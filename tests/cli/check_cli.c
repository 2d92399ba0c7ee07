/* Check suite for the vramguard CLI (scripts/vramguard).
 *
 * The shim is replaced by an empty shared object (tests/cli/stub_shim.c) given
 * to the CLI through VRAMGUARD_LIBRARY, and the shimmed program by
 * tests/cli/fake_worker.py, which writes reports and journals the way the
 * shim does.  No CUDA is involved.
 *
 * Environment (all optional):
 *   VRAMGUARD_TEST_SRCDIR     repository root (default: $VG_ROOT, else derived
 *                             from __FILE__, else the current directory)
 *   VRAMGUARD_TEST_STUB_SHIM  a prebuilt stub_shim.so (default:
 *                             $VG_BUILD/tests/stub_shim.so if it exists, else
 *                             built with ${CC:-cc} -shared -fPIC into the
 *                             suite's temporary directory)
 *   VRAMGUARD_TEST_PYTHON     python3 used for the fake worker and the schema
 *                             validator (default /usr/bin/python3, which must
 *                             have jsonschema)
 *
 * Entry point: Suite *make_cli_suite(void).
 */
#ifndef _GNU_SOURCE
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#endif
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

Suite *make_cli_suite(void);

#define OUTMAX (256 * 1024)
#define MAXARGS 64

static char g_src[PATH_MAX];      /* repository root */
static char g_cli[PATH_MAX];      /* scripts/vramguard */
static char g_worker[PATH_MAX];   /* tests/cli/fake_worker.py */
static char g_validate[PATH_MAX]; /* tests/cli/validate_report.py */
static char g_schema[PATH_MAX];   /* docs/report.schema.json */
static char g_stub[PATH_MAX];     /* the stand-in library */
static char g_base[PATH_MAX];     /* suite temp dir: per-test dirs, built stub */
static char g_py[PATH_MAX];
static char g_tmp[PATH_MAX];      /* per-test scratch directory */
static int g_calls;

/* result of the last run */
static int r_code;                /* exit status; -N when killed by signal N */
static char r_out[OUTMAX], r_err[OUTMAX];

/* snprintf that fails the test instead of truncating */
__attribute__((format(printf, 3, 4)))
static void fmt(char *buf, size_t cap, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(buf, cap, format, ap);
    va_end(ap);
    ck_assert_msg(n >= 0 && (size_t)n < cap, "path or command too long: %.80s...", buf);
}

static int path_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static void slurp(const char *path, char *buf, size_t cap)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void spit(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    ck_assert_msg(fd >= 0, "cannot create %s: %s", path, strerror(errno));
    size_t len = strlen(text);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
}

static void tmp_path(char *out, const char *name)
{
    fmt(out, PATH_MAX, "%s/%s", g_tmp, name);
}

/* ---- locating things (once, in the parent: unchecked fixture) ---------- */

static int try_srcdir(const char *dir)
{
    char probe[PATH_MAX];
    fmt(probe, sizeof probe, "%s/scripts/vramguard", dir);
    if (!path_exists(probe))
        return 0;
    return realpath(dir, g_src) != NULL;
}

static void find_srcdir(void)
{
    const char *env = getenv("VRAMGUARD_TEST_SRCDIR");
    if (env && *env) {
        ck_assert_msg(try_srcdir(env), "VRAMGUARD_TEST_SRCDIR=%s has no scripts/vramguard", env);
        return;
    }
    env = getenv("VG_ROOT");
    if (env && *env && try_srcdir(env))
        return;
    const char *file = __FILE__;
    const char *tail = strstr(file, "tests/cli/check_cli.c");
    if (tail) {
        char dir[PATH_MAX];
        fmt(dir, sizeof dir, "%.*s.", (int)(tail - file), file);
        if (try_srcdir(dir))
            return;
    }
    ck_assert_msg(try_srcdir("."), "cannot find the repository root (set VRAMGUARD_TEST_SRCDIR)");
}

static int run_plain(char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void rm_rf(const char *dir);

static void suite_setup(void)
{
    find_srcdir();
    fmt(g_cli, sizeof g_cli, "%s/scripts/vramguard", g_src);
    fmt(g_worker, sizeof g_worker, "%s/tests/cli/fake_worker.py", g_src);
    fmt(g_validate, sizeof g_validate, "%s/tests/cli/validate_report.py", g_src);
    fmt(g_schema, sizeof g_schema, "%s/docs/report.schema.json", g_src);
    const char *py = getenv("VRAMGUARD_TEST_PYTHON");
    fmt(g_py, sizeof g_py, "%s", py && *py ? py : "/usr/bin/python3");

    const char *tmp = getenv("TMPDIR");
    fmt(g_base, sizeof g_base, "%s/vramguard-cli.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ck_assert_msg(mkdtemp(g_base) != NULL, "mkdtemp: %s", strerror(errno));

    const char *stub = getenv("VRAMGUARD_TEST_STUB_SHIM");
    if (stub && *stub) {
        ck_assert_msg(realpath(stub, g_stub) != NULL, "VRAMGUARD_TEST_STUB_SHIM=%s: %s",
                      stub, strerror(errno));
        return;
    }
    const char *build = getenv("VG_BUILD");
    if (build && *build) {
        char made[PATH_MAX];
        fmt(made, sizeof made, "%s/tests/stub_shim.so", build);
        if (realpath(made, g_stub) != NULL)
            return;
    }
    fmt(g_stub, sizeof g_stub, "%s/stub_shim.so", g_base);
    char src[PATH_MAX];
    fmt(src, sizeof src, "%s/tests/cli/stub_shim.c", g_src);
    char *argv[] = {"/bin/sh", "-c", "exec ${CC:-cc} -shared -fPIC -o \"$1\" \"$2\"", "sh",
                    g_stub, src, NULL};
    ck_assert_msg(run_plain(argv) == 0 && path_exists(g_stub), "cannot build %s", g_stub);
}

static void suite_teardown(void)
{
    if (g_base[0])
        rm_rf(g_base);     /* also what failed tests (no checked teardown) left */
}

/* ---- per-test scratch directory (checked fixture) --------------------- */

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    chmod(path, 0700);
    remove(path);
    return 0;
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_setup(void)
{
    fmt(g_tmp, sizeof g_tmp, "%s/test.XXXXXX", g_base);
    ck_assert_msg(mkdtemp(g_tmp) != NULL, "mkdtemp: %s", strerror(errno));
    g_calls = 0;
}

static void test_teardown(void)
{
    rm_rf(g_tmp);
}

/* ---- running things --------------------------------------------------- */

/* env: NULL-terminated "NAME=value" (set) or "NAME" (unset) entries, or NULL.
 * By default the CLI gets VRAMGUARD_LIBRARY=<stub>, no LD_PRELOAD and no
 * VRAMGUARD_REPORT, default signal dispositions, stdin from /dev/null. */
static pid_t spawn(const char *const *env, char *const argv[])
{
    char outp[PATH_MAX], errp[PATH_MAX];
    fmt(outp, sizeof outp, "%s/.out.%d", g_tmp, g_calls);
    fmt(errp, sizeof errp, "%s/.err.%d", g_tmp, g_calls);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        int out = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || out < 0 || err < 0)
            _exit(120);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        setenv("VRAMGUARD_LIBRARY", g_stub, 1);
        unsetenv("LD_PRELOAD");
        unsetenv("VRAMGUARD_REPORT");
        unsetenv("VRAMGUARD_LOG");
        unsetenv("VRAMGUARD_LISTEN");
        unsetenv("VRAMGUARD_POLICY"); /* the CLI keeps what the environment sets */
        unsetenv("VRAMGUARD_ALLOW");
        unsetenv("VRAMGUARD_FAIL_ON");
        unsetenv("VRAMGUARD_LIMIT");
        for (const char *const *e = env; e && *e; e++) {
            const char *eq = strchr(*e, '=');
            if (eq) {
                char name[256];
                fmt(name, sizeof name, "%.*s", (int)(eq - *e), *e);
                setenv(name, eq + 1, 1);
            } else {
                unsetenv(*e);
            }
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            signal(sigs[i], SIG_DFL);
        if (chdir(g_tmp) != 0)
            _exit(120);
        execv(argv[0], argv);
        _exit(121);
    }
    return pid;
}

static int collect(pid_t pid)
{
    char outp[PATH_MAX], errp[PATH_MAX];
    fmt(outp, sizeof outp, "%s/.out.%d", g_tmp, g_calls);
    fmt(errp, sizeof errp, "%s/.err.%d", g_tmp, g_calls);
    int st;
    pid_t w;
    while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
        ;
    ck_assert_msg(w == pid, "waitpid: %s", strerror(errno));
    r_code = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
    slurp(outp, r_out, sizeof r_out);
    slurp(errp, r_err, sizeof r_err);
    ck_assert_msg(r_code != 120 && r_code != 121, "could not start %s", g_cli);
    g_calls++;
    return r_code;
}

static void build_argv(char **argv, const char *first, va_list ap)
{
    int n = 0;
    argv[n++] = (char *)first;
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL) {
        ck_assert_int_lt(n, MAXARGS - 1);
        argv[n++] = (char *)a;
    }
    argv[n] = NULL;
}

/* vg(env, arg1, ..., NULL): run "vramguard arg1 ..." and wait */
static int vg(const char *const *env, ...)
{
    char *argv[MAXARGS];
    va_list ap;
    va_start(ap, env);
    build_argv(argv, g_cli, ap);
    va_end(ap);
    return collect(spawn(env, argv));
}

/* run any program (python helpers) the same way */
static int prog(const char *path, ...)
{
    char *argv[MAXARGS];
    va_list ap;
    va_start(ap, path);
    build_argv(argv, path, ap);
    va_end(ap);
    return collect(spawn(NULL, argv));
}

#define ERR_HAS(s) ck_assert_msg(strstr(r_err, (s)) != NULL, \
                                 "stderr lacks \"%s\"; stderr was:\n%s", (s), r_err)
#define ERR_LACKS(s) ck_assert_msg(strstr(r_err, (s)) == NULL, \
                                   "stderr has \"%s\"; stderr was:\n%s", (s), r_err)
#define OUT_HAS(s) ck_assert_msg(strstr(r_out, (s)) != NULL, \
                                 "stdout lacks \"%s\"; stdout was:\n%s", (s), r_out)
#define CODE_IS(n) ck_assert_msg(r_code == (n), "exit status %d, expected %d; stderr:\n%s", \
                                 r_code, (n), r_err)
#define OUT_LACKS(s) ck_assert_msg(strstr(r_out, (s)) == NULL, \
                                   "stdout has \"%s\"; stdout was:\n%s", (s), r_out)
#define NO_TRACEBACK() ERR_LACKS("Traceback")

static int count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* ---- tests ------------------------------------------------------------ */

START_TEST(test_help_and_version)
{
    vg(NULL, "--help", NULL);
    CODE_IS(0);
    OUT_HAS("exit status");
    OUT_HAS("VRAMGUARD_LIBRARY");
    OUT_HAS("VRAMGUARD_REPORT");
    OUT_HAS("128+N");
    OUT_HAS("125");
    OUT_HAS("vramguard.<pid>.json.journal");
    vg(NULL, "run", "--help", NULL);
    CODE_IS(0);
    OUT_HAS("--error-exitcode");
    OUT_HAS("--report-dir");
    OUT_HAS("--fail-on");
    OUT_HAS("--policy");
    vg(NULL, "report", "--help", NULL);
    CODE_IS(0);
    vg(NULL, "--version", NULL);
    CODE_IS(0);
    OUT_HAS("vramguard 0.1.0");
}
END_TEST

START_TEST(test_clean_run_passes)
{
    vg(NULL, "run", "--", g_py, g_worker, NULL);
    CODE_IS(0);
    ERR_HAS("vramguard: 1 process reached the CUDA driver");
    ERR_HAS("peak tracked 3.0 MiB");
    ERR_HAS("vramguard: verdict: pass");
    NO_TRACEBACK();
}
END_TEST

START_TEST(test_no_driver_passes)
{
    vg(NULL, "run", "--", g_py, g_worker, "--no-driver", NULL);
    CODE_IS(0);
    ERR_HAS("0 processes reached the CUDA driver");
    ERR_HAS("verdict: pass");
}
END_TEST

START_TEST(test_violation_fails_with_3)
{
    vg(NULL, "run", "--", g_py, g_worker, "--violations", "2", NULL);
    CODE_IS(3);
    ERR_HAS("vramguard: verdict: fail");
    /* counted from the report only, not again from its journal */
    ERR_HAS("violation: 2 violations;");
    ERR_HAS("violations 2;");
    ERR_HAS("cuMemAllocManaged size 1.0 MiB (1048576 B)");
    ERR_HAS("caller /opt/fake/libworker.so+0x1a2b");
    ERR_HAS("action rejected");
    ERR_HAS("purpose unknown");
    NO_TRACEBACK();
}
END_TEST

START_TEST(test_error_exitcode)
{
    vg(NULL, "run", "--error-exitcode", "7", "--", g_py, g_worker, "--violations", "1", NULL);
    CODE_IS(7);
    vg(NULL, "run", "--error-exitcode", "7", "--", g_py, g_worker, NULL);
    CODE_IS(0);
    vg(NULL, "run", "--error-exitcode", "0", "--", g_py, g_worker, NULL);
    CODE_IS(125);
    ERR_HAS("1 to 255");
    vg(NULL, "run", "--error-exitcode", "256", "--", g_py, g_worker, NULL);
    CODE_IS(125);
}
END_TEST

START_TEST(test_child_status_wins)
{
    vg(NULL, "run", "--", g_py, g_worker, "--violations", "1", "--exit", "5", NULL);
    CODE_IS(5);
    ERR_HAS("command exited with status 5");
    ERR_HAS("verdict: fail");
    vg(NULL, "run", "--", g_py, g_worker, "--exit", "9", NULL);
    CODE_IS(9);
}
END_TEST

START_TEST(test_missing_library)
{
    char marker[PATH_MAX];
    tmp_path(marker, "ran");
    const char *env[] = {"VRAMGUARD_LIBRARY=/nonexistent/libvramguard.so", NULL};
    vg(env, "run", "--", g_py, g_worker, "--dump-env", marker, NULL);
    CODE_IS(125);
    ERR_HAS("/nonexistent/libvramguard.so");
    ck_assert_msg(!path_exists(marker), "the command ran although the library is missing");
}
END_TEST

START_TEST(test_library_not_preloadable)
{
    char bogus[PATH_MAX], marker[PATH_MAX], envv[PATH_MAX + 32];
    tmp_path(bogus, "libnotreally.so");
    tmp_path(marker, "ran");
    spit(bogus, "this is not an ELF file\n", 0644);
    fmt(envv, sizeof envv, "VRAMGUARD_LIBRARY=%s", bogus);
    const char *env[] = {envv, NULL};
    vg(env, "run", "--", g_py, g_worker, "--dump-env", marker, NULL);
    CODE_IS(125);
    ERR_HAS("cannot be preloaded");
    ck_assert(!path_exists(marker));
}
END_TEST

START_TEST(test_library_found_next_to_script)
{
    /* a copy of the CLI (entry script and package) in <tmp>/scripts finds
     * <tmp>/build/libvramguard.so, through a symlink to the script as well */
    char d[PATH_MAX], f[PATH_MAX], link[PATH_MAX], cmd[6 * PATH_MAX];
    fmt(cmd, sizeof cmd, "mkdir -p '%s/scripts' '%s/build' '%s/bin' && cp '%s' '%s/scripts/' && "
             "cp -R '%s_cli' '%s/scripts/' && cp '%s' '%s/build/libvramguard.so'",
        g_tmp, g_tmp, g_tmp, g_cli, g_tmp, g_cli, g_tmp, g_stub, g_tmp);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    ck_assert_int_eq(run_plain(argv), 0);
    fmt(f, sizeof f, "%s/scripts/vramguard", g_tmp);
    fmt(link, sizeof link, "%s/bin/vramguard", g_tmp);
    ck_assert_int_eq(symlink(f, link), 0);
    fmt(d, sizeof d, "%s/env.json", g_tmp);
    const char *env[] = {"VRAMGUARD_LIBRARY", NULL};
    char *av[] = {link, "run", "--", g_py, g_worker, "--dump-env", d, NULL};
    collect(spawn(env, av));
    CODE_IS(0);
    char dump[8192], want[PATH_MAX + 32];
    slurp(d, dump, sizeof dump);
    fmt(want, sizeof want, "\"LD_PRELOAD\": \"%s/build/libvramguard.so\"", g_tmp);
    ck_assert_msg(strstr(dump, want) != NULL, "env dump %s lacks %s", dump, want);
    /* and without any library: 125 */
    fmt(f, sizeof f, "%s/build/libvramguard.so", g_tmp);
    ck_assert_int_eq(unlink(f), 0);
    collect(spawn(env, av));
    CODE_IS(125);
    ERR_HAS("libvramguard.so not found");
    /* and without its package: 125, naming it */
    fmt(cmd, sizeof cmd, "rm -r '%s/scripts/vramguard_cli'", g_tmp);
    ck_assert_int_eq(run_plain(argv), 0);
    collect(spawn(env, av));
    CODE_IS(125);
    ERR_HAS("vramguard_cli is missing");
    NO_TRACEBACK();
}
END_TEST

START_TEST(test_bad_options)
{
    vg(NULL, "run", "--policy", "bogus", "--", g_py, g_worker, NULL);
    CODE_IS(125);
    ERR_HAS("reject, warn, off");
    vg(NULL, "run", "--allow", "unpinned", "--", g_py, g_worker, NULL);
    CODE_IS(125);
    ERR_HAS("invalid rule 'unpinned'");
    vg(NULL, "run", "--fail-on", "violation,bogus", "--", g_py, g_worker, NULL);
    CODE_IS(125);
    ERR_HAS("violation, oom, leak, budget, or none");
    vg(NULL, "run", "--frobnicate", "--", g_py, g_worker, NULL);
    CODE_IS(125);
    vg(NULL, "run", g_py, g_worker, NULL);            /* no -- */
    CODE_IS(125);
    ERR_HAS("'--'");
    vg(NULL, "run", "--policy", "warn", NULL);        /* no command */
    CODE_IS(125);
    vg(NULL, "run", "--", NULL);                      /* -- but no command */
    CODE_IS(125);
    vg(NULL, NULL);                                   /* nothing at all */
    CODE_IS(125);
    vg(NULL, "frob", NULL);
    CODE_IS(125);
    NO_TRACEBACK();
}
END_TEST

START_TEST(test_not_executable_126)
{
    char f[PATH_MAX];
    tmp_path(f, "script.sh");
    spit(f, "#!/bin/sh\nexit 0\n", 0644);
    vg(NULL, "run", "--", f, NULL);
    CODE_IS(126);
    ERR_HAS("script.sh");
    vg(NULL, "run", "--", g_tmp, NULL);               /* a directory */
    CODE_IS(126);
    NO_TRACEBACK();
}
END_TEST

START_TEST(test_missing_command_127)
{
    vg(NULL, "run", "--", "vramguard-no-such-command-xyz", NULL);
    CODE_IS(127);
    ERR_HAS("vramguard-no-such-command-xyz");
    ERR_HAS("not found");
    char f[PATH_MAX];
    tmp_path(f, "missing/prog");
    vg(NULL, "run", "--", f, NULL);
    CODE_IS(127);
    NO_TRACEBACK();
}
END_TEST

START_TEST(test_command_killed_by_signal)
{
    vg(NULL, "run", "--", "/bin/sh", "-c", "kill -TERM $$", NULL);
    CODE_IS(128 + SIGTERM);
    vg(NULL, "run", "--", "/bin/sh", "-c", "kill -KILL $$", NULL);
    CODE_IS(128 + SIGKILL);
    ERR_HAS("SIGKILL");
    /* the signal wins over a fail-on condition */
    vg(NULL, "run", "--", g_py, g_worker, "--violations", "1", "--kill", "TERM", NULL);
    CODE_IS(128 + SIGTERM);
    ERR_HAS("killed, no report");
}
END_TEST

START_TEST(test_sigterm_forwarded)
{
    char ready[PATH_MAX];
    tmp_path(ready, "ready");
    char *argv[] = {g_cli, "run", "--", g_py, g_worker, "--violations", "1",
                    "--ready", ready, "--sleep", "20", NULL};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = spawn(NULL, argv);
    for (int i = 0; i < 200 && !path_exists(ready); i++)
        usleep(50 * 1000);
    ck_assert_msg(path_exists(ready), "the worker did not start");
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    collect(pid);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* the CLI itself exits normally, reporting the command's death by SIGTERM */
    CODE_IS(128 + SIGTERM);
    ck_assert_msg(t1.tv_sec - t0.tv_sec < 15, "the worker was not stopped by the signal");
    ERR_HAS("killed, no report");
    ERR_HAS("killed by SIGTERM");
    ERR_HAS("violations 1;");
}
END_TEST

START_TEST(test_journal_only_counted)
{
    /* the parent is clean; its child dies by SIGKILL after 2 violations */
    vg(NULL, "run", "--", g_py, g_worker, "--child", "--violations 2 --kill KILL", NULL);
    CODE_IS(3);
    ERR_HAS("2 processes reached the CUDA driver");
    ERR_HAS("killed, no report");
    ERR_HAS("leaked allocations unknown");
    ERR_HAS("violation: 2 violations;");
    vg(NULL, "run", "--fail-on", "none", "--", g_py, g_worker, "--child",
       "--violations 2 --kill KILL", NULL);
    CODE_IS(0);
    ERR_HAS("killed, no report");
    ERR_HAS("verdict: pass");
}
END_TEST

START_TEST(test_two_processes_aggregated)
{
    char dir[PATH_MAX];
    tmp_path(dir, "reports");
    vg(NULL, "run", "--report-dir", dir, "--", g_py, g_worker, "--violations", "1",
       "--child", "--violations 3 --ooms 1", NULL);
    CODE_IS(3);
    ERR_HAS("2 processes reached the CUDA driver");
    ERR_HAS("violation: 4 violations;");
    ERR_HAS("violations 3;");
    ERR_HAS("violations 1;");
    ERR_HAS("OOM events 1;");
    ERR_HAS("oom: cuMemAlloc_v2 size 80.0 GiB");
    ck_assert_int_eq(count_lines_with(r_err, "vramguard: pid "), 2);
    /* the kept directory holds one report and one journal per process */
    char cmd[PATH_MAX + 128];
    fmt(cmd, sizeof cmd, "test $(ls '%s'/vramguard.*.json | wc -l) -eq 2 && "
             "test $(ls '%s'/*.journal | wc -l) -eq 2", dir, dir);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    ck_assert_msg(run_plain(argv) == 0, "expected 2 reports and 2 journals in %s", dir);
}
END_TEST

START_TEST(test_env_for_command)
{
    char dump[PATH_MAX], other[PATH_MAX], dir[PATH_MAX], log[PATH_MAX];
    char pre[PATH_MAX + 16], text[16384], want[3 * PATH_MAX];
    tmp_path(dump, "env.json");
    tmp_path(other, "other.so");
    tmp_path(dir, "a/b/c");
    tmp_path(log, "vg.%p.log");
    char cmd[3 * PATH_MAX];
    fmt(cmd, sizeof cmd, "cp '%s' '%s'", g_stub, other);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    ck_assert_int_eq(run_plain(argv), 0);
    fmt(pre, sizeof pre, "LD_PRELOAD=%s", other);
    const char *env[] = {pre, NULL};
    vg(env, "run", "--policy", "warn", "--allow", "pinned", "--fail-on", "oom,leak",
       "--report-dir", "a/b/c", "--log", "vg.%p.log", "--", g_py, g_worker,
       "--dump-env", dump, NULL);
    CODE_IS(0);
    slurp(dump, text, sizeof text);
    fmt(want, sizeof want, "\"LD_PRELOAD\": \"%s:%s\"", g_stub, other);
    ck_assert_msg(strstr(text, want), "%s lacks %s", text, want);
    ck_assert_msg(strstr(text, "\"VRAMGUARD_POLICY\": \"warn\""), "%s", text);
    ck_assert_msg(strstr(text, "\"VRAMGUARD_ALLOW\": \"pinned\""), "%s", text);
    ck_assert_msg(strstr(text, "\"VRAMGUARD_FAIL_ON\": \"oom,leak\""), "%s", text);
    fmt(want, sizeof want, "\"VRAMGUARD_REPORT\": \"%s/vramguard.%%p.json\"", dir);
    ck_assert_msg(strstr(text, want), "%s lacks %s", text, want);
    fmt(want, sizeof want, "\"VRAMGUARD_LOG\": \"%s\"", log);
    ck_assert_msg(strstr(text, want), "%s lacks %s", text, want);
    ck_assert_msg(path_exists(dir), "report dir %s not created", dir);

    /* defaults; no VRAMGUARD_LOG unless --log */
    vg(NULL, "run", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    slurp(dump, text, sizeof text);
    fmt(want, sizeof want, "\"LD_PRELOAD\": \"%s\"", g_stub);
    ck_assert_msg(strstr(text, want), "%s lacks %s", text, want);
    ck_assert_msg(strstr(text, "\"VRAMGUARD_POLICY\": \"reject\""), "%s", text);
    ck_assert_msg(strstr(text, "\"VRAMGUARD_ALLOW\": \"none\""), "%s", text);
    ck_assert_msg(strstr(text, "\"VRAMGUARD_FAIL_ON\": \"violation\""), "%s", text);
    ck_assert_msg(!strstr(text, "\"VRAMGUARD_LOG\""), "%s", text);
}
END_TEST

/* Flags > environment > defaults: what the user set in the environment is
 * kept, a flag overrides it, an invalid value is warned about and the
 * default used, an empty value counts as unset. */
START_TEST(test_env_settings_kept)
{
    char dump[PATH_MAX], text[16384];
    tmp_path(dump, "env.json");
    const char *set[] = {"VRAMGUARD_POLICY=warn", "VRAMGUARD_ALLOW=pinned", "VRAMGUARD_FAIL_ON=oom,leak", NULL};
    vg(set, "run", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    slurp(dump, text, sizeof text);
    ck_assert_msg(strstr(text, "\"VRAMGUARD_POLICY\": \"warn\""), "%s", text);
    ck_assert_msg(strstr(text, "\"VRAMGUARD_ALLOW\": \"pinned\""), "%s", text);
    ck_assert_msg(strstr(text, "\"VRAMGUARD_FAIL_ON\": \"oom,leak\""), "%s", text);
    ERR_LACKS("warning");

    /* a flag wins */
    vg(set, "run", "--policy", "off", "--fail-on", "violation", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    slurp(dump, text, sizeof text);
    ck_assert_msg(strstr(text, "\"VRAMGUARD_POLICY\": \"off\""), "%s", text);
    ck_assert_msg(strstr(text, "\"VRAMGUARD_ALLOW\": \"pinned\""), "%s", text);
    ck_assert_msg(strstr(text, "\"VRAMGUARD_FAIL_ON\": \"violation\""), "%s", text);

    /* the verdict follows the environment's fail-on too */
    const char *none[] = {"VRAMGUARD_FAIL_ON=none", NULL};
    vg(none, "run", "--", g_py, g_worker, "--violations", "1", NULL);
    CODE_IS(0);
    ERR_HAS("verdict: pass (fail-on: none");
    vg(none, "run", "--fail-on", "violation", "--", g_py, g_worker, "--violations", "1", NULL);
    CODE_IS(3);

    /* invalid: one warning naming the variable, the default stays */
    const char *bad[] = {"VRAMGUARD_POLICY=rejekt", "VRAMGUARD_FAIL_ON=oom,sometimes", NULL};
    vg(bad, "run", "--", g_py, g_worker, "--dump-env", dump, "--violations", "1", NULL);
    CODE_IS(3); /* fail-on fell back to violation */
    ERR_HAS("warning: ignoring VRAMGUARD_POLICY=rejekt");
    ERR_HAS("accepted: reject, warn, off); using the default: reject\n");
    ERR_HAS("warning: ignoring VRAMGUARD_FAIL_ON=oom,sometimes");
    ERR_HAS("; using the default: violation\n");
    slurp(dump, text, sizeof text);
    ck_assert_msg(strstr(text, "\"VRAMGUARD_POLICY\": \"reject\""), "%s", text);

    /* empty = unset */
    const char *empty[] = {"VRAMGUARD_POLICY=", NULL};
    vg(empty, "run", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    ERR_LACKS("warning");
    slurp(dump, text, sizeof text);
    ck_assert_msg(strstr(text, "\"VRAMGUARD_POLICY\": \"reject\""), "%s", text);
    NO_TRACEBACK();
}
END_TEST

/* --limit: VRAM budgets for the command (VRAMGUARD_LIMIT), checked with the
 * shim's grammar; flags > environment; a bad entry in the environment is
 * warned about and dropped, a bad flag is a usage error. */
START_TEST(test_limit)
{
    char dump[PATH_MAX], text[16384];
    tmp_path(dump, "env.json");
    vg(NULL, "run", "--limit", "total=40G,kv_cache=30G", "--limit", "1:total=20G", "--", g_py, g_worker,
       "--dump-env", dump, NULL);
    CODE_IS(0);
    slurp(dump, text, sizeof text);
    ck_assert_msg(strstr(text, "\"VRAMGUARD_LIMIT\": \"total=40G,kv_cache=30G,1:total=20G\""), "%s", text);
    const char *env[] = {"VRAMGUARD_LIMIT=weights=12G,bogus=1G,total=40X", NULL};
    vg(env, "run", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    ERR_HAS("warning: ignoring budget 'bogus=1G' of VRAMGUARD_LIMIT: unknown scope 'bogus'");
    ERR_HAS("warning: ignoring budget 'total=40X' of VRAMGUARD_LIMIT: size '40X' is not NUMBER[K|M|G|T]");
    slurp(dump, text, sizeof text);
    ck_assert_msg(strstr(text, "\"VRAMGUARD_LIMIT\": \"weights=12G\""), "%s", text);
    vg(env, "run", "--limit", "0:total=1G", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    ERR_LACKS("warning");
    slurp(dump, text, sizeof text);
    ck_assert_msg(strstr(text, "\"VRAMGUARD_LIMIT\": \"0:total=1G\""), "%s", text);
    vg(NULL, "run", "--limit", "x:total=1G", "--", g_py, g_worker, NULL);
    CODE_IS(125);
    ERR_HAS("invalid budget 'x:total=1G': the device 'x' is not an ordinal");
    /* none set: none passed on */
    vg(NULL, "run", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    slurp(dump, text, sizeof text);
    ck_assert_msg(!strstr(text, "VRAMGUARD_LIMIT"), "%s", text);
    NO_TRACEBACK();
}
END_TEST

START_TEST(test_report_fail_on_from_env)
{
    char dir[PATH_MAX];
    tmp_path(dir, "reports");
    vg(NULL, "run", "--fail-on", "none", "--report-dir", dir, "--", g_py, g_worker, "--leaks", "1", NULL);
    CODE_IS(0);
    const char *leak[] = {"VRAMGUARD_FAIL_ON=leak", NULL};
    vg(leak, "report", dir, NULL);
    CODE_IS(3);
    ERR_HAS("leak: 1 allocation");
    vg(leak, "report", "--fail-on", "none", dir, NULL);
    CODE_IS(0);
}
END_TEST

START_TEST(test_temporary_dir_removed)
{
    char dump[PATH_MAX], text[16384];
    tmp_path(dump, "env.json");
    vg(NULL, "run", "--", g_py, g_worker, "--violations", "1", "--dump-env", dump, NULL);
    CODE_IS(3);
    slurp(dump, text, sizeof text);
    char *p = strstr(text, "\"VRAMGUARD_REPORT\": \"");
    ck_assert_ptr_nonnull(p);
    p += strlen("\"VRAMGUARD_REPORT\": \"");
    char *end = strstr(p, "/vramguard.%p.json");
    ck_assert_ptr_nonnull(end);
    *end = '\0';
    ck_assert_msg(!path_exists(p), "temporary report dir %s was not removed", p);
}
END_TEST

START_TEST(test_report_dir_unusable)
{
    char f[PATH_MAX], sub[PATH_MAX];
    tmp_path(f, "plainfile");
    spit(f, "x\n", 0644);
    fmt(sub, sizeof sub, "%s/sub", f);
    vg(NULL, "run", "--report-dir", sub, "--", g_py, g_worker, NULL);
    CODE_IS(125);
    ERR_HAS("report directory");
    vg(NULL, "run", "--report-dir", f, "--", g_py, g_worker, NULL);
    CODE_IS(125);
}
END_TEST

START_TEST(test_fail_on_oom)
{
    vg(NULL, "run", "--", g_py, g_worker, "--ooms", "1", NULL);
    CODE_IS(0);                                   /* default: violation only */
    vg(NULL, "run", "--fail-on", "oom", "--", g_py, g_worker, "--ooms", "1", NULL);
    CODE_IS(3);
    ERR_HAS("oom: 1 OOM event");
    vg(NULL, "run", "--fail-on", "oom", "--", g_py, g_worker, "--violations", "1", NULL);
    CODE_IS(0);                                   /* violations no longer fail */
}
END_TEST

START_TEST(test_fail_on_leak)
{
    vg(NULL, "run", "--", g_py, g_worker, "--leaks", "2", NULL);
    CODE_IS(0);
    vg(NULL, "run", "--fail-on", "leak", "--", g_py, g_worker, "--leaks", "2", NULL);
    CODE_IS(3);
    ERR_HAS("leak: 2 allocations, 8.0 KiB");
    ERR_HAS("leak: 4.0 KiB (4096 B) at 0x7f00");
    vg(NULL, "run", "--fail-on", "violation,oom,leak", "--", g_py, g_worker, NULL);
    CODE_IS(0);
    vg(NULL, "run", "--fail-on", "none", "--", g_py, g_worker, "--leaks", "1",
       "--violations", "1", "--ooms", "1", NULL);
    CODE_IS(0);
}
END_TEST

START_TEST(test_quiet)
{
    vg(NULL, "run", "--quiet", "--", g_py, g_worker, "--violations", "1", NULL);
    CODE_IS(3);
    ck_assert_int_eq(count_lines_with(r_err, "vramguard: "), 1);
    ck_assert_msg(strncmp(r_err, "vramguard: verdict: fail", 24) == 0, "%s", r_err);
}
END_TEST

START_TEST(test_malformed_report)
{
    vg(NULL, "run", "--", g_py, g_worker, "--malformed", NULL);
    CODE_IS(125);
    ERR_HAS("cannot read report");
    ERR_HAS("verdict: fail");
    NO_TRACEBACK();
    /* a real finding takes precedence over the unreadable report */
    vg(NULL, "run", "--", g_py, g_worker, "--malformed", "--child", "--violations 1", NULL);
    CODE_IS(3);
    NO_TRACEBACK();
}
END_TEST

START_TEST(test_report_subcommand)
{
    char dir[PATH_MAX], empty[PATH_MAX], one[PATH_MAX];
    tmp_path(dir, "reports");
    tmp_path(empty, "empty");
    ck_assert_int_eq(mkdir(empty, 0755), 0);
    vg(NULL, "run", "--fail-on", "none", "--report-dir", dir, "--", g_py, g_worker,
       "--leaks", "1", "--child", "--violations 2 --kill TERM", NULL);
    CODE_IS(0);
    vg(NULL, "report", dir, NULL);
    CODE_IS(3);
    ERR_HAS("2 processes reached the CUDA driver");
    ERR_HAS("killed, no report");
    ERR_HAS("violation: 2 violations;");
    vg(NULL, "report", "--fail-on", "leak", dir, NULL);
    CODE_IS(3);
    ERR_HAS("leak: 1 allocation");
    vg(NULL, "report", "--fail-on", "none", dir, NULL);
    CODE_IS(0);
    ERR_HAS("verdict: pass");
    vg(NULL, "report", "--quiet", dir, NULL);
    CODE_IS(3);
    ck_assert_int_eq(count_lines_with(r_err, "vramguard: "), 1);
    vg(NULL, "report", empty, NULL);
    CODE_IS(125);
    vg(NULL, "report", NULL);
    CODE_IS(125);
    tmp_path(one, "nothing-here.json");
    vg(NULL, "report", one, NULL);
    CODE_IS(125);
    /* a single report file, given directly */
    char cmd[PATH_MAX + 64], list[4096];
    fmt(cmd, sizeof cmd, "ls '%s'/vramguard.*.json > '%s/list'", dir, g_tmp);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    ck_assert_int_eq(run_plain(argv), 0);
    fmt(one, sizeof one, "%s/list", g_tmp);
    slurp(one, list, sizeof list);
    *strchrnul(list, '\n') = '\0';
    vg(NULL, "report", list, NULL);
    CODE_IS(0);
    ERR_HAS("1 process reached the CUDA driver");
    NO_TRACEBACK();
}
END_TEST

START_TEST(test_reports_match_schema)
{
    char dir[PATH_MAX];
    tmp_path(dir, "reports");
    vg(NULL, "run", "--fail-on", "violation,oom,leak", "--report-dir", dir, "--", g_py, g_worker,
       "--violations", "70", "--ooms", "2", "--leaks", "3",
       "--child", "--violations 1 --kill KILL", "--child", "", NULL);
    CODE_IS(3);
    /* every report and journal, with the reusable validator */
    char cmd[4 * PATH_MAX];
    fmt(cmd, sizeof cmd, "n=$(ls '%s' | wc -l); test \"$n\" -eq 5 || { echo \"$n files\" >&2; exit 9; }; "
             "exec '%s' '%s' '%s'/*", dir, g_py, g_validate, dir);
    prog("/bin/sh", "-c", cmd, NULL);
    CODE_IS(0);
    ck_assert_int_eq(count_lines_with(r_out, ": valid"), 5);
    /* and independently of validate_report.py, with jsonschema directly */
    fmt(cmd, sizeof cmd,
             "import glob, json, sys, jsonschema\n"
             "s = json.load(open('%s'))\n"
             "files = glob.glob('%s/vramguard.*.json')\n"
             "assert len(files) == 2, files\n"
             "for f in files: jsonschema.Draft202012Validator(s).validate(json.load(open(f)))\n",
             g_schema, dir);
    prog(g_py, "-c", cmd, NULL);
    CODE_IS(0);
}
END_TEST

START_TEST(test_validator_rejects_bad_reports)
{
    char dir[PATH_MAX], good[PATH_MAX], bad[PATH_MAX], cmd[4 * PATH_MAX];
    tmp_path(dir, "reports");
    vg(NULL, "run", "--report-dir", dir, "--", g_py, g_worker, "--leaks", "1", NULL);
    CODE_IS(0);
    fmt(cmd, sizeof cmd, "ls '%s'/vramguard.*.json > '%s/good'", dir, g_tmp);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    ck_assert_int_eq(run_plain(argv), 0);
    fmt(bad, sizeof bad, "%s/good", g_tmp);
    slurp(bad, good, sizeof good);
    *strchrnul(good, '\n') = '\0';
    prog(g_py, g_validate, good, NULL);
    CODE_IS(0);

    /* each mutation of the good report must be refused */
    static const char *const mutations[] = {
        "del d['summary']",
        "d['schema'] = 'vramguard.report/v2'",
        "d['process']['pid'] = '12'",
        "d['process']['started_at'] = 'yesterday'",
        "d['config']['policy'] = 'maybe'",
        "d['config']['fail_on'] = ['violation', 'crash']",
        "d['devices'][0]['usage'][0]['purpose'] = 'misc'",
        "d['devices'][0]['usage'][0]['kind'] = 'Device'",
        "del d['devices'][0]['usage'][0]['peak_bytes']",
        "d['devices'][0]['pageable_memory_access'] = 'no'",
        "d['live_at_exit']['allocations'][0]['address'] = 4096",
        "d['summary']['status'] = 'ok'",
        "d['violations']['recorded'] = [{'api': 'cuMemAllocManaged'}]",
        "d['summary']['leaked_bytes'] = 1",                 /* consistency */
        "d['summary']['status'] = 'fail'",                 /* consistency */
        "d['violations']['count'] = 3",                    /* consistency */
    };
    /* one mutated copy per rule, written by one python run, checked by one
     * validator run: each copy must be reported invalid, none valid */
    char script[16384];
    fmt(script, sizeof script, "import copy, json\nsrc = json.load(open('%s'))\n", good);
    size_t nmut = sizeof mutations / sizeof mutations[0];
    for (size_t i = 0; i < nmut; i++) {
        char part[1024];
        fmt(part, sizeof part, "d = copy.deepcopy(src)\n%s\njson.dump(d, open('%s/bad%02zu.json', 'w'))\n",
            mutations[i], g_tmp, i);
        ck_assert_uint_lt(strlen(script) + strlen(part), sizeof script);
        strcat(script, part);
    }
    prog(g_py, "-c", script, NULL);
    CODE_IS(0);
    fmt(cmd, sizeof cmd, "exec '%s' '%s' '%s'/bad*.json", g_py, g_validate, g_tmp);
    prog("/bin/sh", "-c", cmd, NULL);
    CODE_IS(1);
    ck_assert_msg(strstr(r_out, ": valid") == NULL, "validator accepted a mutation: %s", r_out);
    for (size_t i = 0; i < nmut; i++) {
        char name[64];
        fmt(name, sizeof name, "/bad%02zu.json: invalid", i);
        ck_assert_msg(strstr(r_err, name) != NULL, "mutation `%s` not reported invalid:\n%s",
                      mutations[i], r_err);
    }
    /* a bad journal line */
    fmt(bad, sizeof bad, "%s/x.json.journal", g_tmp);
    spit(bad, "{\"event\":\"start\",\"pid\":5,\"exe\":\"/x\",\"time\":\"2025-01-01T00:00:00Z\"}\n"
              "{\"event\":\"oom\",\"pid\":5,\"time\":\"2025-01-01T00:00:01Z\",\"api\":\"cuMemAlloc_v2\"}\n",
         0644);
    prog(g_py, g_validate, bad, NULL);
    CODE_IS(1);
    ERR_HAS("line 2");
}
END_TEST

START_TEST(test_stale_files_ignored)
{
    char dir[PATH_MAX];
    tmp_path(dir, "reports");
    vg(NULL, "run", "--report-dir", dir, "--", g_py, g_worker, "--violations", "1", NULL);
    CODE_IS(3);
    vg(NULL, "run", "--report-dir", dir, "--", g_py, g_worker, NULL);
    CODE_IS(0);
    ERR_HAS("ignored 2 files");
    ERR_HAS("1 process reached the CUDA driver");
    vg(NULL, "report", dir, NULL);                 /* 'report' reads everything */
    CODE_IS(3);
    ERR_HAS("2 processes reached the CUDA driver");
}
END_TEST

/* ---- issue 4: --listen, --require-cuda, report --markdown ------------- */

START_TEST(test_listen_help)
{
    vg(NULL, "run", "--help", NULL);
    CODE_IS(0);
    OUT_HAS("--listen SPEC");
    OUT_HAS("first process only");
    OUT_HAS("unix:/path/%p");
    OUT_HAS("--require-cuda");
    OUT_HAS("VRAMGUARD_LISTEN");
    vg(NULL, "report", "--help", NULL);
    CODE_IS(0);
    OUT_HAS("--markdown");
    OUT_HAS("GITHUB_STEP_SUMMARY");
}
END_TEST

START_TEST(test_listen_env_and_endpoints)
{
    char dump[PATH_MAX], dir[PATH_MAX], text[16384];
    tmp_path(dump, "env.json");
    tmp_path(dir, "reports");
    /* port 0: every process binds its own port and records it */
    vg(NULL, "run", "--listen", "0", "--report-dir", dir, "--", g_py, g_worker,
       "--dump-env", dump, "--child", "--ooms 1", "--child", " --no-driver", "--sleep", "1.5", NULL);
    CODE_IS(0);
    slurp(dump, text, sizeof text);
    ck_assert_msg(strstr(text, "\"VRAMGUARD_LISTEN\": \"0\""), "%s", text);
    /* two processes bound (the --no-driver child did not); each is announced
     * while the command runs and listed again in the summary */
    ck_assert_int_eq(count_lines_with(r_err, "vramguard: pid "), 6);
    ck_assert_int_eq(count_lines_with(r_err, " endpoint http://127.0.0.1:"), 4);
    char cmd[2 * PATH_MAX];
    fmt(cmd, sizeof cmd, "test $(ls '%s'/vramguard.*.json.endpoint | wc -l) -eq 2", dir);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    ck_assert_msg(run_plain(argv) == 0, "expected 2 .endpoint files in %s", dir);
    /* the summary lines name the pids of the reports */
    char *p = strstr(r_err, "vramguard: command exited");
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(count_lines_with(r_err, "verdict: pass"), 1);
    /* 'report' lists them as well */
    vg(NULL, "report", dir, NULL);
    CODE_IS(0);
    ck_assert_int_eq(count_lines_with(r_err, " endpoint http://127.0.0.1:"), 2);
    NO_TRACEBACK();
}
END_TEST

START_TEST(test_listen_forms)
{
    char dump[PATH_MAX], sock[PATH_MAX], text[16384], want[2 * PATH_MAX];
    tmp_path(dump, "env.json");
    vg(NULL, "run", "--listen", "127.0.0.1:9464", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    slurp(dump, text, sizeof text);
    ck_assert_msg(strstr(text, "\"VRAMGUARD_LISTEN\": \"127.0.0.1:9464\""), "%s", text);
    ERR_HAS("endpoint http://127.0.0.1:9464\n");
    vg(NULL, "run", "--listen", "9100", "--", g_py, g_worker, NULL);
    CODE_IS(0);
    ERR_HAS("endpoint http://127.0.0.1:9100\n");
    /* unix:/path/%p: one socket per process, %p left to the shim */
    fmt(sock, sizeof sock, "unix:%s/vg.%%p.sock", g_tmp);
    vg(NULL, "run", "--listen", sock, "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    slurp(dump, text, sizeof text);
    fmt(want, sizeof want, "\"VRAMGUARD_LISTEN\": \"%s\"", sock);
    ck_assert_msg(strstr(text, want), "%s lacks %s", text, want);
    fmt(want, sizeof want, "endpoint unix:%s/vg.", g_tmp);
    ERR_HAS(want);
    ERR_LACKS("%p.sock");
    /* a process that could not bind writes no .endpoint: nothing listed */
    vg(NULL, "run", "--listen", "9100", "--", g_py, g_worker, "--no-endpoint", NULL);
    CODE_IS(0);
    ERR_LACKS("endpoint");
    /* --quiet: the verdict only */
    vg(NULL, "run", "--quiet", "--listen", "0", "--", g_py, g_worker, NULL);
    CODE_IS(0);
    ck_assert_int_eq(count_lines_with(r_err, "vramguard: "), 1);
    /* without --listen: no VRAMGUARD_LISTEN, no endpoint */
    vg(NULL, "run", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    slurp(dump, text, sizeof text);
    ck_assert_msg(!strstr(text, "VRAMGUARD_LISTEN"), "%s", text);
    ERR_LACKS("endpoint");
    /* bad values: 125 before the command runs */
    static const char *const bad[] = {"abc", "70000", ":9100", "unix:relative", "unix:", "",
                                      "127.0.0.1:", "-1", "0:9100", "0.0:9100", "gpu-host:9100"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        vg(NULL, "run", "--listen", bad[i], "--", g_py, g_worker, "--dump-env", dump, NULL);
        ck_assert_msg(r_code == 125, "--listen '%s': exit %d, want 125", bad[i], r_code);
        ERR_HAS("listen");
    }
    NO_TRACEBACK();
}
END_TEST

START_TEST(test_stale_endpoint_ignored)
{
    char dir[PATH_MAX], f[PATH_MAX];
    tmp_path(dir, "reports");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    fmt(f, sizeof f, "%s/vramguard.1.json.endpoint", dir);
    spit(f, "http://127.0.0.1:1111\n", 0644);
    /* announced while running (the worker sleeps) and in the summary: twice */
    vg(NULL, "run", "--listen", "0", "--report-dir", dir, "--", g_py, g_worker, "--sleep", "1.2", NULL);
    CODE_IS(0);
    ERR_LACKS("127.0.0.1:1111");
    ck_assert_int_eq(count_lines_with(r_err, " endpoint http://127.0.0.1:"), 2);
}
END_TEST

START_TEST(test_require_cuda)
{
    /* nothing reached the driver: without the option it passes ... */
    vg(NULL, "run", "--", g_py, g_worker, "--no-driver", NULL);
    CODE_IS(0);
    /* ... with it, it fails like a fail-on condition, saying why */
    vg(NULL, "run", "--require-cuda", "--", g_py, g_worker, "--no-driver", NULL);
    CODE_IS(3);
    ERR_HAS("no process of the command reached the CUDA driver");
    ERR_HAS("static");
    ERR_HAS("verdict: fail (require-cuda: no process reached the CUDA driver");
    vg(NULL, "run", "--require-cuda", "--quiet", "--", g_py, g_worker, "--no-driver", NULL);
    CODE_IS(3);
    ck_assert_int_eq(count_lines_with(r_err, "vramguard: "), 1);
    ERR_HAS("require-cuda");
    vg(NULL, "run", "--require-cuda", "--error-exitcode", "9", "--", g_py, g_worker,
       "--no-driver", NULL);
    CODE_IS(9);
    /* --fail-on none does not switch it off */
    vg(NULL, "run", "--require-cuda", "--fail-on", "none", "--", g_py, g_worker, "--no-driver", NULL);
    CODE_IS(3);
    /* a journal without a start line is not reaching the driver */
    vg(NULL, "run", "--require-cuda", "--", g_py, g_worker, "--empty-journal", NULL);
    CODE_IS(3);
    ERR_HAS("0 processes reached the CUDA driver");
    /* a non-zero exit of the command still wins */
    vg(NULL, "run", "--require-cuda", "--", g_py, g_worker, "--no-driver", "--exit", "4", NULL);
    CODE_IS(4);
    /* one process of several reaching the driver is enough */
    vg(NULL, "run", "--require-cuda", "--", g_py, g_worker, "--no-driver", "--child", "--peak 1024",
       NULL);
    CODE_IS(0);
    ERR_HAS("1 process reached the CUDA driver");
    ERR_HAS("verdict: pass");
    /* a process killed before its report counts (its journal has a start line) */
    vg(NULL, "run", "--require-cuda", "--", g_py, g_worker, "--no-driver", "--child",
       "--kill KILL --peak 1", NULL);
    CODE_IS(0);
    ERR_HAS("killed, no report");
    vg(NULL, "run", "--require-cuda", "--", g_py, g_worker, NULL);
    CODE_IS(0);
    NO_TRACEBACK();
}
END_TEST

START_TEST(test_report_markdown)
{
    char dir[PATH_MAX], empty[PATH_MAX];
    tmp_path(dir, "reports");
    tmp_path(empty, "empty");
    ck_assert_int_eq(mkdir(empty, 0755), 0);
    vg(NULL, "run", "--fail-on", "none", "--report-dir", dir, "--listen", "0", "--", g_py, g_worker,
       "--violations", "2", "--ooms", "1", "--pool-bytes", "8388608",
       "--child", "--leaks 1 --peak 2097152", NULL);
    CODE_IS(0);
    vg(NULL, "report", "--markdown", dir, NULL);
    CODE_IS(3);
    /* stdout: the Markdown; stderr: the verdict line only */
    ck_assert_int_eq(count_lines_with(r_err, "vramguard: "), 1);
    ERR_HAS("vramguard: verdict: fail");
    OUT_HAS("## vramguard: ");
    OUT_HAS("\n| pid | exe | status | peak VRAM | charged at exit | violations | OOM events | leaked |\n"
            "|---:|---|---|---:|---:|---:|---:|---:|\n");
    ck_assert_int_eq(count_lines_with(r_out, "| `python3"), 2);   /* one row per process */
    OUT_HAS("| fail (violation) | 3.0 MiB | 8.0 MiB | 2 | 1 | 0 (0 B) |");
    OUT_HAS("| pass | 2.0 MiB | 4.0 KiB | 0 | 0 | 1 (4.0 KiB) |");
    /* VRAM by purpose: device and pool kinds, host_pinned left out */
    OUT_HAS("### VRAM by purpose");
    OUT_HAS("| `weights` | 5.0 MiB | 0 B | 0 B | 0 B | 5.0 MiB | 0 B | 6 |");
    OUT_HAS("| `kv_cache` | 4.0 KiB | 0 B | 0 B | 0 B | 4.0 KiB | 4.0 KiB | 1 |");
    OUT_HAS("| `intermediate` | 0 B | 8.0 MiB | 0 B | 0 B | 8.0 MiB | 0 B | 2 |");
    OUT_HAS("| **total** |");
    OUT_LACKS("1.0 GiB");                      /* the host_pinned row */
    OUT_HAS("### Devices");
    OUT_HAS("| 8.0 MiB | 3.0 MiB | 8.0 MiB | 8.0 MiB | 0 B |");  /* charged, peak, pool, cache, graph */
    /* the violations, then the OOM events, then the verdict */
    OUT_HAS("### Violations (2)");
    OUT_HAS("| pid | api | size | kind | purpose | caller | action |");
    OUT_HAS("| `cuMemAllocManaged` | 2.0 MiB | `managed` | `unknown` | `/opt/fake/libworker.so+0x1a2b` | rejected |");
    OUT_HAS("### OOM events (1)");
    OUT_HAS("| `cuMemAlloc_v2` | 80.0 GiB | `weights` | 0 | `/opt/fake/libworker.so+0x2b3c` |");
    OUT_HAS("### Endpoints");
    OUT_HAS("**Verdict: fail** (violation: 2 violations; fail-on: violation; 2 processes)");
    const char *v = strstr(r_out, "### Violations"), *o = strstr(r_out, "### OOM events"),
               *t = strstr(r_out, "**Verdict");
    ck_assert_msg(v && o && t && v < o && o < t, "sections out of order:\n%s", r_out);

    vg(NULL, "report", "--markdown", "--fail-on", "none", dir, NULL);
    CODE_IS(0);
    OUT_HAS("**Verdict: pass** (fail-on: none; 2 processes)");
    vg(NULL, "report", "--markdown", "--fail-on", "leak,oom", dir, NULL);
    CODE_IS(3);
    OUT_HAS("**Verdict: fail** (oom: 1 OOM event; leak: 1 allocation, 4.0 KiB;");
    /* nothing to summarise: still Markdown, and 125 */
    vg(NULL, "report", "--markdown", empty, NULL);
    CODE_IS(125);
    OUT_HAS("no report");
    ERR_HAS("no vramguard report or journal found");
    NO_TRACEBACK();
}
END_TEST

START_TEST(test_report_markdown_many_and_killed)
{
    char dir[PATH_MAX];
    tmp_path(dir, "reports");
    vg(NULL, "run", "--report-dir", dir, "--", g_py, g_worker, "--violations", "25",
       "--child", "--violations 1 --kill KILL", NULL);
    CODE_IS(3);
    vg(NULL, "report", "--markdown", dir, NULL);
    CODE_IS(3);
    OUT_HAS("### Violations (26)");
    OUT_HAS("... and 6 more");
    ck_assert_int_eq(count_lines_with(r_out, "| `cuMemAllocManaged` |"), 20);
    OUT_HAS("| killed, no report, fail (violation) | - | - | 1 | 0 | unknown |");
    NO_TRACEBACK();
}
END_TEST

/* ---- issue 8: allowances (--allow RULES), suggest, run --suggest ------------- */

/* VRAMGUARD_ALLOW as the command got it, from a --dump-env file. */
static void dumped_allow(const char *dump, char *out, size_t cap)
{
    char text[16384];
    slurp(dump, text, sizeof text);
    const char *p = strstr(text, "\"VRAMGUARD_ALLOW\": \"");
    ck_assert_msg(p != NULL, "no VRAMGUARD_ALLOW in %s", text);
    p += strlen("\"VRAMGUARD_ALLOW\": \"");
    fmt(out, cap, "%.*s", (int)strcspn(p, "\""), p);
}

#define ALLOW_IS(dump, want)                                                                \
    do {                                                                                    \
        char got_[4096];                                                                    \
        dumped_allow((dump), got_, sizeof got_);                                            \
        ck_assert_msg(strcmp(got_, (want)) == 0, "VRAMGUARD_ALLOW=%s, want %s", got_, (want)); \
    } while (0)

START_TEST(test_allow_grammar)
{
    char dump[PATH_MAX];
    tmp_path(dump, "env.json");
    /* every form of the grammar, as the command gets it */
    static const char *const good[] = {
        "pinned", "none", "pinned:libcudnn*", "pinned:<=64K", "pinned:libcudnn*,pinned:<=64K",
        "pinned:libcudnn_graph.so.9:<=4", "managed:libfoo.so:<=1M", "pinned:total<=256M",
        "registered:>4KiB:<1MB", "pinned:>=4K:<=4K", "managed:<=2g", "registered",
        "pinned:libcudnn*:<=64K:total<=1G,managed:total<=16M,registered:*nccl*",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        vg(NULL, "run", "--allow", good[i], "--", g_py, g_worker, "--no-driver", "--dump-env", dump, NULL);
        ck_assert_msg(r_code == 0, "--allow '%s': exit %d\n%s", good[i], r_code, r_err);
        ERR_LACKS("warning");
        ALLOW_IS(dump, good[i]);
    }
    /* a malformed rule: 125 before the command runs, naming the rule */
    static const char *const bad[][2] = {
        {"", "invalid rule '' in ''"},
        {"PINNED", "invalid rule 'PINNED' in 'PINNED': unknown kind 'PINNED'"},
        {"host_pinned", "unknown kind 'host_pinned'"},
        {"pinned:", "invalid rule 'pinned:' in 'pinned:': empty condition"},
        {"pinned::libfoo.so", "empty condition"},
        {"pinned:<=", "size '' is not NUMBER[K|M|G|T]"},
        {"pinned:<=4Q", "invalid rule 'pinned:<=4Q' in 'pinned:<=4Q': size '4Q' is not NUMBER[K|M|G|T]"},
        {"pinned:<=4i", "size '4i'"},
        {"pinned:<=-1", "size '-1'"},
        {"pinned:=<4K", NULL}, /* a glob: valid (below) */
        {"pinned:<0", "<0 lets nothing through"},
        {"pinned:>=1M:<=4K", "its size bounds leave no size"},
        {"pinned:libcudnn*:libcublas*", "more than one module glob"},
        {"pinned:libcudnn[", "unclosed ["},
        {"pinned:<=99999999999999999999", "too large"},
        {"pinned:total<=", "invalid rule 'pinned:total<='"},
        {"pinned:total<=1X", "size '1X'"},
        {"managed:<=99999999999T", "too large"},
        {"pinned:libcudnn*,bogus", "invalid rule 'bogus' in 'pinned:libcudnn*,bogus': unknown kind 'bogus'"},
        {"pinned,", "invalid rule '' in 'pinned,'"},
        {"none,pinned", "invalid rule 'none' in 'none,pinned': 'none' stands alone"},
        {"pinned:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
         "the module glob is too long"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unlink(dump);
        vg(NULL, "run", "--allow", bad[i][0], "--", g_py, g_worker, "--dump-env", dump, NULL);
        if (bad[i][1] == NULL) {
            ck_assert_msg(r_code == 0, "--allow '%s': exit %d\n%s", bad[i][0], r_code, r_err);
            ALLOW_IS(dump, bad[i][0]);
            continue;
        }
        ck_assert_msg(r_code == 125, "--allow '%s': exit %d, want 125\n%s", bad[i][0], r_code, r_err);
        ERR_HAS("argument --allow: ");
        ERR_HAS(bad[i][1]);
        ERR_HAS("KIND pinned, registered or managed");   /* the accepted forms */
        ck_assert_msg(!path_exists(dump), "--allow '%s': the command ran", bad[i][0]);
    }
    NO_TRACEBACK();
}
END_TEST

START_TEST(test_allow_repeatable)
{
    char dump[PATH_MAX];
    tmp_path(dump, "env.json");
    /* the rules of every --allow, in order, each once */
    vg(NULL, "run", "--allow", "pinned:libcudnn*", "--allow", "pinned:<=64K", "--allow",
       " managed:libfoo.so:<=1M , pinned:<=64K", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    ALLOW_IS(dump, "pinned:libcudnn*,pinned:<=64K,managed:libfoo.so:<=1M");
    /* one bad rule in any of them: 125, naming it */
    vg(NULL, "run", "--allow", "pinned:libcudnn*", "--allow", "pinned:<=64Q", "--", g_py, g_worker,
       "--dump-env", dump, NULL);
    CODE_IS(125);
    ERR_HAS("invalid rule 'pinned:<=64Q'");
    /* none stands alone */
    vg(NULL, "run", "--allow", "none", "--allow", "none", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    ALLOW_IS(dump, "none");
    vg(NULL, "run", "--allow", "none", "--allow", "pinned", "--", g_py, g_worker, NULL);
    CODE_IS(125);
    ERR_HAS("'none' cannot be combined with rules (pinned)");
    /* at most 16 rules, as the shim takes */
    char many[1024] = "";
    for (int i = 0; i < 17; i++) {
        char one[32];
        fmt(one, sizeof one, "%spinned:lib%d.so", i ? "," : "", i);
        strcat(many, one);
    }
    vg(NULL, "run", "--allow", many, "--", g_py, g_worker, NULL);
    CODE_IS(125);
    ERR_HAS("more than 16 rules");
    /* flags win over the environment, which wins over the default */
    const char *env[] = {"VRAMGUARD_ALLOW=managed:libfoo.so", NULL};
    vg(env, "run", "--allow", "pinned:<=4K", "--allow", "registered", "--", g_py, g_worker,
       "--dump-env", dump, NULL);
    CODE_IS(0);
    ALLOW_IS(dump, "pinned:<=4K,registered");
    vg(env, "run", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    ALLOW_IS(dump, "managed:libfoo.so");
    vg(env, "run", "--allow", "none", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    ALLOW_IS(dump, "none");
    /* the help says so */
    vg(NULL, "run", "--help", NULL);
    CODE_IS(0);
    OUT_HAS("--allow RULES");
    OUT_HAS("May repeat");
    OUT_HAS("total<=256M");
    OUT_HAS("--suggest");
    NO_TRACEBACK();
}
END_TEST

START_TEST(test_allow_env_validated)
{
    char dump[PATH_MAX];
    tmp_path(dump, "env.json");
    /* a malformed rule is warned about, naming the variable and the rule, and
     * dropped; the others stay */
    const char *mixed[] = {"VRAMGUARD_ALLOW=pinned:libcudnn*,bogus,pinned:<=4Q,managed:<=1M", NULL};
    vg(mixed, "run", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    ERR_HAS("warning: ignoring rule 'bogus' of VRAMGUARD_ALLOW=pinned:libcudnn*,bogus,pinned:<=4Q,managed:<=1M: "
            "unknown kind 'bogus'");
    ERR_HAS("warning: ignoring rule 'pinned:<=4Q' of VRAMGUARD_ALLOW=");
    ERR_HAS("using pinned:libcudnn*,managed:<=1M");
    ck_assert_int_eq(count_lines_with(r_err, "warning: "), 2);
    ALLOW_IS(dump, "pinned:libcudnn*,managed:<=1M");
    /* nothing valid left: none, never looser */
    const char *allbad[] = {"VRAMGUARD_ALLOW=everything,pinned:", NULL};
    vg(allbad, "run", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    ck_assert_int_eq(count_lines_with(r_err, "warning: ignoring rule "), 2);
    ERR_HAS("using none");
    ALLOW_IS(dump, "none");
    /* valid: kept as written (spaces around rules trimmed), no warning */
    const char *good[] = {"VRAMGUARD_ALLOW= pinned:libcudnn* , registered:<=64K", NULL};
    vg(good, "run", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    ERR_LACKS("warning");
    ALLOW_IS(dump, "pinned:libcudnn*,registered:<=64K");
    const char *none[] = {"VRAMGUARD_ALLOW=none", NULL};
    vg(none, "run", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    ERR_LACKS("warning");
    ALLOW_IS(dump, "none");
    /* a flag replaces the environment: its bad rules are not even looked at */
    vg(mixed, "run", "--allow", "pinned", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    ERR_LACKS("warning");
    ALLOW_IS(dump, "pinned");
    NO_TRACEBACK();
}
END_TEST

/* Violations of given kinds, sizes and callers, from two processes. */
#define CUDNN "/usr/lib/x86_64-linux-gnu/libcudnn_graph.so.9+0x1a2b"
#define XLA "/opt/jax/xla_cuda_plugin.so+0x77f0"

START_TEST(test_suggest_groups)
{
    char dir[PATH_MAX];
    tmp_path(dir, "reports");
    vg(NULL, "run", "--policy", "warn", "--report-dir", dir, "--", g_py, g_worker,
       "--violation-detail", "host_pinned:4:" CUDNN,
       "--violation-detail", "host_pinned:2097152:" XLA,
       "--violation-detail", "host_pinned:3000:" XLA,
       "--violation-detail", "host_pinned:1572864:" XLA,
       "--violation-detail", "host_registered:5000:(main)+0x10",
       "--violation-detail", "managed:100:0x7f0012345678",
       "--violation-detail", "imported:4096:/opt/x/libipc.so+0x1",
       "--violation-detail", "host_pinned:65536:/opt/odd/lib[1]*.so+0x2",
       "--child", "--violation-detail host_pinned:8:" CUDNN
                  " --violation-detail host_pinned:4194304:/usr/bin/python3.11+0x99=pinned:python3:<=4M",
       NULL);
    CODE_IS(3);
    vg(NULL, "suggest", dir, NULL);
    CODE_IS(0);
    /* one line per kind and module, the largest size rounded up to a power of
     * two, most bytes first; the shim's allow_rule wins when the event has one */
    OUT_HAS("10 violations in 2 processes; 6 rules allow 9 of them (by kind and calling module, the largest size "
            "rounded up to a power of two):\n"
            "pinned:python3:<=4M               1 allocation, 4.0 MiB\n"
            "pinned:xla_cuda_plugin.so:<=2M    3 allocations, 3.5 MiB\n"
            "pinned:lib[[]1][*].so:<=64K       1 allocation, 64.0 KiB\n"
            "registered:<=8K                   1 allocation, 4.9 KiB\n"
            "managed:<=128                     1 allocation, 100 B\n"
            "pinned:libcudnn_graph.so.9:<=8    2 allocations, 12 B\n"
            "--allow 'pinned:python3:<=4M' --allow 'pinned:xla_cuda_plugin.so:<=2M' --allow 'pinned:lib[[]1][*].so:<=64K' "
            "--allow 'registered:<=8K' --allow 'managed:<=128' --allow 'pinned:libcudnn_graph.so.9:<=8'\n"
            "VRAMGUARD_ALLOW='pinned:python3:<=4M,pinned:xla_cuda_plugin.so:<=2M,pinned:lib[[]1][*].so:<=64K,"
            "registered:<=8K,managed:<=128,pinned:libcudnn_graph.so.9:<=8'\n");
    ERR_HAS("vramguard: note: 1 violation of kind imported: no allowance can let it through");
    ERR_LACKS("refused");          /* a warn run: nothing was refused */
    /* --quiet: the VRAMGUARD_ALLOW value alone */
    vg(NULL, "suggest", "--quiet", dir, NULL);
    CODE_IS(0);
    ck_assert_str_eq(r_out, "pinned:python3:<=4M,pinned:xla_cuda_plugin.so:<=2M,pinned:lib[[]1][*].so:<=64K,"
                            "registered:<=8K,managed:<=128,pinned:libcudnn_graph.so.9:<=8\n");
    ck_assert_str_eq(r_err, "");
    /* every suggested rule is valid for --allow */
    char allow[2048];
    fmt(allow, sizeof allow, "%.*s", (int)strcspn(r_out, "\n"), r_out);
    vg(NULL, "run", "--allow", allow, "--", g_py, g_worker, "--no-driver", NULL);
    CODE_IS(0);
    /* one report file, given directly, and the rule of a single violation */
    vg(NULL, "run", "--report-dir", dir, "--", g_py, g_worker, "--violation-detail",
       "host_pinned:4:" CUDNN, NULL);
    CODE_IS(3);
    char cmd[2 * PATH_MAX], list[PATH_MAX];
    fmt(cmd, sizeof cmd, "ls -t '%s'/vramguard.*.json | head -1 > '%s/list'", dir, g_tmp);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    ck_assert_int_eq(run_plain(argv), 0);
    fmt(cmd, sizeof cmd, "%s/list", g_tmp);
    slurp(cmd, list, sizeof list);
    *strchrnul(list, '\n') = '\0';
    vg(NULL, "suggest", list, NULL);
    CODE_IS(0);
    OUT_HAS("1 violation in 1 process; 1 rule allows it (");
    OUT_HAS("\npinned:libcudnn_graph.so.9:<=4    1 allocation, 4 B\n--allow 'pinned:libcudnn_graph.so.9:<=4'\n");
    /* the run was under reject: a note that the audit may be incomplete */
    ERR_HAS("note: 1 allocation was refused (policy reject)");
    ERR_HAS("--policy warn");
    NO_TRACEBACK();
}
END_TEST

START_TEST(test_suggest_nothing_and_errors)
{
    char dir[PATH_MAX], empty[PATH_MAX];
    tmp_path(dir, "reports");
    tmp_path(empty, "empty");
    ck_assert_int_eq(mkdir(empty, 0755), 0);
    /* no violation: says so, nothing to allow, 0 */
    vg(NULL, "run", "--report-dir", dir, "--", g_py, g_worker, "--ooms", "1", "--leaks", "1", NULL);
    CODE_IS(0);
    vg(NULL, "suggest", dir, NULL);
    CODE_IS(0);
    ck_assert_str_eq(r_out, "no violations: nothing to allow\n");
    OUT_LACKS("--allow");
    vg(NULL, "suggest", "-q", dir, NULL);
    CODE_IS(0);
    ck_assert_str_eq(r_out, "none\n");
    /* as 'report': 125 when there is nothing to read */
    vg(NULL, "suggest", empty, NULL);
    CODE_IS(125);
    ERR_HAS("error: no vramguard report or journal found");
    ck_assert_str_eq(r_out, "");
    vg(NULL, "suggest", NULL);
    CODE_IS(125);
    ERR_HAS("suggest: give at least one report directory or file");
    vg(NULL, "suggest", "--frobnicate", dir, NULL);
    CODE_IS(125);
    /* an unreadable report: 125, and the others still make the suggestion */
    vg(NULL, "run", "--fail-on", "none", "--report-dir", dir, "--", g_py, g_worker, "--malformed",
       "--child", "--violation-detail managed:3000:/opt/x/libfoo.so+0x1", NULL);
    CODE_IS(125);
    vg(NULL, "suggest", dir, NULL);
    CODE_IS(125);
    ERR_HAS("cannot read report");
    OUT_HAS("\nmanaged:libfoo.so:<=4K    1 allocation, 2.9 KiB\n");
    /* the help */
    vg(NULL, "suggest", "--help", NULL);
    CODE_IS(0);
    OUT_HAS("usage: vramguard suggest [--quiet] DIR|FILE...");
    OUT_HAS("rounded");
    OUT_HAS("exit status of 'suggest'");
    vg(NULL, "--help", NULL);
    CODE_IS(0);
    OUT_HAS("suggest");
    NO_TRACEBACK();
}
END_TEST

START_TEST(test_suggest_from_journals)
{
    char dir[PATH_MAX];
    tmp_path(dir, "reports");
    /* a process killed before its report: read from its journal */
    vg(NULL, "run", "--policy", "warn", "--report-dir", dir, "--", g_py, g_worker, "--no-driver", "--child",
       "--violation-detail host_pinned:4:" CUDNN " --violation-detail host_pinned:65536:" CUDNN " --kill KILL",
       NULL);
    CODE_IS(3);
    ERR_HAS("killed, no report");
    vg(NULL, "suggest", dir, NULL);
    CODE_IS(0);
    OUT_HAS("2 violations in 1 process; 1 rule allows them (");
    OUT_HAS("\npinned:libcudnn_graph.so.9:<=64K    2 allocations, 64.0 KiB\n");

    /* a report keeps the first 64 violations: the rest come from its journal */
    char many[PATH_MAX];
    tmp_path(many, "many");
    vg(NULL, "run", "--policy", "warn", "--report-dir", many, "--", g_py, g_worker, "--violations", "70", NULL);
    CODE_IS(3);
    vg(NULL, "suggest", many, NULL);
    CODE_IS(0);
    OUT_HAS("70 violations in 1 process; 1 rule allows them (");
    OUT_HAS("\nmanaged:libworker.so:<=128M    70 allocations, 2.4 GiB\n");   /* 1..70 MiB */
    ERR_LACKS("warning");
    /* without the journal: the 64 recorded, and a warning that says so */
    char cmd[2 * PATH_MAX];
    fmt(cmd, sizeof cmd, "rm '%s'/*.journal", many);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    ck_assert_int_eq(run_plain(argv), 0);
    vg(NULL, "suggest", many, NULL);
    CODE_IS(0);
    ERR_HAS("64 of its 70 violations are recorded");
    OUT_HAS("\nmanaged:libworker.so:<=64M    64 allocations, 2.0 GiB\n");
    NO_TRACEBACK();
}
END_TEST

/* The audited run's own allowance (its reports' config.allow) stays in the
 * ready lines, less the rules a suggested one widens. */
START_TEST(test_suggest_keeps_the_runs_allowance)
{
    char dir[PATH_MAX], clean[PATH_MAX];
    tmp_path(dir, "reports");
    tmp_path(clean, "clean");
    vg(NULL, "run", "--policy", "warn", "--allow", "pinned:libcudnn*:<=4K", "--allow", "managed:libfoo.so",
       "--allow", "pinned:xla_cuda_plugin.so:<=64K", "--report-dir", dir, "--", g_py, g_worker,
       "--violation-detail", "host_pinned:1000000:" XLA, NULL);
    CODE_IS(3);
    vg(NULL, "suggest", dir, NULL);
    CODE_IS(0);
    OUT_HAS("\npinned:xla_cuda_plugin.so:<=1M    1 allocation, 976.6 KiB\n"
            "with the allowance the run already had: pinned:libcudnn*:<=4K,managed:libfoo.so\n"
            "--allow 'pinned:libcudnn*:<=4K' --allow managed:libfoo.so --allow 'pinned:xla_cuda_plugin.so:<=1M'\n"
            "VRAMGUARD_ALLOW='pinned:libcudnn*:<=4K,managed:libfoo.so,pinned:xla_cuda_plugin.so:<=1M'\n");
    OUT_LACKS("<=64K");                 /* widened by the suggested rule */
    vg(NULL, "suggest", "-q", dir, NULL);
    CODE_IS(0);
    ck_assert_str_eq(r_out, "pinned:libcudnn*:<=4K,managed:libfoo.so,pinned:xla_cuda_plugin.so:<=1M\n");
    /* nothing more to allow: the run's own allowance is the answer */
    vg(NULL, "run", "--allow", "pinned:<=64K", "--report-dir", clean, "--", g_py, g_worker, NULL);
    CODE_IS(0);
    vg(NULL, "suggest", clean, NULL);
    CODE_IS(0);
    ck_assert_str_eq(r_out, "no violations: nothing to allow beyond the run's own allowance pinned:<=64K\n");
    vg(NULL, "suggest", "-q", clean, NULL);
    ck_assert_str_eq(r_out, "pinned:<=64K\n");
    /* more than the shim's 16 rules: a note */
    char many[PATH_MAX];
    tmp_path(many, "many");
    char *argv[MAXARGS];
    int n = 0;
    argv[n++] = g_cli;
    argv[n++] = "run";
    argv[n++] = "--policy";
    argv[n++] = "warn";
    argv[n++] = "--report-dir";
    argv[n++] = many;
    argv[n++] = "--";
    argv[n++] = g_py;
    argv[n++] = g_worker;
    static char details[17][96];
    for (int i = 0; i < 17; i++) {
        fmt(details[i], sizeof details[i], "host_pinned:4096:/opt/m/libm%d.so+0x1", i);
        argv[n++] = "--violation-detail";
        argv[n++] = details[i];
    }
    argv[n] = NULL;
    collect(spawn(NULL, argv));
    CODE_IS(3);
    vg(NULL, "suggest", many, NULL);
    CODE_IS(0);
    ERR_HAS("note: the allowance has 17 rules, more than the 16 the shim takes");
    NO_TRACEBACK();
}
END_TEST

START_TEST(test_run_suggest)
{
    /* after the verdict, on stderr like the rest of run's lines */
    vg(NULL, "run", "--policy", "warn", "--suggest", "--", g_py, g_worker,
       "--violation-detail", "host_pinned:4:" CUDNN, "--violation-detail", "host_pinned:1000000:" XLA, NULL);
    CODE_IS(3);                                     /* the verdict is unchanged */
    const char *verdict = strstr(r_err, "vramguard: verdict: fail");
    ck_assert_ptr_nonnull(verdict);
    const char *sug = strstr(r_err, "vramguard: 2 violations in 1 process; 2 rules allow them (");
    ck_assert_msg(sug && sug > verdict, "no suggestion after the verdict:\n%s", r_err);
    ERR_HAS("\nvramguard: pinned:xla_cuda_plugin.so:<=1M    1 allocation, 976.6 KiB\n"
            "vramguard: pinned:libcudnn_graph.so.9:<=4    1 allocation, 4 B\n"
            "vramguard: --allow 'pinned:xla_cuda_plugin.so:<=1M' --allow 'pinned:libcudnn_graph.so.9:<=4'\n"
            "vramguard: VRAMGUARD_ALLOW='pinned:xla_cuda_plugin.so:<=1M,pinned:libcudnn_graph.so.9:<=4'\n");
    ck_assert_str_eq(r_out, "");
    /* --quiet: the verdict and the --allow line */
    vg(NULL, "run", "--quiet", "--suggest", "--", g_py, g_worker, "--violation-detail", "host_pinned:4:" CUDNN, NULL);
    CODE_IS(3);
    ck_assert_int_eq(count_lines_with(r_err, "vramguard: "), 2);
    ERR_HAS("vramguard: verdict: fail");
    ERR_HAS("\nvramguard: suggested allowance: --allow 'pinned:libcudnn_graph.so.9:<=4'\n");
    /* nothing to allow */
    vg(NULL, "run", "--suggest", "--", g_py, g_worker, NULL);
    CODE_IS(0);
    ERR_HAS("vramguard: verdict: pass");
    ERR_HAS("vramguard: no violations: nothing to allow\n");
    vg(NULL, "run", "--quiet", "--suggest", "--", g_py, g_worker, NULL);
    CODE_IS(0);
    ERR_HAS("vramguard: suggested allowance: none (nothing to allow)\n");
    /* a killed child counts from its journal, the signal still wins */
    vg(NULL, "run", "--suggest", "--", g_py, g_worker, "--violation-detail", "managed:4096:/opt/x/libfoo.so+0x1",
       "--kill", "TERM", NULL);
    CODE_IS(128 + SIGTERM);
    ERR_HAS("\nvramguard: managed:libfoo.so:<=4K    1 allocation, 4.0 KiB\n");
    ERR_HAS("note: 1 allocation was refused (policy reject)");
    NO_TRACEBACK();
}
END_TEST

/* ---- journals: streamed, summaries, caps; unknown never passes (issue 9) ---- */

/* A 200 000-line journal (about 66 MB) of a killed process: report and
 * suggest read it line by line, their peak memory bounded (a CLI that
 * reads it whole takes over 500 MB), every event counted. */
START_TEST(test_journal_streamed_in_constant_memory)
{
    char dir[PATH_MAX], helper[PATH_MAX];
    tmp_path(dir, "big");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    fmt(helper, sizeof helper, "%s/tests/cli/big_journal.py", g_src);
    for (int k = 0; k < 2; k++) {
        prog(g_py, helper, dir, "200000", g_cli, k ? "suggest" : "report", NULL);
        CODE_IS(0);
        const char *rss = strstr(r_out, "maxrss_kib ");
        ck_assert_msg(rss != NULL, "%s", r_out);
        long kib = atol(rss + 11);
        ck_assert_msg(kib > 0 && kib < 48 * 1024, "%s took %ld KiB reading a %s journal\n%s",
                      k ? "suggest" : "report", kib, strstr(r_out, "journal_bytes"), r_out);
        if (k == 0) {
            OUT_HAS("status 3\n");
            OUT_HAS("verdict: fail (violation: 201000 violations;");
            OUT_HAS("killed, no report, fail (violation)");
        } else {
            OUT_HAS("status 0\n");
            OUT_HAS("201000 violations in 1 process; 1 rule allows them");
            OUT_HAS("--allow 'pinned:libworker.so:<=256K'");
        }
    }
}
END_TEST

/* Summaries of suppressed repeats count; a killed process's journal that
 * was suppressing without its exit line gives lower bounds, with it exact
 * counts; suggest covers the summaries. */
START_TEST(test_journal_suppressed_repeats_counted)
{
    char dir[PATH_MAX];
    tmp_path(dir, "killed");
    vg(NULL, "run", "--report-dir", dir, "--", g_py, g_worker, "--violations", "10", "--suppressed",
       "990", "--kill", "KILL", NULL);
    CODE_IS(128 + SIGKILL);
    ERR_HAS("violations at least 1000;");
    ERR_HAS("990 events counted from summaries of suppressed repeats");
    ERR_HAS("its counts are lower bounds");
    ERR_HAS("verdict: fail (violation: 1000 violations;");
    vg(NULL, "suggest", dir, NULL);
    CODE_IS(0);
    OUT_HAS("1000 violations in 1 process; 1 rule allows them");
    tmp_path(dir, "exited");
    vg(NULL, "run", "--report-dir", dir, "--", g_py, g_worker, "--violations", "10", "--suppressed",
       "990", "--exit-line", "--kill", "KILL", NULL);
    CODE_IS(128 + SIGKILL);
    ERR_HAS("violations 1000;");
    ERR_LACKS("lower bounds");
    /* with its report, the report's counts */
    vg(NULL, "run", "--", g_py, g_worker, "--violations", "10", "--suppressed", "990", NULL);
    CODE_IS(3);
    ERR_HAS("violations 1000;");
}
END_TEST

/* What was not measured never passes a fail-on condition: the leaks of a
 * killed process (no report), the OOMs of a capped journal that recorded
 * none, a report whose leak figures are "unknown" (the shim ran out of host
 * memory). What was measured still passes. */
START_TEST(test_unknown_never_passes)
{
    char dir[PATH_MAX];
    tmp_path(dir, "killed");
    vg(NULL, "run", "--fail-on", "none", "--report-dir", dir, "--", g_py, g_worker, "--kill", "KILL", NULL);
    CODE_IS(128 + SIGKILL);
    vg(NULL, "report", "--fail-on", "leak", dir, NULL);
    CODE_IS(3);
    ERR_HAS("killed, no report (leak unknown)");
    ERR_HAS("verdict: fail (leak: unknown for 1 process;");
    vg(NULL, "report", "--fail-on", "violation,oom", dir, NULL);
    CODE_IS(0);

    tmp_path(dir, "capped");
    vg(NULL, "run", "--fail-on", "none", "--report-dir", dir, "--", g_py, g_worker, "--violations", "2",
       "--capped", "--kill", "KILL", NULL);
    vg(NULL, "report", "--fail-on", "oom", dir, NULL);
    CODE_IS(3);
    ERR_HAS("unknown: oom: its journal reached its cap before the end");
    ERR_HAS("verdict: fail (oom: unknown for 1 process;");
    vg(NULL, "report", "--fail-on", "violation", dir, NULL);
    CODE_IS(3);
    ERR_HAS("violations at least 2;");

    vg(NULL, "run", "--fail-on", "leak", "--", g_py, g_worker, "--leaks", "2", "--untracked", "5", NULL);
    CODE_IS(3);
    ERR_HAS("leaked allocations unknown (the shim could not track 5 allocations (out of host memory))");
    ERR_HAS("verdict: fail (leak: unknown for 1 process;");
    vg(NULL, "run", "--fail-on", "violation", "--", g_py, g_worker, "--untracked", "5", NULL);
    CODE_IS(0);
    ERR_HAS("verdict: pass");
    /* the Markdown summary says the same */
    tmp_path(dir, "untracked");
    vg(NULL, "run", "--fail-on", "none", "--report-dir", dir, "--", g_py, g_worker, "--untracked", "1", NULL);
    vg(NULL, "report", "--markdown", "--fail-on", "leak", dir, NULL);
    CODE_IS(3);
    OUT_HAS("\u274c fail");
    OUT_HAS("leak: unknown for 1 process");
    /* and such a report is valid */
    char cmd[4 * PATH_MAX];
    fmt(cmd, sizeof cmd, "exec '%s' '%s' '%s'/vramguard.*.json", g_py, g_validate, dir);
    prog("/bin/sh", "-c", cmd, NULL);
    CODE_IS(0);
}
END_TEST

/* `vramguard report` without --markdown: the per-purpose table of the
 * Markdown summary as text (the same rows and figures). */
START_TEST(test_report_text_purposes)
{
    char dir[PATH_MAX];
    tmp_path(dir, "reports");
    vg(NULL, "run", "--fail-on", "none", "--report-dir", dir, "--", g_py, g_worker,
       "--pool-bytes", "8388608", "--child", "--leaks 1 --peak 2097152", NULL);
    CODE_IS(0);
    ERR_LACKS("VRAM by purpose");               /* run: the summary stays short */
    vg(NULL, "report", dir, NULL);
    CODE_IS(0);
    ERR_HAS("vramguard: VRAM by purpose (each row's own peak, summed over processes and devices):\n"
            "vramguard:   purpose       device (peak)  pool (peak)  vmm (peak)  array (peak)      peak  live at exit  allocations\n"
            "vramguard:   weights             5.0 MiB          0 B         0 B           0 B   5.0 MiB           0 B            6\n"
            "vramguard:   kv_cache            4.0 KiB          0 B         0 B           0 B   4.0 KiB       4.0 KiB            1\n"
            "vramguard:   intermediate            0 B      8.0 MiB         0 B           0 B   8.0 MiB           0 B            2\n"
            "vramguard:   total               5.0 MiB      8.0 MiB         0 B           0 B  13.0 MiB       4.0 KiB            9\n");
    /* (the 1 GiB host_pinned row is not VRAM: in no column, not in the total) */
    vg(NULL, "report", "--quiet", dir, NULL);
    CODE_IS(0);
    ERR_LACKS("VRAM by purpose");
    NO_TRACEBACK();
}
END_TEST

/* --fail-on budget (as the shim's VRAMGUARD_FAIL_ON): allocations refused
 * by a VRAMGUARD_LIMIT budget, counted apart from the device's OOMs, from
 * reports and from journals alike. */
START_TEST(test_fail_on_budget)
{
    char dir[PATH_MAX], cmd[4 * PATH_MAX];
    tmp_path(dir, "reports");
    vg(NULL, "run", "--fail-on", "budget", "--report-dir", dir, "--", g_py, g_worker,
       "--budget-ooms", "2", "--ooms", "1", "--child", "--budget-ooms 1 --kill KILL", NULL);
    CODE_IS(3);
    ERR_HAS("verdict: fail (budget: 3 budget OOMs; fail-on: budget; 2 processes)");
    ERR_HAS("fail (budget); peak tracked 3.0 MiB; violations 0; OOM events 1; budget OOMs 2;");
    ERR_HAS("killed, no report, fail (budget); peak tracked unknown; violations 0; OOM events 0; budget OOMs 1;");
    ERR_HAS("  budget oom: cuMemAlloc_v2 size 2.0 GiB (2147483648 B), purpose kv_cache, device 0, "
            "caller /opt/fake/libworker.so+0x4d5e, result 2, budget kv_cache (1.0 GiB)");
    ck_assert_int_eq(count_lines_with(r_err, "  oom: "), 1);        /* the device's OOM only */
    /* oom does not count budget OOMs (in the journal of the killed process neither) */
    vg(NULL, "report", "--fail-on", "oom", dir, NULL);
    CODE_IS(3);
    ERR_HAS("verdict: fail (oom: 1 OOM event; fail-on: oom; 2 processes)");
    const char *env[] = {"VRAMGUARD_FAIL_ON=violation,budget", NULL};
    vg(env, "report", dir, NULL);
    CODE_IS(3);
    ERR_HAS("(budget: 3 budget OOMs; fail-on: violation,budget;");
    vg(NULL, "report", "--markdown", "--fail-on", "budget", dir, NULL);
    CODE_IS(3);
    OUT_HAS("| violations | OOM events | budget OOMs | leaked |");
    OUT_HAS("### Budget OOMs (3)");
    OUT_HAS("| `cuMemAlloc_v2` | 2.0 GiB | `kv_cache` | 0 | `/opt/fake/libworker.so+0x4d5e` | `kv_cache` |");
    /* without budget OOMs and not asked for: the lines stay as they were */
    vg(NULL, "run", "--", g_py, g_worker, NULL);
    CODE_IS(0);
    ERR_LACKS("budget");
    /* the fake worker's reports with a budget section match the schema */
    fmt(cmd, sizeof cmd, "exec '%s' '%s' '%s'/*", g_py, g_validate, dir);
    prog("/bin/sh", "-c", cmd, NULL);
    CODE_IS(0);
    NO_TRACEBACK();
}
END_TEST

/* The shim's VRAMGUARD_LOG_LEVEL under `vramguard run`: warn by default
 * (the summary has the line per process), quiet with --quiet (unless the
 * log goes to a file), the environment's when set (an invalid one warned
 * about, then warn). */
static void level_is(const char *dump, const char *want)
{
    char text[8192], key[96];
    slurp(dump, text, sizeof text);
    fmt(key, sizeof key, "\"VRAMGUARD_LOG_LEVEL\": \"%s\"", want);
    ck_assert_msg(strstr(text, key) != NULL, "env dump lacks %s: %s", key, text);
}

START_TEST(test_shim_log_level)
{
    char dump[PATH_MAX], log[PATH_MAX];
    tmp_path(dump, "env.json");
    tmp_path(log, "shim.log");
    vg(NULL, "run", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    level_is(dump, "warn");
    vg(NULL, "run", "--quiet", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    level_is(dump, "quiet");
    vg(NULL, "run", "--quiet", "--log", log, "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    level_is(dump, "warn");
    const char *debug[] = {"VRAMGUARD_LOG_LEVEL=debug", NULL};
    vg(debug, "run", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    level_is(dump, "debug");
    vg(debug, "run", "--quiet", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    level_is(dump, "quiet");
    const char *bad[] = {"VRAMGUARD_LOG_LEVEL=loud", NULL};
    vg(bad, "run", "--", g_py, g_worker, "--dump-env", dump, NULL);
    CODE_IS(0);
    level_is(dump, "warn");
    ERR_HAS("warning: ignoring VRAMGUARD_LOG_LEVEL=loud (accepted: quiet, warn, info, debug); using the default "
            "under 'vramguard run': warn\n");
    /* --quiet: the verdict only, the warning about a bad setting included */
    vg(bad, "run", "--quiet", "--", g_py, g_worker, NULL);
    CODE_IS(0);
    ck_assert_str_eq(r_err, "vramguard: verdict: pass (fail-on: violation; 1 process)\n");
    NO_TRACEBACK();
}
END_TEST

/* A saved /vram of a running process is no exit report: `report` says so
 * (an unreadable report: 125) rather than "missing live_at_exit". */
START_TEST(test_running_snapshot_is_no_report)
{
    char dir[PATH_MAX], cmd[4 * PATH_MAX];
    tmp_path(dir, "reports");
    vg(NULL, "run", "--report-dir", dir, "--", g_py, g_worker, "--leaks", "1", NULL);
    CODE_IS(0);
    fmt(cmd, sizeof cmd,
        "import glob, json\n"
        "f = glob.glob('%s/vramguard.*.json')[0]\n"
        "d = json.load(open(f))\n"
        "p = d['process']; p['state'] = 'running'; p['at'] = p.pop('ended_at')\n"
        "d['live'] = d.pop('live_at_exit'); d['summary'].pop('leaked_allocations'); d['summary'].pop('leaked_bytes')\n"
        "d['summary']['status'] = 'running'\n"
        "json.dump(d, open(f, 'w'))\n", dir);
    prog(g_py, "-c", cmd, NULL);
    CODE_IS(0);
    fmt(cmd, sizeof cmd, "exec '%s' '%s' '%s'/vramguard.*.json", g_py, g_validate, dir);
    prog("/bin/sh", "-c", cmd, NULL);
    CODE_IS(0);                                 /* the schema's running form */
    vg(NULL, "report", dir, NULL);
    CODE_IS(125);
    ERR_HAS("a running process's /vram (process.state running), not an exit report");
    NO_TRACEBACK();
}
END_TEST

Suite *make_cli_suite(void)
{
    Suite *s = suite_create("cli");
    struct { const char *name; const TTest *tests[16]; } groups[] = {
        {"cli_basics", {test_help_and_version, test_clean_run_passes, test_no_driver_passes,
                        test_violation_fails_with_3, test_error_exitcode, test_child_status_wins,
                        test_quiet, NULL}},
        {"cli_errors", {test_missing_library, test_library_not_preloadable,
                        test_library_found_next_to_script, test_bad_options,
                        test_not_executable_126, test_missing_command_127,
                        test_report_dir_unusable, test_malformed_report, NULL}},
        {"cli_signals", {test_command_killed_by_signal, test_sigterm_forwarded, NULL}},
        {"cli_aggregation", {test_journal_only_counted, test_two_processes_aggregated,
                             test_env_for_command, test_env_settings_kept, test_limit, test_report_fail_on_from_env, test_temporary_dir_removed, test_fail_on_oom,
                             test_fail_on_leak, test_report_subcommand, test_stale_files_ignored,
                             NULL}},
        {"cli_schema", {test_reports_match_schema, test_validator_rejects_bad_reports, NULL}},
        {"cli_journal", {test_journal_streamed_in_constant_memory, test_journal_suppressed_repeats_counted,
                         test_unknown_never_passes, NULL}},
        {"cli_ci_guard", {test_listen_help, test_listen_env_and_endpoints, test_listen_forms,
                          test_stale_endpoint_ignored, test_require_cuda, test_report_markdown,
                          test_report_markdown_many_and_killed, NULL}},
        {"cli_allow_suggest", {test_allow_grammar, test_allow_repeatable, test_allow_env_validated,
                               test_suggest_groups, test_suggest_nothing_and_errors,
                               test_suggest_from_journals, test_suggest_keeps_the_runs_allowance,
                               test_run_suggest, NULL}},
        {"cli_honest", {test_report_text_purposes, test_fail_on_budget, test_shim_log_level,
                        test_running_snapshot_is_no_report, NULL}},
    };
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        TCase *tc = tcase_create(groups[g].name);
        tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
        tcase_add_checked_fixture(tc, test_setup, test_teardown);
        tcase_set_timeout(tc, 60);
        for (const TTest *const *t = groups[g].tests; *t; t++)
            tcase_add_test(tc, *t);
        suite_add_tcase(s, tc);
    }
    return s;
}
