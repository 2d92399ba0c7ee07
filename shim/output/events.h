/* Events: policy violations and out-of-memory failures as they happen.
 * Each is recorded (incidents.h: counts and the kept events, which the
 * reports read), logged, and appended to the report's journal so that a
 * killed process leaves its evidence; the first OOM of a device logs the
 * full breakdown (breakdown.h). Nothing here allocates heap memory.
 *
 * The outputs start here too: the log is opened at VRAMGUARD_LOG and given
 * the configuration's warnings once per process, when the process first
 * reaches the driver or at its first event, whichever comes first. */
#ifndef VG_EVENTS_H
#define VG_EVENTS_H

#include "emit.h"
#include "incidents.h"
#include <cuda.h>
#include <stdbool.h>
#include <time.h>

/* A violation: `result` is the refusal (rejected) or the driver's answer
 * (let through under warn). */
void vg_event_violation(const struct vg_call *c, CUresult result);
/* The driver returned CUDA_ERROR_OUT_OF_MEMORY: full breakdown on the first
 * failure of each device, one line for each later one. */
void vg_event_oom(const struct vg_call *c, CUresult result);
/* A VRAM budget (VRAMGUARD_LIMIT) refused the allocation: a budget OOM,
 * counted apart from device OOMs, logged (the first per device with the
 * breakdown naming the budget), journaled as an "oom" event with
 * "budget":SCOPE. No heap. */
void vg_event_budget_oom(const struct vg_call *c, const struct vg_budget_hit *hit);
/* An allocation that succeeded but could not be tracked (out of host
 * memory: the table counts it): the first is logged, saying that the
 * report's live and leak figures will be unknown. */
void vg_event_untracked(const struct vg_call *c);
/* An entry point looked up and passed through on purpose (holes.h), the
 * first of its name: a debug line (VRAMGUARD_LOG_LEVEL=debug); the report
 * lists them all. */
void vg_event_passthrough(const char *name, const char *reason);
/* At exit, before the report: a summary of every group of events still
 * suppressed (repeats.h), in the log and the journal, and the journal's
 * exit line (every event of the run is in it, or in a summary). */
void vg_events_at_exit(void);
/* First time the process reaches the driver: open the log, the journal
 * (its start line, always its first). */
void vg_events_process_start(void);
/* When the process first reached the driver (zero before). */
struct timespec vg_events_started_at(void);

/* "time":...,"api":... (no braces): one event's JSON fields, for a journal
 * line and the report, its site named through `symbols` (who.h). */
struct vg_symbols;
void vg_event_json_fields(struct vg_out *o, const struct vg_event *e, bool violation, struct vg_symbols *symbols);

/* The report path for this process (VRAMGUARD_REPORT expanded), "" if none. */
const char *vg_report_path(void);
/* What this process wrote to its journal: bytes (capped at
 * VRAMGUARD_LOG_MAX, `max`), events the cap kept out. */
struct vg_journal_stats {
    uint64_t bytes, max, events_over_cap;
    bool capped;
    bool open; /* there is a journal (a report path) */
};
void vg_events_journal_stats(struct vg_journal_stats *out);
/* Forget the journal after fork: the child starts clean. */
void vg_events_reset_after_fork(void);

const char *vg_cuda_error_name(CUresult r);

/* ISO 8601 UTC with milliseconds. */
void vg_format_time(const struct timespec *t, char *out, size_t size);

#endif
