#include "log.h"
#include "files.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <time.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static atomic_int log_fd = 2;

/* A reader that went away (stderr piped into a process that exited) must
 * not kill the host with SIGPIPE: the signal is blocked for this thread
 * during the write and, when the write raised it, taken back. The host's
 * handlers and mask are left as they were. */
int vg_write_all(int fd, const char *buf, size_t len)
{
    sigset_t pipe_only, old, pending;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    bool was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    int error = 0;
    while (len > 0 && error == 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            error = n < 0 ? errno : EIO;
        } else {
            buf += n;
            len -= (size_t)n;
        }
    }
    if (error == EPIPE && !was_pending) {
        const struct timespec now = {0, 0};
        sigtimedwait(&pipe_only, NULL, &now);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return error;
}

void vg_log_open(const char *path)
{
    if (path == NULL || path[0] == '\0')
        return;
    int fd = vg_file_open_append(path);
    if (fd < 0) {
        vg_log("cannot open VRAMGUARD_LOG file %s (%s); logging to stderr", path,
               errno == ELOOP ? "a symbolic link is not followed" : strerror(errno));
        return;
    }
    int old = atomic_exchange(&log_fd, fd);
    if (old > 2)
        close(old); /* a fork child's copy of its parent's log */
}

void vg_log_write(const char *text, size_t len)
{
    int saved = errno;
    vg_write_all(atomic_load(&log_fd), text, len);
    errno = saved;
}

void vg_log_safe_inplace(char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
            text[i] = '?';
}

const char *vg_log_safe(const char *s, char *buf, size_t size)
{
    if (s == NULL || size == 0)
        return s;
    snprintf(buf, size, "%s", s);
    vg_log_safe_inplace(buf, strlen(buf));
    return buf;
}

void vg_log(const char *fmt, ...)
{
    char line[1024];
    int saved = errno;
    const size_t prefix = sizeof("vramguard: ") - 1;
    memcpy(line, "vramguard: ", prefix);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + prefix, sizeof(line) - prefix - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    size_t len = prefix + ((size_t)n < sizeof(line) - prefix - 1 ? (size_t)n : sizeof(line) - prefix - 2);
    vg_log_safe_inplace(line + prefix, len - prefix);
    line[len++] = '\n';
    vg_write_all(atomic_load(&log_fd), line, len);
    errno = saved;
}

char *vg_format_bytes(unsigned long long bytes, char *out, size_t out_size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(out, out_size, "%llu B", bytes);
    else
        snprintf(out, out_size, "%.1f %s", v, units[u]);
    return out;
}
