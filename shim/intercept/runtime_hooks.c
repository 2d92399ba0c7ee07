/* Runtime-level wrappers (rows in runtime_points.def), for programs with a
 * shared cudart. They only name the call and record its true caller; the
 * driver wrapper underneath does the accounting. Each forwards to the
 * cudart its caller would have reached without the shim (vg_real_runtime). */
#include "process.h"
#include "log.h"
#include "real.h"

#include <cuda_runtime_api.h>
#include <stdatomic.h>

#define EXPORT __attribute__((visibility("default")))

#define RUNTIME(name, params, args) (void *)name,
void *vg_runtime_wrappers[VG_RT_COUNT] = {
#include "runtime_points.def"
};
#undef RUNTIME

#define RUNTIME(name, params, args) #name,
const char *const vg_runtime_names[VG_RT_COUNT] = {
#include "runtime_points.def"
};
#undef RUNTIME

static cudaError_t no_runtime(const char *name)
{
    static atomic_bool warned;
    if (!atomic_exchange(&warned, true))
        vg_log("%s was called but no cudart defines it for this caller; returning "
               "cudaErrorInitializationError",
               name);
    return cudaErrorInitializationError;
}

/* Name the call for the driver wrapper below, unless already inside one. */
static void runtime_enter(const char *api, void *caller)
{
    struct vg_tls_call *t = &vg_tls_call;
    if (t->rt_depth++ == 0) {
        t->rt_api = api;
        t->rt_caller = caller;
    }
}

static void runtime_leave(void)
{
    vg_tls_call.rt_depth--;
}

#define RUNTIME(name, params, args)                                                               \
    EXPORT cudaError_t name params                                                                \
    {                                                                                             \
        void *caller = __builtin_return_address(0);                                               \
        __typeof__(&name) real = vg_real_runtime(VG_RT_##name, caller);                           \
        if (real == NULL)                                                                         \
            return no_runtime(#name);                                                             \
        runtime_enter(#name, caller);                                                             \
        cudaError_t r = real args;                                                                \
        runtime_leave();                                                                          \
        return r;                                                                                 \
    }
#include "runtime_points.def"
#undef RUNTIME
