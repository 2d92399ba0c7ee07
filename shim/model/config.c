#include "config.h"
#include "process.h"
#include "rules.h"
#include "stacks.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A parser returns false for an invalid value; `cfg` is left unchanged then. */
typedef bool (*vg_parse_fn)(struct vg_config *cfg, const char *value);

struct vg_option {
    const char *name;
    vg_parse_fn parse;
    const char *accepted; /* named in the warning */
    const char *dflt;     /* the default (set_defaults), named in the warning too */
};

static bool parse_policy(struct vg_config *cfg, const char *v)
{
    if (strcmp(v, "reject") == 0) cfg->policy = VG_POLICY_REJECT;
    else if (strcmp(v, "warn") == 0) cfg->policy = VG_POLICY_WARN;
    else if (strcmp(v, "off") == 0) cfg->policy = VG_POLICY_OFF;
    else return false;
    return true;
}

/* Parse a comma-separated list of words against `words`; "none" is the empty set. */
static bool parse_flag_list(const char *v, const char *const *words, const unsigned *bits,
                            int n, unsigned *out)
{
    if (strcmp(v, "none") == 0) {
        *out = 0;
        return true;
    }
    unsigned result = 0;
    const char *p = v;
    for (;;) {
        size_t len = strcspn(p, ",");
        int found = -1;
        for (int i = 0; i < n; i++)
            if (strlen(words[i]) == len && strncmp(p, words[i], len) == 0)
                found = i;
        if (found < 0)
            return false;
        result |= bits[found];
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    *out = result;
    return true;
}

/* While a value is parsed: where a parser's own warnings go (one per
 * malformed VRAMGUARD_ALLOW rule, rather than one for the whole value). */
static vg_warn_fn parse_warn;
static int parse_warnings;

static void bad_allow_rule(const char *rule, const char *why, void *ctx)
{
    (void)ctx;
    char msg[512];
    snprintf(msg, sizeof(msg), "VRAMGUARD_ALLOW: rule \"%s\" is not valid (%s); it is left out, the other rules stay",
             rule, why);
    if (parse_warn)
        parse_warn(msg);
    parse_warnings++;
}

/* Rules (allow.h); a malformed one is dropped with its own warning, so
 * the value as a whole is always taken. */
static bool parse_allow(struct vg_config *cfg, const char *v)
{
    vg_allow_compile(v, &cfg->allowances, bad_allow_rule, NULL);
    cfg->allow = cfg->allowances.bare;
    return true;
}

static void bad_limit_entry(const char *entry, const char *why, void *ctx)
{
    (void)ctx;
    char msg[512];
    snprintf(msg, sizeof(msg),
             "VRAMGUARD_LIMIT: entry \"%s\" is not valid (%s); it is left out, the other entries stay", entry, why);
    if (parse_warn)
        parse_warn(msg);
    parse_warnings++;
}

/* Budgets (budget.h); a malformed entry is dropped with its own warning. */
static bool parse_limit(struct vg_config *cfg, const char *v)
{
    vg_budget_compile(v, &cfg->budgets, bad_limit_entry, NULL);
    return true;
}

static bool parse_limit_meminfo(struct vg_config *cfg, const char *v)
{
    if (strcmp(v, "1") == 0)
        cfg->limit_meminfo = true;
    else if (strcmp(v, "0") == 0)
        cfg->limit_meminfo = false;
    else
        return false;
    return true;
}

static bool parse_fail_on(struct vg_config *cfg, const char *v)
{
    static const char *const words[] = {"violation", "oom", "leak", "budget"};
    static const unsigned bits[] = {VG_FAIL_ON_VIOLATION, VG_FAIL_ON_OOM, VG_FAIL_ON_LEAK, VG_FAIL_ON_BUDGET};
    return parse_flag_list(v, words, bits, 4, &cfg->fail_on);
}

static bool copy_path(char *dst, const char *v)
{
    size_t n = strlen(v);
    if (n >= VG_PATH_MAX)
        return false;
    memcpy(dst, v, n + 1);
    return true;
}

static bool parse_report(struct vg_config *cfg, const char *v)
{
    return copy_path(cfg->report_path, v);
}

static bool parse_log(struct vg_config *cfg, const char *v)
{
    if (strcmp(v, "stderr") == 0) {
        cfg->log_path[0] = '\0';
        return true;
    }
    return copy_path(cfg->log_path, v);
}

/* While a value is parsed: the environment it is read from (for the
 * variables a value refers to, such as XDG_RUNTIME_DIR for LISTEN=auto). */
static vg_getenv_fn parse_getenv;

/* VRAMGUARD_LISTEN=auto: a Unix socket named after the pid in the per-user
 * live directory `vramguard top` reads by default: $XDG_RUNTIME_DIR/vramguard
 * (when it is an absolute path), else /tmp/vramguard-EUID. The endpoint
 * creates the directory (listen_dir). */
static bool parse_listen_auto(struct vg_config *cfg)
{
    const char *run = parse_getenv ? parse_getenv("XDG_RUNTIME_DIR") : NULL;
    char dir[VG_PATH_MAX];
    int n = run && run[0] == '/' ? snprintf(dir, sizeof(dir), "%s/vramguard", run)
                                 : snprintf(dir, sizeof(dir), "/tmp/vramguard-%u", (unsigned)geteuid());
    if (n < 0 || (size_t)n >= sizeof(dir))
        return false;
    char listen[VG_PATH_MAX];
    size_t o = 0;
    o += (size_t)snprintf(listen, sizeof(listen), "unix:");
    for (const char *p = dir; *p; p++) {
        if (o + 2 >= sizeof(listen))
            return false;
        if (*p == '%')
            listen[o++] = '%'; /* the template expands %p: a '%' of the path is written %% */
        listen[o++] = *p;
    }
    if (o + sizeof("/%p.sock") > sizeof(listen))
        return false;
    memcpy(listen + o, "/%p.sock", sizeof("/%p.sock"));
    memcpy(cfg->listen, listen, o + sizeof("/%p.sock"));
    memcpy(cfg->listen_dir, dir, (size_t)n + 1);
    return true;
}

static bool parse_listen(struct vg_config *cfg, const char *v)
{
    /* Syntax only; the endpoint reports a bind failure itself. */
    if (strcmp(v, "auto") == 0)
        return parse_listen_auto(cfg);
    if (strncmp(v, "unix:", 5) == 0)
        return v[5] == '/' && copy_path(cfg->listen, v);
    const char *port = strrchr(v, ':');
    port = port ? port + 1 : v;
    if (*port == '\0' || strspn(port, "0123456789") != strlen(port) || atol(port) > 65535)
        return false;
    if (port != v && port - 1 == v)
        return false; /* ":PORT" without a host */
    return copy_path(cfg->listen, v);
}

static bool parse_log_max(struct vg_config *cfg, const char *v)
{
    uint64_t max;
    if (!vg_parse_size(v, &max) || (max != 0 && max < VG_LOG_MAX_MIN))
        return false;
    cfg->log_max = max;
    return true;
}

static bool parse_log_level(struct vg_config *cfg, const char *v)
{
    static const char *const names[] = {"quiet", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(v, names[i]) == 0) {
            cfg->log_level = (enum vg_log_level)i;
            return true;
        }
    return false;
}

static bool parse_health_fail_on(struct vg_config *cfg, const char *v)
{
    static const char *const words[] = {"violation", "oom", "budget"};
    static const unsigned bits[] = {VG_FAIL_ON_VIOLATION, VG_FAIL_ON_OOM, VG_FAIL_ON_BUDGET};
    return parse_flag_list(v, words, bits, 3, &cfg->health_fail_on);
}

/* Why the last value was refused, when a parser can say more than the
 * accepted values do (appended to the warning). */
static char parse_detail[200];

static bool parse_rules(struct vg_config *cfg, const char *v)
{
    return vg_rules_valid(v, parse_detail, sizeof(parse_detail)) && copy_path(cfg->purpose_rules, v);
}

static bool parse_vram_argv(struct vg_config *cfg, const char *v)
{
    if (strcmp(v, "1") != 0 && strcmp(v, "0") != 0)
        return false;
    cfg->vram_argv = v[0] == '1';
    return true;
}

static bool parse_backtrace(struct vg_config *cfg, const char *v)
{
    if (strcmp(v, "1") == 0)
        cfg->backtrace = VG_BACKTRACE_ALL;
    else if (strcmp(v, "large") == 0)
        cfg->backtrace = VG_BACKTRACE_LARGE;
    else if (strcmp(v, "0") == 0)
        cfg->backtrace = VG_BACKTRACE_OFF;
    else
        return false;
    return true;
}

static bool parse_trace(struct vg_config *cfg, const char *v)
{
    return copy_path(cfg->trace_path, v);
}

static bool parse_trace_max(struct vg_config *cfg, const char *v)
{
    uint64_t max;
    if (!vg_parse_size(v, &max) || (max != 0 && max < VG_TRACE_MAX_MIN))
        return false;
    cfg->trace_max = max;
    return true;
}

/* The option table: every VRAMGUARD_* variable the shim reads. */
static const struct vg_option options[] = {
    {"VRAMGUARD_POLICY", parse_policy, "reject, warn, off", "reject"},
    {"VRAMGUARD_ALLOW", parse_allow,
     "none, or comma-separated KIND[:MODULE-GLOB][:<=SIZE][:total<=SIZE], KIND pinned, registered or managed", "none"},
    {"VRAMGUARD_FAIL_ON", parse_fail_on, "a comma list of violation, oom, leak, budget; or none", "violation"},
    {"VRAMGUARD_REPORT", parse_report, "a file path (%p expands to the pid)", "none (no report)"},
    {"VRAMGUARD_LOG", parse_log, "stderr, or a file path (%p expands to the pid)", "stderr"},
    {"VRAMGUARD_LOG_MAX", parse_log_max, "SIZE (K, M, G: powers of 1024), at least 4K; 0 for no limit", "64M"},
    {"VRAMGUARD_LOG_LEVEL", parse_log_level, "quiet, warn, info, debug", "info"},
    {"VRAMGUARD_LISTEN", parse_listen, "PORT (on 127.0.0.1), HOST:PORT (HOST an address literal or localhost), unix:/path (%p expands to the pid), "
     "or auto (unix:$XDG_RUNTIME_DIR/vramguard/%p.sock, else unix:/tmp/vramguard-UID/%p.sock)",
     "none (no endpoint)"},
    {"VRAMGUARD_HEALTH_FAIL_ON", parse_health_fail_on, "a comma list of violation, oom, budget; or none", "none"},
    {"VRAMGUARD_PURPOSE_RULES", parse_rules,
     "comma-separated RULE=PURPOSE, RULE a module glob (libcublas*) or a size (>=256M, <1K); "
     "PURPOSE weights, kv_cache, intermediate or unknown", "none (no rules)"},
    {"VRAMGUARD_BACKTRACE", parse_backtrace,
     "large (a stack for allocations of 1 MiB or more, not stream-ordered ones, refusals and OOMs), 1 (every "
     "allocation) or 0 (none)", "large"},
    {"VRAMGUARD_VRAM_ARGV", parse_vram_argv, "1 or 0", "0"},
    {"VRAMGUARD_LIMIT", parse_limit,
     "comma-separated [DEVICE:]SCOPE=SIZE, SCOPE total, weights, kv_cache, intermediate or unknown, "
     "SIZE NUMBER[K|M|G|T] (powers of 1024)", "none (no budget)"},
    {"VRAMGUARD_LIMIT_MEMINFO", parse_limit_meminfo, "1 or 0", "0"},
    {"VRAMGUARD_TRACE", parse_trace, "a file path (%p expands to the pid)", "none (no trace)"},
    {"VRAMGUARD_TRACE_MAX", parse_trace_max, "SIZE (K, M, G: powers of 1024), at least 1M; 0 for no limit", "256M"},
};

static void set_defaults(struct vg_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    vg_allow_compile(NULL, &cfg->allowances, NULL, NULL);
    vg_budget_compile(NULL, &cfg->budgets, NULL, NULL);
    cfg->policy = VG_POLICY_REJECT;
    cfg->fail_on = VG_FAIL_ON_VIOLATION;
    cfg->log_max = VG_LOG_MAX_DEFAULT;
    cfg->log_level = VG_LOG_INFO;
    cfg->backtrace = VG_BACKTRACE_LARGE;
    cfg->trace_max = VG_TRACE_MAX_DEFAULT;
}

int vg_config_parse(struct vg_config *cfg, vg_getenv_fn get, vg_warn_fn warn)
{
    int invalid = 0;
    set_defaults(cfg);
    parse_warn = warn;
    parse_getenv = get;
    parse_warnings = 0;
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
        const char *value = get(options[i].name);
        if (value == NULL || value[0] == '\0')
            continue; /* unset or empty: the default */
        parse_detail[0] = '\0';
        if (!options[i].parse(cfg, value)) {
            char msg[768];
            snprintf(msg, sizeof(msg), "%s=\"%.200s\" is not valid (%s%saccepted: %s); using the default: %s",
                     options[i].name, value, parse_detail, parse_detail[0] ? "; " : "", options[i].accepted,
                     options[i].dflt);
            if (warn)
                warn(msg);
            invalid++;
        }
    }
    parse_warn = NULL;
    parse_getenv = NULL;
    return invalid + parse_warnings;
}

static struct vg_config process_config;
static atomic_bool process_config_ready;
static pthread_once_t process_config_once = PTHREAD_ONCE_INIT;

static const char *real_getenv(const char *name)
{
    return getenv(name);
}

/* The configuration makes no output (it is the model's): its warnings wait
 * here until the outputs open the log and write them (events.c). */
static char warnings[VG_CONFIG_WARNINGS_MAX][768];
static int n_warnings;

static void keep_warning(const char *message)
{
    if (n_warnings < VG_CONFIG_WARNINGS_MAX)
        snprintf(warnings[n_warnings++], sizeof(warnings[0]), "%s", message);
}

int vg_config_warnings(const char **out, int max)
{
    vg_config();
    int n = n_warnings < max ? n_warnings : max;
    for (int i = 0; i < n; i++)
        out[i] = warnings[i];
    return n;
}

static void load_process_config(void)
{
    vg_config_parse(&process_config, real_getenv, keep_warning);
    vg_rules_load(process_config.purpose_rules);
    vg_stacks_enable(process_config.backtrace);
    vg_budgets_active = vg_budget_any(&process_config.budgets);
    vg_process_slow_set(VG_SLOW_BUDGETS, vg_budgets_active);
    atomic_store_explicit(&process_config_ready, true, memory_order_release);
}

const struct vg_config *vg_config(void)
{
    if (!atomic_load_explicit(&process_config_ready, memory_order_acquire))
        pthread_once(&process_config_once, load_process_config);
    return &process_config;
}

bool vg_expand_path(const char *tmpl, int pid, char *out, size_t out_size)
{
    size_t o = 0;
    for (const char *p = tmpl; *p; p++) {
        char num[24];
        const char *piece = NULL;
        if (p[0] == '%' && p[1] == 'p') {
            snprintf(num, sizeof(num), "%d", pid);
            piece = num;
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            piece = "%";
            p++;
        }
        if (piece) {
            size_t n = strlen(piece);
            if (o + n >= out_size)
                return false;
            memcpy(out + o, piece, n);
            o += n;
        } else {
            if (o + 1 >= out_size)
                return false;
            out[o++] = *p;
        }
    }
    if (o >= out_size)
        return false;
    out[o] = '\0';
    return true;
}

const char *vg_policy_name(enum vg_policy_mode mode)
{
    switch (mode) {
    case VG_POLICY_REJECT: return "reject";
    case VG_POLICY_WARN: return "warn";
    case VG_POLICY_OFF: return "off";
    }
    return "invalid";
}

char *vg_fail_on_string(unsigned fail_on, char *out, size_t out_size)
{
    static const char *const words[] = {"violation", "oom", "leak", "budget"};
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < 4; i++) {
        if (!(fail_on & (1u << i)))
            continue;
        int n = snprintf(out + o, out_size - o, "%s%s", o ? "," : "", words[i]);
        if (n < 0 || (size_t)n >= out_size - o)
            break;
        o += (size_t)n;
    }
    if (o == 0)
        snprintf(out, out_size, "none");
    return out;
}
