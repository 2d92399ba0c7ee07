/* Install suite: `make install PREFIX=/usr DESTDIR=<tmp>` into a temporary
 * root, then what a user of the installed tree does with it: every file with
 * a sane mode, pkg-config, a C program compiled against the installed header,
 * the Python module, the man page, and the installed CLI running the demo
 * worker on the fake driver (exit 3: its managed-memory violation). Then
 * `make uninstall` with the same variables leaves no file behind.
 *
 * Needs: the build done (make check builds the shim, the fake CUDA and
 * $(BUILD)/demo/demo_worker first), make, cc, pkg-config; man or groff for
 * the man page (that check is skipped without both).
 * Environment: VG_ROOT (repository root), VG_BUILD (absolute build dir).
 *
 * Entry point: Suite *make_install_suite(void). */
#include "../check_support.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

Suite *make_install_suite(void);

#define CMD_MAX 8192

static char g_dest[PATH_MAX];  /* DESTDIR of this test */
static char g_usr[PATH_MAX];   /* <DESTDIR>/usr */
static char g_work[PATH_MAX];  /* scratch: outputs, sources, reports */
static char *g_out;            /* output of the last sh() */

__attribute__((format(printf, 3, 4)))
static void fmt(char *buf, size_t cap, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(buf, cap, format, ap);
    va_end(ap);
    ck_assert_msg(n >= 0 && (size_t)n < cap, "too long: %.80s...", buf);
}

/* Run a shell command (cwd: the repository root) with stdout+stderr captured
 * in g_out; make's own variables from an enclosing `make check` are dropped so
 * that the nested make starts clean. Returns the exit status. */
__attribute__((format(printf, 1, 2)))
static int sh(const char *format, ...)
{
    char body[CMD_MAX], cmd[CMD_MAX + 256], out_path[PATH_MAX];
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(body, sizeof body, format, ap);
    va_end(ap);
    ck_assert_msg(n >= 0 && (size_t)n < sizeof body, "command too long");
    fmt(cmd, sizeof cmd, "unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES SANITIZE BUILD; cd '%s' && %s",
        vg_test_root(), body);
    fmt(out_path, sizeof out_path, "%s/sh.out", g_work);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    int status = vg_test_run(argv, NULL, 0, out_path);
    free(g_out);
    g_out = vg_test_read(out_path);
    return status;
}

#define SH_OK(...)                                                                                 \
    do {                                                                                           \
        int st_ = sh(__VA_ARGS__);                                                                 \
        ck_assert_msg(st_ == 0, "exit %d from: %s\n--- output ---\n%s", st_, #__VA_ARGS__, g_out); \
    } while (0)
#define OUT_HAS(s) ck_assert_msg(strstr(g_out, (s)) != NULL, "output lacks \"%s\":\n%s", (s), g_out)

static void make_install(void)
{
    SH_OK("make install PREFIX=/usr DESTDIR='%s' 2>&1", g_dest);
}

static void make_uninstall_leaves_nothing(void)
{
    SH_OK("make uninstall PREFIX=/usr DESTDIR='%s' 2>&1", g_dest);
    /* no file, link or socket is left anywhere under DESTDIR */
    SH_OK("find '%s' ! -type d", g_dest);
    ck_assert_msg(g_out[0] == '\0', "make uninstall left:\n%s", g_out);
    char dir[PATH_MAX];
    fmt(dir, sizeof dir, "%s/lib/vramguard", g_usr);
    ck_assert_msg(access(dir, F_OK) != 0, "make uninstall left the directory %s", dir);
}

static void setup(void)
{
    fmt(g_dest, sizeof g_dest, "%s", vg_test_tmpdir());
    fmt(g_work, sizeof g_work, "%s", vg_test_tmpdir());
    fmt(g_usr, sizeof g_usr, "%s/usr", g_dest);
    g_out = NULL;
}

static void teardown(void)
{
    char cmd[2 * PATH_MAX + 32];
    fmt(cmd, sizeof cmd, "rm -rf '%s' '%s'", g_dest, g_work);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    vg_test_run(argv, NULL, 0, NULL);
    free(g_out);
    g_out = NULL;
}

static void expect_file(const char *rel, mode_t mode)
{
    char path[PATH_MAX];
    struct stat st;
    fmt(path, sizeof path, "%s/%s", g_usr, rel);
    ck_assert_msg(lstat(path, &st) == 0, "%s is missing: %s", path, strerror(errno));
    ck_assert_msg(S_ISREG(st.st_mode), "%s is not a regular file", path);
    ck_assert_msg((st.st_mode & 07777) == mode, "%s has mode %04o, want %04o", path,
                  (unsigned)(st.st_mode & 07777), (unsigned)mode);
    ck_assert_msg(st.st_size > 0, "%s is empty", path);
}

/* ---- tests ----------------------------------------------------------------- */

START_TEST(install_files_and_uninstall)
{
    make_install();
    expect_file("bin/vramguard", 0755);
    expect_file("lib/vramguard/libvramguard.so", 0644);
    expect_file("include/vramguard.h", 0644);
    expect_file("lib/pkgconfig/vramguard.pc", 0644);
    expect_file("share/man/man1/vramguard.1", 0644);
    expect_file("lib/python3/dist-packages/vramguard.py", 0644);
    expect_file("lib/vramguard/vramguard_cli/__init__.py", 0644);
    expect_file("lib/vramguard/vramguard_cli/cli.py", 0644);
    expect_file("share/doc/vramguard/entry-points.md", 0644); /* named by the log and the man page */
    /* exactly those seven files and the CLI's package (every module, the same bytes) */
    SH_OK("ls scripts/vramguard_cli/*.py | wc -l");
    int modules = atoi(g_out);
    ck_assert_msg(modules > 2, "scripts/vramguard_cli has %d modules", modules);
    SH_OK("find '%s' -type f | wc -l", g_dest);
    ck_assert_msg(atoi(g_out) == 7 + modules, "%d files installed, want %d", atoi(g_out), 7 + modules);
    SH_OK("for f in scripts/vramguard_cli/*.py; do cmp \"$f\" '%s/lib/vramguard/vramguard_cli/'\"${f##*/}\" || exit 1; done",
          g_usr);
    /* the installed copies are the sources' (CLI: VERSION and LIBDIR filled in) */
    SH_OK("cmp purpose_tags/vramguard.h '%s/include/vramguard.h' && "
          "cmp '%s/libvramguard.so' '%s/lib/vramguard/libvramguard.so' && "
          "cmp docs/vramguard.1 '%s/share/man/man1/vramguard.1' && "
          "cmp purpose_tags/python/vramguard.py '%s/lib/python3/dist-packages/vramguard.py' && "
          "cmp docs/entry-points.md '%s/share/doc/vramguard/entry-points.md'",
          g_usr, vg_test_build(), g_usr, g_usr, g_usr, g_usr);
    SH_OK("grep '^INSTALLED_PACKAGE = \"/usr/lib/vramguard\"' '%s/bin/vramguard'", g_usr);
    SH_OK("grep '^INSTALLED_LIBRARY = \"/usr/lib/vramguard/libvramguard.so\"' '%s/bin/vramguard' && "
          "grep -x \"VERSION = \\\"$(sed -n 's/^#define VG_VERSION \"\\(.*\\)\"/\\1/p' shim/model/model.h)\\\"\" "
          "'%s/bin/vramguard'", g_usr, g_usr);
    /* the .pc file: prefix, paths relative to it, Cflags, Libs, shimlib */
    char pc[PATH_MAX];
    fmt(pc, sizeof pc, "%s/lib/pkgconfig/vramguard.pc", g_usr);
    char *text = vg_test_read(pc);
    ck_assert_msg(strstr(text, "prefix=/usr\n"), "%s", text);
    ck_assert_msg(strstr(text, "includedir=${prefix}/include\n"), "%s", text);
    ck_assert_msg(strstr(text, "libdir=${prefix}/lib\n"), "%s", text);
    ck_assert_msg(strstr(text, "shimlib=${libdir}/vramguard/libvramguard.so\n"), "%s", text);
    ck_assert_msg(strstr(text, "Cflags: -I${includedir}\n"), "%s", text);
    ck_assert_msg(strstr(text, "Libs: -ldl\n"), "%s", text);
    ck_assert_msg(!strstr(text, "@"), "unsubstituted field in %s:\n%s", pc, text);
    free(text);
    /* installing again over it is fine, and changes nothing */
    make_install();
    SH_OK("find '%s' -type f | wc -l", g_dest);
    ck_assert_int_eq(atoi(g_out), 7 + modules);
    make_uninstall_leaves_nothing();
    /* uninstalling what is not there is not an error */
    SH_OK("make uninstall PREFIX=/usr DESTDIR='%s' 2>&1", g_dest);
}
END_TEST

START_TEST(install_pkgconfig_header_python)
{
    make_install();
    char pcdir[PATH_MAX];
    fmt(pcdir, sizeof pcdir, "%s/lib/pkgconfig", g_usr);
    /* relocated to the staged tree with --define-prefix */
    SH_OK("pkg-config --define-prefix --with-path='%s' --cflags vramguard", pcdir);
    char want[PATH_MAX + 16];
    fmt(want, sizeof want, "-I%s/include", g_usr);
    OUT_HAS(want);
    SH_OK("pkg-config --define-prefix --with-path='%s' --libs vramguard", pcdir);
    OUT_HAS("-ldl");
    SH_OK("pkg-config --define-prefix --with-path='%s' --variable=shimlib vramguard", pcdir);
    fmt(want, sizeof want, "%s/lib/vramguard/libvramguard.so\n", g_usr);
    ck_assert_msg(strcmp(g_out, want) == 0, "shimlib %s, want %s", g_out, want);
    SH_OK("pkg-config --with-path='%s' --modversion vramguard", pcdir);
    ck_assert_msg(strchr(g_out, '.') != NULL, "modversion: %s", g_out);
    /* without relocation: the final paths */
    SH_OK("pkg-config --dont-define-prefix --with-path='%s' --variable=shimlib vramguard", pcdir);
    ck_assert_str_eq(g_out, "/usr/lib/vramguard/libvramguard.so\n");

    /* a C program against the installed header, flags from pkg-config only */
    char src[PATH_MAX], bin[PATH_MAX];
    fmt(src, sizeof src, "%s/tag.c", g_work);
    fmt(bin, sizeof bin, "%s/tag", g_work);
    FILE *f = fopen(src, "w");
    ck_assert_ptr_nonnull(f);
    fputs("#include <vramguard.h>\n"
          "#include <stdio.h>\n"
          "int main(void)\n"
          "{\n"
          "    struct vramguard_usage u = { .size = sizeof u };\n"
          "    int in_block = 0;\n"
          "    VRAMGUARD_PURPOSE_LABEL(VRAMGUARD_WEIGHTS, \"layer.0\") { in_block = 1; }\n"
          "    vramguard_purpose_push(VRAMGUARD_KV_CACHE, \"kv\");\n"
          "    vramguard_purpose_pop();\n"
          "    int got = vramguard_usage(&u);\n"
          "    printf(\"loaded=%d block=%d usage=%d vram=%llu\\n\", vramguard_loaded(), in_block, got,\n"
          "           (unsigned long long)u.vram_bytes);\n"
          "    return 0;\n"
          "}\n", f);
    fclose(f);
    SH_OK("${CC:-cc} -std=c11 -Wall -Wextra -Werror -o '%s' '%s' "
          "$(pkg-config --define-prefix --with-path='%s' --cflags --libs vramguard) 2>&1",
          bin, src, pcdir);
    SH_OK("'%s'", bin);                                   /* no shim: every call a no-op */
    OUT_HAS("loaded=0 block=1 usage=-1");
    SH_OK("LD_PRELOAD='%s/lib/vramguard/libvramguard.so' '%s'", g_usr, bin);
    OUT_HAS("loaded=1 block=1 usage=0 vram=0");
    /* the Python module, from the installed directory (bytecode allowed: the
     * __pycache__ it leaves must go with make uninstall) */
    SH_OK("PYTHONPATH='%s/lib/python3/dist-packages' /usr/bin/python3 -c "
          "'import vramguard, sys; print(vramguard.__file__); print(\"loaded\", vramguard.loaded()); "
          "print(\"usage\", vramguard.usage())' 2>&1", g_usr);
    fmt(want, sizeof want, "%s/lib/python3/dist-packages/vramguard.py\n", g_usr);
    OUT_HAS(want);
    OUT_HAS("loaded False");
    OUT_HAS("usage None");
    make_uninstall_leaves_nothing();
}
END_TEST

START_TEST(installed_cli_runs_the_demo)
{
    char demo[PATH_MAX], reports[PATH_MAX], cli[PATH_MAX];
    fmt(demo, sizeof demo, "%s/demo/demo_worker", vg_test_build());
    ck_assert_msg(access(demo, X_OK) == 0,
                  "%s is missing: `make check` must build $(BUILD)/demo/demo_worker first", demo);
    make_install();
    fmt(cli, sizeof cli, "%s/bin/vramguard", g_usr);
    fmt(reports, sizeof reports, "%s/reports", g_work);

    SH_OK("'%s' --version", cli);
    OUT_HAS("vramguard ");
    /* the installed CLI preloads the installed library (found relative to
     * itself; nothing points it at the source tree) */
    SH_OK("env -u VRAMGUARD_LIBRARY '%s' run --quiet -- /bin/sh -c 'echo \"preload=$LD_PRELOAD\"'", cli);
    char want[PATH_MAX + 32];
    fmt(want, sizeof want, "preload=%s/lib/vramguard/libvramguard.so\n", g_usr);
    OUT_HAS(want);

    /* the demo: a managed allocation (a violation) and an OOM; exit 3 */
    int st = sh("env -u VRAMGUARD_LIBRARY -u LD_PRELOAD LD_LIBRARY_PATH='%s/fakecuda' "
                "'%s' run --require-cuda --report-dir '%s' -- '%s' 2>&1",
                vg_test_build(), cli, reports, demo);
    ck_assert_msg(st == 3, "installed vramguard run on the demo: exit %d, want 3\n%s", st, g_out);
    OUT_HAS("vramguard: 1 process reached the CUDA driver");
    OUT_HAS("violation: cuMemAllocManaged");
    OUT_HAS("vramguard: verdict: fail (violation: 1 violation;");
    SH_OK("ls '%s'/vramguard.*.json '%s'/vramguard.*.json.journal | wc -l", reports, reports);
    ck_assert_msg(atoi(g_out) == 2, "want one report and one journal in %s", reports);
    /* the report, through the installed CLI again */
    st = sh("'%s' report --markdown '%s'", cli, reports);
    ck_assert_int_eq(st, 3);
    OUT_HAS("| `demo_worker` |");
    OUT_HAS("`cuMemAllocManaged`");
    OUT_HAS("**Verdict: fail**");
    make_uninstall_leaves_nothing();
}
END_TEST

/* LIBDIR outside PREFIX/lib (lib64): the entry script finds its package and
 * the library by the paths make install wrote into it, not relative to itself. */
START_TEST(installed_cli_own_libdir)
{
    char prefix[PATH_MAX], libdir[PATH_MAX], want[PATH_MAX + 32];
    fmt(prefix, sizeof prefix, "%s/opt", g_dest);
    fmt(libdir, sizeof libdir, "%s/opt/lib64", g_dest);
    SH_OK("make install PREFIX='%s' LIBDIR='%s' 2>&1", prefix, libdir);
    fmt(want, sizeof want, "%s/vramguard/vramguard_cli/cli.py", libdir);
    ck_assert_msg(access(want, R_OK) == 0, "%s is missing", want);
    SH_OK("cd / && env -u VRAMGUARD_LIBRARY '%s/bin/vramguard' run --quiet -- /bin/sh -c 'echo \"preload=$LD_PRELOAD\"' 2>&1",
          prefix);
    fmt(want, sizeof want, "preload=%s/vramguard/libvramguard.so\n", libdir);
    OUT_HAS(want);
    OUT_HAS("vramguard: verdict: pass");
    SH_OK("make uninstall PREFIX='%s' LIBDIR='%s' 2>&1", prefix, libdir);
    SH_OK("find '%s' ! -type d", g_dest);
    ck_assert_msg(g_out[0] == '\0', "make uninstall left:\n%s", g_out);
}
END_TEST

START_TEST(installed_man_page)
{
    make_install();
    char page[PATH_MAX];
    fmt(page, sizeof page, "%s/share/man/man1/vramguard.1", g_usr);
    if (sh("command -v man") == 0) {
        SH_OK("LC_ALL=C MANWIDTH=80 man --warnings -l '%s' 2>&1 >/dev/null", page);
        ck_assert_msg(g_out[0] == '\0', "man warns:\n%s", g_out);
        /* found by name through MANPATH */
        SH_OK("MANPATH='%s/share/man' man -w vramguard", g_usr);
        OUT_HAS(page);
        SH_OK("LC_ALL=C MANWIDTH=80 man -l '%s' 2>/dev/null", page);
    } else if (sh("command -v groff") == 0) {
        SH_OK("groff -man -Tutf8 -ww -z '%s' 2>&1", page);
        ck_assert_msg(g_out[0] == '\0', "groff warns:\n%s", g_out);
        SH_OK("LC_ALL=C groff -man -Tascii -P-cbou '%s'", page);
    } else {
        make_uninstall_leaves_nothing();
        return; /* nothing to render with */
    }
    static const char *const want[] = {
        "VRAMGUARD_POLICY", "VRAMGUARD_ALLOW", "VRAMGUARD_FAIL_ON", "VRAMGUARD_REPORT",
        "VRAMGUARD_LOG", "VRAMGUARD_LISTEN", "VRAMGUARD_HEALTH_FAIL_ON",
        "VRAMGUARD_PURPOSE_RULES", "VRAMGUARD_BACKTRACE", "VRAMGUARD_LIBRARY",
        "--require-cuda", "--listen", "--markdown", "--error-exitcode", "EXIT STATUS",
        "/metrics", "/health", "/vram", "vramguard_usage", "vramguard.pc", "shimlib",
        "dist-packages", ".json.endpoint", ".json.journal", "CUDA_ERROR_NOT_SUPPORTED",
        "SEE ALSO", ">=256M",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(g_out, want[i]) != NULL, "the rendered man page lacks \"%s\"", want[i]);
    make_uninstall_leaves_nothing();
}
END_TEST

Suite *make_install_suite(void)
{
    Suite *s = suite_create("install");
    TCase *tc = tcase_create("install");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300); /* make may rebuild the shim */
    if (vg_test_sanitized())
        return s; /* the install is of the plain build */
    tcase_add_test(tc, install_files_and_uninstall);
    tcase_add_test(tc, install_pkgconfig_header_python);
    tcase_add_test(tc, installed_cli_runs_the_demo);
    tcase_add_test(tc, installed_cli_own_libdir);
    tcase_add_test(tc, installed_man_page);
    suite_add_tcase(s, tc);
    return s;
}
