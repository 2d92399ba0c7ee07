/* No silent holes: the allocation-related entry points that are passed
 * through on purpose (passthrough_points.def) and were looked up. */
#ifndef VG_HOLES_H
#define VG_HOLES_H

#include <stdbool.h>

/* Note a lookup of `symbol` (by cuGetProcAddress or dlsym). True, with the
 * row's name and reason, for the first such lookup in the process whose
 * reason is not "information only": the caller logs it as it happens; the
 * rest are listed at exit. */
bool vg_holes_note(const char *symbol, const char **name, const char **reason);
/* The passthrough names looked up so far whose reason is not "information
 * only" (those are fetched by every cudart); returns how many. */
int vg_holes_seen(const char **names, const char **reasons, int max);

#endif
