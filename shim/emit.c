#include "emit.h"
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void vg_out_buffer(struct vg_out *o, char *buf, size_t size)
{
    o->buf = buf;
    o->size = size;
    o->len = o->total = 0;
    o->fd = -1;
    if (buf && size)
        buf[0] = '\0';
}

void vg_out_fd(struct vg_out *o, int fd)
{
    o->buf = o->chunk;
    o->size = sizeof(o->chunk);
    o->len = o->total = 0;
    o->fd = fd;
}

void vg_out_flush(struct vg_out *o)
{
    if (o->fd >= 0 && o->len) {
        vg_write_all(o->fd, o->buf, o->len);
        o->len = 0;
    }
}

void vg_out_mem(struct vg_out *o, const char *s, size_t n)
{
    o->total += n;
    while (n > 0) {
        /* A buffer sink keeps one byte for the terminating NUL. */
        size_t room = o->size - o->len - (o->fd < 0 ? 1 : 0);
        if (o->size == 0 || (o->fd < 0 && o->size - o->len <= 1))
            return;
        if (room == 0) {
            vg_out_flush(o);
            continue;
        }
        size_t k = n < room ? n : room;
        memcpy(o->buf + o->len, s, k);
        o->len += k;
        s += k;
        n -= k;
        if (o->fd < 0)
            o->buf[o->len] = '\0';
    }
}

void vg_out_str(struct vg_out *o, const char *s)
{
    vg_out_mem(o, s, strlen(s));
}

void vg_out_printf(struct vg_out *o, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    vg_out_mem(o, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

void vg_out_json_string(struct vg_out *o, const char *s)
{
    if (s == NULL) {
        vg_out_str(o, "null");
        return;
    }
    vg_out_str(o, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            vg_out_mem(o, esc, 2);
        } else if (*p < 0x20) {
            char esc[8];
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            vg_out_str(o, esc);
        } else {
            vg_out_mem(o, (const char *)p, 1);
        }
    }
    vg_out_str(o, "\"");
}
