#include "report.h"
#include "forksafe.h"
#include "config.h"
#include "devices.h"
#include "process.h"
#include "driver_hooks.h" /* vg_vmm_exported_handles */
#include "entry_table.h"
#include "log.h"
#include "pools.h"
#include "purposes.h"
#include "real.h"
#include "stacks.h"
#include "table.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { LARGEST_SHOWN = 10, LIVE_LISTED_MAX = 1000 };

static struct timespec started_at;

void vg_report_note_start(const struct timespec *t)
{
    started_at = *t;
}

/* ---- text ---------------------------------------------------------------- */

static void text_cells(struct vg_out *o, const char *prefix, const struct vg_stats *s, int d)
{
    char live[32], peak[32];
    vg_out_printf(o, "%s  %-12s %-13s %12s %8s %12s\n", prefix, "kind", "purpose", "live", "count", "peak");
    for (int k = 0; k < VG_KIND_SLOTS; k++)
        for (int p = 0; p < VG_PURPOSE_SLOTS; p++) {
            const struct vg_cell *c = &s->cell[d][k][p];
            if (c->allocations == 0 && c->live_count == 0)
                continue;
            vg_out_printf(o, "%s  %-12s %-13s %12s %8llu %12s\n", prefix, vg_kind_name(k), vg_purpose_name(p),
                          vg_format_bytes(c->live_bytes, live, sizeof(live)),
                          (unsigned long long)c->live_count,
                          vg_format_bytes(c->peak_bytes, peak, sizeof(peak)));
        }
}

static void text_largest(struct vg_out *o, const char *prefix, const struct vg_alloc *a, int n)
{
    char size[32], caller[512];
    for (int i = 0; i < n; i++) {
        const char *label = vg_label_text(a[i].label);
        vg_describe_caller(a[i].caller, true, caller, sizeof(caller));
        vg_out_printf(o, "%s  %2d. %12s %-12s %-13s %s%s%s%s0x%llx %s from %s\n", prefix, i + 1,
                      vg_format_bytes(a[i].size, size, sizeof(size)), vg_kind_name(a[i].kind),
                      vg_purpose_name(a[i].purpose), label ? "\"" : "", label ? label : "",
                      label ? "\" " : "", vg_key_is_handle(&a[i]) ? "handle " : "",
                      (unsigned long long)vg_key_value(&a[i]), a[i].api, caller);
    }
}

/* Scratch for the breakdowns: too large for a small thread stack, so static
 * and guarded. No CUDA call is made while it is held. */
static pthread_mutex_t scratch_lock = PTHREAD_MUTEX_INITIALIZER;

pthread_mutex_t *vg_report_fork_mutex(void)
{
    return &scratch_lock;
}
static struct vg_stats scratch_stats;
static struct vg_alloc scratch_largest[LARGEST_SHOWN];
static struct vg_caller_bytes scratch_callers[256];

/* Untagged VRAM grouped by calling module (the call sites' module, base
 * name), largest first. No heap. Call with scratch_lock held. */
struct module_bytes {
    char name[64];
    uint64_t bytes, count;
};
enum { MODULES_SHOWN = 16 };

static int untagged_by_module(int device, struct module_bytes *out, int max)
{
    int n = vg_table_untagged_by_caller(scratch_callers, 256, device), m = 0;
    for (int i = 0; i < n; i++) {
        char name[64];
        if (scratch_callers[i].caller)
            vg_describe_caller(scratch_callers[i].caller, false, name, sizeof(name));
        else
            snprintf(name, sizeof(name), "(other call sites)");
        int k = 0;
        while (k < m && strcmp(out[k].name, name) != 0)
            k++;
        if (k == m) {
            if (m == max)
                k = max - 1; /* fold the rest into the last row */
            else {
                snprintf(out[m].name, sizeof(out[m].name), "%s", name);
                out[m].bytes = out[m].count = 0;
                m++;
            }
        }
        out[k].bytes += scratch_callers[i].bytes;
        out[k].count += scratch_callers[i].count;
    }
    for (int i = 1; i < m; i++) /* largest first */
        for (int j = i; j > 0 && out[j].bytes > out[j - 1].bytes; j--) {
            struct module_bytes t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return m;
}

static void text_modules(struct vg_out *o, const char *prefix, int device)
{
    static struct module_bytes mods[MODULES_SHOWN];
    int m = untagged_by_module(device, mods, MODULES_SHOWN);
    if (m == 0)
        return;
    vg_out_printf(o, "%s  untagged VRAM by calling module:\n", prefix);
    char size[32];
    for (int i = 0; i < m; i++)
        vg_out_printf(o, "%s    %-40s %12s %8llu\n", prefix, mods[i].name,
                      vg_format_bytes(mods[i].bytes, size, sizeof(size)), (unsigned long long)mods[i].count);
}

void vg_report_text(struct vg_out *o, const char *prefix)
{
    /* Ask the driver for pool reserves before taking any lock. */
    struct vg_pool_totals totals;
    vg_pool_totals(&totals, vg_table_device_count());

    pthread_mutex_lock(&scratch_lock);
    vg_table_stats(&scratch_stats);
    char a[32], b[32], c[32], e[32], f[32], g[32];
    vg_out_printf(o, "%sVRAM by device, kind and purpose (pid %d): violations %llu, OOM events %llu\n",
                  prefix, (int)getpid(), (unsigned long long)vg_violation_count(),
                  (unsigned long long)vg_oom_count());
    for (int d = 0; d < scratch_stats.device_count; d++) {
        struct vg_device_info info;
        bool known = vg_device_info(d, &info);
        struct vg_charge ch;
        vg_device_charge(&scratch_stats, &totals, d, &ch);
        vg_out_printf(o, "%sdevice %d (%s): charged VRAM %s (live %s, pool cache %s, graph pool %s), peak live %s%s%s\n",
                      prefix, d, known ? info.name : "unknown", vg_format_bytes(ch.charged, a, sizeof(a)),
                      vg_format_bytes(ch.live, b, sizeof(b)), vg_format_bytes(ch.pool_cache, e, sizeof(e)),
                      vg_format_bytes(ch.graph_reserved, f, sizeof(f)),
                      vg_format_bytes(scratch_stats.device_peak[d], g, sizeof(g)),
                      known ? ", device total " : "", known ? vg_format_bytes(info.total_bytes, c, sizeof(c)) : "");
        text_cells(o, prefix, &scratch_stats, d);
        text_modules(o, prefix, d);
        int n = vg_table_largest(scratch_largest, LARGEST_SHOWN, d);
        if (n > 0) {
            vg_out_printf(o, "%s  largest live allocations:\n", prefix);
            text_largest(o, prefix, scratch_largest, n);
        }
    }
    pthread_mutex_unlock(&scratch_lock);
}

void vg_report_oom_breakdown(const struct vg_call *failed)
{
    /* Ask the driver and NVML first: no lock may be held across those. */
    uint64_t free_b = 0, total_b = 0, process_b = 0;
    bool mem = vg_device_mem_info(&free_b, &total_b);
    bool nvml = vg_device_process_usage(failed->device, &process_b);
    struct vg_pool_totals totals;
    vg_pool_totals(&totals, failed->device + 1);

    static char text[16384];
    struct vg_out o;
    const char *P = "vramguard: ";
    char s1[32], s2[32], s3[32], s4[32], caller[512];

    pthread_mutex_lock(&scratch_lock);
    vg_out_buffer(&o, text, sizeof(text));
    vg_table_stats(&scratch_stats);
    int d = failed->device;
    struct vg_device_info info;
    bool known = vg_device_info(d, &info);
    const char *label = vg_label_text(failed->label);
    vg_describe_caller(failed->caller, true, caller, sizeof(caller));

    vg_out_printf(&o, "%s==== out of memory on device %d (%s): breakdown at the first failure ====\n", P, d,
                  known ? info.name : "unknown");
    vg_out_printf(&o, "%sfailed request: %s%s%s of %s (%llu bytes), kind %s, purpose %s%s%s%s, from %s\n", P,
                  failed->api, failed->api != failed->driver_api ? " via " : "",
                  failed->api != failed->driver_api ? failed->driver_api : "",
                  vg_format_bytes(failed->size, s1, sizeof(s1)), (unsigned long long)failed->size,
                  vg_kind_name(failed->kind), vg_purpose_name(failed->purpose), label ? " (label \"" : "",
                  label ? label : "", label ? "\")" : "", caller);
    struct vg_charge ch;
    vg_device_charge(&scratch_stats, &totals, d, &ch);
    uint64_t tracked = ch.charged;
    if (ch.pool_cache || ch.graph_reserved)
        vg_out_printf(&o, "%scharged VRAM %s = live allocations %s + pool cache %s + graph pool %s\n", P,
                      vg_format_bytes(ch.charged, s1, sizeof(s1)), vg_format_bytes(ch.live, s2, sizeof(s2)),
                      vg_format_bytes(ch.pool_cache, s3, sizeof(s3)),
                      vg_format_bytes(ch.graph_reserved, s4, sizeof(s4)));
    if (mem)
        vg_out_printf(&o, "%sdevice %d: total %s, free %s, used %s\n", P, d,
                      vg_format_bytes(total_b, s1, sizeof(s1)), vg_format_bytes(free_b, s2, sizeof(s2)),
                      vg_format_bytes(total_b - free_b, s3, sizeof(s3)));
    else
        vg_out_printf(&o, "%sdevice %d: cuMemGetInfo failed; total and free unknown\n", P, d);
    if (nvml) {
        uint64_t untracked = process_b > tracked ? process_b - tracked : 0;
        vg_out_printf(&o, "%sthis process (NVML, as nvidia-smi shows it): %s; charged VRAM %s; untracked %s "
                      "(CUDA context, libraries, paths not intercepted)\n",
                      P, vg_format_bytes(process_b, s1, sizeof(s1)), vg_format_bytes(tracked, s2, sizeof(s2)),
                      vg_format_bytes(untracked, s3, sizeof(s3)));
    } else if (mem) {
        uint64_t used = total_b - free_b;
        uint64_t untracked = used > tracked ? used - tracked : 0;
        vg_out_printf(&o, "%scharged VRAM %s; untracked (device-wide: used minus charged, includes other "
                      "processes and the CUDA context; NVML not available) %s\n",
                      P, vg_format_bytes(tracked, s1, sizeof(s1)), vg_format_bytes(untracked, s2, sizeof(s2)));
    }
    if (d >= 0 && d < VG_MAX_DEVICES) {
        text_cells(&o, P, &scratch_stats, d);
        text_modules(&o, P, d);
    }
    int n = vg_table_largest(scratch_largest, LARGEST_SHOWN, d);
    vg_out_printf(&o, "%s%d largest live allocations on device %d:\n", P, n, d);
    text_largest(&o, P, scratch_largest, n);
    vg_out_printf(&o, "%s==== end of breakdown; later failures on this device get one line each ====\n", P);
    vg_log_write(text, o.len);
    pthread_mutex_unlock(&scratch_lock);
}

/* ---- JSON ---------------------------------------------------------------- */

static void json_caller(struct vg_out *o, void *caller)
{
    char text[512];
    vg_describe_caller(caller, true, text, sizeof(text));
    vg_out_json_string(o, text);
}

void vg_report_event_fields(struct vg_out *o, const struct vg_event *e, bool violation)
{
    char when[40];
    vg_format_time(&e->time, when, sizeof(when));
    vg_out_printf(o, "\"time\":\"%s\",\"api\":", when);
    vg_out_json_string(o, e->api);
    vg_out_printf(o, ",\"kind\":\"%s\",\"size\":%llu,\"device\":%d,\"purpose\":\"%s\",\"label\":",
                  vg_kind_name(e->kind), (unsigned long long)e->size, e->device, vg_purpose_name(e->purpose));
    vg_out_json_string(o, vg_label_text(e->label));
    vg_out_str(o, ",\"caller\":");
    json_caller(o, e->caller);
    if (violation)
        vg_out_printf(o, ",\"action\":\"%s\"", e->action == VG_ACTION_REJECT ? "rejected" : "allowed");
    vg_out_printf(o, ",\"result\":%d", (int)e->result);
}

static void json_events(struct vg_out *o, const char *name, uint64_t count, bool violation)
{
    static struct vg_event kept[VG_EVENTS_KEPT];
    int n = violation ? vg_violations_kept(kept, VG_EVENTS_KEPT) : vg_ooms_kept(kept, VG_EVENTS_KEPT);
    vg_out_printf(o, ",\n  \"%s\": {\"count\": %llu, \"recorded\": [", name, (unsigned long long)count);
    for (int i = 0; i < n; i++) {
        vg_out_str(o, i ? ",\n    {" : "\n    {");
        vg_report_event_fields(o, &kept[i], violation);
        vg_out_str(o, "}");
    }
    vg_out_str(o, "]}");
}

static void json_process(struct vg_out *o)
{
    char exe[VG_PATH_MAX], when[40];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = '\0';
    vg_out_printf(o, "  \"process\": {\"pid\": %d, \"ppid\": %d, \"exe\": ", (int)getpid(), (int)getppid());
    vg_out_json_string(o, exe);
    vg_out_str(o, ", \"argv\": [");
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
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
    vg_format_time(&started_at, when, sizeof(when));
    vg_out_printf(o, "], \"started_at\": \"%s\", ", when);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    vg_format_time(&now, when, sizeof(when));
    vg_out_printf(o, "\"ended_at\": \"%s\"}", when);
}

static void json_config(struct vg_out *o, const struct vg_config *cfg)
{
    vg_out_printf(o, ",\n  \"config\": {\"policy\": \"%s\", \"allow\": [%s], \"fail_on\": [",
                  vg_policy_name(cfg->policy), (cfg->allow & VG_ALLOW_PINNED) ? "\"pinned\"" : "");
    static const char *const words[] = {"violation", "oom", "leak"};
    int k = 0;
    for (int i = 0; i < 3; i++)
        if (cfg->fail_on & (1u << i))
            vg_out_printf(o, "%s\"%s\"", k++ ? ", " : "", words[i]);
    vg_out_str(o, "]}");
}

static void json_devices(struct vg_out *o, const struct vg_stats *s, const struct vg_pool_totals *t)
{
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
        static struct module_bytes mods[MODULES_SHOWN];
        pthread_mutex_lock(&scratch_lock);
        int m = untagged_by_module(d, mods, MODULES_SHOWN);
        for (int i = 0; i < m; i++) {
            vg_out_str(o, i ? ", {\"module\": " : "{\"module\": ");
            vg_out_json_string(o, mods[i].name);
            vg_out_printf(o, ", \"live_bytes\": %llu, \"live_count\": %llu}", (unsigned long long)mods[i].bytes,
                          (unsigned long long)mods[i].count);
        }
        pthread_mutex_unlock(&scratch_lock);
        vg_out_str(o, "]}");
    }
    vg_out_str(o, "]");
}

static int by_size_desc(const void *a, const void *b)
{
    const struct vg_alloc *x = a, *y = b;
    return x->size < y->size ? 1 : (x->size > y->size ? -1 : 0);
}

/* Returns the number of live allocations and their bytes through *bytes. */
static uint64_t json_live(struct vg_out *o, uint64_t *bytes)
{
    struct vg_alloc *live = NULL;
    size_t n = vg_table_snapshot(&live);
    *bytes = 0;
    for (size_t i = 0; i < n; i++)
        *bytes += live[i].size;
    if (n)
        qsort(live, n, sizeof(*live), by_size_desc);
    vg_out_printf(o, ",\n  \"live_at_exit\": {\"count\": %llu, \"bytes\": %llu, \"allocations\": [",
                  (unsigned long long)n, (unsigned long long)*bytes);
    for (size_t i = 0; i < n && i < LIVE_LISTED_MAX; i++) {
        bool handle = vg_key_is_handle(&live[i]);
        vg_out_printf(o, "%s\n    {\"address\": \"0x%llx\", \"handle\": %s, \"size\": %llu, \"device\": %d, "
                      "\"kind\": \"%s\", \"purpose\": \"%s\", \"label\": ",
                      i ? "," : "", (unsigned long long)vg_key_value(&live[i]), handle ? "true" : "false",
                      (unsigned long long)live[i].size, live[i].device, vg_kind_name(live[i].kind),
                      vg_purpose_name(live[i].purpose));
        vg_out_json_string(o, vg_label_text(live[i].label));
        vg_out_str(o, ", \"api\": ");
        vg_out_json_string(o, live[i].api);
        vg_out_str(o, ", \"caller\": ");
        json_caller(o, live[i].caller);
        void *frames[VG_STACK_FRAMES];
        int nf = vg_stack_frames(live[i].stack, frames, VG_STACK_FRAMES);
        if (nf > 0) {
            vg_out_str(o, ", \"stack\": [");
            for (int f = 0; f < nf; f++) {
                char sym[600];
                vg_describe_frame(frames[f], sym, sizeof(sym));
                vg_out_str(o, f ? ", " : "");
                vg_out_json_string(o, sym);
            }
            vg_out_str(o, "]");
        }
        vg_out_str(o, "}");
    }
    vg_out_str(o, "]}");
    free(live);
    return n;
}

void vg_report_json(struct vg_out *o)
{
    const struct vg_config *cfg = vg_config();
    struct vg_stats *s = malloc(sizeof(*s));
    if (s == NULL)
        return;
    vg_table_stats(s);
    struct vg_pool_totals totals;
    vg_pool_totals(&totals, s->device_count);
    uint64_t violations = vg_violation_count(), ooms = vg_oom_count(), live_bytes = 0;

    vg_out_str(o, "{\n  \"schema\": \"vramguard.report/v1\",\n  \"vramguard_version\": \"" VG_VERSION "\",\n");
    json_process(o);
    json_config(o, cfg);
    json_devices(o, s, &totals);
    json_events(o, "violations", violations, true);
    json_events(o, "oom_events", ooms, false);
    uint64_t live = json_live(o, &live_bytes);
    const char *names[128], *reasons[128];
    int n_pass = vg_entry_passthrough_seen(names, reasons, 128);
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

    bool fail_violation = (cfg->fail_on & VG_FAIL_ON_VIOLATION) && violations > 0;
    bool fail_oom = (cfg->fail_on & VG_FAIL_ON_OOM) && ooms > 0;
    bool fail_leak = (cfg->fail_on & VG_FAIL_ON_LEAK) && live > 0;
    vg_out_printf(o, ",\n  \"summary\": {\"status\": \"%s\", \"reasons\": [%s%s%s%s%s], \"violations\": %llu, "
                  "\"oom_events\": %llu, \"leaked_allocations\": %llu, \"leaked_bytes\": %llu, "
                  "\"untracked_allocations\": %llu}\n}\n",
                  fail_violation || fail_oom || fail_leak ? "fail" : "pass",
                  fail_violation ? "\"violation\"" : "", fail_violation && (fail_oom || fail_leak) ? ", " : "",
                  fail_oom ? "\"oom\"" : "", fail_oom && fail_leak ? ", " : "", fail_leak ? "\"leak\"" : "",
                  (unsigned long long)violations, (unsigned long long)ooms, (unsigned long long)live,
                  (unsigned long long)live_bytes, (unsigned long long)s->dropped);
    free(s);
}

bool vg_report_write(void)
{
    const char *path = vg_report_path();
    if (path[0] == '\0')
        return false;
    char tmp[VG_PATH_MAX + 32];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        vg_log("cannot write the report %s: %s", tmp, strerror(errno));
        return false;
    }
    struct vg_out *o = malloc(sizeof(*o));
    if (o == NULL) {
        close(fd);
        unlink(tmp);
        return false;
    }
    vg_out_fd(o, fd);
    vg_report_json(o);
    vg_out_flush(o);
    free(o);
    bool ok = fsync(fd) == 0 || errno == EINVAL;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        vg_log("cannot write the report %s: %s", path, strerror(errno));
        unlink(tmp);
        return false;
    }
    return true;
}

/* At exit: one line in the log and the JSON report, for processes that
 * reached the driver. Runs after the program's own atexit handlers. */
__attribute__((destructor)) static void report_at_exit(void)
{
    if (!vg_process_reached_driver())
        return;
    struct vg_stats *s = malloc(sizeof(*s));
    if (s != NULL) {
        vg_table_stats(s);
        uint64_t peak = 0;
        for (int d = 0; d < s->device_count; d++)
            peak += s->device_peak[d];
        char p[32];
        vg_log("exit: pid %d, peak tracked VRAM %s, %llu live allocations, %llu violations, %llu OOM events%s%s",
               (int)getpid(), vg_format_bytes(peak, p, sizeof(p)), (unsigned long long)vg_table_live_count(),
               (unsigned long long)vg_violation_count(), (unsigned long long)vg_oom_count(),
               vg_report_path()[0] ? ", report " : "", vg_report_path());
        free(s);
    }
    const char *names[64], *reasons[64];
    int n = vg_entry_passthrough_seen(names, reasons, 64);
    if (n > 0) {
        char line[900];
        struct vg_out o;
        vg_out_buffer(&o, line, sizeof(line));
        for (int i = 0; i < n && i < 6; i++)
            vg_out_printf(&o, "%s%s", i ? ", " : "", names[i]);
        vg_log("%d allocation-related entry points were looked up and passed through (%s%s); "
               "docs/entry-points.md says why%s",
               n, line, n > 6 ? ", ..." : "", vg_report_path()[0] ? ", the report lists them" : "");
    }
    vg_report_write();
}
