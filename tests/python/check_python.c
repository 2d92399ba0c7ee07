/* The Python side, run from the Check runner: purpose_tags/python/vramguard.py
 * (tests/python/test_vramguard_py.py, which starts its own child under
 * LD_PRELOAD of the shim), the entry-point inventory
 * (tests/python/test_entry_points.py) and what the documentation names
 * (tests/python/test_docs.py), and `vramguard top` against three workers
 * under the shim, its terminal view in tmux (tests/python/test_top.py).
 * Each case runs
 *   /usr/bin/python3 -m unittest -v <module>
 * with PYTHONPATH=<root>/purpose_tags/python:<root>/tests/python and
 * VG_ROOT/VG_BUILD from the runner, and needs exit status 0; on failure the
 * whole captured output is printed. Needs build/libvramguard.so and the fake
 * CUDA (make check builds both). */
#include "../check_support.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Suite *make_python_suite(void);

#define VG_PYTHON "/usr/bin/python3"

static void run_unittest(const char *module)
{
    if (access(VG_PYTHON, X_OK) != 0)
        ck_abort_msg("%s is missing: the Python tests need it", VG_PYTHON);

    char pythonpath[4200], vg_root[2100], vg_build[2100], out[600];
    snprintf(pythonpath, sizeof(pythonpath), "PYTHONPATH=%s/purpose_tags/python:%s/tests/python",
             vg_test_root(), vg_test_root());
    snprintf(vg_root, sizeof(vg_root), "VG_ROOT=%s", vg_test_root());
    snprintf(vg_build, sizeof(vg_build), "VG_BUILD=%s", vg_test_build());
    snprintf(out, sizeof(out), "%s/%s.out", vg_test_tmpdir(), module);

    /* The parent python runs without the shim (the no-shim cases); the
     * with-shim cases start their own child under LD_PRELOAD. */
    const char *env[] = {pythonpath, vg_root, vg_build, "LD_PRELOAD=", "PYTHONDONTWRITEBYTECODE=1",
                         "PYTHONIOENCODING=utf-8", NULL};
    const char *argv[] = {VG_PYTHON, "-m", "unittest", "-v", module, NULL};
    int rc = vg_test_run(argv, env, 0, out);

    if (rc != 0) {
        char *text = vg_test_read(out);
        fprintf(stderr, "---- %s -m unittest -v %s: exit %d ----\n%s---- end of %s ----\n", VG_PYTHON, module,
                rc, text, module);
        size_t n = strlen(text);
        const char *tail = n > 1500 ? text + n - 1500 : text;
        ck_abort_msg("python3 -m unittest %s exited %d (full output on stderr); tail:\n%s", module, rc, tail);
    }
}

START_TEST(test_vramguard_py)
{
    run_unittest("test_vramguard_py");
}
END_TEST

START_TEST(test_entry_points)
{
    run_unittest("test_entry_points");
}
END_TEST

START_TEST(test_docs)
{
    run_unittest("test_docs");
}
END_TEST

START_TEST(test_top)
{
    run_unittest("test_top");
}
END_TEST

Suite *make_python_suite(void)
{
    Suite *s = suite_create("python");
    TCase *tc = tcase_create("unittest");
    /* Interpreter start-up, a child under the shim, a C compile: well over
     * Check's default 4 s on a loaded machine. */
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_vramguard_py);
    tcase_add_test(tc, test_entry_points);
    tcase_add_test(tc, test_docs);
    suite_add_tcase(s, tc);
    /* Workers under the shim and tmux sessions: seconds on a quiet machine. */
    TCase *top = tcase_create("top");
    tcase_set_timeout(top, 240);
    tcase_add_test(top, test_top);
    suite_add_tcase(s, top);
    return s;
}
