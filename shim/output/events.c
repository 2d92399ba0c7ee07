#include "events.h"
#include "files.h"
#include "allow.h"
#include "modules.h"
#include "breakdown.h"
#include "callers.h"
#include "config.h"
#include "devices.h"
#include "forksafe.h"
#include "log.h"
#include "purposes.h"
#include "repeats.h"
#include "stacks.h"
#include "table.h"
#include "who.h"
#include "trace.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

/* ---- the log: opened by the outputs, not by the configuration --------------- */

static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static bool log_opened; /* open_log ran (in this process or the parent it was forked from) */

static void open_log(void)
{
    log_opened = true;
    const struct vg_config *cfg = vg_config();
    vg_log_set_max(cfg->log_max);
    if (cfg->log_path[0]) {
        char path[VG_PATH_MAX];
        if (vg_expand_path(cfg->log_path, (int)getpid(), path, sizeof(path)))
            vg_log_open(path);
        else
            vg_log("VRAMGUARD_LOG path is too long; logging to stderr");
    }
    const char *warnings[VG_CONFIG_WARNINGS_MAX];
    int n = vg_config_warnings(warnings, VG_CONFIG_WARNINGS_MAX);
    for (int i = 0; i < n; i++)
        vg_log("%s", warnings[i]);
}

/* Before anything the outputs write: the log is where VRAMGUARD_LOG says. */
static void outputs_ready(void)
{
    pthread_once(&log_once, open_log);
}

/* ---- the report path and its journal, resolved once per process ------------- */

static pthread_mutex_t journal_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t *vg_events_journal_fork_mutex(void)
{
    return &journal_lock;
}
static char report_path[VG_PATH_MAX];
static bool report_path_ready;
static int journal_fd = -1;
static bool journal_tried;
static bool in_forked_child;
static struct timespec started_at;
/* Under journal_lock: what this process wrote to its journal (capped at
 * VRAMGUARD_LOG_MAX) and the events the cap kept out. */
static uint64_t journal_written, journal_over_cap;
static bool journal_capped;
enum { JOURNAL_CAP_ROOM = 256 }; /* kept under the cap for its final line */

void vg_format_time(const struct timespec *t, char *out, size_t size)
{
    struct tm tm;
    gmtime_r(&t->tv_sec, &tm);
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, t->tv_nsec / 1000000);
}

static void resolve_report_path_locked(void)
{
    if (report_path_ready)
        return;
    report_path_ready = true;
    const struct vg_config *cfg = vg_config();
    if (cfg->report_path[0] &&
        !vg_expand_path(cfg->report_path, (int)getpid(), report_path, sizeof(report_path))) {
        vg_log("VRAMGUARD_REPORT path is too long after expansion; no report will be written");
        report_path[0] = '\0';
    }
    if (vg_file_is_discard(report_path))
        report_path[0] = '\0'; /* /dev/null: no report, no journal (and the device node stays) */
    /* A forked child with a path shared with its parent would overwrite the
     * parent's report (and journal): it writes to "<path>.<pid>" instead. */
    if (in_forked_child && report_path[0] && strstr(cfg->report_path, "%p") == NULL) {
        size_t len = strlen(report_path);
        int n = snprintf(report_path + len, sizeof(report_path) - len, ".%d", (int)getpid());
        if (n < 0 || (size_t)n >= sizeof(report_path) - len) {
            vg_log("VRAMGUARD_REPORT has no %%p and is too long to take this forked child's pid; no report");
            report_path[0] = '\0';
        } else {
            vg_log("VRAMGUARD_REPORT has no %%p: this forked child (pid %d) reports to %s, not over its parent's",
                   (int)getpid(), report_path);
        }
    }
}

const char *vg_report_path(void)
{
    pthread_mutex_lock(&journal_lock);
    resolve_report_path_locked();
    pthread_mutex_unlock(&journal_lock);
    return report_path;
}

/* The process's start: when it first reached the driver or raised its
 * first event, whichever came first (threads may race to either). */
static void ensure_started_locked(void)
{
    if (started_at.tv_sec == 0 && started_at.tv_nsec == 0)
        clock_gettime(CLOCK_REALTIME, &started_at);
}

static int write_journal_locked(const char *line, size_t len)
{
    int error = vg_write_all(journal_fd, line, len);
    if (error == 0)
        journal_written += len;
    return error;
}

/* The journal's first line, written when it is opened: every event of the
 * run comes after it, whichever thread opens it (the CLI reads the events
 * after the last start line: a reused pid appends to an old journal). */
static int journal_start_locked(void)
{
    char line[VG_PATH_MAX + 256], exe[VG_PATH_MAX], when[40];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = '\0';
    ensure_started_locked();
    vg_format_time(&started_at, when, sizeof(when));
    struct vg_out o;
    vg_out_buffer(&o, line, sizeof(line));
    vg_out_printf(&o, "{\"event\":\"start\",\"pid\":%d,\"exe\":", (int)getpid());
    vg_out_json_string(&o, exe);
    vg_out_printf(&o, ",\"time\":\"%s\"}\n", when);
    return o.total < sizeof(line) ? write_journal_locked(line, o.total) : 0;
}

/* Room for `len` more bytes under VRAMGUARD_LOG_MAX; at the cap, the
 * journal's final line (and one log line) say so. */
static bool journal_room_locked(size_t len)
{
    uint64_t max = vg_config()->log_max;
    if (journal_capped)
        return false;
    if (max == 0 || journal_written + len + JOURNAL_CAP_ROOM <= max)
        return true;
    journal_capped = true;
    char line[JOURNAL_CAP_ROOM], when[40], size[32];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    vg_format_time(&now, when, sizeof(when));
    int n = snprintf(line, sizeof(line), "{\"event\":\"capped\",\"pid\":%d,\"time\":\"%s\",\"max_bytes\":%llu}\n",
                     (int)getpid(), when, (unsigned long long)max);
    if (n > 0 && (size_t)n < sizeof(line))
        write_journal_locked(line, (size_t)n);
    vg_log("the journal %s.journal reached VRAMGUARD_LOG_MAX (%s): later events are counted, not journaled; "
           "the report has the exact counts",
           report_path, vg_format_bytes(max, size, sizeof(size)));
    return false;
}

/* Append one line to the journal (opened on first use, its start line
 * first); NULL only opens it. */
static void journal_append(const char *line, size_t len)
{
    pthread_mutex_lock(&journal_lock);
    resolve_report_path_locked();
    int error = 0;
    if (!journal_tried && report_path[0]) {
        journal_tried = true;
        char path[VG_PATH_MAX + 16];
        snprintf(path, sizeof(path), "%s.journal", report_path);
        journal_fd = vg_file_open_append(path);
        if (journal_fd < 0)
            vg_log("cannot open the journal %s (%s); events are only logged", path,
                   errno == ELOOP ? "a symbolic link is not followed" : strerror(errno));
        else
            error = journal_start_locked();
    }
    if (journal_fd >= 0 && line != NULL && error == 0) {
        if (journal_room_locked(len))
            error = write_journal_locked(line, len);
        else
            journal_over_cap++;
    }
    if (error != 0) {
        /* Full disk or size limit: the line may be cut short; nothing is
         * appended after it, so readers see at most one partial last line. */
        close(journal_fd);
        journal_fd = -1;
        vg_log("cannot append to the journal %s.journal (%s); later events are only logged", report_path,
               strerror(error));
    }
    pthread_mutex_unlock(&journal_lock);
}

void vg_events_journal_stats(struct vg_journal_stats *out)
{
    pthread_mutex_lock(&journal_lock);
    *out = (struct vg_journal_stats){journal_written, vg_config()->log_max, journal_over_cap, journal_capped,
                                     journal_tried && report_path[0]};
    pthread_mutex_unlock(&journal_lock);
}

void vg_events_reset_after_fork(void)
{
    vg_log_reset_after_fork();
    /* A per-process log (VRAMGUARD_LOG with %p) that the parent opened: the
     * child writes its own, not into its parent's. */
    char path[VG_PATH_MAX];
    if (log_opened && strstr(vg_config()->log_path, "%p") &&
        vg_expand_path(vg_config()->log_path, (int)getpid(), path, sizeof(path)))
        vg_log_open(path);
    if (journal_fd >= 0)
        close(journal_fd);
    journal_fd = -1;
    journal_tried = false;
    report_path_ready = false;
    report_path[0] = '\0';
    in_forked_child = true;
    started_at = (struct timespec){0, 0};
    journal_written = journal_over_cap = 0;
    journal_capped = false;
    vg_repeat_reset();
}

/* ---- who asked: sites named as events happen ----------------------------- */

/* The files mapped to name one event's site, under who_lock (events come
 * from any thread); unmapped after each. No heap: the OOM path uses it. */
static struct vg_symbols event_symbols;
static pthread_mutex_t who_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t *vg_events_who_fork_mutex(void)
{
    return &who_lock;
}

static void who_text(const struct vg_event *e, char *out, size_t size)
{
    pthread_mutex_lock(&who_lock);
    vg_symbols_init(&event_symbols);
    vg_who_or_caller_text(&event_symbols, e->stack, e->caller, out, size);
    vg_symbols_done(&event_symbols);
    pthread_mutex_unlock(&who_lock);
}

/* ---- events --------------------------------------------------------------- */

static void fill_event(struct vg_event *e, const struct vg_call *c, CUresult result)
{
    clock_gettime(CLOCK_REALTIME, &e->time);
    e->api = c->api;
    e->caller = c->caller;
    /* Every refusal and OOM gets a stack (unless VRAMGUARD_BACKTRACE=0),
     * whatever its size: taken here, off the allocation path. */
    e->stack = c->stack ? c->stack : vg_stack_capture();
    e->size = c->size;
    e->device = c->device;
    e->kind = c->kind;
    e->purpose = c->purpose;
    e->label = c->label;
    e->action = c->action;
    e->result = result;
    e->budget = -1;
    e->budget_limit = 0;
}

void vg_event_json_fields(struct vg_out *o, const struct vg_event *e, bool violation, struct vg_symbols *symbols)
{
    char when[40], caller[512];
    vg_format_time(&e->time, when, sizeof(when));
    vg_out_printf(o, "\"time\":\"%s\",\"api\":", when);
    vg_out_json_string(o, e->api);
    vg_out_printf(o, ",\"kind\":\"%s\",\"size\":%llu,\"device\":%d,\"purpose\":\"%s\",\"label\":",
                  vg_kind_name(e->kind), (unsigned long long)e->size, e->device, vg_purpose_name(e->purpose));
    vg_out_json_string(o, vg_label_text(e->label));
    vg_out_str(o, ",\"caller\":");
    vg_caller_text(e->caller, true, caller, sizeof(caller));
    vg_out_json_string(o, caller);
    vg_who_json(o, symbols, e->stack, e->caller, false);
    if (violation)
        vg_out_printf(o, ",\"action\":\"%s\"", e->action == VG_ACTION_REJECT ? "rejected" : "allowed");
    vg_out_printf(o, ",\"result\":%d", (int)e->result);
    if (!violation && e->budget >= 0)
        vg_out_printf(o, ",\"budget\":\"%s\",\"budget_limit\":%llu", vg_budget_scope_name(e->budget),
                      (unsigned long long)e->budget_limit);
    if (violation && e->allow_rule[0]) {
        vg_out_str(o, ",\"allow_rule\":");
        vg_out_json_string(o, e->allow_rule);
    }
}

/* The journal line: {"event":TYPE,"pid":N, the report's fields for the event}. */
static void journal_event(const char *type, const struct vg_event *e)
{
    if (!vg_report_path()[0])
        return;
    char line[4096]; /* the longest fields: caller, label, rule, the site's function and module */
    struct vg_out o;
    vg_out_buffer(&o, line, sizeof(line));
    vg_out_printf(&o, "{\"event\":\"%s\",\"pid\":%d,", type, (int)getpid());
    pthread_mutex_lock(&who_lock);
    vg_symbols_init(&event_symbols);
    vg_event_json_fields(&o, e, strcmp(type, "violation") == 0, &event_symbols);
    vg_symbols_done(&event_symbols);
    pthread_mutex_unlock(&who_lock);
    vg_out_str(&o, "}\n");
    if (o.total < sizeof(line))
        journal_append(line, o.total);
}

const char *vg_cuda_error_name(CUresult r)
{
    switch (r) {
    case CUDA_SUCCESS: return "CUDA_SUCCESS";
    case CUDA_ERROR_INVALID_VALUE: return "CUDA_ERROR_INVALID_VALUE";
    case CUDA_ERROR_OUT_OF_MEMORY: return "CUDA_ERROR_OUT_OF_MEMORY";
    case CUDA_ERROR_NOT_INITIALIZED: return "CUDA_ERROR_NOT_INITIALIZED";
    case CUDA_ERROR_INVALID_CONTEXT: return "CUDA_ERROR_INVALID_CONTEXT";
    case CUDA_ERROR_NOT_PERMITTED: return "CUDA_ERROR_NOT_PERMITTED";
    case CUDA_ERROR_NOT_SUPPORTED: return "CUDA_ERROR_NOT_SUPPORTED";
    default: return "CUDA error";
    }
}

/* The narrowest VRAMGUARD_ALLOW rule that would let this allocation through
 * (allow.h), "" for memory no rule can allow. */
static void narrowest_rule(const struct vg_call *c, char *out, size_t size)
{
    out[0] = '\0';
    if (vg_allow_kind_of(c->kind) < 0)
        return;
    char module[128];
    bool named = vg_module_name(c->caller, module, sizeof(module));
    vg_allow_narrowest(c->kind, c->size, named ? module : NULL, out, size);
}

/* ---- repeated events: the first few of a group, then counts -------------- */

static const char *const type_words[VG_REPEAT_TYPES] = {"violations", "OOM events", "budget OOMs"};
static const char *const type_events[VG_REPEAT_TYPES] = {"violation", "oom", "oom"};

/* The journal line of a group of repeats: {"event":EVENT,"pid":N,"time":T,
 * "of":"violation"|"oom", then `extra` (count, since), then the group's
 * fields (an overflow group: kind and size only, and "budget":null for
 * budget OOMs: a reader counts them apart from the device's OOMs). */
static void journal_group(const char *event, const struct vg_repeat_group *g, bool other, uint64_t size,
                          const char *extra)
{
    if (!vg_report_path()[0])
        return;
    char line[2048], when[40], caller[512];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    vg_format_time(&now, when, sizeof(when));
    struct vg_out o;
    vg_out_buffer(&o, line, sizeof(line));
    vg_out_printf(&o, "{\"event\":\"%s\",\"pid\":%d,\"time\":\"%s\",\"of\":\"%s\"%s", event, (int)getpid(), when,
                  type_events[g->type], extra);
    if (other) {
        vg_out_printf(&o, ",\"kind\":\"%s\",\"size\":%llu", vg_kind_name(g->kind), (unsigned long long)size);
        if (g->type == VG_REPEAT_BUDGET_OOM) /* budget OOMs of several scopes: told apart from the device's */
            vg_out_str(&o, ",\"budget\":null");
    } else {
        vg_caller_text(g->caller, true, caller, sizeof(caller));
        vg_out_str(&o, ",\"api\":");
        vg_out_json_string(&o, g->api);
        vg_out_printf(&o, ",\"kind\":\"%s\",\"size\":%llu,\"device\":%d,\"caller\":", vg_kind_name(g->kind),
                      (unsigned long long)size, g->device);
        vg_out_json_string(&o, caller);
        if (g->type == VG_REPEAT_VIOLATION)
            vg_out_printf(&o, ",\"action\":\"%s\"", g->action == VG_ACTION_REJECT ? "rejected" : "allowed");
        vg_out_printf(&o, ",\"result\":%d", (int)g->result);
        if (g->type == VG_REPEAT_BUDGET_OOM)
            vg_out_printf(&o, ",\"budget\":\"%s\"", vg_budget_scope_name(g->budget));
    }
    vg_out_str(&o, "}\n");
    if (o.total < sizeof(line))
        journal_append(line, o.total);
}

/* One summary of suppressed events: a log line and a journal line
 * {"event":"suppressed","of":...,"count":N,"since":T, the group's fields},
 * "size" the largest suppressed. */
static void write_summary(const struct vg_repeat_summary *s)
{
    const struct vg_repeat_group *g = &s->group;
    char since[40], caller[512], size[32], extra[100];
    vg_format_time(&s->since, since, sizeof(since));
    if (s->other) {
        vg_log("%llu more %s of kind %s suppressed since %s (the largest %s; of the groups past the first %d: "
               "call site, API, kind, device); the report has the exact counts",
               (unsigned long long)s->count, type_words[g->type], vg_kind_name(g->kind), since,
               vg_format_bytes(s->max_size, size, sizeof(size)), VG_REPEATS_GROUPS);
    } else {
        vg_caller_text(g->caller, true, caller, sizeof(caller));
        vg_log("%llu more %s like this suppressed since %s: %s%s%s on device %d from %s (the largest %s), %s (%d); "
               "the report has the exact counts",
               (unsigned long long)s->count, type_words[g->type], since, g->api,
               g->type == VG_REPEAT_VIOLATION ? " of kind " : "",
               g->type == VG_REPEAT_VIOLATION ? vg_kind_name(g->kind) : "", g->device, caller,
               vg_format_bytes(s->max_size, size, sizeof(size)), vg_cuda_error_name(g->result), (int)g->result);
    }
    snprintf(extra, sizeof(extra), ",\"count\":%llu,\"since\":\"%s\"", (unsigned long long)s->count, since);
    journal_group("suppressed", g, s->other, s->max_size, extra);
}

/* Whether to write this event out (log and journal): the first
 * VG_REPEATS_SHOWN of its group are, later ones are counted (repeats.h). */
static bool admit(int type, const struct vg_event *e)
{
    struct vg_repeat_group g = {type, e->api, e->caller, e->kind, e->device, (int)e->action, e->budget, e->result};
    struct vg_repeat_decision d;
    struct timespec mono;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    vg_repeat_admit(&g, e->size, &e->time, mono.tv_sec, &d);
    if (d.first_held && d.other) {
        vg_log("more %s of further groups (past the first %d: call site, API, kind, device) are counted, not "
               "logged: a summary every %d s while they go on, and at exit",
               type_words[type], VG_REPEATS_GROUPS, VG_REPEATS_PERIOD_S);
    } else if (d.first_held) {
        char caller[512];
        vg_caller_text(e->caller, true, caller, sizeof(caller));
        vg_log("more %s like this (%s on device %d from %s) are counted, not logged: a summary every %d s while "
               "they go on, and at exit",
               type_words[type], e->api, e->device, caller, VG_REPEATS_PERIOD_S);
    }
    if (d.first_held) /* a killed process's journal then says its counts are lower bounds */
        journal_group("suppressing", &g, d.other, e->size, "");
    if (d.summary_due)
        write_summary(&d.summary);
    return d.write;
}

void vg_events_at_exit(void)
{
    struct vg_repeat_summary s;
    while (vg_repeat_take_pending(&s))
        write_summary(&s);
    if (!vg_report_path()[0])
        return;
    /* The journal is whole: every event is in it, or in a summary. */
    char line[128], when[40];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    vg_format_time(&now, when, sizeof(when));
    int n = snprintf(line, sizeof(line), "{\"event\":\"exit\",\"pid\":%d,\"time\":\"%s\"}\n", (int)getpid(), when);
    if (n > 0 && (size_t)n < sizeof(line))
        journal_append(line, (size_t)n);
}

/* ---- events --------------------------------------------------------------- */

void vg_event_violation(const struct vg_call *c, CUresult result)
{
    outputs_ready();
    struct vg_event e;
    fill_event(&e, c, result);
    narrowest_rule(c, e.allow_rule, sizeof(e.allow_rule));
    vg_incident_violation(&e);
    vg_trace_incident(VG_TRACE_REFUSAL, c, (int)result, NULL, e.stack);
    if (!admit(VG_REPEAT_VIOLATION, &e))
        return;

    char caller[512], size[32];
    const char *label = vg_label_text(c->label);
    who_text(&e, caller, sizeof(caller));
    char rule[VG_ALLOW_TEXT + 64];
    if (e.allow_rule[0] && c->capped)
        snprintf(rule, sizeof(rule), "a VRAMGUARD_ALLOW rule matches but its kind's cap (total<=) is reached");
    else if (e.allow_rule[0])
        snprintf(rule, sizeof(rule), "VRAMGUARD_ALLOW=%s would allow it", e.allow_rule);
    else
        snprintf(rule, sizeof(rule), "not host or managed memory any rule can allow");
    vg_log("violation: %s%s%s of %s (%llu bytes), kind %s, device %d, purpose %s%s%s%s, from %s: %s %s (%d); %s; %s",
           c->api, c->api != c->driver_api ? " via " : "", c->api != c->driver_api ? c->driver_api : "",
           vg_format_bytes(c->size, size, sizeof(size)), (unsigned long long)c->size, vg_kind_name(c->kind),
           c->device, vg_purpose_name(c->purpose), label ? " (label \"" : "", label ? label : "",
           label ? "\")" : "", caller,
           c->action == VG_ACTION_REJECT          ? "refused with"
           : vg_config()->policy == VG_POLICY_WARN ? "allowed by VRAMGUARD_POLICY=warn, driver returned"
                                                   : "let through (it cannot be refused), driver returned",
           vg_cuda_error_name(result), (int)result,
           c->kind == VG_KIND_MANAGED ? "managed (unified) memory can migrate to the host"
                                      : "host memory is not VRAM",
           rule);
    journal_event("violation", &e);
}

void vg_event_oom(const struct vg_call *c, CUresult result)
{
    outputs_ready();
    struct vg_event e;
    fill_event(&e, c, result);
    uint64_t total = 0;
    uint64_t on_device = vg_incident_oom(&e, &total);
    vg_trace_incident(VG_TRACE_OOM, c, (int)result, NULL, e.stack);
    if (!admit(VG_REPEAT_OOM, &e) && on_device != 1)
        return;

    if (on_device == 1) {
        vg_breakdown_oom(c, e.stack);
    } else {
        char caller[512], size[32], free_s[32], total_s[32];
        uint64_t free_b = 0, total_b = 0;
        bool mem = vg_device_mem_info(&free_b, &total_b);
        who_text(&e, caller, sizeof(caller));
        vg_log("out of memory again (#%llu on device %d, #%llu in all): %s of %s, purpose %s, from %s; "
               "device free %s of %s; see the first breakdown above",
               (unsigned long long)on_device, c->device, (unsigned long long)total, c->api,
               vg_format_bytes(c->size, size, sizeof(size)), vg_purpose_name(c->purpose), caller,
               mem ? vg_format_bytes(free_b, free_s, sizeof(free_s)) : "?",
               mem ? vg_format_bytes(total_b, total_s, sizeof(total_s)) : "?");
    }
    journal_event("oom", &e);
}

void vg_event_budget_oom(const struct vg_call *c, const struct vg_budget_hit *hit)
{
    outputs_ready();
    struct vg_event e;
    fill_event(&e, c, CUDA_ERROR_OUT_OF_MEMORY);
    e.budget = hit->scope;
    e.budget_limit = hit->limit;
    uint64_t total = 0;
    uint64_t on_device = vg_incident_budget_oom(&e, &total);
    vg_trace_incident(VG_TRACE_BUDGET_OOM, c, CUDA_ERROR_OUT_OF_MEMORY, hit, e.stack);
    if (!admit(VG_REPEAT_BUDGET_OOM, &e) && on_device != 1)
        return;

    if (on_device == 1) {
        vg_breakdown_budget_oom(c, e.stack, hit);
    } else {
        char caller[512], size[32], limit[32], used[32];
        who_text(&e, caller, sizeof(caller));
        vg_log("over budget again (#%llu on device %d, #%llu in all): %s of %s, purpose %s, from %s: "
               "VRAMGUARD_LIMIT %s=%s, %s %s; refused with CUDA_ERROR_OUT_OF_MEMORY (2)",
               (unsigned long long)on_device, c->device, (unsigned long long)total, c->api,
               vg_format_bytes(c->size, size, sizeof(size)), vg_purpose_name(c->purpose), caller,
               vg_budget_scope_name(hit->scope), vg_format_bytes(hit->limit, limit, sizeof(limit)),
               hit->scope == VG_BUDGET_TOTAL ? "charged VRAM" : "live in the purpose",
               vg_format_bytes(hit->used, used, sizeof(used)));
    }
    journal_event("oom", &e);
}

void vg_event_passthrough(const char *name, const char *reason)
{
    if (!vg_log_enabled(VG_LOG_DEBUG))
        return; /* the default: nothing the user can act on */
    outputs_ready();
    vg_log_at(VG_LOG_DEBUG, "%s was looked up; vramguard passes it through (%s); the report lists every one", name,
              reason);
}

void vg_event_untracked(const struct vg_call *c)
{
    static atomic_bool said;
    if (atomic_exchange(&said, true))
        return; /* counted by the table; the exit line and the report give the total */
    outputs_ready();
    char caller[512], size[32];
    vg_caller_text(c->caller, true, caller, sizeof(caller));
    vg_log("out of host memory: cannot track %s of %s from %s (it succeeded and is not tracked); the report's "
           "live and leak figures will say unknown",
           c->api, vg_format_bytes(c->size, size, sizeof(size)), caller);
}

void vg_events_process_start(void)
{
    outputs_ready();
    pthread_mutex_lock(&journal_lock);
    ensure_started_locked();
    char when[40];
    vg_format_time(&started_at, when, sizeof(when)); /* gmtime_r's one-time setup (heap) now, not on the OOM path */
    pthread_mutex_unlock(&journal_lock);
    if (vg_report_path()[0])
        journal_append(NULL, 0); /* opens the journal: its start line */
}

struct timespec vg_events_started_at(void)
{
    pthread_mutex_lock(&journal_lock);
    struct timespec t = started_at;
    pthread_mutex_unlock(&journal_lock);
    return t;
}
