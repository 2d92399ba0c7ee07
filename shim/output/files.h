/* Files the shim writes into someone else's environment (reports, their
 * journals, the log, endpoint addresses), opened so that a hostile or
 * unusual target cannot redirect them: a symbolic link at the last component
 * is never followed, a target that is not a regular file (a device node, a
 * FIFO) is never replaced, and temporary files get unpredictable names
 * created exclusively. */
#ifndef VG_FILES_H
#define VG_FILES_H

#include <stdbool.h>
#include <stddef.h>

/* Open `path` for appending (created 0644 if missing), never through a
 * symbolic link (ELOOP), non-blocking. A device or FIFO is written as it is
 * (appending replaces nothing: /dev/null, a log pipe); a FIFO with no
 * reader is refused (ENXIO). -1 with errno set. */
int vg_file_open_append(const char *path);

/* Start an atomic replacement of `path`: a new temporary file next to it
 * (its name in `tmp`), or -1 with errno set; EINVAL when `path` exists and is
 * not a regular file or a link to replace. vg_file_commit renames it over
 * `path` (closing fd); vg_file_abandon removes it. */
int vg_file_begin_replace(const char *path, char *tmp, size_t tmp_size);
bool vg_file_commit(int fd, const char *tmp, const char *path, bool sync);
void vg_file_abandon(int fd, const char *tmp);

/* "/dev/null" as a report path means no report (and no journal). */
bool vg_file_is_discard(const char *path);

#endif
