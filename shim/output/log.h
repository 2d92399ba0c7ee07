/* Log lines: "vramguard[PID]: ..." to stderr or VRAMGUARD_LOG, written with
 * write(2) from a stack buffer (no heap, usable on the OOM path). Every line
 * carries the pid: the logs of several processes (workers of one job, a
 * command under `vramguard run`) interleave on one terminal.
 *
 * VRAMGUARD_LOG_LEVEL (config.h) says which lines are written: vg_log at
 * warn (refusals, OOMs, bad settings, the shim's own problems), vg_log_at
 * with info or debug for the rest; quiet writes nothing.
 *
 * The log never blocks the host: a sink that cannot take a line now (a
 * stderr pipe nobody reads, a FIFO) loses the line, which is counted and
 * said in the log once it can take lines again (and in the report). It is
 * also bounded: past VRAMGUARD_LOG_MAX bytes written by this process, one
 * final line says so and nothing more is written. */
#ifndef VG_LOG_H
#define VG_LOG_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Log to the file at `path` from now on ("" = stay on stderr). Of the
 * configuration the log reads only its level; the outputs pass it the
 * expanded VRAMGUARD_LOG once (events.c). */
void vg_log_open(const char *path);  /* also after fork: replaces (and closes) the log open before */
/* The most bytes this process writes to the log (VRAMGUARD_LOG_MAX), 0 for
 * no limit; set once by the outputs (events.c). */
void vg_log_set_max(uint64_t max);
void vg_log(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* at VG_LOG_WARN */
void vg_log_at(enum vg_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether VRAMGUARD_LOG_LEVEL lets lines of `level` through (to skip the
 * work of a line nobody will read). */
bool vg_log_enabled(enum vg_log_level level);
/* "vramguard[PID]: " into `out` (for text bound for vg_log_write); returns out. */
const char *vg_log_prefix(char *out, size_t size);
/* Control characters (newlines, escape codes) of outside text (a variable's
 * value, a label) as '?': one log line stays one line, nothing forged.
 * vg_log does this to every message; vg_log_safe copies `s` into `buf` for
 * text bound for vg_log_write (returns buf, or s when NULL). */
void vg_log_safe_inplace(char *text, size_t len);
const char *vg_log_safe(const char *s, char *buf, size_t size);
/* Write preformatted text as it is, at warn (each line must already carry
 * the prefix: vg_log_prefix). */
void vg_log_write(const char *text, size_t len);
/* write(2) until done or a real error; retries on EINTR. 0 when all was
 * written, else the errno of the failure (ENOSPC, EFBIG, EIO, ...). For
 * files the shim owns (reports, journals), not for the log. */
int vg_write_all(int fd, const char *buf, size_t len);
/* Human-readable byte count ("1.5 GiB") into `out`; returns `out`. */
char *vg_format_bytes(unsigned long long bytes, char *out, size_t out_size);

/* What this process wrote to its log, and what it could not. */
struct vg_log_stats {
    uint64_t bytes;         /* written */
    uint64_t max;           /* VRAMGUARD_LOG_MAX, 0: none */
    uint64_t lines_dropped; /* lost: the sink would have blocked (a full pipe) or failed */
    uint64_t lines_over_cap;/* not written: past the cap */
    bool capped;            /* the cap was reached (its final line written) */
};
void vg_log_stats(struct vg_log_stats *out);
/* After fork, in the child: its own counts and cap, no lock held. */
void vg_log_reset_after_fork(void);

#endif
