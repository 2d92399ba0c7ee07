/* The layering of shim/ (scripts/check_layers.py): no include cycle between
 * modules, and interception -> model <- outputs. The checker's own
 * self-test runs first, so a checker that cannot fail does not pass. */
#include "../check_support.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <glob.h>
#include <string.h>
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

/* x86-64: every object of the shim carries the CET property note (IBT and
 * shadow stack). The linker marks the .so only when every input is marked:
 * one unmarked object (the assembler trampoline was one) drops it, and a
 * preloaded unmarked library turns CET off for the whole host process. The
 * .so itself is not checked: Debian 12's own crti.o/crtn.o are unmarked, so
 * no library linked here is; on a CET toolchain (Ubuntu, Fedora) it is. */
START_TEST(test_shim_objects_keep_cet_markings)
{
#if defined(__x86_64__)
    char pattern[1024], out[1024];
    snprintf(pattern, sizeof(pattern), "%s/shim/*/*.o", vg_test_build());
    snprintf(out, sizeof(out), "%s/readelf.out", vg_test_tmpdir());
    glob_t objs;
    ck_assert_int_eq(glob(pattern, 0, NULL, &objs), 0);
    ck_assert_msg(objs.gl_pathc > 20, "only %zu objects under %s", objs.gl_pathc, pattern);
    for (size_t i = 0; i < objs.gl_pathc; i++) {
        const char *argv[] = {"readelf", "-n", objs.gl_pathv[i], NULL};
        int st = vg_test_run(argv, NULL, 0, out);
        char *text = vg_test_read(out);
        ck_assert_msg(st == 0 && text, "readelf -n %s failed (%d)", objs.gl_pathv[i], st);
        ck_assert_msg(strstr(text, "x86 feature:") && strstr(text, "IBT") && strstr(text, "SHSTK"),
                      "%s lacks the IBT/SHSTK property note; readelf -n says:\n%s", objs.gl_pathv[i], text);
        free(text);
    }
    unlink(out);
    globfree(&objs);
#endif
}
END_TEST

Suite *make_layers_suite(void)
{
    Suite *s = suite_create("layers");
    TCase *t = tcase_create("layers");
    tcase_add_test(t, test_checker_can_fail);
    tcase_add_test(t, test_shim_layers);
    tcase_add_test(t, test_shim_objects_keep_cet_markings);
    suite_add_tcase(s, t);
    return s;
}
