/* Incidents as data: policy violations and out-of-memory failures, counted
 * exactly, the first VG_EVENTS_KEPT of each kept, and refused allocations
 * counted per device, kind and API. Plain data (the model): no logging, no
 * CUDA call, no heap. events.c raises them and writes them out; reports,
 * /metrics and /health read them here. */
#ifndef VG_INCIDENTS_H
#define VG_INCIDENTS_H

#include "budget.h"
#include "model.h"
#include "policy.h"
#include <cuda.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* One intercepted allocation call, as the wrappers describe it. */
struct vg_call {
    const char *api;        /* outermost name: "cudaMalloc" through cudart */
    const char *driver_api; /* the driver entry point */
    void *caller;
    int device;
    int kind;
    uint64_t size;
    uint8_t purpose;
    uint16_t label;
    enum vg_action action;
    uint32_t stack; /* the allocation's stack (stacks.h), 0 = none */
    int allow_rule; /* the VRAMGUARD_ALLOW rule that let it through (its caps hold `size`), -1 none */
    bool capped;    /* refused although a rule matched: a cap (total<=) was reached */
};

enum { VG_EVENTS_KEPT = 64 };

struct vg_event {
    struct timespec time;
    char allow_rule[96]; /* violations: the narrowest VRAMGUARD_ALLOW rule that would allow it, "" none */
    const char *api;
    void *caller;
    uint32_t stack; /* where it was asked for (stacks.h), 0 = none */
    uint64_t size;
    int device;
    int kind;
    uint8_t purpose;
    uint16_t label;
    enum vg_action action;
    CUresult result;
    int budget;            /* OOMs: the VRAMGUARD_LIMIT scope that refused it (budget.h), -1 a device OOM */
    uint64_t budget_limit; /* that budget */
};

/* Record a violation: counted, kept, and counted as a rejection when
 * `e->action` is VG_ACTION_REJECT. */
void vg_incident_violation(const struct vg_event *e);
/* Record an out-of-memory failure; returns how many the device has had,
 * this one included (1: the first), and the process's total in *total. */
uint64_t vg_incident_oom(const struct vg_event *e, uint64_t *total);

/* Record a budget OOM (e->budget >= 0): counted apart from device OOMs, per
 * device and scope, and kept apart (vg_budget_ooms_kept). Returns how many budget
 * OOMs the device has had, this one included, and the process's total in
 * *total. */
uint64_t vg_incident_budget_oom(const struct vg_event *e, uint64_t *total);
uint64_t vg_budget_oom_count(void);
uint64_t vg_budget_oom_count_at(int device, int scope);

uint64_t vg_violation_count(void);
uint64_t vg_oom_count(void); /* device OOMs: the driver's answers, not budget OOMs */
uint64_t vg_oom_count_device(int device);
/* Copy the kept events; returns how many. */
int vg_violations_kept(struct vg_event *out, int max);
int vg_ooms_kept(struct vg_event *out, int max);
int vg_budget_ooms_kept(struct vg_event *out, int max);

/* Refused allocations, counted per device, kind and API (first 64 distinct). */
struct vg_rejection {
    int device;
    int kind;
    const char *api;
    uint64_t count;
};
int vg_rejections(struct vg_rejection *out, int max);

/* Forget everything after fork: the child starts clean. */
void vg_incidents_reset(void);

#endif
