#include "breakdown.h"
#include "callers.h"
#include "census.h"
#include "devices.h"
#include "forksafe.h"
#include "log.h"
#include "pools.h"
#include "purposes.h"
#include "table.h"
#include "who.h"

#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

enum { LARGEST_SHOWN = 10 };

/* Scratch for the breakdowns: too large for a small thread stack (the OOM
 * path runs on the program's), so static and guarded. No CUDA call is made
 * while it is held. */
static pthread_mutex_t scratch_lock = PTHREAD_MUTEX_INITIALIZER;

pthread_mutex_t *vg_breakdown_fork_mutex(void)
{
    return &scratch_lock;
}
static struct vg_stats scratch_stats;
static struct vg_alloc scratch_largest[VG_MAX_DEVICES][LARGEST_SHOWN];
static struct vg_top scratch_tops[VG_MAX_DEVICES];
static struct vg_sites scratch_sites;
static struct vg_modules scratch_modules;
static struct vg_module_bytes scratch_by_module[VG_MODULES_SHOWN];
static struct vg_symbols scratch_symbols; /* files mapped for one breakdown, unmapped at its end */

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

static void text_largest(struct vg_out *o, const char *prefix, const struct vg_top *t)
{
    char size[32], caller[512], safe[VG_LABEL_MAX];
    for (int i = 0; i < t->n; i++) {
        const struct vg_alloc *a = &t->e[i];
        const char *label = vg_log_safe(vg_label_text(a->label), safe, sizeof(safe));
        vg_who_or_caller_text(&scratch_symbols, a->stack, a->caller, caller, sizeof(caller));
        vg_out_printf(o, "%s  %2d. %12s %-12s %-13s %s%s%s%s0x%llx %s from %s\n", prefix, i + 1,
                      vg_format_bytes(a->size, size, sizeof(size)), vg_kind_name(a->kind),
                      vg_purpose_name(a->purpose), label ? "\"" : "", label ? label : "",
                      label ? "\" " : "", vg_key_is_handle(a) ? "handle " : "",
                      (unsigned long long)vg_key_value(a), a->api, caller);
    }
}

static void text_modules(struct vg_out *o, const char *prefix, int device)
{
    int m = vg_census_by_module(&scratch_sites, device, &scratch_modules, scratch_by_module, VG_MODULES_SHOWN);
    if (m == 0)
        return;
    vg_out_printf(o, "%s  untagged VRAM by calling module:\n", prefix);
    char size[32];
    for (int i = 0; i < m; i++)
        vg_out_printf(o, "%s    %-40s %12s %8llu\n", prefix, scratch_by_module[i].name,
                      vg_format_bytes(scratch_by_module[i].bytes, size, sizeof(size)),
                      (unsigned long long)scratch_by_module[i].count);
}

/* One pass over the table: every device, the largest kept per device
 * (`device` < 0 and `per_device`), or the allocations of `device` (< 0: all)
 * with the largest in scratch_tops[0]. Call with scratch_lock held. */
static void take_census(int device, bool per_device)
{
    for (int d = 0; d < VG_MAX_DEVICES; d++)
        vg_top_init(&scratch_tops[d], scratch_largest[d], LARGEST_SHOWN);
    vg_sites_init(&scratch_sites, per_device ? VG_MAX_DEVICES : 1);
    vg_modules_init(&scratch_modules);
    vg_symbols_init(&scratch_symbols);
    struct vg_census c = {.device = per_device ? -1 : device};
    if (per_device)
        c.top_by_device = scratch_tops;
    else
        c.top = &scratch_tops[0];
    if (per_device || (device >= 0 && device < VG_MAX_DEVICES))
        c.sites = &scratch_sites;
    vg_census_take(&c);
}

void vg_breakdown_text(struct vg_out *o, const char *prefix)
{
    /* Ask the driver for pool reserves before taking any lock. */
    struct vg_pool_totals totals;
    vg_pool_totals(&totals, vg_table_device_count());

    pthread_mutex_lock(&scratch_lock);
    vg_table_stats(&scratch_stats);
    take_census(-1, true);
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
        if (scratch_tops[d].n > 0) {
            vg_out_printf(o, "%s  largest live allocations:\n", prefix);
            text_largest(o, prefix, &scratch_tops[d]);
        }
    }
    vg_symbols_done(&scratch_symbols);
    pthread_mutex_unlock(&scratch_lock);
}

static void breakdown_oom(const struct vg_call *failed, uint32_t stack, const struct vg_budget_hit *hit);

void vg_breakdown_oom(const struct vg_call *failed, uint32_t stack)
{
    breakdown_oom(failed, stack, NULL);
}

void vg_breakdown_budget_oom(const struct vg_call *failed, uint32_t stack, const struct vg_budget_hit *hit)
{
    breakdown_oom(failed, stack, hit);
}

static void breakdown_oom(const struct vg_call *failed, uint32_t stack, const struct vg_budget_hit *hit)
{
    /* Ask the driver and NVML first: no lock may be held across those. */
    uint64_t free_b = 0, total_b = 0, process_b = 0;
    bool mem = vg_device_mem_info(&free_b, &total_b);
    bool nvml = vg_device_process_usage(failed->device, &process_b);
    struct vg_pool_totals totals;
    vg_pool_totals(&totals, failed->device + 1);

    static char text[16384];
    struct vg_out o;
    char P[40];
    vg_log_prefix(P, sizeof(P));
    char s1[32], s2[32], s3[32], s4[32], caller[512];

    pthread_mutex_lock(&scratch_lock);
    vg_out_buffer(&o, text, sizeof(text));
    vg_table_stats(&scratch_stats);
    int d = failed->device;
    take_census(d, false);
    struct vg_device_info info;
    bool known = vg_device_info(d, &info);
    char safe[VG_LABEL_MAX];
    const char *label = vg_log_safe(vg_label_text(failed->label), safe, sizeof(safe));
    vg_who_or_caller_text(&scratch_symbols, stack, failed->caller, caller, sizeof(caller));

    if (hit) {
        vg_out_printf(&o, "%s==== over VRAM budget on device %d (%s): breakdown at the first budget OOM ====\n", P,
                      d, known ? info.name : "unknown");
        vg_out_printf(&o, "%sbudget hit: VRAMGUARD_LIMIT %s=%s (%llu bytes) on device %d; %s %s (%llu bytes) + "
                      "this request %s (%llu bytes) would pass it; refused with CUDA_ERROR_OUT_OF_MEMORY (2) "
                      "without calling the driver\n",
                      P, vg_budget_scope_name(hit->scope), vg_format_bytes(hit->limit, s1, sizeof(s1)),
                      (unsigned long long)hit->limit, d,
                      hit->scope == VG_BUDGET_TOTAL ? "charged VRAM" : "live VRAM of the purpose",
                      vg_format_bytes(hit->used, s2, sizeof(s2)), (unsigned long long)hit->used,
                      vg_format_bytes(hit->adds, s3, sizeof(s3)), (unsigned long long)hit->adds);
    } else {
        vg_out_printf(&o, "%s==== out of memory on device %d (%s): breakdown at the first failure ====\n", P, d,
                      known ? info.name : "unknown");
    }
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
                      "processes and the CUDA context; no NVML figure for this process) %s\n",
                      P, vg_format_bytes(tracked, s1, sizeof(s1)), vg_format_bytes(untracked, s2, sizeof(s2)));
    }
    if (d >= 0 && d < VG_MAX_DEVICES) {
        text_cells(&o, P, &scratch_stats, d);
        text_modules(&o, P, d);
    }
    vg_out_printf(&o, "%s%d largest live allocations on device %d:\n", P, scratch_tops[0].n, d);
    text_largest(&o, P, &scratch_tops[0]);
    vg_out_printf(&o, "%s==== end of breakdown; later %s on this device get one line each ====\n", P,
                  hit ? "budget OOMs" : "failures");
    vg_log_write(text, o.len);
    vg_symbols_done(&scratch_symbols);
    pthread_mutex_unlock(&scratch_lock);
}
