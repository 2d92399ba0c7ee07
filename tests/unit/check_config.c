/* Unit tests for shim/model/config.c: option parsing with a fake environment and
 * a warning recorder, path templates and the name helpers. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- fake environment ----------------------------------------------------- */

enum { ENV_MAX = 8 };
static const char *env_names[ENV_MAX];
static const char *env_values[ENV_MAX];
static int env_n;
static int env_lookups;

static void env_clear(void)
{
    env_n = 0;
    env_lookups = 0;
}

static void env_set(const char *name, const char *value)
{
    ck_assert_int_lt(env_n, ENV_MAX);
    env_names[env_n] = name;
    env_values[env_n] = value;
    env_n++;
}

static const char *fake_getenv(const char *name)
{
    env_lookups++;
    for (int i = 0; i < env_n; i++)
        if (strcmp(env_names[i], name) == 0)
            return env_values[i];
    return NULL;
}

/* ---- warning recorder ----------------------------------------------------- */

enum { WARN_MAX = 8 };
static char warnings[WARN_MAX][1024];
static int n_warnings;

static void record_warn(const char *message)
{
    if (n_warnings < WARN_MAX)
        snprintf(warnings[n_warnings], sizeof(warnings[0]), "%s", message);
    n_warnings++;
}

static void setup(void)
{
    env_clear();
    n_warnings = 0;
}

static struct vg_config parsed;

static int parse(void)
{
    memset(&parsed, 0x55, sizeof(parsed)); /* parse must set every field */
    return vg_config_parse(&parsed, fake_getenv, record_warn);
}

static void assert_defaults(const struct vg_config *c)
{
    ck_assert_int_eq(c->policy, VG_POLICY_REJECT);
    ck_assert_uint_eq(c->allow, 0);
    ck_assert_uint_eq(c->fail_on, VG_FAIL_ON_VIOLATION);
    ck_assert_str_eq(c->report_path, "");
    ck_assert_str_eq(c->log_path, "");
    ck_assert(c->log_max == VG_LOG_MAX_DEFAULT);
}

/* One invalid value: exactly one warning that names the variable and each
 * accepted word, and the default stays. */
static void assert_one_warning(const char *var, const char *const *accepted)
{
    ck_assert_int_eq(n_warnings, 1);
    ck_assert_msg(strstr(warnings[0], var) != NULL, "warning does not name %s: %s", var, warnings[0]);
    for (const char *const *a = accepted; *a; a++)
        ck_assert_msg(strstr(warnings[0], *a) != NULL, "warning does not name accepted '%s': %s", *a,
                      warnings[0]);
}

START_TEST(test_defaults)
{
    ck_assert_int_eq(parse(), 0);
    assert_defaults(&parsed);
    ck_assert_int_eq(n_warnings, 0);
    ck_assert_int_ge(env_lookups, 5); /* it asked for every variable */
}
END_TEST

START_TEST(test_policy_values)
{
    static const char *const names[] = {"reject", "warn", "off"};
    static const enum vg_policy_mode modes[] = {VG_POLICY_REJECT, VG_POLICY_WARN, VG_POLICY_OFF};
    for (int i = 0; i < 3; i++) {
        setup();
        env_set("VRAMGUARD_POLICY", names[i]);
        ck_assert_int_eq(parse(), 0);
        ck_assert_int_eq(parsed.policy, modes[i]);
        ck_assert_int_eq(n_warnings, 0);
        /* nothing else changes */
        ck_assert_uint_eq(parsed.fail_on, VG_FAIL_ON_VIOLATION);
        ck_assert_uint_eq(parsed.allow, 0);
    }
}
END_TEST

/* VRAMGUARD_BACKTRACE: large by default (a stack where it pays), 1 for
 * every allocation, 0 for none. */
START_TEST(test_backtrace_values)
{
    ck_assert_int_eq(parse(), 0);
    ck_assert_int_eq(parsed.backtrace, VG_BACKTRACE_LARGE);
    static const char *const names[] = {"0", "large", "1"};
    static const enum vg_backtrace modes[] = {VG_BACKTRACE_OFF, VG_BACKTRACE_LARGE, VG_BACKTRACE_ALL};
    for (int i = 0; i < 3; i++) {
        setup();
        env_set("VRAMGUARD_BACKTRACE", names[i]);
        ck_assert_int_eq(parse(), 0);
        ck_assert_int_eq(parsed.backtrace, modes[i]);
    }
    static const char *const accepted[] = {"large", "1 (every allocation)", "0 (none)", NULL};
    setup();
    env_set("VRAMGUARD_BACKTRACE", "all");
    ck_assert_int_eq(parse(), 1);
    ck_assert_int_eq(parsed.backtrace, VG_BACKTRACE_LARGE);
    assert_one_warning("VRAMGUARD_BACKTRACE", accepted);
}
END_TEST

START_TEST(test_policy_invalid)
{
    static const char *const bad[] = {"REJECT", "Warn", "permissive", "off ", " off", "0"};
    static const char *const accepted[] = {"reject", "warn", "off", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setup();
        env_set("VRAMGUARD_POLICY", bad[i]);
        ck_assert_int_eq(parse(), 1);
        ck_assert_int_eq(parsed.policy, VG_POLICY_REJECT);
        assert_one_warning("VRAMGUARD_POLICY", accepted);
        ck_assert_msg(strstr(warnings[0], bad[i]) != NULL, "warning does not quote the value: %s",
                      warnings[0]);
    }
}
END_TEST

START_TEST(test_invalid_keeps_non_default_neighbours)
{
    /* one bad value among good ones: only that one falls back */
    env_set("VRAMGUARD_POLICY", "warn");
    env_set("VRAMGUARD_ALLOW", "everything");
    env_set("VRAMGUARD_FAIL_ON", "oom");
    ck_assert_int_eq(parse(), 1);
    ck_assert_int_eq(parsed.policy, VG_POLICY_WARN);
    ck_assert_uint_eq(parsed.allow, 0);
    ck_assert_uint_eq(parsed.fail_on, VG_FAIL_ON_OOM);
    static const char *const accepted[] = {"pinned", "none", NULL};
    assert_one_warning("VRAMGUARD_ALLOW", accepted);
}
END_TEST

START_TEST(test_empty_is_default_without_warning)
{
    env_set("VRAMGUARD_POLICY", "");
    env_set("VRAMGUARD_ALLOW", "");
    env_set("VRAMGUARD_FAIL_ON", "");
    env_set("VRAMGUARD_REPORT", "");
    env_set("VRAMGUARD_LOG", "");
    ck_assert_int_eq(parse(), 0);
    assert_defaults(&parsed);
    ck_assert_int_eq(n_warnings, 0);
}
END_TEST

START_TEST(test_fail_on_lists)
{
    static const struct {
        const char *value;
        unsigned bits;
    } ok[] = {
        {"violation", VG_FAIL_ON_VIOLATION},
        {"oom", VG_FAIL_ON_OOM},
        {"leak", VG_FAIL_ON_LEAK},
        {"none", 0},
        {"violation,oom", VG_FAIL_ON_VIOLATION | VG_FAIL_ON_OOM},
        {"oom,violation", VG_FAIL_ON_VIOLATION | VG_FAIL_ON_OOM},
        {"leak,oom,violation", VG_FAIL_ON_VIOLATION | VG_FAIL_ON_OOM | VG_FAIL_ON_LEAK},
        {"oom,oom", VG_FAIL_ON_OOM},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        setup();
        env_set("VRAMGUARD_FAIL_ON", ok[i].value);
        ck_assert_msg(parse() == 0, "%s rejected", ok[i].value);
        ck_assert_msg(parsed.fail_on == ok[i].bits, "%s: fail_on %u, expected %u", ok[i].value,
                      parsed.fail_on, ok[i].bits);
        ck_assert_int_eq(n_warnings, 0);
    }
}
END_TEST

START_TEST(test_fail_on_bad_list_rejected_whole)
{
    static const char *const bad[] = {"violation,bogus", "bogus,oom", "violation,", ",oom", "oom,,leak",
                                      "violations", "none,oom", "OOM", "violation oom"};
    static const char *const accepted[] = {"violation", "oom", "leak", "none", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setup();
        env_set("VRAMGUARD_FAIL_ON", bad[i]);
        ck_assert_msg(parse() == 1, "%s accepted", bad[i]);
        /* rejected whole: not even the valid words before the bad one apply */
        ck_assert_msg(parsed.fail_on == VG_FAIL_ON_VIOLATION, "%s: fail_on %u", bad[i], parsed.fail_on);
        assert_one_warning("VRAMGUARD_FAIL_ON", accepted);
    }
}
END_TEST

START_TEST(test_allow_values)
{
    env_set("VRAMGUARD_ALLOW", "pinned");
    ck_assert_int_eq(parse(), 0);
    ck_assert_uint_eq(parsed.allow, VG_ALLOW_PINNED);
    ck_assert_int_eq(parsed.allowances.n, 1);
    setup();
    env_set("VRAMGUARD_ALLOW", "none");
    ck_assert_int_eq(parse(), 0);
    ck_assert_uint_eq(parsed.allow, 0);
    ck_assert_int_eq(parsed.allowances.n, 0);
    ck_assert_int_eq(n_warnings, 0);
    setup();
    env_set("VRAMGUARD_ALLOW", "managed");
    ck_assert_int_eq(parse(), 0);
    ck_assert_uint_eq(parsed.allow, 1u << VG_AK_MANAGED);
    setup();
    /* conditions: the kind is no longer let through as a whole */
    env_set("VRAMGUARD_ALLOW", "pinned:libcudnn*,pinned:<=64K,registered:total<=1G");
    ck_assert_int_eq(parse(), 0);
    ck_assert_uint_eq(parsed.allow, 0);
    ck_assert_int_eq(parsed.allowances.n, 3);
    setup();
    /* one malformed rule: one warning naming the variable and the rule; the others stay */
    env_set("VRAMGUARD_ALLOW", "pinned:<=4K,pinnned:libcudnn*");
    ck_assert_int_eq(parse(), 1);
    ck_assert_int_eq(parsed.allowances.n, 1);
    ck_assert_str_eq(parsed.allowances.rule[0].text, "pinned:<=4K");
    static const char *const accepted[] = {"\"pinnned:libcudnn*\"", "pinned", "registered", "managed", "none", NULL};
    assert_one_warning("VRAMGUARD_ALLOW", accepted);
}
END_TEST

START_TEST(test_log_stderr_or_path)
{
    env_set("VRAMGUARD_LOG", "stderr");
    ck_assert_int_eq(parse(), 0);
    ck_assert_str_eq(parsed.log_path, "");
    setup();
    env_set("VRAMGUARD_LOG", "/tmp/vg.%p.log");
    ck_assert_int_eq(parse(), 0);
    ck_assert_str_eq(parsed.log_path, "/tmp/vg.%p.log");
    ck_assert_str_eq(parsed.report_path, "");
    ck_assert_int_eq(n_warnings, 0);
}
END_TEST

START_TEST(test_log_max)
{
    static const struct { const char *value; uint64_t bytes; } good[] = {
        {"8K", 8192}, {"64M", UINT64_C(64) << 20}, {"1GiB", UINT64_C(1) << 30}, {"4096", 4096}, {"0", 0}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        setup();
        env_set("VRAMGUARD_LOG_MAX", good[i].value);
        ck_assert_int_eq(parse(), 0);
        ck_assert_msg(parsed.log_max == good[i].bytes, "%s gave %llu", good[i].value,
                      (unsigned long long)parsed.log_max);
    }
    static const char *const bad[] = {"100", "4095", "-1", "lots", "8X"};
    static const char *const accepted[] = {"at least 4K", "0 for no limit", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setup();
        env_set("VRAMGUARD_LOG_MAX", bad[i]);
        ck_assert_int_eq(parse(), 1);
        assert_one_warning("VRAMGUARD_LOG_MAX", accepted);
        ck_assert(parsed.log_max == VG_LOG_MAX_DEFAULT);
    }
}
END_TEST

/* VRAMGUARD_LISTEN=auto: <live dir>/%p.sock, the live directory from
 * XDG_RUNTIME_DIR (absolute) or /tmp/vramguard-EUID, as `vramguard top`
 * reads it; a '%' of the directory is not taken for %p. */
START_TEST(test_listen_auto)
{
    char path[VG_PATH_MAX];
    env_set("VRAMGUARD_LISTEN", "auto");
    env_set("XDG_RUNTIME_DIR", "/run/user/7");
    ck_assert_int_eq(parse(), 0);
    ck_assert_str_eq(parsed.listen, "unix:/run/user/7/vramguard/%p.sock");
    ck_assert_str_eq(parsed.listen_dir, "/run/user/7/vramguard");

    char tmp_dir[64], tmp_listen[96];
    snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/vramguard-%u", (unsigned)geteuid());
    snprintf(tmp_listen, sizeof(tmp_listen), "unix:%s/%%p.sock", tmp_dir);
    static const char *const no_xdg[] = {NULL, "", "relative/run"};
    for (size_t i = 0; i < sizeof(no_xdg) / sizeof(no_xdg[0]); i++) {
        setup();
        env_set("VRAMGUARD_LISTEN", "auto");
        if (no_xdg[i])
            env_set("XDG_RUNTIME_DIR", no_xdg[i]);
        ck_assert_int_eq(parse(), 0);
        ck_assert_str_eq(parsed.listen, tmp_listen);
        ck_assert_str_eq(parsed.listen_dir, tmp_dir);
    }

    setup();
    env_set("VRAMGUARD_LISTEN", "auto");
    env_set("XDG_RUNTIME_DIR", "/r%p");
    ck_assert_int_eq(parse(), 0);
    ck_assert_str_eq(parsed.listen, "unix:/r%%p/vramguard/%p.sock");
    ck_assert(vg_expand_path(parsed.listen + 5, 42, path, sizeof(path)));
    ck_assert_str_eq(path, "/r%p/vramguard/42.sock");

    /* Too long for a path: invalid, the default (no endpoint) stays. */
    static char long_dir[VG_PATH_MAX - 8];
    memset(long_dir, 'd', sizeof(long_dir) - 1);
    long_dir[0] = '/';
    setup();
    env_set("VRAMGUARD_LISTEN", "auto");
    env_set("XDG_RUNTIME_DIR", long_dir);
    ck_assert_int_eq(parse(), 1);
    ck_assert_str_eq(parsed.listen, "");
    ck_assert_str_eq(parsed.listen_dir, "");
    ck_assert_ptr_nonnull(strstr(warnings[0], "auto"));

    /* Any other value has no live directory to make. */
    setup();
    env_set("VRAMGUARD_LISTEN", "unix:/x/%p.sock");
    env_set("XDG_RUNTIME_DIR", "/run/user/7");
    ck_assert_int_eq(parse(), 0);
    ck_assert_str_eq(parsed.listen, "unix:/x/%p.sock");
    ck_assert_str_eq(parsed.listen_dir, "");
}
END_TEST

START_TEST(test_report_path_and_too_long)
{
    env_set("VRAMGUARD_REPORT", "/tmp/r.%p.json");
    ck_assert_int_eq(parse(), 0);
    ck_assert_str_eq(parsed.report_path, "/tmp/r.%p.json");

    /* longest that fits: VG_PATH_MAX - 1 bytes */
    static char fits[VG_PATH_MAX];
    memset(fits, 'a', sizeof(fits) - 1);
    fits[0] = '/';
    fits[VG_PATH_MAX - 1] = '\0';
    setup();
    env_set("VRAMGUARD_REPORT", fits);
    ck_assert_int_eq(parse(), 0);
    ck_assert_str_eq(parsed.report_path, fits);

    static char too_long[VG_PATH_MAX + 10];
    memset(too_long, 'b', sizeof(too_long) - 1);
    too_long[0] = '/';
    too_long[sizeof(too_long) - 1] = '\0';
    setup();
    env_set("VRAMGUARD_REPORT", too_long);
    env_set("VRAMGUARD_LOG", too_long);
    ck_assert_int_eq(parse(), 2);
    ck_assert_str_eq(parsed.report_path, "");
    ck_assert_str_eq(parsed.log_path, "");
    ck_assert_int_eq(n_warnings, 2);
    ck_assert(strstr(warnings[0], "VRAMGUARD_REPORT") != NULL || strstr(warnings[1], "VRAMGUARD_REPORT") != NULL);
    ck_assert(strstr(warnings[0], "VRAMGUARD_LOG") != NULL || strstr(warnings[1], "VRAMGUARD_LOG") != NULL);
    for (int i = 0; i < 2; i++)
        ck_assert_msg(strlen(warnings[i]) < 1000, "warning is not bounded: %zu bytes", strlen(warnings[i]));
}
END_TEST

START_TEST(test_null_warn_callback)
{
    env_set("VRAMGUARD_POLICY", "nope");
    struct vg_config c;
    ck_assert_int_eq(vg_config_parse(&c, fake_getenv, NULL), 1);
    ck_assert_int_eq(c.policy, VG_POLICY_REJECT);
}
END_TEST

START_TEST(test_unknown_variables_ignored)
{
    /* only VRAMGUARD_* option names are consulted; a look-alike is not */
    env_set("VRAMGUARD_POLICYX", "off");
    env_set("vramguard_policy", "off");
    ck_assert_int_eq(parse(), 0);
    assert_defaults(&parsed);
}
END_TEST

/* ---- vg_expand_path ------------------------------------------------------- */

START_TEST(test_expand_path)
{
    char out[64];
    ck_assert(vg_expand_path("/tmp/vg.%p.json", 4242, out, sizeof(out)));
    ck_assert_str_eq(out, "/tmp/vg.4242.json");
    ck_assert(vg_expand_path("%p-%p", 7, out, sizeof(out)));
    ck_assert_str_eq(out, "7-7");
    ck_assert(vg_expand_path("100%%", 1, out, sizeof(out)));
    ck_assert_str_eq(out, "100%");
    ck_assert(vg_expand_path("%%p", 99, out, sizeof(out)));
    ck_assert_str_eq(out, "%p"); /* %% first, then a plain p */
    ck_assert(vg_expand_path("/plain/path.json", 5, out, sizeof(out)));
    ck_assert_str_eq(out, "/plain/path.json");
    ck_assert(vg_expand_path("", 5, out, sizeof(out)));
    ck_assert_str_eq(out, "");
    /* any other % sequence is literal */
    ck_assert(vg_expand_path("a%d%", 5, out, sizeof(out)));
    ck_assert_str_eq(out, "a%d%");
}
END_TEST

START_TEST(test_expand_path_overflow)
{
    char out[8];
    /* exactly fits: 7 chars + NUL */
    ck_assert(vg_expand_path("abcdefg", 1, out, sizeof(out)));
    ck_assert_str_eq(out, "abcdefg");
    ck_assert(!vg_expand_path("abcdefgh", 1, out, sizeof(out)));
    /* the pid's expansion is what overflows */
    ck_assert(vg_expand_path("ab%p", 12345, out, sizeof(out)));
    ck_assert_str_eq(out, "ab12345");
    ck_assert(!vg_expand_path("abc%p", 12345, out, sizeof(out)));
    ck_assert(!vg_expand_path("%p", 123456789, out, 5));
    /* no room at all */
    ck_assert(!vg_expand_path("", 1, out, 0));
    ck_assert(!vg_expand_path("x", 1, out, 1));
    ck_assert(vg_expand_path("", 1, out, 1));
    ck_assert_str_eq(out, "");
}
END_TEST

/* ---- names ---------------------------------------------------------------- */

START_TEST(test_fail_on_string)
{
    char out[64];
    ck_assert_str_eq(vg_fail_on_string(0, out, sizeof(out)), "none");
    ck_assert_str_eq(vg_fail_on_string(VG_FAIL_ON_VIOLATION, out, sizeof(out)), "violation");
    ck_assert_str_eq(vg_fail_on_string(VG_FAIL_ON_OOM, out, sizeof(out)), "oom");
    ck_assert_str_eq(vg_fail_on_string(VG_FAIL_ON_LEAK, out, sizeof(out)), "leak");
    ck_assert_str_eq(vg_fail_on_string(VG_FAIL_ON_VIOLATION | VG_FAIL_ON_OOM, out, sizeof(out)),
                     "violation,oom");
    ck_assert_str_eq(vg_fail_on_string(VG_FAIL_ON_OOM | VG_FAIL_ON_LEAK, out, sizeof(out)), "oom,leak");
    ck_assert_str_eq(
        vg_fail_on_string(VG_FAIL_ON_VIOLATION | VG_FAIL_ON_OOM | VG_FAIL_ON_LEAK, out, sizeof(out)),
        "violation,oom,leak");
    ck_assert_ptr_eq(vg_fail_on_string(0, out, sizeof(out)), out);

    /* round trip: the string parses back to the same bits */
    for (unsigned bits = 0; bits < 8; bits++) {
        setup();
        char s[64];
        vg_fail_on_string(bits, s, sizeof(s));
        env_set("VRAMGUARD_FAIL_ON", s);
        ck_assert_int_eq(parse(), 0);
        ck_assert_uint_eq(parsed.fail_on, bits);
    }
}
END_TEST

START_TEST(test_policy_name)
{
    ck_assert_str_eq(vg_policy_name(VG_POLICY_REJECT), "reject");
    ck_assert_str_eq(vg_policy_name(VG_POLICY_WARN), "warn");
    ck_assert_str_eq(vg_policy_name(VG_POLICY_OFF), "off");
    const char *bad = vg_policy_name((enum vg_policy_mode)17);
    ck_assert_ptr_nonnull(bad);
    ck_assert_str_ne(bad, "reject");
    ck_assert_str_ne(bad, "warn");
    ck_assert_str_ne(bad, "off");
    /* round trip through the parser */
    for (int m = VG_POLICY_REJECT; m <= VG_POLICY_OFF; m++) {
        setup();
        env_set("VRAMGUARD_POLICY", vg_policy_name((enum vg_policy_mode)m));
        ck_assert_int_eq(parse(), 0);
        ck_assert_int_eq(parsed.policy, m);
    }
}
END_TEST

START_TEST(test_process_config_from_environment)
{
    /* vg_config() reads the real environment once per process; each test is
     * a fresh fork, so setting it first works. */
    setenv("VRAMGUARD_POLICY", "warn", 1);
    setenv("VRAMGUARD_FAIL_ON", "oom,leak", 1);
    setenv("VRAMGUARD_ALLOW", "pinned", 1);
    setenv("VRAMGUARD_LOG", "/dev/null", 1);
    const struct vg_config *c = vg_config();
    ck_assert_int_eq(c->policy, VG_POLICY_WARN);
    ck_assert_uint_eq(c->fail_on, VG_FAIL_ON_OOM | VG_FAIL_ON_LEAK);
    ck_assert_uint_eq(c->allow, VG_ALLOW_PINNED);
    ck_assert_str_eq(c->log_path, "/dev/null");
    /* read once: later changes are not seen */
    setenv("VRAMGUARD_POLICY", "off", 1);
    ck_assert_ptr_eq(vg_config(), c);
    ck_assert_int_eq(vg_config()->policy, VG_POLICY_WARN);
}
END_TEST

/* The configuration writes nothing: its warnings wait for the outputs. */
START_TEST(test_process_config_keeps_its_warnings)
{
    setenv("VRAMGUARD_POLICY", "bogus", 1);
    setenv("VRAMGUARD_FAIL_ON", "oom", 1);
    setenv("VRAMGUARD_BACKTRACE", "yes", 1);
    const char *w[VG_CONFIG_WARNINGS_MAX];
    ck_assert_int_eq(vg_config_warnings(w, VG_CONFIG_WARNINGS_MAX), 2);
    ck_assert_ptr_nonnull(strstr(w[0], "VRAMGUARD_POLICY=\"bogus\""));
    ck_assert_ptr_nonnull(strstr(w[1], "VRAMGUARD_BACKTRACE"));
    ck_assert_int_eq(vg_config()->policy, VG_POLICY_REJECT);
    ck_assert_int_eq(vg_config_warnings(w, 1), 1);
}
END_TEST

/* Every invalid value's warning names the default it falls back on
 * ("; using the default: X"), X is the default the configuration keeps,
 * and X, where it is a value, parses to that same configuration. */
START_TEST(test_invalid_names_the_default)
{
    static char long_path[VG_PATH_MAX + 8];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[0] = '/';
    static const struct {
        const char *var, *bad, *dflt;
        bool is_value; /* the default can be written as a value of the variable */
    } cases[] = {
        {"VRAMGUARD_POLICY", "bogus", "reject", true},
        {"VRAMGUARD_FAIL_ON", "oom,never", "violation", true},
        {"VRAMGUARD_REPORT", long_path, "none (no report)", false},
        {"VRAMGUARD_LOG", long_path, "stderr", true},
        {"VRAMGUARD_LOG_MAX", "1K", "64M", true},
        {"VRAMGUARD_LISTEN", "port", "none (no endpoint)", false},
        {"VRAMGUARD_HEALTH_FAIL_ON", "leak", "none", true},
        {"VRAMGUARD_PURPOSE_RULES", "libfoo*=bogus", "none (no rules)", false},
        {"VRAMGUARD_BACKTRACE", "yes", "large", true},
        {"VRAMGUARD_VRAM_ARGV", "yes", "0", true},
        {"VRAMGUARD_LIMIT_MEMINFO", "2", "0", true},
    };
    static struct vg_config defaults;
    env_clear();
    ck_assert_int_eq(parse(), 0);
    defaults = parsed;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        env_clear();
        n_warnings = 0;
        env_set(cases[i].var, cases[i].bad);
        ck_assert_int_eq(parse(), 1);
        char want[128];
        snprintf(want, sizeof(want), "; using the default: %s", cases[i].dflt);
        size_t wl = strlen(want), l = strlen(warnings[0]);
        ck_assert_msg(l > wl && strcmp(warnings[0] + l - wl, want) == 0, "%s: warning does not end with \"%s\": %s",
                      cases[i].var, want, warnings[0]);
        ck_assert_msg(memcmp(&parsed, &defaults, sizeof(parsed)) == 0, "%s=%.20s: not the default configuration",
                      cases[i].var, cases[i].bad);
        if (cases[i].is_value) {
            env_clear();
            n_warnings = 0;
            env_set(cases[i].var, cases[i].dflt);
            ck_assert_int_eq(parse(), 0);
            ck_assert_msg(memcmp(&parsed, &defaults, sizeof(parsed)) == 0, "%s=%s is not the default", cases[i].var,
                          cases[i].dflt);
        }
    }
}
END_TEST

Suite *make_config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_policy_values);
    tcase_add_test(tc, test_policy_invalid);
    tcase_add_test(tc, test_backtrace_values);
    tcase_add_test(tc, test_invalid_keeps_non_default_neighbours);
    tcase_add_test(tc, test_empty_is_default_without_warning);
    tcase_add_test(tc, test_fail_on_lists);
    tcase_add_test(tc, test_fail_on_bad_list_rejected_whole);
    tcase_add_test(tc, test_allow_values);
    tcase_add_test(tc, test_log_stderr_or_path);
    tcase_add_test(tc, test_log_max);
    tcase_add_test(tc, test_report_path_and_too_long);
    tcase_add_test(tc, test_listen_auto);
    tcase_add_test(tc, test_null_warn_callback);
    tcase_add_test(tc, test_unknown_variables_ignored);
    tcase_add_test(tc, test_process_config_from_environment);
    tcase_add_test(tc, test_process_config_keeps_its_warnings);
    tcase_add_test(tc, test_invalid_names_the_default);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("paths_and_names");
    tcase_add_checked_fixture(tp, setup, NULL);
    tcase_add_test(tp, test_expand_path);
    tcase_add_test(tp, test_expand_path_overflow);
    tcase_add_test(tp, test_fail_on_string);
    tcase_add_test(tp, test_policy_name);
    suite_add_tcase(s, tp);
    return s;
}
