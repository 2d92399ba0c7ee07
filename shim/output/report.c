#include "report.h"
#include "files.h"
#include "modules.h"
#include "allow.h"
#include "callers.h"
#include "census.h"
#include "config.h"
#include "devices.h"
#include "vmm.h"
#include "holes.h"
#include "events.h"
#include "log.h"
#include "pools.h"
#include "process.h"
#include "purposes.h"
#include "repeats.h"
#include "stacks.h"
#include "table.h"
#include "who.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { LIVE_LISTED_MAX = 1000 };

/* Everything one report needs besides the sink: malloc'd per report, so
 * that /vram, the exit report and vramguard_report() never share it (and
 * the OOM path's static scratch is not held while a report is written).
 * The exit report falls back on a static one (exit_scratch): out of host
 * memory, it is still written. */
struct report_scratch {
    struct vg_out sink; /* the exit report's file */
    struct vg_stats stats;
    struct vg_pool_totals totals;
    struct vg_alloc largest[LIVE_LISTED_MAX];
    struct vg_top top;
    struct vg_sites sites;
    struct vg_census census;
    struct vg_modules modules;
    struct vg_symbols symbols; /* files mapped while the report is written */
    struct vg_module_bytes by_module[VG_MODULES_SHOWN];
    struct vg_event kept[VG_EVENTS_KEPT];
};

/* ---- JSON ---------------------------------------------------------------- */

static void json_events(struct vg_out *o, struct report_scratch *r, const char *name, uint64_t count,
                        bool violation)
{
    int n = violation ? vg_violations_kept(r->kept, VG_EVENTS_KEPT) : vg_ooms_kept(r->kept, VG_EVENTS_KEPT);
    vg_out_printf(o, ",\n  \"%s\": {\"count\": %llu, \"recorded\": [", name, (unsigned long long)count);
    for (int i = 0; i < n; i++) {
        vg_out_str(o, i ? ",\n    {" : "\n    {");
        vg_event_json_fields(o, &r->kept[i], violation, &r->symbols);
        vg_out_str(o, "}");
    }
    vg_out_str(o, "]}");
}

/* `with_argv` false: "argv" is [] and "argv_omitted" true (the command
 * line can hold secrets; /vram leaves it out unless VRAMGUARD_VRAM_ARGV=1).
 * `live`: a running process (/vram): "state": "running" and the time of
 * the snapshot ("at"); else the exit report's "state": "exited", "ended_at". */
static void json_process(struct vg_out *o, bool with_argv, bool live)
{
    char exe[VG_PATH_MAX], when[40];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = '\0';
    vg_out_printf(o, "  \"process\": {\"pid\": %d, \"ppid\": %d, \"exe\": ", (int)getpid(), (int)getppid());
    vg_out_json_string(o, exe);
    vg_out_str(o, ", \"argv\": [");
    int fd = with_argv ? open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC) : -1;
    if (fd >= 0) {
        char buf[8192];
        ssize_t len = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (len > 0) {
            buf[len] = '\0';
            int i = 0;
            for (char *p = buf; p < buf + len; p += strlen(p) + 1, i++) {
                if (i)
                    vg_out_str(o, ", ");
                vg_out_json_string(o, p);
            }
        }
    }
    struct timespec started_at = vg_events_started_at();
    vg_format_time(&started_at, when, sizeof(when));
    vg_out_printf(o, "], %s\"started_at\": \"%s\", ", with_argv ? "" : "\"argv_omitted\": true, ", when);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    vg_format_time(&now, when, sizeof(when));
    vg_out_printf(o, "\"state\": \"%s\", \"%s\": \"%s\"}", live ? "running" : "exited", live ? "at" : "ended_at",
                  when);
}

static void json_config(struct vg_out *o, const struct vg_config *cfg)
{
    vg_out_printf(o, ",\n  \"config\": {\"policy\": \"%s\", \"allow\": [", vg_policy_name(cfg->policy));
    for (int i = 0; i < cfg->allowances.n; i++) {
        vg_out_str(o, i ? ", " : "");
        vg_out_json_string(o, cfg->allowances.rule[i].text);
    }
    vg_out_str(o, "], \"fail_on\": [");
    static const char *const words[] = {"violation", "oom", "leak", "budget"};
    int k = 0;
    for (int i = 0; i < 4; i++)
        if (cfg->fail_on & (1u << i))
            vg_out_printf(o, "%s\"%s\"", k++ ? ", " : "", words[i]);
    vg_out_str(o, "]}");
}

/* What VRAMGUARD_ALLOW let through: per rule (allocations and bytes, all
 * the process's), per kind (live bytes now, and the cap). */
/* VRAMGUARD_LIMIT: per device seen and scope with a budget, the budget and
 * the budget OOMs it caused. Only when a budget is set. */
static void json_budgets(struct vg_out *o, struct report_scratch *r, const struct vg_config *cfg)
{
    if (!vg_budget_any(&cfg->budgets))
        return;
    int devices = vg_table_device_count();
    if (devices < 1)
        devices = 1;
    vg_out_printf(o, ",\n  \"budgets\": {\"oom_events\": %llu, \"budgets\": [",
                  (unsigned long long)vg_budget_oom_count());
    int n = 0;
    for (int d = 0; d < devices && d < VG_MAX_DEVICES; d++)
        for (int sc = 0; sc < VG_BUDGET_SCOPES; sc++) {
            uint64_t limit = cfg->budgets.limit[d][sc];
            if (limit == VG_BUDGET_NONE)
                continue;
            vg_out_printf(o, "%s{\"device\": %d, \"scope\": \"%s\", \"bytes\": %llu, \"oom_events\": %llu}",
                          n++ ? ", " : "", d, vg_budget_scope_name(sc), (unsigned long long)limit,
                          (unsigned long long)vg_budget_oom_count_at(d, sc));
        }
    vg_out_str(o, "], \"recorded\": [");
    int k = vg_budget_ooms_kept(r->kept, VG_EVENTS_KEPT);
    for (int i = 0; i < k; i++) {
        vg_out_str(o, i ? ",\n    {" : "\n    {");
        vg_event_json_fields(o, &r->kept[i], false, &r->symbols);
        vg_out_str(o, "}");
    }
    vg_out_str(o, "]}");
}

static void json_allowances(struct vg_out *o, const struct vg_config *cfg)
{
    struct vg_allow_stats st;
    vg_allow_stats(&st);
    vg_out_str(o, ",\n  \"allowances\": {\"rules\": [");
    for (int i = 0; i < cfg->allowances.n; i++) {
        vg_out_str(o, i ? ", " : "");
        vg_out_str(o, "{\"rule\": ");
        vg_out_json_string(o, cfg->allowances.rule[i].text);
        vg_out_printf(o, ", \"kind\": \"%s\", \"allocations\": %llu, \"bytes\": %llu}",
                      vg_allow_kind_name(cfg->allowances.rule[i].kind), (unsigned long long)st.allocations[i],
                      (unsigned long long)st.bytes[i]);
    }
    vg_out_str(o, "], \"kinds\": [");
    for (int k = 0; k < VG_AK_COUNT; k++) {
        vg_out_printf(o, "%s{\"kind\": \"%s\", \"live_bytes\": %llu, \"cap_bytes\": ", k ? ", " : "",
                      vg_allow_kind_name(k), (unsigned long long)st.live[k]);
        if (cfg->allowances.cap[k] == UINT64_MAX)
            vg_out_str(o, "null}");
        else
            vg_out_printf(o, "%llu}", (unsigned long long)cfg->allowances.cap[k]);
    }
    vg_out_str(o, "]}");
}

static void json_devices(struct vg_out *o, struct report_scratch *r)
{
    const struct vg_stats *s = &r->stats;
    const struct vg_pool_totals *t = &r->totals;
    vg_out_str(o, ",\n  \"devices\": [");
    for (int d = 0; d < s->device_count; d++) {
        struct vg_device_info info;
        bool known = vg_device_info(d, &info);
        vg_out_printf(o, "%s\n    {\"device\": %d, \"name\": ", d ? "," : "", d);
        vg_out_json_string(o, known ? info.name : "unknown");
        struct vg_charge ch;
        vg_device_charge(s, t, d, &ch);
        vg_out_printf(o, ", \"charged_bytes\": %llu, \"live_vram_bytes\": %llu, \"pool_reserved_bytes\": %llu, "
                      "\"pool_cache_bytes\": %llu, \"graph_reserved_bytes\": %llu, \"pool_figures_current\": %s",
                      (unsigned long long)ch.charged, (unsigned long long)ch.live,
                      (unsigned long long)ch.pool_reserved, (unsigned long long)ch.pool_cache,
                      (unsigned long long)ch.graph_reserved, t->known ? "true" : "false");
        vg_out_printf(o, ", \"total_bytes\": %llu, \"pageable_memory_access\": %s, \"oom_events\": %llu, "
                      "\"peak_vram_bytes\": %llu, \"usage\": [",
                      (unsigned long long)(known ? info.total_bytes : 0),
                      !known || info.pageable_memory_access < 0 ? "null"
                                                                : (info.pageable_memory_access ? "true" : "false"),
                      (unsigned long long)vg_oom_count_device(d), (unsigned long long)s->device_peak[d]);
        int k2 = 0;
        for (int k = 0; k < VG_KIND_SLOTS; k++)
            for (int p = 0; p < VG_PURPOSE_SLOTS; p++) {
                const struct vg_cell *c = &s->cell[d][k][p];
                if (c->allocations == 0 && c->live_count == 0)
                    continue;
                vg_out_printf(o,
                              "%s\n      {\"kind\": \"%s\", \"purpose\": \"%s\", \"live_bytes\": %llu, "
                              "\"live_count\": %llu, \"peak_bytes\": %llu, \"allocations\": %llu, \"frees\": %llu}",
                              k2++ ? "," : "", vg_kind_name(k), vg_purpose_name(p),
                              (unsigned long long)c->live_bytes, (unsigned long long)c->live_count,
                              (unsigned long long)c->peak_bytes, (unsigned long long)c->allocations,
                              (unsigned long long)c->frees);
            }
        vg_out_str(o, "], \"untagged_by_module\": [");
        int m = d < VG_MAX_DEVICES ? vg_census_by_module(&r->sites, d, &r->modules, r->by_module, VG_MODULES_SHOWN) : 0;
        for (int i = 0; i < m; i++) {
            vg_out_str(o, i ? ", {\"module\": " : "{\"module\": ");
            vg_out_json_string(o, r->by_module[i].name);
            vg_out_printf(o, ", \"live_bytes\": %llu, \"live_count\": %llu}", (unsigned long long)r->by_module[i].bytes,
                          (unsigned long long)r->by_module[i].count);
        }
        vg_out_str(o, "]}");
    }
    vg_out_str(o, "]");
}

/* The largest live allocations (the census kept them; nothing else is
 * sorted), each call site resolved through the module snapshot. */
/* A count the report can vouch for, or "unknown" (allocations the table
 * could not hold: out of host memory). */
static void count_or_unknown(struct vg_out *o, bool known, uint64_t n)
{
    if (known)
        vg_out_printf(o, "%llu", (unsigned long long)n);
    else
        vg_out_str(o, "\"unknown\"");
}

/* The live allocations: "live_at_exit" in the exit report (leaks), "live"
 * in a running process's /vram (nothing is judged yet). */
static void json_live(struct vg_out *o, struct report_scratch *r, bool live)
{
    bool known = r->stats.dropped == 0;
    vg_out_printf(o, ",\n  \"%s\": {\"count\": ", live ? "live" : "live_at_exit");
    count_or_unknown(o, known, r->census.count);
    vg_out_str(o, ", \"bytes\": ");
    count_or_unknown(o, known, r->census.bytes);
    vg_out_str(o, ", \"allocations\": [");
    for (int i = 0; i < r->top.n; i++) {
        const struct vg_alloc *a = &r->top.e[i];
        bool handle = vg_key_is_handle(a);
        vg_out_printf(o, "%s\n    {\"address\": \"0x%llx\", \"handle\": %s, \"size\": %llu, \"device\": %d, "
                      "\"kind\": \"%s\", \"purpose\": \"%s\", \"label\": ",
                      i ? "," : "", (unsigned long long)vg_key_value(a), handle ? "true" : "false",
                      (unsigned long long)a->size, a->device, vg_kind_name(a->kind), vg_purpose_name(a->purpose));
        vg_out_json_string(o, vg_label_text(a->label));
        vg_out_str(o, ", \"api\": ");
        vg_out_json_string(o, a->api);
        vg_out_str(o, ", \"caller\": ");
        char caller[512];
        vg_modules_caller_text(&r->modules, a->caller, true, caller, sizeof(caller));
        vg_out_json_string(o, caller);
        vg_who_json(o, &r->symbols, a->stack, a->caller, true);
        if (a->allowed) {
            /* The rule that let it through: the first that matches it (the
             * policy took the first too). */
            const struct vg_allowances *al = &vg_config()->allowances;
            char module[128];
            int rule = vg_allow_match(al, a->kind, a->size,
                                      vg_module_name(a->caller, module, sizeof(module)) ? module : NULL);
            vg_out_str(o, ", \"allowed_by\": ");
            vg_out_json_string(o, rule >= 0 ? al->rule[rule].text : "VRAMGUARD_ALLOW");
        }
        void *frames[VG_STACK_FRAMES];
        int nf = vg_stack_frames(a->stack, frames, VG_STACK_FRAMES);
        if (nf > 0) {
            vg_out_str(o, ", \"stack\": [");
            vg_symbols_begin(&r->symbols);
            for (int f = 0; f < nf; f++) {
                char sym[600];
                vg_symbols_frame_text(&r->symbols, frames[f], sym, sizeof(sym));
                vg_out_str(o, f ? ", " : "");
                vg_out_json_string(o, sym);
            }
            vg_out_str(o, "]");
        }
        vg_out_str(o, "}");
    }
    vg_out_str(o, "]}");
}

/* What the shim wrote and held back: the log, the journal, the events
 * suppressed as repeats (their counts are in the sections above, exact). */
static void json_output(struct vg_out *o)
{
    struct vg_log_stats log;
    struct vg_journal_stats journal;
    vg_log_stats(&log);
    vg_events_journal_stats(&journal);
    vg_out_printf(o, ",\n  \"output\": {\"log\": {\"bytes\": %llu, \"max_bytes\": %llu, \"capped\": %s, "
                  "\"lines_over_cap\": %llu, \"lines_lost\": %llu}",
                  (unsigned long long)log.bytes, (unsigned long long)log.max, log.capped ? "true" : "false",
                  (unsigned long long)log.lines_over_cap, (unsigned long long)log.lines_dropped);
    if (journal.open)
        vg_out_printf(o, ", \"journal\": {\"bytes\": %llu, \"max_bytes\": %llu, \"capped\": %s, "
                      "\"events_over_cap\": %llu}",
                      (unsigned long long)journal.bytes, (unsigned long long)journal.max,
                      journal.capped ? "true" : "false", (unsigned long long)journal.events_over_cap);
    vg_out_printf(o, ", \"suppressed\": {\"violations\": %llu, \"oom_events\": %llu, \"budget_oom_events\": %llu}}",
                  (unsigned long long)vg_repeat_suppressed(VG_REPEAT_VIOLATION),
                  (unsigned long long)vg_repeat_suppressed(VG_REPEAT_OOM),
                  (unsigned long long)vg_repeat_suppressed(VG_REPEAT_BUDGET_OOM));
}

/* The summary: "status" is "fail" when a fail-on condition occurred,
 * "unknown" when none did but one of them could not be measured (listed
 * in "unknown"), else "pass". `live` (a running process): no leak verdict
 * (what is live now is no leak), and "running" rather than "pass" while no
 * condition occurred: the verdict comes at exit. */
static void json_summary(struct vg_out *o, struct report_scratch *r, const struct vg_config *cfg,
                         uint64_t violations, uint64_t ooms, bool live)
{
    static const char *const words[] = {"violation", "oom", "leak", "budget"};
    bool live_known = r->stats.dropped == 0;
    bool occurred[4] = {violations > 0, ooms > 0, !live && live_known && r->census.count > 0,
                        vg_budget_oom_count() > 0};
    bool unknown[4] = {false, false, !live && !live_known, false};
    bool fail = false, any_unknown = false;
    for (int i = 0; i < 4; i++) {
        fail = fail || ((cfg->fail_on & (1u << i)) && occurred[i]);
        any_unknown = any_unknown || ((cfg->fail_on & (1u << i)) && unknown[i]);
    }
    vg_out_printf(o, ",\n  \"summary\": {\"status\": \"%s\", \"reasons\": [",
                  fail ? "fail" : live ? "running" : any_unknown ? "unknown" : "pass");
    for (int i = 0, k = 0; i < 4; i++)
        if ((cfg->fail_on & (1u << i)) && occurred[i])
            vg_out_printf(o, "%s\"%s\"", k++ ? ", " : "", words[i]);
    vg_out_printf(o, "], \"violations\": %llu, \"oom_events\": %llu", (unsigned long long)violations,
                  (unsigned long long)ooms);
    if (!live) {
        vg_out_str(o, ", \"leaked_allocations\": ");
        count_or_unknown(o, live_known, r->census.count);
        vg_out_str(o, ", \"leaked_bytes\": ");
        count_or_unknown(o, live_known, r->census.bytes);
    }
    vg_out_printf(o, ", \"untracked_allocations\": %llu, \"unknown\": [", (unsigned long long)r->stats.dropped);
    for (int i = 0, k = 0; i < 4; i++)
        if (unknown[i])
            vg_out_printf(o, "%s\"%s\"", k++ ? ", " : "", words[i]);
    vg_out_str(o, "]}\n}\n");
}

/* `live`: a running process's /vram (live allocations, no leak verdict);
 * else the exit report. */
static void report_json_with(struct vg_out *o, bool with_argv, bool live, struct report_scratch *r)
{
    const struct vg_config *cfg = vg_config();
    vg_table_stats(&r->stats);
    vg_pool_totals(&r->totals, r->stats.device_count); /* driver calls: before the table is walked */
    vg_top_init(&r->top, r->largest, LIVE_LISTED_MAX);
    vg_sites_init(&r->sites, VG_MAX_DEVICES);
    vg_modules_init(&r->modules);
    vg_symbols_init(&r->symbols);
    r->census = (struct vg_census){.device = -1, .top = &r->top, .sites = &r->sites};
    vg_census_take(&r->census);
    uint64_t violations = vg_violation_count(), ooms = vg_oom_count();

    vg_out_str(o, "{\n  \"schema\": \"vramguard.report/v1\",\n  \"vramguard_version\": \"" VG_VERSION "\",\n");
    json_process(o, with_argv, live);
    json_config(o, cfg);
    json_allowances(o, cfg);
    json_budgets(o, r, cfg);
    json_devices(o, r);
    json_events(o, r, "violations", violations, true);
    json_events(o, r, "oom_events", ooms, false);
    json_live(o, r, live);
    const char *names[128], *reasons[128];
    int n_pass = vg_holes_seen(names, reasons, 128);
    vg_out_printf(o, ",\n  \"vmm_exported_handles\": %llu", (unsigned long long)vg_vmm_exported_handles());
    vg_out_str(o, ",\n  \"passthrough_lookups\": [");
    for (int i = 0; i < n_pass; i++) {
        vg_out_str(o, i ? ", {\"name\": " : "{\"name\": ");
        vg_out_json_string(o, names[i]);
        vg_out_str(o, ", \"reason\": ");
        vg_out_json_string(o, reasons[i]);
        vg_out_str(o, "}");
    }
    vg_out_str(o, "]");
    json_output(o);
    json_summary(o, r, cfg, violations, ooms, live);
    vg_symbols_done(&r->symbols);
}

/* A heap scratch: false (nothing written, logged) when there is none. */
static bool report_json(struct vg_out *o, bool with_argv, bool live)
{
    struct report_scratch *r = malloc(sizeof(*r));
    if (r == NULL) {
        vg_log("out of host memory: no room to render a report (%zu bytes)", sizeof(*r));
        return false;
    }
    report_json_with(o, with_argv, live, r);
    free(r);
    return true;
}

bool vg_report_json(struct vg_out *o)
{
    return report_json(o, true, false);
}

bool vg_report_json_served(struct vg_out *o)
{
    return report_json(o, vg_config()->vram_argv, true);
}

/* The exit report's scratch when malloc has none: static, so that a process
 * out of host memory still leaves a whole report. One user at a time. */
static struct report_scratch exit_scratch;
static pthread_mutex_t exit_scratch_lock = PTHREAD_MUTEX_INITIALIZER;

static struct report_scratch *scratch_get(bool *is_static)
{
    struct report_scratch *r = malloc(sizeof(*r));
    *is_static = r == NULL;
    if (r == NULL && pthread_mutex_trylock(&exit_scratch_lock) == 0) {
        vg_log("out of host memory for the report's scratch (%zu bytes): the spare kept for it is used", sizeof(*r));
        r = &exit_scratch;
    }
    return r;
}

static void scratch_put(struct report_scratch *r, bool is_static)
{
    if (is_static)
        pthread_mutex_unlock(&exit_scratch_lock);
    else
        free(r);
}

static bool report_write_with(const char *path, struct report_scratch *r)
{
    char tmp[VG_PATH_MAX + 64];
    int fd = vg_file_begin_replace(path, tmp, sizeof(tmp));
    if (fd < 0) {
        vg_log("cannot write the report %s: %s", path,
               errno == EINVAL ? "it exists and is not a regular file (left as it is)" : strerror(errno));
        return false;
    }
    struct vg_out *o = &r->sink;
    vg_out_fd(o, fd);
    report_json_with(o, true, false, r);
    vg_out_flush(o);
    int error = o->error;
    /* A short write (full disk, file size limit) never replaces a report:
     * the previous one, if any, stays whole. */
    if (error != 0) {
        vg_file_abandon(fd, tmp);
        vg_log("cannot write the report %s: %s; %s", path, strerror(error),
               access(path, F_OK) == 0 ? "the previous report is left as it was" : "no report");
        return false;
    }
    if (!vg_file_commit(fd, tmp, path, true)) {
        error = errno;
        vg_log("cannot write the report %s: %s; %s", path, strerror(error),
               access(path, F_OK) == 0 ? "the previous report is left as it was" : "no report");
        return false;
    }
    return true;
}

bool vg_report_write(void)
{
    const char *path = vg_report_path();
    if (path[0] == '\0')
        return false;
    bool is_static;
    struct report_scratch *r = scratch_get(&is_static);
    if (r == NULL) {
        vg_log("cannot write the report %s: out of host memory (and the spare room is in use); no report", path);
        return false;
    }
    bool ok = report_write_with(path, r);
    scratch_put(r, is_static);
    return ok;
}

/* At exit: the JSON report, then one line in the log (info), for processes
 * that reached the driver. The line names the report only once it is
 * written. Runs after the program's own atexit handlers. */
__attribute__((destructor)) static void report_at_exit(void)
{
    if (!vg_process_reached_driver())
        return;
    vg_events_at_exit();
    bool is_static;
    struct report_scratch *r = scratch_get(&is_static);
    const char *path = vg_report_path();
    bool written = false;
    if (path[0] != '\0' && r == NULL)
        vg_log("cannot write the report %s: out of host memory (and the spare room is in use); no report", path);
    else if (path[0] != '\0')
        written = report_write_with(path, r);
    if (r != NULL && vg_log_enabled(VG_LOG_INFO)) {
        struct vg_stats *s = &r->stats;
        vg_table_stats(s);
        uint64_t peak = 0;
        for (int d = 0; d < s->device_count; d++)
            peak += s->device_peak[d];
        char p[32], untracked[120] = "", budget[48] = "";
        if (s->dropped > 0)
            snprintf(untracked, sizeof(untracked),
                     ", %llu allocations not tracked (out of host memory: live and leak figures unknown)",
                     (unsigned long long)s->dropped);
        if (vg_budget_oom_count() > 0)
            snprintf(budget, sizeof(budget), ", %llu budget OOMs", (unsigned long long)vg_budget_oom_count());
        vg_log_at(VG_LOG_INFO,
                  "exit: pid %d, peak tracked VRAM %s, %llu live allocations%s, %llu violations, %llu OOM events%s%s%s",
                  (int)getpid(), vg_format_bytes(peak, p, sizeof(p)), (unsigned long long)vg_table_live_count(),
                  untracked, (unsigned long long)vg_violation_count(), (unsigned long long)vg_oom_count(), budget,
                  written ? ", report " : "", written ? path : "");
    }
    if (r != NULL)
        scratch_put(r, is_static);
    const char *names[64], *reasons[64];
    int n = vg_log_enabled(VG_LOG_DEBUG) ? vg_holes_seen(names, reasons, 64) : 0;
    if (n > 0) {
        char line[900];
        struct vg_out o;
        vg_out_buffer(&o, line, sizeof(line));
        for (int i = 0; i < n && i < 6; i++)
            vg_out_printf(&o, "%s%s", i ? ", " : "", names[i]);
        vg_log_at(VG_LOG_DEBUG,
                  "%d allocation-related entry points were looked up and passed through (%s%s); entry-points.md "
                  "(docs/ in the source, share/doc/vramguard/ installed) says why%s",
                  n, line, n > 6 ? ", ..." : "", written ? ", the report lists them" : "");
    }
}
