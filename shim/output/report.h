/* The JSON report (schema vramguard.report/v1, see docs/report.schema.json):
 * written at exit to VRAMGUARD_REPORT and served as /vram. One pass over
 * the table (census.h) gives the per-device figures and the largest live
 * allocations; each distinct call site is resolved once. */
#ifndef VG_REPORT_H
#define VG_REPORT_H

#include "emit.h"
#include <stdbool.h>

/* The whole JSON report to `o`. False, with nothing written (and a log
 * line), when there is no host memory to render it. */
bool vg_report_json(struct vg_out *o);
/* The same for /vram, as a running process: "state": "running", "live"
 * (not "live_at_exit"), no leak verdict and no "ended_at"; the command line
 * left out unless VRAMGUARD_VRAM_ARGV=1. */
bool vg_report_json_served(struct vg_out *o);
/* Write the JSON report to the configured path (atomically: temp + rename).
 * Returns false if there is no path or it cannot be written. Out of host
 * memory, the exit report still is (a static scratch); a figure the shim
 * could not measure (allocations it could not track) says "unknown". */
bool vg_report_write(void);

#endif
