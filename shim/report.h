/* Report emitters: the text breakdown (vramguard_report(), the OOM dump),
 * the JSON report written at exit (schema vramguard.report/v1, see
 * docs/report.schema.json), and the JSON fields of one event. */
#ifndef VG_REPORT_H
#define VG_REPORT_H

#include "emit.h"
#include "events.h"
#include <stdbool.h>
#include <time.h>

/* The breakdown of every device the process used, one line each, each line
 * starting with `prefix`. */
void vg_report_text(struct vg_out *o, const char *prefix);
/* The full breakdown for the first OOM of a device, written to the log. No
 * heap; CUDA and NVML are queried before any lock is taken. */
void vg_report_oom_breakdown(const struct vg_call *failed);
/* "time":...,"api":... (no braces) for a journal line or the report. */
void vg_report_event_fields(struct vg_out *o, const struct vg_event *e, bool violation);
/* The whole JSON report to `o`. */
void vg_report_json(struct vg_out *o);
/* Write the JSON report to the configured path (atomically: temp + rename).
 * Returns false if there is no path or it cannot be written. */
bool vg_report_write(void);
/* Remember when the process first reached the driver. */
void vg_report_note_start(const struct timespec *t);

#endif
