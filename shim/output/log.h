/* Log lines: "vramguard: ..." to stderr or VRAMGUARD_LOG, written with
 * write(2) from a stack buffer (no heap, usable on the OOM path). */
#ifndef VG_LOG_H
#define VG_LOG_H

#include <stddef.h>

/* Log to the file at `path` from now on ("" = stay on stderr). The log does
 * not read the configuration: the outputs pass it the expanded
 * VRAMGUARD_LOG once (events.c). */
void vg_log_open(const char *path);  /* also after fork: replaces (and closes) the log open before */
void vg_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Control characters (newlines, escape codes) of outside text (a variable's
 * value, a label) as '?': one log line stays one line, nothing forged.
 * vg_log does this to every message; vg_log_safe copies `s` into `buf` for
 * text bound for vg_log_write (returns buf, or s when NULL). */
void vg_log_safe_inplace(char *text, size_t len);
const char *vg_log_safe(const char *s, char *buf, size_t size);
/* Write preformatted text as it is (each line must already carry the prefix). */
void vg_log_write(const char *text, size_t len);
/* write(2) until done or a real error; retries on EINTR. 0 when all was
 * written, else the errno of the failure (ENOSPC, EFBIG, EIO, ...). */
int vg_write_all(int fd, const char *buf, size_t len);
/* Human-readable byte count ("1.5 GiB") into `out`; returns `out`. */
char *vg_format_bytes(unsigned long long bytes, char *out, size_t out_size);

#endif
