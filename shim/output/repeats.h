/* Repeated events: a loop retrying a refused allocation must not write a
 * line per retry (a 414 MB journal in 10 s). Events are grouped by what
 * makes them the same: type, API, call site, kind, device, action, result
 * and budget scope. The first VG_REPEATS_SHOWN of a group are written (log
 * and journal); later ones are suppressed and counted, and a summary of
 * them is due at most every VG_REPEATS_PERIOD_S seconds while they go on,
 * and at exit. The incident counts (incidents.h) never pass through here:
 * they stay exact. A fixed table, no heap (the OOM path comes here). */
#ifndef VG_REPEATS_H
#define VG_REPEATS_H

#include <cuda.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

enum vg_repeat_type { VG_REPEAT_VIOLATION, VG_REPEAT_OOM, VG_REPEAT_BUDGET_OOM, VG_REPEAT_TYPES };
enum { VG_REPEATS_SHOWN = 10, VG_REPEATS_PERIOD_S = 10 };
/* Groups told apart; events of further groups share one group per type and kind. */
enum { VG_REPEATS_GROUPS = 192 };

struct vg_repeat_group {
    int type; /* enum vg_repeat_type */
    const char *api;
    void *caller;
    int kind;
    int device;
    int action;
    int budget;
    CUresult result;
};

/* What was suppressed of one group since its last summary. `other`: the
 * group stands for every group of its type and kind that found the table
 * full (only `type` and `kind` are set then). */
struct vg_repeat_summary {
    struct vg_repeat_group group;
    bool other;
    uint64_t count;
    uint64_t max_size;     /* the largest of them */
    struct timespec since; /* the first of them */
};

struct vg_repeat_decision {
    bool write;         /* write this event */
    bool first_held;    /* the first of its group suppressed: say that they are counted from now on */
    bool other;         /* its group is an overflow group (the table is full) */
    bool summary_due;   /* `summary` holds what was suppressed so far (now reset) */
    struct vg_repeat_summary summary;
};

/* One event of group `g`, of `size` bytes, at `when` (realtime) and
 * `mono_s` (CLOCK_MONOTONIC seconds: the summaries' period). */
void vg_repeat_admit(const struct vg_repeat_group *g, uint64_t size, const struct timespec *when, time_t mono_s,
                     struct vg_repeat_decision *out);
/* At exit: the next group with suppressed events not yet summarised (its
 * count then reset); false when there is none. */
bool vg_repeat_take_pending(struct vg_repeat_summary *out);
/* Events suppressed in all, of one type. */
uint64_t vg_repeat_suppressed(int type);
/* After fork, in the child: nothing seen, no lock held. */
void vg_repeat_reset(void);

#endif
