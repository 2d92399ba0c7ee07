/* The shim's own threads (the trace's writer, the endpoint's server): one
 * way to start them. */
#ifndef VG_THREADS_H
#define VG_THREADS_H

#include <pthread.h>
#include <stddef.h>

/* Start fn(arg) on a detached thread with every signal blocked (the
 * program's handlers never run there; the caller's mask is unchanged) and
 * `stack` bytes of stack (0: the default). Returns pthread_create's result,
 * and only once the thread runs (at most about a second later): a fork
 * right after must not copy a thread still being set up, whose start may
 * hold an allocator's lock that the child would inherit (ASan's did). */
int vg_thread_start(pthread_t *out, size_t stack, void *(*fn)(void *), void *arg);

#endif
