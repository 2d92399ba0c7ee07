/* dlsym: the third way in. Static cudart, CuPy and XLA fetch driver entry
 * points with dlsym(libcuda, "cu..."). The exported `dlsym` is a small
 * assembly trampoline (dlsym_trampoline.S) that asks vg_dlsym_route() where
 * to go, then tail-jumps there with the caller's own return address intact:
 * glibc resolves RTLD_NEXT and RTLD_DEFAULT relative to that address, so
 * every name we do not wrap behaves exactly as without the shim. Only the
 * exact names of the interposition table are routed to vg_dlsym_wrapped. */
#include "entry_table.h"
#include "hook_protocol.h"
#include "real.h"

#include <dlfcn.h>
#include <stddef.h>

void *vg_dlsym_route(const char *name) __attribute__((visibility("hidden")));
void *vg_dlsym_wrapped(void *handle, const char *name) __attribute__((visibility("hidden")));
void *vg_dlsym_unavailable(void *handle, const char *name) __attribute__((visibility("hidden")));

void *vg_dlsym_unavailable(void *handle, const char *name)
{
    (void)handle;
    (void)name;
    return NULL;
}

void *vg_dlsym_wrapped(void *handle, const char *name)
{
    int id = vg_entry_by_symbol(name);
    void *real = vg_real_dlsym(handle, name);
    if (real == NULL || id < 0)
        return real;
    vg_reached_driver();
    return vg_entries[id].wrapper;
}

void *vg_dlsym_route(const char *name)
{
    void *real = vg_real_dlsym_fn();
    if (real == NULL)
        return (void *)vg_dlsym_unavailable;
    if (vg_entry_by_symbol(name) >= 0)
        return (void *)vg_dlsym_wrapped;
    vg_entry_note_lookup(name);
    return real;
}
