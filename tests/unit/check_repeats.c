/* Unit tests for shim/output/repeats.c (repeated events: the first
 * VG_REPEATS_SHOWN of a group written, the rest counted and summarised)
 * and for the log's cap and non-blocking writes (shim/output/log.c). */
#include "log.h"
#include "repeats.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

Suite *make_repeats_suite(void);

static const struct timespec when = {1800000000, 0};

static struct vg_repeat_group group(void *caller)
{
    return (struct vg_repeat_group){VG_REPEAT_VIOLATION, "cuMemHostAlloc", caller, 1, 0, 0, -1,
                                    CUDA_ERROR_NOT_PERMITTED};
}

START_TEST(test_first_ten_written_then_counted)
{
    vg_repeat_reset();
    struct vg_repeat_group g = group((void *)0x1000);
    struct vg_repeat_decision d;
    for (int i = 0; i < VG_REPEATS_SHOWN; i++) {
        vg_repeat_admit(&g, 4096, &when, 100, &d);
        ck_assert(d.write && !d.first_held && !d.summary_due);
    }
    vg_repeat_admit(&g, 8192, &when, 100, &d);
    ck_assert(!d.write && d.first_held && !d.summary_due && !d.other);
    vg_repeat_admit(&g, 4096, &when, 105, &d);
    ck_assert(!d.write && !d.first_held && !d.summary_due);
    ck_assert_uint_eq(vg_repeat_suppressed(VG_REPEAT_VIOLATION), 2);
    ck_assert_uint_eq(vg_repeat_suppressed(VG_REPEAT_OOM), 0);
    /* another call site is another group */
    struct vg_repeat_group other = group((void *)0x2000);
    vg_repeat_admit(&other, 4096, &when, 105, &d);
    ck_assert(d.write);
}
END_TEST

START_TEST(test_summary_every_period)
{
    vg_repeat_reset();
    struct vg_repeat_group g = group((void *)0x1000);
    struct vg_repeat_decision d;
    for (int i = 0; i < VG_REPEATS_SHOWN; i++)
        vg_repeat_admit(&g, 1, &when, 50, &d);
    for (int i = 0; i < 7; i++) {
        vg_repeat_admit(&g, (uint64_t)(100 + i), &when, 50 + i, &d); /* the period starts at the first held */
        ck_assert(!d.summary_due);
    }
    vg_repeat_admit(&g, 3, &when, 50 + VG_REPEATS_PERIOD_S, &d);
    ck_assert(d.summary_due && !d.summary.other);
    ck_assert_uint_eq(d.summary.count, 8);
    ck_assert_uint_eq(d.summary.max_size, 106);
    ck_assert_ptr_eq(d.summary.group.caller, (void *)0x1000);
    /* counted again from zero */
    vg_repeat_admit(&g, 5, &when, 61, &d);
    ck_assert(!d.write && !d.summary_due);
    struct vg_repeat_summary s;
    ck_assert(vg_repeat_take_pending(&s));
    ck_assert_uint_eq(s.count, 1);
    ck_assert_uint_eq(s.max_size, 5);
    ck_assert(!vg_repeat_take_pending(&s));
    ck_assert_uint_eq(vg_repeat_suppressed(VG_REPEAT_VIOLATION), 9);
}
END_TEST

/* Past VG_REPEATS_GROUPS groups, events share one group per type and kind. */
START_TEST(test_overflow_groups_by_kind)
{
    vg_repeat_reset();
    struct vg_repeat_decision d;
    for (uintptr_t site = 1; site <= VG_REPEATS_GROUPS; site++) {
        struct vg_repeat_group g = group((void *)(site << 4));
        vg_repeat_admit(&g, 1, &when, 0, &d);
        ck_assert(d.write && !d.other);
    }
    for (uintptr_t site = 1000; site < 1000 + VG_REPEATS_SHOWN; site++) {
        struct vg_repeat_group g = group((void *)(site << 4));
        vg_repeat_admit(&g, 1, &when, 0, &d);
        ck_assert(d.write && d.other);
    }
    struct vg_repeat_group g = group((void *)0xabc0);
    vg_repeat_admit(&g, 77, &when, 0, &d);
    ck_assert(!d.write && d.other && d.first_held);
    g.kind = 2; /* another kind: its own overflow group */
    vg_repeat_admit(&g, 1, &when, 0, &d);
    ck_assert(d.write && d.other);
    struct vg_repeat_summary s;
    ck_assert(vg_repeat_take_pending(&s));
    ck_assert(s.other && s.count == 1 && s.max_size == 77 && s.group.kind == 1);
}
END_TEST

/* The log stops at VRAMGUARD_LOG_MAX with one final line; what follows is
 * counted. */
START_TEST(test_log_capped_with_final_line)
{
    char dir[] = "/tmp/vg_unit_repeats.XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/log", dir);
    vg_log_reset_after_fork();
    vg_log_open(path);
    vg_log_set_max(4096);
    for (int i = 0; i < 200; i++)
        vg_log("line %03d %s", i, "................................................................");
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_le(st.st_size, 4096);
    ck_assert_int_gt(st.st_size, 3000);
    FILE *f = fopen(path, "r");
    char line[512], last[512] = "";
    while (fgets(line, sizeof(line), f))
        snprintf(last, sizeof(last), "%s", line);
    fclose(f);
    char want[128];
    snprintf(want, sizeof(want), "vramguard[%d]: the log reached VRAMGUARD_LOG_MAX (4.0 KiB): pid %d ", (int)getpid(),
             (int)getpid());
    ck_assert_msg(strstr(last, want) == last, "%s", last);
    struct vg_log_stats s;
    vg_log_stats(&s);
    ck_assert(s.capped && s.max == 4096 && s.bytes == (uint64_t)st.st_size);
    ck_assert_uint_gt(s.lines_over_cap, 100);
    unlink(path);
    rmdir(dir);
}
END_TEST

/* stderr a full pipe: a line is lost (counted) at once, not waited for;
 * once the pipe is read, the next line comes after a note of how many. */
START_TEST(test_log_to_a_full_pipe_never_blocks)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    int saved = dup(2);
    dup2(p[1], 2);
    vg_log_reset_after_fork();
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    static char fill[4096];
    memset(fill, '~', sizeof(fill));
    while (write(p[1], fill, sizeof(fill)) > 0)
        ;
    fcntl(p[1], F_SETFL, 0); /* blocking again: a plain write(2) would wait forever now */
    for (int i = 0; i < 5; i++)
        vg_log("lost %d", i);
    struct vg_log_stats s;
    vg_log_stats(&s);
    ck_assert_uint_eq(s.lines_dropped, 5);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    static char got[1 << 17];
    while (read(p[0], got, sizeof(got)) > 0)
        ;
    vg_log("after");
    ssize_t n = read(p[0], got, sizeof(got) - 1);
    dup2(saved, 2);
    ck_assert_int_gt(n, 0);
    got[n] = '\0';
    char lost[128], after[64];
    snprintf(lost, sizeof(lost), "vramguard[%d]: 5 log lines were lost: the log could not take them (it would have blocked",
             (int)getpid());
    snprintf(after, sizeof(after), "\nvramguard[%d]: after\n", (int)getpid());
    ck_assert_msg(strstr(got, lost) == got && strstr(got, after), "%s", got);
}
END_TEST

Suite *make_repeats_suite(void)
{
    Suite *s = suite_create("repeats");
    TCase *t = tcase_create("groups");
    tcase_add_test(t, test_first_ten_written_then_counted);
    tcase_add_test(t, test_summary_every_period);
    tcase_add_test(t, test_overflow_groups_by_kind);
    suite_add_tcase(s, t);
    TCase *l = tcase_create("log");
    tcase_add_test(l, test_log_capped_with_final_line);
    tcase_add_test(l, test_log_to_a_full_pipe_never_blocks);
    suite_add_tcase(s, l);
    return s;
}
