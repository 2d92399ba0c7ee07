#include "log.h"
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_fd = 2;

/* One writer at a time: a breakdown stays in one piece, the note about
 * lines dropped comes before the next line, the counts below stay exact.
 * Never held across anything that can block: every write is non-blocking. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t written;     /* bytes this process wrote to the log */
static uint64_t max_bytes;   /* VRAMGUARD_LOG_MAX, 0: none */
static uint64_t dropped;     /* lines lost in all */
static uint64_t unsaid;      /* lines lost since the log last said so */
static int unsaid_error;     /* why the last line was lost */
static uint64_t over_cap;    /* lines not written past the cap */
static bool capped;
static bool mid_line;        /* a line was cut short: the next text starts a new line */

enum {
    /* Room kept under the cap for its final line (and the newline of a line cut short). */
    CAP_LINE_ROOM = 256,
    /* PIPE_BUF: a write of at most this to a pipe goes in whole or not at all. */
    CHUNK = 4096,
};

/* Run write(2) or send(2) with SIGPIPE blocked for this thread: a reader
 * that went away (stderr piped into a process that exited) must not kill
 * the host. A SIGPIPE the write raised is taken back; the host's handlers
 * and mask are left as they were. Returns bytes written until done, or
 * the errno of the first failure in *error (EAGAIN: it would have blocked). */
static size_t write_no_sigpipe(int fd, bool socket, const char *buf, size_t len, int *error)
{
    sigset_t pipe_only, old, pending;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    bool was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    size_t done = 0;
    *error = 0;
    while (done < len && *error == 0) {
        ssize_t n = socket ? send(fd, buf + done, len - done, MSG_DONTWAIT | MSG_NOSIGNAL)
                           : write(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            *error = n < 0 ? (errno == EWOULDBLOCK ? EAGAIN : errno) : EIO;
        else
            done += (size_t)n;
    }
    if (*error == EPIPE && !was_pending) {
        const struct timespec now = {0, 0};
        sigtimedwait(&pipe_only, NULL, &now);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return done;
}

int vg_write_all(int fd, const char *buf, size_t len)
{
    int error;
    write_no_sigpipe(fd, false, buf, len, &error);
    return error;
}

/* One attempt to hand `len` bytes to the log, never blocking. stderr is the
 * host's: its file description is shared, so its flags are not touched. A
 * pipe is written through a description of our own, opened non-blocking
 * for this write only (kept open, it would keep the pipe alive after the
 * host closed its stderr); a socket with MSG_DONTWAIT. A log file the shim
 * opened is non-blocking already (files.c). */
static size_t sink_write(const char *buf, size_t len, int *error)
{
    int fd = atomic_load(&log_fd), own = -1;
    bool socket = false;
    if (fd == 2) {
        struct stat st;
        if (fstat(2, &st) != 0) {
            *error = errno;
            return 0;
        }
        socket = S_ISSOCK(st.st_mode);
        if (S_ISFIFO(st.st_mode)) {
            own = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
            if (own >= 0) {
                fd = own;
            } else if (errno == ENXIO) {
                *error = EPIPE; /* no reader at all */
                return 0;
            } else {
                /* No /proc: write only when the pipe has room now (a writer
                 * racing us may still fill it first). */
                struct pollfd p = {.fd = 2, .events = POLLOUT};
                if (poll(&p, 1, 0) != 1 || !(p.revents & POLLOUT)) {
                    *error = (p.revents & (POLLERR | POLLHUP)) ? EPIPE : EAGAIN;
                    return 0;
                }
            }
        }
    }
    size_t done = write_no_sigpipe(fd, socket, buf, len, error);
    if (own >= 0)
        close(own);
    return done;
}

static uint64_t count_lines(const char *text, size_t len)
{
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    return n ? n : 1;
}

/* Write `text` (whole lines) in pieces of at most CHUNK bytes cut at line
 * ends; what the sink does not take is counted as dropped, and nothing
 * after it is tried. False when something was dropped. */
static bool write_lines_locked(const char *text, size_t len)
{
    while (len > 0) {
        size_t piece = 0;
        for (size_t i = 0; i < len && i < CHUNK; i++)
            if (text[i] == '\n')
                piece = i + 1;
        if (piece == 0) { /* one line longer than CHUNK (or no newline): as it is */
            const char *nl = memchr(text, '\n', len);
            piece = nl ? (size_t)(nl - text) + 1 : len;
        }
        int error = 0;
        size_t done = sink_write(text, piece, &error);
        written += done;
        if (done < piece) {
            uint64_t lost = count_lines(text + done, len - done);
            dropped += lost;
            unsaid += lost;
            unsaid_error = error;
            mid_line = done > 0 && text[done - 1] != '\n';
            return false;
        }
        text += piece;
        len -= piece;
    }
    return true;
}

/* Room for `len` more bytes under the cap; at the cap, its final line. */
static bool under_cap_locked(size_t len)
{
    if (capped)
        return false;
    if (max_bytes == 0 || written + len + CAP_LINE_ROOM <= max_bytes)
        return true;
    capped = true;
    char line[CAP_LINE_ROOM], size[32];
    int n = snprintf(line, sizeof(line),
                     "%svramguard[%d]: the log reached VRAMGUARD_LOG_MAX (%s): pid %d logs nothing more; the "
                     "counts in the report and /metrics stay exact\n",
                     mid_line ? "\n" : "", (int)getpid(), vg_format_bytes(max_bytes, size, sizeof(size)),
                     (int)getpid());
    if (n > 0 && (size_t)n < sizeof(line))
        write_lines_locked(line, (size_t)n);
    return false;
}

/* The lines lost since the log last could take them, said once it can. */
static void say_dropped_locked(void)
{
    char line[300];
    int n = snprintf(line, sizeof(line),
                     "%svramguard[%d]: %llu log line%s lost: the log could not take %s (%s); the counts in the report "
                     "stay exact\n",
                     mid_line ? "\n" : "", (int)getpid(), (unsigned long long)unsaid, unsaid == 1 ? " was" : "s were",
                     unsaid == 1 ? "it" : "them",
                     unsaid_error == EAGAIN ? "it would have blocked: a pipe nobody reads" : strerror(unsaid_error));
    if (n <= 0 || (size_t)n >= sizeof(line) || !under_cap_locked((size_t)n))
        return;
    uint64_t said = unsaid;
    bool was_mid_line = mid_line;
    mid_line = false;
    if (write_lines_locked(line, (size_t)n)) {
        unsaid -= said;
    } else {
        mid_line = mid_line || was_mid_line;
        dropped -= count_lines(line, (size_t)n); /* the note itself is no log line of the host's */
        unsaid -= count_lines(line, (size_t)n);
    }
}

static void emit(const char *text, size_t len)
{
    int saved = errno;
    pthread_mutex_lock(&log_lock);
    if (unsaid > 0 && !capped)
        say_dropped_locked();
    if (unsaid == 0 && under_cap_locked(len))
        write_lines_locked(text, len);
    else if (capped)
        over_cap += count_lines(text, len);
    else {
        uint64_t lost = count_lines(text, len); /* the note could not go out: neither can this */
        dropped += lost;
        unsaid += lost;
    }
    pthread_mutex_unlock(&log_lock);
    errno = saved;
}

void vg_log_open(const char *path)
{
    if (path == NULL || path[0] == '\0')
        return;
    int fd = vg_file_open_append(path);
    if (fd < 0) {
        vg_log("cannot open VRAMGUARD_LOG file %s (%s); logging to stderr", path,
               errno == ELOOP    ? "a symbolic link is not followed"
               : errno == ENXIO ? "a FIFO nobody reads"
                                : strerror(errno));
        return;
    }
    int old = atomic_exchange(&log_fd, fd);
    if (old > 2)
        close(old); /* a fork child's copy of its parent's log */
}

void vg_log_set_max(uint64_t max)
{
    pthread_mutex_lock(&log_lock);
    max_bytes = max;
    pthread_mutex_unlock(&log_lock);
}

void vg_log_write(const char *text, size_t len)
{
    if (len > 0 && vg_log_enabled(VG_LOG_WARN))
        emit(text, len);
}

bool vg_log_enabled(enum vg_log_level level)
{
    return level != VG_LOG_QUIET && level <= vg_config()->log_level;
}

const char *vg_log_prefix(char *out, size_t size)
{
    snprintf(out, size, "vramguard[%d]: ", (int)getpid());
    return out;
}

void vg_log_stats(struct vg_log_stats *out)
{
    pthread_mutex_lock(&log_lock);
    *out = (struct vg_log_stats){written, max_bytes, dropped, over_cap, capped};
    pthread_mutex_unlock(&log_lock);
}

void vg_log_reset_after_fork(void)
{
    /* The child has one thread: a lock some other thread of the parent held
     * is free in the child, and what this process wrote starts at 0. */
    pthread_mutex_init(&log_lock, NULL);
    written = dropped = unsaid = over_cap = 0;
    capped = mid_line = false;
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

static void log_line(enum vg_log_level level, const char *fmt, va_list ap)
{
    int saved = errno;
    if (!vg_log_enabled(level)) {
        errno = saved;
        return;
    }
    char line[1024];
    vg_log_prefix(line, sizeof(line));
    const size_t prefix = strlen(line);
    int n = vsnprintf(line + prefix, sizeof(line) - prefix - 1, fmt, ap);
    if (n < 0)
        n = 0;
    size_t len = prefix + ((size_t)n < sizeof(line) - prefix - 1 ? (size_t)n : sizeof(line) - prefix - 2);
    vg_log_safe_inplace(line + prefix, len - prefix);
    line[len++] = '\n';
    emit(line, len);
    errno = saved;
}

void vg_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(VG_LOG_WARN, fmt, ap);
    va_end(ap);
}

void vg_log_at(enum vg_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(level, fmt, ap);
    va_end(ap);
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
