/* The one Check runner: every suite of the project. */
#include "check_support.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

Suite *make_table_suite(void);
Suite *make_purposes_suite(void);
Suite *make_policy_suite(void);
Suite *make_config_suite(void);
Suite *make_report_suite(void);
Suite *make_rules_suite(void);
Suite *make_preload_suite(void);
Suite *make_cli_suite(void);
Suite *make_python_suite(void);
Suite *make_install_suite(void);
Suite *make_endpoint_suite(void);
Suite *make_layers_suite(void);
Suite *make_census_suite(void);
Suite *make_allow_suite(void);
Suite *make_budget_suite(void);
Suite *make_outputs_suite(void);
Suite *make_repeats_suite(void);
Suite *make_accounting_suite(void);
Suite *make_pools_suite(void);
Suite *make_contexts_suite(void);
Suite *make_who_suite(void);
Suite *make_trace_suite(void);
Suite *make_hardening_suite(void);

const char *vg_test_build(void)
{
    const char *b = getenv("VG_BUILD");
    return b && *b ? b : "build";
}

const char *vg_test_root(void)
{
    const char *r = getenv("VG_ROOT");
    return r && *r ? r : ".";
}

const char *vg_test_tmpdir(void)
{
    static char dir[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/vramguard-test.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        abort();
    }
    return dir;
}

pid_t vg_test_spawn(const char *const *argv, const char *const *env, int preload, const char *out_path)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* nothing outlives a failed test */
        char buf[4096];
        if (preload) {
            snprintf(buf, sizeof(buf), "%s/libvramguard.so", vg_test_build());
            setenv("LD_PRELOAD", buf, 1);
            snprintf(buf, sizeof(buf), "%s/fakecuda:%s/tests", vg_test_build(), vg_test_build());
            setenv("LD_LIBRARY_PATH", buf, 1);
        }
        for (const char *const *e = env; e && *e; e++)
            putenv((char *)*e);
        if (out_path) {
            int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
                _exit(126);
        }
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

int vg_test_run(const char *const *argv, const char *const *env, int preload, const char *out_path)
{
    pid_t pid = vg_test_spawn(argv, env, preload, out_path);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void vg_test_strip_pids(char *text)
{
    char *out = text;
    for (const char *p = text; *p;) {
        if (strncmp(p, "vramguard[", 10) == 0) {
            const char *q = p + 10;
            while (*q >= '0' && *q <= '9')
                q++;
            if (q > p + 10 && q[0] == ']' && q[1] == ':') {
                memcpy(out, "vramguard:", 10);
                out += 10;
                p = q + 2;
                continue;
            }
        }
        *out++ = *p++;
    }
    *out = '\0';
}

char *vg_test_read(const char *path)
{
    char *s = vg_test_read_raw(path);
    vg_test_strip_pids(s);
    return s;
}

char *vg_test_read_raw(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

int vg_test_count(const char *hay, const char *needle)
{
    int n = 0;
    size_t len = strlen(needle);
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += len)
        n++;
    return n;
}

int vg_test_sanitized(void)
{
    const char *s = getenv("VG_SANITIZE");
    return s && strcmp(s, "1") == 0;
}

/* Every suite, in the order they run; `name` is the one its suite_create
 * gives (CK_RUN_SUITE=name runs that suite alone). */
static const struct {
    const char *name;
    Suite *(*make)(void);
} suites[] = {
    {"table", make_table_suite},       {"purposes", make_purposes_suite}, {"policy", make_policy_suite},
    {"allow", make_allow_suite},       {"budget", make_budget_suite},     {"config", make_config_suite},
    {"report", make_report_suite},     {"repeats", make_repeats_suite},   {"rules", make_rules_suite},
    {"preload", make_preload_suite},   {"outputs", make_outputs_suite},   {"accounting", make_accounting_suite},
    {"pools", make_pools_suite},       {"contexts", make_contexts_suite}, {"cli", make_cli_suite},
    {"python", make_python_suite},     {"install", make_install_suite},   {"endpoint", make_endpoint_suite},
    {"census", make_census_suite},     {"layers", make_layers_suite},     {"who", make_who_suite},
    {"trace", make_trace_suite},
    {"hardening", make_hardening_suite},
};

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* One runner per suite: each says its result and its time as it ends
 * ("== NAME: N checks, F failed, S s"), so a long `make check` shows its
 * progress; the last line sums them up. */
int main(void)
{
    const char *only = getenv("CK_RUN_SUITE");
    int checks = 0, failed = 0, ran = 0;
    struct timespec t_all;
    clock_gettime(CLOCK_MONOTONIC, &t_all);
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
        if (only && *only && strcmp(only, suites[i].name) != 0)
            continue;
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        SRunner *r = srunner_create(suites[i].make());
        srunner_run_all(r, CK_NORMAL);
        int n = srunner_ntests_run(r), f = srunner_ntests_failed(r);
        srunner_free(r);
        printf("== %s: %d checks, %d failed, %.1f s\n", suites[i].name, n, f, seconds_since(&t0));
        fflush(stdout);
        checks += n;
        failed += f;
        ran++;
    }
    printf("== all: %d suites, %d checks, %d failed, %.1f s\n", ran, checks, failed, seconds_since(&t_all));
    if (ran == 0)
        fprintf(stderr, "no suite named \"%s\" (CK_RUN_SUITE)\n", only);
    return failed == 0 && ran > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
