/* Stream-ordered allocation (hooks_pools.c). */
#ifndef VG_HOOKS_POOLS_H
#define VG_HOOKS_POOLS_H

#include <cuda.h>
#include <stdbool.h>

/* Is `stream` capturing (any status but none)? Asks the driver. */
bool vg_stream_capturing(CUstream stream, bool ptsz);

#endif
