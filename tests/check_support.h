/* Helpers for suites that run real programs: paths of the build, a scratch
 * directory per test, running a command with extra environment and its
 * output captured, reading files back. */
#ifndef CHECK_SUPPORT_H
#define CHECK_SUPPORT_H

#include <stddef.h>

/* $VG_BUILD (absolute build dir) and $VG_ROOT (repository root). */
const char *vg_test_build(void);
const char *vg_test_root(void);
/* A fresh temporary directory (removed by the runner at exit is not
 * attempted; they live under $TMPDIR). */
const char *vg_test_tmpdir(void);

/* Run argv with the current environment plus `env` ("NAME=value" strings,
 * NULL-terminated; may be NULL), stdout+stderr into `out_path`. With
 * `preload`, LD_PRELOAD is the shim and LD_LIBRARY_PATH the fake CUDA and
 * the test libraries. Returns the exit status, or 128+N for a signal. */
int vg_test_run(const char *const *argv, const char *const *env, int preload, const char *out_path);

/* The same, started in the background (it dies with the test process);
 * returns its pid. */
#include <sys/types.h>
pid_t vg_test_spawn(const char *const *argv, const char *const *env, int preload, const char *out_path);

/* The whole file as a NUL-terminated malloc'd string ("" if missing), the
 * shim's log prefixes "vramguard[PID]: " read as "vramguard: " (tests match
 * log lines without knowing the pid; vg_test_read_raw keeps them). */
char *vg_test_read(const char *path);
char *vg_test_read_raw(const char *path);
/* In place: every "vramguard[DIGITS]: " in `text` becomes "vramguard: ". */
void vg_test_strip_pids(char *text);
/* Occurrences of `needle` in `hay`. */
int vg_test_count(const char *hay, const char *needle);

/* True under make check-sanitize (VG_SANITIZE=1): the build is instrumented,
 * so tests of what a sanitizer runtime changes by design (the shim's link
 * dependencies, malloc interposition, installing the plain build) skip. */
int vg_test_sanitized(void);

#endif
