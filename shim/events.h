/* Events: policy violations and out-of-memory failures. Each is counted,
 * logged, kept (the first VG_EVENTS_KEPT of each) for the report, and
 * appended to the report's journal as it happens so that a killed process
 * leaves its evidence. Nothing here allocates heap memory.
 *
 * The outputs start here too: the log is opened at VRAMGUARD_LOG and given
 * the configuration's warnings once per process, when the process first
 * reaches the driver or at its first event, whichever comes first. */
#ifndef VG_EVENTS_H
#define VG_EVENTS_H

#include "model.h"
#include "policy.h"
#include <cuda.h>
#include <stdbool.h>
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
    uint32_t stack; /* VRAMGUARD_BACKTRACE */
};

enum { VG_EVENTS_KEPT = 64 };

struct vg_event {
    struct timespec time;
    const char *api;
    void *caller;
    uint64_t size;
    int device;
    int kind;
    uint8_t purpose;
    uint16_t label;
    enum vg_action action;
    CUresult result;
};

/* A violation: `result` is the refusal (rejected) or the driver's answer
 * (let through under warn). */
void vg_event_violation(const struct vg_call *c, CUresult result);
/* The driver returned CUDA_ERROR_OUT_OF_MEMORY: full breakdown on the first
 * failure of each device, one line for each later one. */
void vg_event_oom(const struct vg_call *c, CUresult result);
/* First time the process reaches the driver: open the log, the journal's
 * start line. */
void vg_events_process_start(void);

uint64_t vg_violation_count(void);
uint64_t vg_oom_count(void);
uint64_t vg_oom_count_device(int device);
/* Copy the kept events; returns how many. */
int vg_violations_kept(struct vg_event *out, int max);
int vg_ooms_kept(struct vg_event *out, int max);

/* Refused allocations, counted per device, kind and API (first 64 distinct). */
struct vg_rejection {
    int device;
    int kind;
    const char *api;
    uint64_t count;
};
int vg_rejections(struct vg_rejection *out, int max);

/* The report path for this process (VRAMGUARD_REPORT expanded), "" if none. */
const char *vg_report_path(void);
/* Forget counts and journal after fork: the child starts clean. */
void vg_events_reset_after_fork(void);

const char *vg_cuda_error_name(CUresult r);

/* ISO 8601 UTC with milliseconds. */
void vg_format_time(const struct timespec *t, char *out, size_t size);

#endif
