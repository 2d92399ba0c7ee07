/* Configuration: one option table (config.c), parsed once from the
 * environment. Values are parsed, never presence; an invalid value gets one
 * warning naming the variable and the accepted values, and the default stays. */
#ifndef VG_CONFIG_H
#define VG_CONFIG_H

#include "allow.h"
#include "budget.h"
#include "stacks.h"

#include <stdbool.h>
#include <stddef.h>

enum vg_policy_mode { VG_POLICY_REJECT = 0, VG_POLICY_WARN = 1, VG_POLICY_OFF = 2 };

/* VG_FAIL_ON_BUDGET: a VRAMGUARD_LIMIT budget refused an allocation (a
 * budget OOM; VG_FAIL_ON_OOM counts device OOMs only). */
enum { VG_FAIL_ON_VIOLATION = 1 << 0, VG_FAIL_ON_OOM = 1 << 1, VG_FAIL_ON_LEAK = 1 << 2, VG_FAIL_ON_BUDGET = 1 << 3 };
/* Kinds VRAMGUARD_ALLOW lets through with no condition and no cap: bit
 * 1 << vg_allow_kind (allow.h); VG_ALLOW_PINNED is `pinned`'s. */
enum { VG_ALLOW_PINNED = 1 << 0 };

/* VRAMGUARD_LOG_LEVEL: what the log shows. warn: refusals, OOM breakdowns,
 * bad settings and the shim's own problems; info (the default): also a
 * line per process at exit and the endpoint's address; debug: also the
 * entry points looked up and passed through. quiet: nothing. */
enum vg_log_level { VG_LOG_QUIET = 0, VG_LOG_WARN = 1, VG_LOG_INFO = 2, VG_LOG_DEBUG = 3 };

enum { VG_PATH_MAX = 1024 };
/* VRAMGUARD_LOG_MAX: the most bytes a process writes to its log, and to
 * its journal, each (0: no limit); at least VG_LOG_MAX_MIN. */
#define VG_LOG_MAX_DEFAULT (UINT64_C(64) << 20)
#define VG_LOG_MAX_MIN (UINT64_C(4) << 10)
/* VRAMGUARD_TRACE_MAX: the most bytes a process writes to its trace (0: no
 * limit); at least VG_TRACE_MAX_MIN (trace.h says how it stays under it). */
#define VG_TRACE_MAX_DEFAULT (UINT64_C(256) << 20)
#define VG_TRACE_MAX_MIN (UINT64_C(1) << 20)

struct vg_config {
    enum vg_policy_mode policy;
    unsigned allow;                  /* VG_ALLOW_*: the allowances' bare kinds (allow.h) */
    struct vg_allowances allowances; /* VRAMGUARD_ALLOW compiled: the rules the policy reads */
    unsigned fail_on;                /* VG_FAIL_ON_* */
    char report_path[VG_PATH_MAX];   /* template, "" = no report */
    char log_path[VG_PATH_MAX];      /* template, "" = stderr */
    char listen[VG_PATH_MAX];        /* "" = no endpoint; PORT, HOST:PORT or unix:/path (%p) */
    char listen_dir[VG_PATH_MAX];    /* VRAMGUARD_LISTEN=auto: the live directory to create, else "" */
    unsigned health_fail_on;         /* VG_FAIL_ON_*: what makes /health answer 503 */
    char purpose_rules[VG_PATH_MAX]; /* VRAMGUARD_PURPOSE_RULES as given, validated */
    enum vg_backtrace backtrace;     /* VRAMGUARD_BACKTRACE: 0, large (default), 1 */
    bool vram_argv;                  /* VRAMGUARD_VRAM_ARGV=1: /vram shows the command line */
    struct vg_budgets budgets;       /* VRAMGUARD_LIMIT compiled (budget.h) */
    bool limit_meminfo;              /* VRAMGUARD_LIMIT_MEMINFO=1: cuMemGetInfo reports the total budget */
    uint64_t log_max;                /* VRAMGUARD_LOG_MAX: cap of the log and of the journal, 0 = none */
    enum vg_log_level log_level;     /* VRAMGUARD_LOG_LEVEL */
    char trace_path[VG_PATH_MAX];    /* VRAMGUARD_TRACE: template (%p), "" = no trace */
    uint64_t trace_max;              /* VRAMGUARD_TRACE_MAX: bytes per process, 0 = no limit */
};

typedef const char *(*vg_getenv_fn)(const char *name);
typedef void (*vg_warn_fn)(const char *message);

/* Fill `cfg` with defaults, then apply every variable `get` returns.
 * Returns the number of invalid values (each reported through `warn`). */
int vg_config_parse(struct vg_config *cfg, vg_getenv_fn get, vg_warn_fn warn);

/* The process configuration, loaded from the real environment on first use
 * (it also compiles the purpose rules and enables backtraces). */
const struct vg_config *vg_config(void);
/* The process configuration's warnings (one per invalid value), kept for the
 * log: the configuration writes nothing itself; the outputs log these once
 * the log is open. Points `out` at them; returns how many. */
enum { VG_CONFIG_WARNINGS_MAX = 16 };
int vg_config_warnings(const char **out, int max);

/* Expand `%p` to the pid and `%%` to `%`. Returns false if it does not fit. */
bool vg_expand_path(const char *tmpl, int pid, char *out, size_t out_size);

const char *vg_policy_name(enum vg_policy_mode mode);
/* Writes e.g. "violation,oom,budget" or "none"; returns `out`. */
char *vg_fail_on_string(unsigned fail_on, char *out, size_t out_size);

#endif
