#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int vg_file_open_append(const char *path)
{
    /* Appending replaces nothing: /dev/null or a log FIFO is the user's
     * choice. A link at the last component is another user's, possibly.
     * Non-blocking: a FIFO nobody reads fails the open (ENXIO) or a write
     * (EAGAIN) instead of stopping the host; a regular file is unaffected. */
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
}

/* "<name>.tmp.<pid>.<16 hex>" left by a process that was killed while it
 * wrote `path` (SIGKILL runs no cleanup): removed when that pid is gone. A
 * live pid's file (maybe a reused pid) is left alone. */
static void remove_stale_temps(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    const char *name = slash ? slash + 1 : path;
    if (slash) {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof(dir))
            return;
        memcpy(dir, path, n);
        dir[n ? n : 1] = '\0';
        if (n == 0)
            dir[0] = '/';
    } else {
        strcpy(dir, ".");
    }
    size_t name_len = strlen(name);
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *s = e->d_name;
        if (strncmp(s, name, name_len) != 0 || strncmp(s + name_len, ".tmp.", 5) != 0)
            continue;
        char *end;
        long pid = strtol(s + name_len + 5, &end, 10);
        if (pid <= 0 || *end != '.' || strlen(end + 1) != 16 || strspn(end + 1, "0123456789abcdef") != 16)
            continue;
        if (pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH)
            unlinkat(dirfd(d), s, 0);
    }
    closedir(d);
}

int vg_file_begin_replace(const char *path, char *tmp, size_t tmp_size)
{
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
        errno = EINVAL; /* renaming over a device node or a FIFO would replace it */
        return -1;
    }
    remove_stale_temps(path);
    static atomic_uint counter;
    for (int attempt = 0; attempt < 16; attempt++) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t r = 0;
        if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) /* else: O_EXCL still holds */
            r = (((uint64_t)now.tv_nsec << 20) ^ (uint64_t)now.tv_sec ^
                 ((uint64_t)atomic_fetch_add(&counter, 1) << 40) ^ (uint64_t)(uintptr_t)&st) *
                UINT64_C(0x9E3779B97F4A7C15);
        if ((size_t)snprintf(tmp, tmp_size, "%s.tmp.%d.%016llx", path, (int)getpid(), (unsigned long long)r) >=
            tmp_size) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

bool vg_file_commit(int fd, const char *tmp, const char *path, bool sync)
{
    bool ok = !sync || fsync(fd) == 0 || errno == EINVAL;
    ok = close(fd) == 0 && ok;
    if (ok && rename(tmp, path) == 0)
        return true;
    int saved = errno;
    unlink(tmp);
    errno = saved;
    return false;
}

void vg_file_abandon(int fd, const char *tmp)
{
    if (fd >= 0)
        close(fd);
    unlink(tmp);
}

bool vg_file_is_discard(const char *path)
{
    return strcmp(path, "/dev/null") == 0;
}
