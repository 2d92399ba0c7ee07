/* One output sink for every report emitter (text breakdown, JSON report,
 * journal lines): either a caller's fixed buffer (truncated, always
 * NUL-terminated, `total` = length it would have needed) or a file
 * descriptor (flushed in chunks). No heap. */
#ifndef VG_EMIT_H
#define VG_EMIT_H

#include <stddef.h>

struct vg_out {
    char *buf;
    size_t size;   /* capacity of buf */
    size_t len;    /* bytes held in buf */
    size_t total;  /* bytes emitted in all */
    int fd;        /* -1: buffer sink */
    char chunk[4096];
};

void vg_out_buffer(struct vg_out *o, char *buf, size_t size);
void vg_out_fd(struct vg_out *o, int fd);
void vg_out_flush(struct vg_out *o);
void vg_out_mem(struct vg_out *o, const char *s, size_t n);
void vg_out_str(struct vg_out *o, const char *s);
void vg_out_printf(struct vg_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal with quotes and escapes; "null" for NULL. */
void vg_out_json_string(struct vg_out *o, const char *s);

#endif
