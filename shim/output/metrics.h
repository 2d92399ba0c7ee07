/* The numbers the endpoint serves, gathered once per request (metrics.c):
 * a snapshot of the table, the pools' reserves, device identities, NVML
 * figures and event counts. Gathering never needs a current CUDA context
 * (pool and graph reserves are asked by handle or ordinal, device memory
 * through NVML), so it is safe on a thread that has none. The Prometheus
 * text emitter works on any sink, without sockets. */
#ifndef VG_METRICS_H
#define VG_METRICS_H

#include "devices.h"
#include "emit.h"
#include "incidents.h"
#include "pools.h"
#include "table.h"

#include <stdbool.h>
#include <stdint.h>

enum { VG_METRICS_REJECTIONS_MAX = 64 };

struct vg_metrics_device {
    bool used;                    /* the program allocated on it, made it current, or hit an OOM there */
    bool known;                   /* identity learned (name, uuid, total) */
    struct vg_device_info info;
    struct vg_charge charge;
    uint64_t oom_events;
    bool nvml_memory;             /* nvml_total/nvml_free valid */
    uint64_t nvml_total, nvml_free;
    bool nvml_process;            /* process_used valid */
    uint64_t process_used;
};

struct vg_metrics_snapshot {
    struct vg_stats stats;
    struct vg_pool_totals totals;
    struct vg_metrics_device device[VG_MAX_DEVICES];
    int device_count;             /* devices the program used */
    uint64_t violations, oom_events;
    struct vg_rejection rejections[VG_METRICS_REJECTIONS_MAX];
    int n_rejections;
};

/* Fill `s` (large: allocate it). Makes driver and NVML calls that need no
 * context; takes no lock across them. */
void vg_metrics_snapshot(struct vg_metrics_snapshot *s);
/* The GPU UUID label of a device in a snapshot ("unknown" when not learned). */
const char *vg_metrics_uuid(const struct vg_metrics_snapshot *s, int device);

/* Prometheus text exposition format 0.0.4 of a snapshot / of the process
 * now (false, nothing written: no host memory for the snapshot). */
void vg_metrics_write_snapshot(struct vg_out *o, const struct vg_metrics_snapshot *s);
bool vg_metrics_write(struct vg_out *o);
/* A label value as the text format wants it: \\, \" and \n escaped. */
void vg_metrics_label_value(struct vg_out *o, const char *value);

#define VG_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
