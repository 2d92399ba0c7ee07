/* What VRAMGUARD_TRACE's three files share; trace.h is its interface,
 * docs/trace-format.md the file's format.
 *
 *   trace.c         the producers: each thread's ring, the hooks, fork
 *   trace_writer.c  the file: frames, rings written or folded (the bound),
 *                   pool samples, the writer thread, start and end
 *   trace_meta.c    metadata frames: modules, labels, devices, stacks
 *
 * Lock order: vg_trace_writer_lock, vg_trace_meta_lock, the rings' lock
 * (trace.c), vg_trace_lock (the fork handlers take them all in it); the
 * table's locks may be taken under vg_trace_lock, never the other way
 * round, and no other lock of the shim is held when any of these is taken.
 * Everything declared here is hidden: one load or a direct call, no GOT,
 * no PLT, as if it were static. */
#ifndef VG_TRACE_INTERNAL_H
#define VG_TRACE_INTERNAL_H

#include "table.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the trace format is little-endian");

/* ---- the format ------------------------------------------------------------ */

struct record {
    uint64_t w[4];
};
_Static_assert(sizeof(struct record) == 32, "a trace record is 32 bytes");

struct frame_header {
    uint32_t magic;
    uint8_t type;
    uint8_t version;
    uint16_t reserved;
    uint32_t pid;
    uint32_t tid;
    uint64_t time;    /* ns since this process's trace began */
    uint32_t payload; /* bytes that follow, a multiple of 32 */
    uint32_t count;   /* records, or the JSON text's length */
};
_Static_assert(sizeof(struct frame_header) == 32, "a frame header is 32 bytes");

#define TRACE_MAGIC 0x52544756u /* "VGTR" */
enum { TRACE_VERSION = 1 };
enum {
    FRAME_START = 1,
    FRAME_EVENTS = 2,
    FRAME_MODULES = 3,
    FRAME_LABELS = 4,
    FRAME_DEVICES = 5,
    FRAME_COALESCED = 6,
    FRAME_NOTE = 7,
    FRAME_END = 8,
    FRAME_STACKS = 9,
};
#define TIME_MASK ((UINT64_C(1) << 52) - 1)
#define SIZE_MASK ((UINT64_C(1) << 48) - 1)

/* Word 1 of a record: size | device + 1 (0: none) << 48 | purpose << 53 |
 * kind << 55 | detail << 58. Purpose and kind sit as the table packs them
 * (kind << 2 | purpose: vg_table_cell), so an entry's meta converts in one
 * step (vg_trace_word_of_meta). */
static inline uint64_t pack_cell(uint64_t size, int device, int kind, int purpose, int detail)
{
    uint64_t dev = device < 0 ? 0 : device < 31 ? (uint64_t)device + 1 : 31;
    return (size & SIZE_MASK) | dev << 48 | (uint64_t)(purpose & 3) << 53 | (uint64_t)(kind & 7) << 55 |
           (uint64_t)(detail & 63) << 58;
}

static inline int record_kind(const struct record *r)
{
    return (int)(r->w[1] >> 55 & 7);
}

static inline int record_device(const struct record *r)
{
    return (int)(r->w[1] >> 48 & 31) - 1;
}

static inline int record_type(const struct record *r)
{
    return (int)(r->w[0] >> 52 & 15);
}

/* ---- a thread's ring (trace.c) ----------------------------------------------- */

/* A ring holds RING records (128 KiB); how its thread and the consumers
 * share it: trace.c. */
enum { RING = 4096 };

struct ring {
    _Atomic uint32_t head; /* written by the owner thread only */
    _Atomic uint32_t tail; /* written under vg_trace_lock only */
    uint32_t tid;
    struct ring *next; /* under the rings' lock */
    struct record rec[RING];
};

/* Stacks a record names (set by the producers, rarely: the first time an
 * id is seen; trace_meta.c names their sites). */
enum { STACK_IDS = 1 << 13, STACK_WORDS = STACK_IDS / 64 };
extern _Atomic uint64_t vg_trace_stacks_seen[STACK_WORDS] VG_HIDDEN;
/* A pool allocation was traced: the writer samples reserves. */
extern atomic_bool vg_trace_pools_seen VG_HIDDEN;

/* Write every ring (the writer, exit, fork). */
void vg_trace_drain_all(void) VG_HIDDEN;

/* ---- the file (trace_writer.c) ----------------------------------------------- */

/* The file's lock: under it, the file and what was written to it. */
extern pthread_mutex_t vg_trace_lock VG_HIDDEN;
/* The writer thread's: the fork handlers take it first. */
extern pthread_mutex_t vg_trace_writer_lock VG_HIDDEN;
/* What the producers signal to wake the writer (trace.c: wake_writer), and
 * whether it was initialised. */
extern pthread_cond_t vg_trace_writer_wake VG_HIDDEN;
extern atomic_bool vg_trace_writer_started VG_HIDDEN;
/* CLOCK_MONOTONIC at the start: records' times count from it. */
extern uint64_t vg_trace_start_ns VG_HIDDEN;

static inline uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static inline uint64_t now(void)
{
    return mono_ns() - vg_trace_start_ns;
}

/* Write what `b` holds (under vg_trace_lock): one frame, or folded once the
 * events' share is used. */
void vg_trace_drain_locked(struct ring *b) VG_HIDDEN;
/* `b` is full: the writer is behind, its thread writes it now (counted). */
void vg_trace_drain_full(struct ring *b) VG_HIDDEN;
/* One record written at once, for a thread without a ring (no heap). */
void vg_trace_write_one(struct record *r) VG_HIDDEN;
/* A JSON metadata frame (under vg_trace_lock), under its share of
 * VRAMGUARD_TRACE_MAX unless `always`. */
bool vg_trace_write_json(int type, const char *text, size_t len, bool always) VG_HIDDEN;
/* fork's child: no file, nothing written, no writer (under every lock). */
void vg_trace_writer_forget(void) VG_HIDDEN;

/* ---- metadata frames (trace_meta.c) ------------------------------------------ */

extern pthread_mutex_t vg_trace_meta_lock VG_HIDDEN;
/* Frames of the metadata that changed since they were last written. */
void vg_trace_write_metadata(void) VG_HIDDEN;
/* fork's child: nothing written yet (under every lock). */
void vg_trace_meta_forget(void) VG_HIDDEN;

#endif
