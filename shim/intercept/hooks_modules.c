/* __managed__ globals. A module's or library's globals are created by the
 * driver when it loads the code, not by an allocation call; the program (or
 * cudart on its behalf) finds them by name: cuLibraryGetManaged (managed
 * ones only), cuLibraryGetGlobal and cuModuleGetGlobal (any global). Every
 * managed global found is a violation (kind managed, its size as the driver
 * answers, the calling module), reported once per address; other globals
 * are nothing to report.
 *
 * Reported, never refused: cudart registers a __managed__ variable when it
 * loads the module (__cudaRegisterManagedVar, then the driver lookup on the
 * first use of the variable or of the module) and stores the address the
 * driver answers in the program's host-side pointer to the variable. A
 * refused lookup leaves that pointer NULL, and the program's next host
 * access to the variable dereferences it (a fake driver that makes cudart's
 * start fail shows exactly that: SIGSEGV in main). So under `reject` a
 * managed global is still a violation (the guard fails the run), let through;
 * under `warn` a violation; under `off`, or let through by a VRAMGUARD_ALLOW
 * rule (counted for the rule), nothing. They are not allocations:
 * not in the allocation table, never live at exit, never a leak. */
#include "hooks_modules.h"
#include "allow.h"
#include "hook_protocol.h"
#include "config.h"
#include "log.h"
#include "wrappers.h"

#include <stdatomic.h>

/* ---- globals already classified, by address (lock-free, fixed size) ------- */

enum { SEEN_SLOTS = 4096 };
static _Atomic uintptr_t seen[SEEN_SLOTS];

static inline size_t seen_home(uintptr_t addr)
{
    uint64_t h = (uint64_t)addr * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 52) % SEEN_SLOTS;
}

static bool seen_contains(uintptr_t addr)
{
    for (size_t n = 0, i = seen_home(addr); n < SEEN_SLOTS; n++, i = (i + 1) % SEEN_SLOTS) {
        uintptr_t k = atomic_load_explicit(&seen[i], memory_order_acquire);
        if (k == addr)
            return true;
        if (k == 0)
            return false;
    }
    return false;
}

/* True when this call added `addr` (or the set is full: then every lookup
 * of a managed global is reported, possibly again). */
static bool seen_add(uintptr_t addr)
{
    for (size_t n = 0, i = seen_home(addr); n < SEEN_SLOTS; n++, i = (i + 1) % SEEN_SLOTS) {
        uintptr_t k = atomic_load_explicit(&seen[i], memory_order_acquire);
        if (k == 0 && atomic_compare_exchange_strong_explicit(&seen[i], &k, addr, memory_order_acq_rel,
                                                              memory_order_acquire))
            return true;
        if (k == addr)
            return false;
    }
    return true;
}

void vg_modules_globals_reset_after_fork(void)
{
    for (size_t i = 0; i < SEEN_SLOTS; i++)
        atomic_store_explicit(&seen[i], 0, memory_order_relaxed);
}

/* ---- classification and the report ------------------------------------------ */

static bool pointer_is_managed(uintptr_t addr)
{
    __typeof__(&cuPointerGetAttribute) get = vg_helper_fn(VG_H_cuPointerGetAttribute);
    unsigned int managed = 0;
    return get != NULL && get(&managed, CU_POINTER_ATTRIBUTE_IS_MANAGED, (CUdeviceptr)addr) == CUDA_SUCCESS &&
           managed != 0;
}

static void report_managed_global(struct vg_call *c, uint64_t size)
{
    struct vg_decision d = vg_policy_decide_call(vg_config(), VG_KIND_MANAGED, size, c->caller);
    if (d.action == VG_ACTION_ALLOW) {
        if (d.rule >= 0) {
            /* Let through by a VRAMGUARD_ALLOW rule: counted for the rule; a
             * global is no table entry that a free would give back, so the
             * caps hold nothing for it. */
            vg_allow_give_back(VG_KIND_MANAGED, size);
            vg_allow_count(d.rule, size);
        }
        return; /* or `off`: nothing to report */
    }
    c->kind = VG_KIND_MANAGED;
    c->size = size;
    c->device = vg_current_device();
    c->capped = d.capped; /* decided here, not by vg_call_decide */
    if (d.action == VG_ACTION_REJECT) {
        static atomic_bool explained;
        if (!atomic_exchange(&explained, true))
            vg_log("__managed__ globals are violations but are never refused: cudart stores the address the "
                   "driver answers in the program's pointer to the variable, and a refused lookup would leave "
                   "it NULL (the program would crash at its first host access); each is reported once, let "
                   "through");
    }
    c->action = VG_ACTION_WARN; /* let through: see above */
    vg_event_violation(c, CUDA_SUCCESS);
}

/* A global at `addr` of `size` bytes was found by a successful lookup. */
static void global_found(struct vg_call *c, uintptr_t addr, uint64_t size, bool known_managed)
{
    if (addr == 0 || seen_contains(addr))
        return;
    bool managed = known_managed || pointer_is_managed(addr);
    if (seen_add(addr) && managed)
        report_managed_global(c, size);
}

/* The body of a global lookup `real(dptr, bytes, owner, name)`: out
 * parameters the caller left NULL ("ignored", cuda.h) are answered into
 * locals so that the address and size are known. */
#define GLOBAL_LOOKUP(wrapper, api, ptr_type, size_type, owner, known_managed)                     \
    __typeof__(&wrapper) real = REAL(wrapper);                                                    \
    if (real == NULL)                                                                             \
        return vg_missing_real(api);                                                              \
    struct vg_call c;                                                                             \
    CUresult r;                                                                                   \
    if (!vg_call_enter(&c, api, VG_KIND_MANAGED, 0, __builtin_return_address(0)) ||               \
        (dptr == NULL && bytes == NULL)) {                                                        \
        r = real(dptr, bytes, owner, name);                                                       \
    } else {                                                                                      \
        ptr_type p = 0;                                                                           \
        size_type b = 0;                                                                          \
        r = real(dptr ? dptr : &p, bytes ? bytes : &b, owner, name);                              \
        if (r == CUDA_SUCCESS)                                                                    \
            global_found(&c, (uintptr_t)(dptr ? *dptr : p), (uint64_t)(bytes ? *bytes : b),      \
                         known_managed);                                                          \
    }                                                                                             \
    vg_call_leave();                                                                              \
    return r

EXPORT CUresult cuLibraryGetManaged(CUdeviceptr *dptr, size_t *bytes, CUlibrary library, const char *name)
{
    GLOBAL_LOOKUP(cuLibraryGetManaged, "cuLibraryGetManaged", CUdeviceptr, size_t, library, true);
}

EXPORT CUresult cuLibraryGetGlobal(CUdeviceptr *dptr, size_t *bytes, CUlibrary library, const char *name)
{
    GLOBAL_LOOKUP(cuLibraryGetGlobal, "cuLibraryGetGlobal", CUdeviceptr, size_t, library, false);
}

EXPORT CUresult cuModuleGetGlobal_v2(CUdeviceptr *dptr, size_t *bytes, CUmodule hmod, const char *name)
{
    GLOBAL_LOOKUP(cuModuleGetGlobal_v2, "cuModuleGetGlobal_v2", CUdeviceptr, size_t, hmod, false);
}

EXPORT CUresult vg_cuModuleGetGlobal_v1(vg_devptr_v1 *dptr, unsigned int *bytes, CUmodule hmod, const char *name)
{
    GLOBAL_LOOKUP(vg_cuModuleGetGlobal_v1, "cuModuleGetGlobal", vg_devptr_v1, unsigned int, hmod, false);
}
