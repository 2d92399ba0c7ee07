/* Prometheus text exposition (format 0.0.4) of the live breakdown, for the
 * endpoint's GET /metrics. Base units (bytes), one prefix (vramguard_), HELP
 * and TYPE for every family, label values escaped. Only devices the program
 * used are reported, and only the device x kind x purpose cells it touched. */
#include "metrics.h"
#include "allow.h"
#include "config.h"
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vg_metrics_snapshot(struct vg_metrics_snapshot *s)
{
    memset(s, 0, sizeof(*s));
    vg_table_stats(&s->stats);
    int n = s->stats.device_count;
    if (n < 0)
        n = 0;
    if (n > VG_MAX_DEVICES)
        n = VG_MAX_DEVICES;
    s->device_count = n;
    /* Driver answers by pool handle and device ordinal: no context needed. */
    vg_pool_totals(&s->totals, n);
    for (int d = 0; d < n; d++) {
        struct vg_metrics_device *m = &s->device[d];
        m->known = vg_device_info(d, &m->info);
        vg_device_charge(&s->stats, &s->totals, d, &m->charge);
        m->oom_events = vg_oom_count_device(d);
        m->nvml_memory = vg_device_nvml_memory(d, &m->nvml_total, &m->nvml_free);
        m->nvml_process = vg_device_process_usage(d, &m->process_used);
        m->used = m->known || m->oom_events > 0;
        for (int k = 0; k < VG_KIND_SLOTS && !m->used; k++)
            for (int p = 0; p < VG_PURPOSE_SLOTS; p++)
                if (s->stats.cell[d][k][p].allocations || s->stats.cell[d][k][p].live_count)
                    m->used = true;
    }
    s->violations = vg_violation_count();
    s->oom_events = vg_oom_count();
    s->n_rejections = vg_rejections(s->rejections, VG_METRICS_REJECTIONS_MAX);
}

const char *vg_metrics_uuid(const struct vg_metrics_snapshot *s, int device)
{
    if (device < 0 || device >= s->device_count || !s->device[device].known || s->device[device].info.uuid[0] == '\0')
        return "unknown";
    return s->device[device].info.uuid;
}

/* ---- text format helpers -------------------------------------------------- */

static void family(struct vg_out *o, const char *name, const char *type, const char *help)
{
    /* HELP text here is constant and needs no escaping (no '\\', no newline). */
    vg_out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and newline escaped. */
void vg_metrics_label_value(struct vg_out *o, const char *v)
{
    if (v == NULL)
        v = "";
    const char *run = v;
    for (const char *p = v; *p; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
        if (esc == NULL)
            continue;
        vg_out_mem(o, run, (size_t)(p - run));
        vg_out_str(o, esc);
        run = p + 1;
    }
    vg_out_str(o, run);
}

static void label(struct vg_out *o, const char *name, const char *value, int *n)
{
    if ((*n)++)
        vg_out_str(o, ",");
    vg_out_str(o, name);
    vg_out_str(o, "=\"");
    vg_metrics_label_value(o, value);
    vg_out_str(o, "\"");
}

static void device_labels(struct vg_out *o, const struct vg_metrics_snapshot *s, int d, int *n)
{
    char dev[16];
    snprintf(dev, sizeof(dev), "%d", d);
    label(o, "device", dev, n);
    label(o, "gpu_uuid", vg_metrics_uuid(s, d), n);
}

static void sample_u64(struct vg_out *o, uint64_t v)
{
    vg_out_printf(o, "} %llu\n", (unsigned long long)v);
}

/* One counter family with a sample per VRAMGUARD_ALLOW rule, labelled by the
 * rule's text and kind. */
static void per_rule(struct vg_out *o, const struct vg_allowances *a, const char *name, const char *help,
                     const uint64_t *values)
{
    family(o, name, "counter", help);
    for (int i = 0; i < a->n; i++) {
        int n = 0;
        vg_out_printf(o, "%s{", name);
        label(o, "rule", a->rule[i].text, &n);
        label(o, "kind", vg_allow_kind_name(a->rule[i].kind), &n);
        sample_u64(o, values[i]);
    }
}

/* ---- families ------------------------------------------------------------- */

enum cell_field { LIVE_BYTES, PEAK_BYTES, LIVE_COUNT, ALLOCATIONS, FREES };

static void cell_family(struct vg_out *o, const struct vg_metrics_snapshot *s, const char *name, const char *type,
                        const char *help, enum cell_field field)
{
    family(o, name, type, help);
    for (int d = 0; d < s->device_count; d++)
        for (int k = 0; k < VG_KIND_SLOTS; k++)
            for (int p = 0; p < VG_PURPOSE_SLOTS; p++) {
                const struct vg_cell *c = &s->stats.cell[d][k][p];
                if (c->allocations == 0 && c->live_count == 0)
                    continue;
                uint64_t v = field == LIVE_BYTES    ? c->live_bytes
                             : field == PEAK_BYTES  ? c->peak_bytes
                             : field == LIVE_COUNT  ? c->live_count
                             : field == ALLOCATIONS ? c->allocations
                                                    : c->frees;
                int n = 0;
                vg_out_str(o, name);
                vg_out_str(o, "{");
                device_labels(o, s, d, &n);
                label(o, "kind", vg_kind_name(k), &n);
                label(o, "purpose", vg_purpose_name(p), &n);
                sample_u64(o, v);
            }
}

enum device_field { OOMS, POOL_RESERVED, POOL_CACHE, GRAPH_RESERVED, CHARGED, TOTAL, FREE, PROCESS, UNTRACKED };

static void device_family(struct vg_out *o, const struct vg_metrics_snapshot *s, const char *name, const char *type,
                          const char *help, enum device_field field)
{
    family(o, name, type, help);
    for (int d = 0; d < s->device_count; d++) {
        const struct vg_metrics_device *m = &s->device[d];
        if (!m->used)
            continue; /* a lower ordinal the program never touched */
        long long signed_value = 0;
        uint64_t v = 0;
        bool is_signed = false;
        switch (field) {
        case OOMS: v = m->oom_events; break;
        case POOL_RESERVED: v = m->charge.pool_reserved; break;
        case POOL_CACHE: v = m->charge.pool_cache; break;
        case GRAPH_RESERVED: v = m->charge.graph_reserved; break;
        case CHARGED: v = m->charge.charged; break;
        case TOTAL:
            if (m->nvml_memory)
                v = m->nvml_total;
            else if (m->known && m->info.total_bytes)
                v = m->info.total_bytes;
            else
                continue;
            break;
        case FREE:
            if (!m->nvml_memory)
                continue;
            v = m->nvml_free;
            break;
        case PROCESS:
            if (!m->nvml_process)
                continue;
            v = m->process_used;
            break;
        case UNTRACKED:
            if (!m->nvml_process)
                continue;
            is_signed = true;
            signed_value = (long long)m->process_used - (long long)m->charge.charged;
            break;
        }
        int n = 0;
        vg_out_str(o, name);
        vg_out_str(o, "{");
        device_labels(o, s, d, &n);
        if (is_signed)
            vg_out_printf(o, "} %lld\n", signed_value);
        else
            sample_u64(o, v);
    }
}

void vg_metrics_write_snapshot(struct vg_out *o, const struct vg_metrics_snapshot *s)
{
    cell_family(o, s, "vramguard_allocated_bytes", "gauge",
                "Live bytes tracked by vramguard, per device, kind of memory and purpose.", LIVE_BYTES);
    cell_family(o, s, "vramguard_allocated_peak_bytes", "gauge",
                "Highest live bytes seen, per device, kind of memory and purpose.", PEAK_BYTES);
    cell_family(o, s, "vramguard_live_allocations", "gauge",
                "Live allocations, per device, kind of memory and purpose.", LIVE_COUNT);
    cell_family(o, s, "vramguard_allocations_total", "counter",
                "Successful allocations, per device, kind of memory and purpose.", ALLOCATIONS);
    cell_family(o, s, "vramguard_frees_total", "counter",
                "Frees of tracked allocations, per device, kind of memory and purpose.", FREES);

    family(o, "vramguard_rejected_allocations_total", "counter",
           "Allocations refused by the vramguard policy, per device, kind of memory and API.");
    for (int i = 0; i < s->n_rejections; i++) {
        const struct vg_rejection *r = &s->rejections[i];
        char dev[16];
        snprintf(dev, sizeof(dev), "%d", r->device);
        int n = 0;
        vg_out_str(o, "vramguard_rejected_allocations_total{");
        label(o, "device", dev, &n);
        label(o, "kind", vg_kind_name(r->kind), &n);
        label(o, "api", r->api ? r->api : "unknown", &n);
        sample_u64(o, r->count);
    }

    device_family(o, s, "vramguard_oom_events_total", "counter",
                  "Allocations the driver refused with CUDA_ERROR_OUT_OF_MEMORY, per device.", OOMS);
    device_family(o, s, "vramguard_pool_reserved_bytes", "gauge",
                  "VRAM reserved by the device's stream-ordered memory pools (at least what is live in them).",
                  POOL_RESERVED);
    device_family(o, s, "vramguard_pool_cache_bytes", "gauge",
                  "Pool reserve not backing a live allocation (cached by the pools).", POOL_CACHE);
    device_family(o, s, "vramguard_graph_pool_reserved_bytes", "gauge",
                  "VRAM reserved by the device's CUDA graph memory pool.", GRAPH_RESERVED);
    device_family(o, s, "vramguard_charged_bytes", "gauge",
                  "VRAM charged to this process: live allocations outside pools, pool reserves and the graph "
                  "pool reserve.",
                  CHARGED);
    device_family(o, s, "vramguard_device_memory_total_bytes", "gauge", "Total memory of the device.", TOTAL);
    device_family(o, s, "vramguard_device_memory_free_bytes", "gauge",
                  "Free memory of the device, all processes (NVML; absent without NVML).", FREE);
    device_family(o, s, "vramguard_process_memory_used_bytes", "gauge",
                  "This process's memory on the device as nvidia-smi shows it (NVML; absent without NVML).",
                  PROCESS);
    device_family(o, s, "vramguard_untracked_bytes", "gauge",
                  "Process memory (NVML) minus charged VRAM: CUDA context, libraries, paths not intercepted "
                  "(absent without NVML).",
                  UNTRACKED);

    family(o, "vramguard_device_info", "gauge", "Devices the program used: name and PCI bus id; value 1.");
    for (int d = 0; d < s->device_count; d++) {
        const struct vg_metrics_device *m = &s->device[d];
        if (!m->used)
            continue;
        int n = 0;
        vg_out_str(o, "vramguard_device_info{");
        device_labels(o, s, d, &n);
        label(o, "name", m->known ? m->info.name : "unknown", &n);
        label(o, "pci_bus_id", m->known ? m->info.pci_bus_id : "", &n);
        vg_out_str(o, "} 1\n");
    }

    family(o, "vramguard_violations_total", "counter",
           "Policy violations (host-pinned or managed memory asked for), refused or let through.");
    vg_out_printf(o, "vramguard_violations_total %llu\n", (unsigned long long)s->violations);
    /* VRAMGUARD_ALLOW: what its rules let through (read from the model now:
     * a handful of counters, no table walk). */
    const struct vg_allowances *a = &vg_config()->allowances;
    if (a->n > 0) {
        struct vg_allow_stats st;
        vg_allow_stats(&st);
        per_rule(o, a, "vramguard_allowed_allocations_total",
                 "Host or managed allocations a VRAMGUARD_ALLOW rule let through, per rule.", st.allocations);
        per_rule(o, a, "vramguard_allowed_bytes_total",
                 "Bytes of host or managed memory a VRAMGUARD_ALLOW rule let through, per rule.", st.bytes);
        family(o, "vramguard_allowed_live_bytes", "gauge",
               "Live bytes VRAMGUARD_ALLOW rules let through, per allowance kind (what total<= caps).");
        for (int k = 0; k < VG_AK_COUNT; k++) {
            int n = 0;
            vg_out_str(o, "vramguard_allowed_live_bytes{");
            label(o, "kind", vg_allow_kind_name(k), &n);
            sample_u64(o, st.live[k]);
        }
        family(o, "vramguard_allowed_cap_bytes", "gauge", "The total<= cap of an allowance kind, where one is set.");
        for (int k = 0; k < VG_AK_COUNT; k++) {
            if (a->cap[k] == UINT64_MAX)
                continue;
            int n = 0;
            vg_out_str(o, "vramguard_allowed_cap_bytes{");
            label(o, "kind", vg_allow_kind_name(k), &n);
            sample_u64(o, a->cap[k]);
        }
    }
    const struct vg_budgets *b = &vg_config()->budgets;
    if (vg_budget_any(b)) {
        int devices = vg_table_device_count() < 1 ? 1 : vg_table_device_count();
        family(o, "vramguard_budget_bytes", "gauge", "A VRAMGUARD_LIMIT budget, per device and scope.");
        for (int d = 0; d < devices && d < VG_MAX_DEVICES; d++)
            for (int sc = 0; sc < VG_BUDGET_SCOPES; sc++) {
                if (b->limit[d][sc] == VG_BUDGET_NONE)
                    continue;
                vg_out_printf(o, "vramguard_budget_bytes{device=\"%d\",scope=\"%s\"} %llu\n", d,
                              vg_budget_scope_name(sc), (unsigned long long)b->limit[d][sc]);
            }
        family(o, "vramguard_budget_oom_events_total", "counter",
               "Allocations refused with CUDA_ERROR_OUT_OF_MEMORY by a VRAMGUARD_LIMIT budget, per device and scope.");
        for (int d = 0; d < devices && d < VG_MAX_DEVICES; d++)
            for (int sc = 0; sc < VG_BUDGET_SCOPES; sc++) {
                if (b->limit[d][sc] == VG_BUDGET_NONE)
                    continue;
                vg_out_printf(o, "vramguard_budget_oom_events_total{device=\"%d\",scope=\"%s\"} %llu\n", d,
                              vg_budget_scope_name(sc), (unsigned long long)vg_budget_oom_count_at(d, sc));
            }
    }
    family(o, "vramguard_build_info", "gauge", "vramguard version; value 1.");
    vg_out_str(o, "vramguard_build_info{version=\"");
    vg_metrics_label_value(o, VG_VERSION);
    vg_out_str(o, "\"} 1\n");
}

bool vg_metrics_write(struct vg_out *o)
{
    struct vg_metrics_snapshot *s = malloc(sizeof(*s));
    if (s == NULL)
        return false;
    vg_metrics_snapshot(s);
    vg_metrics_write_snapshot(o, s);
    free(s);
    return true;
}
