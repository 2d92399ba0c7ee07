/* Purpose tags: a thread-local stack of (purpose, label) pushed by the
 * program through purpose_tags/vramguard.h, and a process-wide pool of
 * interned labels so that table entries hold a 16-bit index, not a string. */
#ifndef VG_PURPOSES_H
#define VG_PURPOSES_H

#include <stdint.h>

enum { VG_PURPOSE_STACK_DEPTH = 32, VG_LABEL_POOL = 256, VG_LABEL_MAX = 64 };

/* Push a purpose (0..VG_PURPOSE_COUNT-1) with an optional label (NULL or "" =
 * none). Returns the new depth. An invalid purpose is pushed as unknown, so
 * pushes and pops still pair, and -1 is returned. */
int vg_purpose_push(int purpose, const char *label);
/* Pop the innermost purpose; returns the new depth (0 when already empty). */
int vg_purpose_pop(void);
struct vg_purpose_frame {
    uint8_t purpose;
    uint16_t label;
};
struct vg_purpose_stack {
    /* May exceed VG_PURPOSE_STACK_DEPTH: deeper pushes reuse the top frame
     * but still pair with their pops. */
    int depth;
    struct vg_purpose_frame frames[VG_PURPOSE_STACK_DEPTH];
};
extern __thread struct vg_purpose_stack vg_purpose_tls __attribute__((tls_model("initial-exec")));

/* The calling thread's current purpose and label index (read on every
 * allocation, hence inline). */
static inline void vg_purpose_current(uint8_t *purpose, uint16_t *label)
{
    int d = vg_purpose_tls.depth;
    if (d == 0) {
        *purpose = 0; /* VG_PURPOSE_UNKNOWN */
        *label = 0;
        return;
    }
    int top = d <= VG_PURPOSE_STACK_DEPTH ? d - 1 : VG_PURPOSE_STACK_DEPTH - 1;
    *purpose = vg_purpose_tls.frames[top].purpose;
    *label = vg_purpose_tls.frames[top].label;
}

static inline int vg_purpose_depth(void)
{
    return vg_purpose_tls.depth;
}

/* Intern `label` (truncated to VG_LABEL_MAX-1 bytes); 0 for NULL/"". When the
 * pool is full, every new label maps to the last slot, "(other labels)". */
uint16_t vg_label_intern(const char *label);
/* The text of an interned label, NULL for 0. */
const char *vg_label_text(uint16_t index);
/* Labels interned so far + 1 (indices 1.. are in use below it; the last
 * slot, "(other labels)", once the pool is full): what a reader may ask
 * vg_label_text for without racing an intern. */
int vg_label_count(void);

#endif
