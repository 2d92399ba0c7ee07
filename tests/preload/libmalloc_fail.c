/* Makes the shim's own heap allocations fail, to test what it reports then
 * (issue 9 item 8). Preloaded after the shim; a malloc, calloc or realloc
 * called from a module whose path contains VG_MALLOC_FAIL_FROM (default
 * "libvramguard") is counted, and
 *
 *   VG_MALLOC_FAIL_AT=N       the Nth counted call fails (returns NULL), the
 *                             others succeed; nothing fails while unset
 *   VG_MALLOC_FAIL_PERSIST=1  every counted call from the Nth on fails
 *   VG_MALLOC_FAIL_LOG=FILE   one line per failed call is appended to FILE:
 *                             "failed call N: FUNCTION(SIZE)"
 *   VG_MALLOC_FAIL_SIZE=N     only calls for exactly N bytes are counted
 *   VG_MALLOC_FAIL_MIN_SIZE=N only calls for at least N bytes are counted
 *   VG_MALLOC_FAIL_WHILE=FILE every counted call fails while FILE exists
 *                             (instead of VG_MALLOC_FAIL_AT): a test turns
 *                             the failures on and off in a running process
 *
 * Calls from other modules (the program, libc on the shim's behalf, the fake
 * driver) are never failed. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *__libc_malloc(size_t size);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);

#define EXPORT __attribute__((visibility("default")))
EXPORT void *malloc(size_t size);
EXPORT void *calloc(size_t n, size_t size);
EXPORT void *realloc(void *p, size_t size);

static atomic_long counted;
static long fail_at = -1; /* -1: not read yet, 0: never */
static bool persist;
static const char *from = "libvramguard";
static const char *log_path;
static const char *while_path;
static size_t size_exact, size_min;
static __thread int inside; /* dladdr or the log calling malloc: never counted */

static void settings(void)
{
    if (fail_at >= 0)
        return;
    const char *at = getenv("VG_MALLOC_FAIL_AT"), *p = getenv("VG_MALLOC_FAIL_PERSIST"),
               *f = getenv("VG_MALLOC_FAIL_FROM");
    persist = p && strcmp(p, "1") == 0;
    if (f && *f)
        from = f;
    log_path = getenv("VG_MALLOC_FAIL_LOG");
    while_path = getenv("VG_MALLOC_FAIL_WHILE");
    const char *exact = getenv("VG_MALLOC_FAIL_SIZE"), *min = getenv("VG_MALLOC_FAIL_MIN_SIZE");
    size_exact = exact ? (size_t)atol(exact) : 0;
    size_min = min ? (size_t)atol(min) : 0;
    fail_at = at ? atol(at) : 0;
}

/* Whether this call (from `caller`) must fail. */
static bool must_fail(void *caller, const char *fn, size_t size)
{
    if (inside)
        return false;
    inside = 1;
    settings();
    bool fail = false;
    Dl_info info;
    bool sized = (size_exact == 0 || size == size_exact) && size >= size_min;
    if ((fail_at > 0 || while_path) && sized && dladdr(caller, &info) && info.dli_fname &&
        strstr(info.dli_fname, from)) {
        long n = atomic_fetch_add(&counted, 1) + 1;
        if (while_path)
            fail = access(while_path, F_OK) == 0;
        else
            fail = persist ? n >= fail_at : n == fail_at;
        if (fail && log_path) {
            char line[128];
            int len = snprintf(line, sizeof(line), "failed call %ld: %s(%zu)\n", n, fn, size);
            int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (fd >= 0) {
                if (write(fd, line, (size_t)len) < 0) { /* nothing to do */ }
                close(fd);
            }
        }
    }
    inside = 0;
    return fail;
}

void *malloc(size_t size)
{
    return must_fail(__builtin_return_address(0), "malloc", size) ? NULL : __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    return must_fail(__builtin_return_address(0), "calloc", n * size) ? NULL : __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    return must_fail(__builtin_return_address(0), "realloc", size) ? NULL : __libc_realloc(p, size);
}
