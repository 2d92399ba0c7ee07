/* The layering of shim/ (scripts/check_layers.py): no include cycle between
 * modules, and interception -> model <- outputs. The checker's own
 * self-test runs first, so a checker that cannot fail does not pass. */
#include "../check_support.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

Suite *make_layers_suite(void);

/* Run the checker with `arg`; its exit status, its output in *text. */
static int checker(const char *arg, char **text)
{
    char script[1024], out[1024];
    snprintf(script, sizeof(script), "%s/scripts/check_layers.py", vg_test_root());
    snprintf(out, sizeof(out), "%s/check_layers.out", vg_test_tmpdir());
    const char *argv[] = {"/usr/bin/python3", script, arg, NULL};
    int st = vg_test_run(argv, NULL, 0, out);
    *text = vg_test_read(out);
    unlink(out);
    return st;
}

START_TEST(test_checker_can_fail)
{
    char *text = NULL;
    int st = checker("--self-test", &text);
    ck_assert_msg(st == 0, "check_layers.py --self-test failed:\n%s", text);
    ck_assert_int_eq(vg_test_count(text, " ok\n"), vg_test_count(text, "self-test "));
    free(text);
}
END_TEST

START_TEST(test_shim_layers)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/shim", vg_test_root());
    char *text = NULL;
    int st = checker(dir, &text);
    if (st != 0) /* all of it on stderr: Check's messages are short */
        fprintf(stderr, "scripts/check_layers.py %s:\n%s", dir, text);
    ck_assert_msg(st == 0, "include cycles or layer violations in shim/ (the list is on stderr)");
    free(text);
}
END_TEST

Suite *make_layers_suite(void)
{
    Suite *s = suite_create("layers");
    TCase *t = tcase_create("layers");
    tcase_add_test(t, test_checker_can_fail);
    tcase_add_test(t, test_shim_layers);
    suite_add_tcase(s, t);
    return s;
}
