#include "emit.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vg_out_buffer(struct vg_out *o, char *buf, size_t size)
{
    o->buf = buf;
    o->size = size;
    o->len = o->total = 0;
    o->fd = -1;
    o->limit = 0;
    o->error = 0;
    if (buf && size)
        buf[0] = '\0';
}

void vg_out_fd(struct vg_out *o, int fd)
{
    o->buf = o->chunk;
    o->size = sizeof(o->chunk);
    o->len = o->total = 0;
    o->fd = fd;
    o->limit = 0;
    o->error = 0;
}

bool vg_out_growable(struct vg_out *o, size_t initial, size_t limit)
{
    char *buf = malloc(initial);
    vg_out_buffer(o, buf, buf ? initial : 0);
    o->limit = limit > initial ? limit : initial;
    return buf != NULL;
}

/* Make room for `need` bytes (NUL included) in a growable buffer. */
static void grow(struct vg_out *o, size_t need)
{
    if (o->limit == 0 || need <= o->size || o->size >= o->limit)
        return;
    size_t size = o->size * 2 > need ? o->size * 2 : need;
    if (size > o->limit)
        size = o->limit;
    char *bigger = realloc(o->buf, size);
    if (bigger == NULL) {
        o->error = ENOMEM; /* keeps what it has; truncates from here (total says how much was meant) */
        return;
    }
    o->buf = bigger;
    o->size = size;
}

void vg_out_flush(struct vg_out *o)
{
    if (o->fd >= 0 && o->len) {
        if (o->error == 0)
            o->error = vg_write_all(o->fd, o->buf, o->len);
        o->len = 0;
    }
}

void vg_out_mem(struct vg_out *o, const char *s, size_t n)
{
    if (o->limit)
        grow(o, o->len + n + 1);
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
    if ((size_t)n < sizeof(tmp)) {
        vg_out_mem(o, tmp, (size_t)n);
        return;
    }
    /* Longer than the stack buffer: format straight into the sink (no heap
     * unless the sink is growable). */
    if (o->fd >= 0)
        vg_out_flush(o);
    if (o->limit)
        grow(o, o->len + (size_t)n + 1);
    size_t room = o->size - o->len; /* includes the NUL's byte */
    va_start(ap, fmt);
    vsnprintf(o->buf + o->len, room, fmt, ap);
    va_end(ap);
    size_t kept = (size_t)n < room ? (size_t)n : (room ? room - 1 : 0);
    o->len += kept;
    o->total += (size_t)n;
    if (o->fd >= 0)
        vg_out_flush(o);
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_length(const unsigned char *p)
{
    size_t n;
    unsigned min;
    unsigned cp;
    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xE0) == 0xC0) { n = 2; cp = p[0] & 0x1F; min = 0x80; }
    else if ((p[0] & 0xF0) == 0xE0) { n = 3; cp = p[0] & 0x0F; min = 0x800; }
    else if ((p[0] & 0xF8) == 0xF0) { n = 4; cp = p[0] & 0x07; min = 0x10000; }
    else return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

void vg_out_json_string(struct vg_out *o, const char *s)
{
    if (s == NULL) {
        vg_out_str(o, "null");
        return;
    }
    vg_out_str(o, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        /* A run of plain ASCII goes out at once (paths, names: most of it). */
        const unsigned char *run = p;
        while (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        if (p > run)
            vg_out_mem(o, (const char *)run, (size_t)(p - run));
        if (*p == '\0')
            break;
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            vg_out_mem(o, esc, 2);
        } else if (*p < 0x20) {
            char esc[8];
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            vg_out_str(o, esc);
        } else {
            /* Invalid UTF-8 (a truncated label, an odd path) becomes U+FFFD. */
            size_t n = utf8_length(p);
            if (n == 0) {
                vg_out_str(o, "\\ufffd");
            } else {
                vg_out_mem(o, (const char *)p, n);
                p += n - 1;
            }
        }
    }
    vg_out_str(o, "\"");
}
