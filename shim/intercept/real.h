/* Real-symbol resolution: glibc's dlsym, the real libcuda and its functions,
 * and the cudart a runtime wrapper's caller would have reached. */
#ifndef VG_REAL_H
#define VG_REAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* glibc's dlsym (versioned lookup, never a glibc-private symbol). NULL-safe:
 * returns NULL when it cannot be found. Note: RTLD_NEXT/RTLD_DEFAULT resolve
 * relative to the shim, not to the shim's caller. */
void *vg_real_dlsym(void *handle, const char *name);
void *vg_real_dlsym_fn(void); /* the pointer itself */

/* The dlsym that comes next after the shim: another interposer's (one that
 * replaces dlsym, as HAMi-core's libvgpu does) when one is preloaded after
 * the shim, else glibc's. Lookups the shim does not change are forwarded to
 * it, and so are lookups in a given handle of the names it wraps, so that
 * each library in a chain of interposers keeps its place. Use it only with
 * a real handle: RTLD_NEXT and RTLD_DEFAULT would be resolved relative to
 * that interposer, not to the shim. */
void *vg_next_dlsym(void *handle, const char *name);
void *vg_next_dlsym_fn(void); /* the pointer itself, for the trampoline */

/* Code that a sanitizer runtime may reach through dlsym before its shadow
 * memory exists: never instrumented, whatever the build's -fsanitize. */
#define VG_NO_SANITIZE __attribute__((no_sanitize("address", "undefined", "thread")))

/* The real libcuda.so.1: RTLD_NOLOAD first, plain dlopen as a fallback. NULL
 * if there is none. Lazy; never called from a constructor. */
void *vg_driver_handle(void);

/* What the dynamic linker says about a code address: the exported symbol
 * that starts exactly there (NULL if none), the file of its module, and
 * whether that module is the real libcuda. False when no module holds it.
 * dladdr takes the loader's lock: lookup time only, under no shim lock. */
struct vg_symbol_info {
    const char *name;
    const char *module;
    bool in_driver;
};
bool vg_symbol_at(void *addr, struct vg_symbol_info *out);

/* Driver functions the shim itself calls (never wrapped). */
enum vg_helper {
    VG_H_cuCtxGetDevice,
    VG_H_cuDeviceGetName,
    VG_H_cuDeviceTotalMem_v2,
    VG_H_cuDeviceGetAttribute,
    VG_H_cuDeviceGetPCIBusId,
    VG_H_cuDeviceGetUuid_v2,
    VG_H_cuMemGetInfo_v2,
    VG_H_cuPointerGetAttribute,
    VG_H_cuPointerGetAttributes,
    VG_H_cuStreamIsCapturing,
    VG_H_cuStreamIsCapturing_ptsz,
    VG_H_cuMemPoolGetAttribute,
    VG_H_cuDeviceGetGraphMemAttribute,
    VG_H_cuMemGetAddressRange_v2,
    VG_H_cuArrayGetMemoryRequirements,
    VG_H_cuMipmappedArrayGetMemoryRequirements,
    VG_H_cuMemGetAllocationPropertiesFromHandle,
    VG_H_cuCtxGetCurrent,
    VG_H_cuDevicePrimaryCtxGetState,
    VG_H_COUNT
};
void *vg_helper_fn(enum vg_helper h);

/* Runtime functions the shim wraps (runtime_points.def). */
enum vg_runtime_fn {
#define RUNTIME(name, params, args) VG_RT_##name,
#include "runtime_points.def"
#undef RUNTIME
    VG_RT_COUNT
};
extern const char *const vg_runtime_names[VG_RT_COUNT];
/* The real runtime function the code at `caller` would have reached: the
 * next definition after the shim (RTLD_NEXT), or the caller's own dependency
 * scope when RTLD_NEXT finds none (cudart loaded RTLD_LOCAL) or finds a
 * different cudart than the caller's own (two cudart majors). NULL if none. */
void *vg_real_runtime(enum vg_runtime_fn fn, void *caller);

#endif
