/* No silent holes: the allocation-related entry points that are passed
 * through on purpose (passthrough_points.def) and were looked up. */
#ifndef VG_HOLES_H
#define VG_HOLES_H

#include <stdbool.h>

/* Note a lookup of `symbol` (by cuGetProcAddress or dlsym). True, with the
 * row's name and reason, for the first lookup of that row in the process
 * when its reason is not "information only" (the caller may log it: a debug
 * line); the report lists them all. */
bool vg_holes_note(const char *symbol, const char **name, const char **reason);
/* Note an entry point handed out unwrapped although its name is not in
 * passthrough_points.def: a variant of a wrapped entry point that the
 * interposition table does not know (a newer driver's cuMemAlloc_v3), or an
 * address the driver answered with that no wrapper provably fits. `symbol`
 * is copied (at most 15 such names are kept, no heap); `reason` must be a
 * string literal. True the first time `symbol` is noted: the caller logs it. */
bool vg_holes_note_unwrapped(const char *symbol, const char *reason);
/* The names looked up so far that were passed through: those of
 * passthrough_points.def whose reason is not "information only" (those are
 * fetched by every cudart), then those of vg_holes_note_unwrapped; returns
 * how many. */
int vg_holes_seen(const char **names, const char **reasons, int max);

#endif
