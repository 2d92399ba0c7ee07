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
/* The calling thread's current purpose and label index. */
void vg_purpose_current(uint8_t *purpose, uint16_t *label);
int vg_purpose_depth(void);

/* Intern `label` (truncated to VG_LABEL_MAX-1 bytes); 0 for NULL/"". When the
 * pool is full, every new label maps to the last slot, "(other labels)". */
uint16_t vg_label_intern(const char *label);
/* The text of an interned label, NULL for 0. */
const char *vg_label_text(uint16_t index);

#endif
