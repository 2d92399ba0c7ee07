/* One output sink for every report emitter (text breakdown, JSON report,
 * journal lines): either a caller's fixed buffer (truncated, always
 * NUL-terminated, `total` = length it would have needed), a file
 * descriptor (flushed in chunks), or a growable heap buffer (the endpoint's
 * bodies, rendered once whatever their size). Only the last uses the heap. */
#ifndef VG_EMIT_H
#define VG_EMIT_H

#include <stdbool.h>
#include <stddef.h>

struct vg_out {
    char *buf;
    size_t size;   /* capacity of buf */
    size_t len;    /* bytes held in buf */
    size_t total;  /* bytes emitted in all */
    int fd;        /* -1: buffer sink */
    size_t limit;  /* growable buffer: the most it may grow to; 0 = fixed */
    int error;     /* fd sink: errno of the first failed write (nothing written after it);
                    * growable buffer: ENOMEM once it could not grow; else 0 */
    char chunk[4096];
};

void vg_out_buffer(struct vg_out *o, char *buf, size_t size);
void vg_out_fd(struct vg_out *o, int fd);
/* A heap buffer of `initial` bytes that doubles as needed, up to `limit`;
 * past that (or out of memory) it truncates like a fixed buffer. The
 * caller frees o->buf. False when not even `initial` could be had. Never on
 * the OOM path. */
bool vg_out_growable(struct vg_out *o, size_t initial, size_t limit);
void vg_out_flush(struct vg_out *o);
void vg_out_mem(struct vg_out *o, const char *s, size_t n);
void vg_out_str(struct vg_out *o, const char *s);
void vg_out_printf(struct vg_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal with quotes and escapes; "null" for NULL. */
void vg_out_json_string(struct vg_out *o, const char *s);

#endif
