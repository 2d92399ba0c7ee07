/* dlsym: the third way in. Static cudart, CuPy and XLA fetch driver entry
 * points with dlsym(libcuda, "cu..."). The exported `dlsym` is a small
 * assembly trampoline (dlsym_trampoline.S) that asks vg_dlsym_route() where
 * to go, then tail-jumps there with the caller's own return address intact:
 * glibc resolves RTLD_NEXT and RTLD_DEFAULT relative to that address, so
 * every name we do not wrap behaves exactly as without the shim. Only the
 * exact names of the interposition table are routed to vg_dlsym_wrapped.
 *
 * With other interposers in the process (HAMi-core's libvgpu, a profiler)
 * the shim keeps its place just above libcuda: a wrapper is handed out only
 * in place of the very function it forwards to (libcuda's, or the hook of an
 * interposer after the shim that replaces dlsym: real.h), never in place of
 * another library's definition of the name, which would skip that library
 * and go straight to the driver.
 *
 * Sanitizer runtimes (ASan, TSan) call dlsym while they initialise, before
 * their shadow memory exists and before our constructor ran: the route is
 * built without instrumentation (VG_NO_SANITIZE) and answers a name that is
 * not cu* at once, touching nothing else of the shim. */
#include "entry_table.h"
#include "hook_protocol.h"
#include "holes.h"
#include "log.h"
#include "real.h"

#include <dlfcn.h>
#include <link.h>
#include <stddef.h>

void *vg_dlsym_route(const char *name, void *handle, void *caller) __attribute__((visibility("hidden")));
void *vg_dlsym_wrapped(void *handle, const char *name, void *caller) __attribute__((visibility("hidden")));
void *vg_dlsym_unknown_variant(void *handle, const char *name) __attribute__((visibility("hidden")));
void *vg_dlsym_unavailable(void *handle, const char *name) __attribute__((visibility("hidden")));

VG_NO_SANITIZE void *vg_dlsym_unavailable(void *handle, const char *name)
{
    (void)handle;
    (void)name;
    return NULL;
}

/* ---- where a module stands in the link-map chain ------------------------- */

struct position_query {
    uintptr_t addr;
    int index, found;
};

static int find_position(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct position_query *q = data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && q->addr >= start && q->addr < start + ph->p_memsz) {
            q->found = q->index;
            return 1;
        }
    }
    q->index++;
    return 0;
}

/* The position in the chain of the module holding `addr`: the order in
 * which glibc searches the program's global scope (the program first, then
 * the preloaded libraries, then the rest). Code in no module counts as the
 * program, as glibc's dlsym counts it. dl_iterate_phdr: lookups only. */
static int chain_position(const void *addr)
{
    struct position_query q = {.addr = (uintptr_t)addr, .index = 0, .found = 0};
    dl_iterate_phdr(find_position, &q);
    return q.found;
}

/* ---- the three routes ------------------------------------------------------ */

/* A table name in a real handle, or RTLD_NEXT from a caller after the shim. */
void *vg_dlsym_wrapped(void *handle, const char *name, void *caller)
{
    int id = vg_entry_by_symbol(name);
    /* RTLD_NEXT: the first definition after the shim (glibc's dlsym, called
     * from here); otherwise what the next dlsym answers the caller. */
    void *found = handle == RTLD_NEXT ? vg_real_dlsym(RTLD_NEXT, name) : vg_next_dlsym(handle, name);
    if (found == NULL || id < 0)
        return found;
    if (found == vg_real_fn(id)) {
        vg_reached_driver();
        return vg_entries[id].wrapper;
    }
    if (found == vg_entries[id].wrapper) /* the shim's own export (a handle of the shim or the program) */
        return found;
    /* RTLD_NEXT from a caller after the shim: the first definition after the
     * shim is that caller's own or one before it, and what follows the
     * caller cannot be asked from here; the wrapper, as it always was, keeps
     * the caller from finding itself (README "Limits"). */
    if (handle == RTLD_NEXT && chain_position(found) <= chain_position(caller)) {
        vg_reached_driver();
        return vg_entries[id].wrapper;
    }
    static atomic_bool told;
    if (!atomic_exchange(&told, true)) {
        struct vg_symbol_info at;
        vg_log("dlsym(\"%s\") resolves to %s, not to libcuda: handed out unchanged (vramguard sees its calls "
               "where that library forwards them through dlsym or cuGetProcAddress)",
               name, vg_symbol_at(found, &at) && at.module ? at.module : "another library");
    }
    return found;
}

/* A variant of a wrapped entry point that the table does not know. */
void *vg_dlsym_unknown_variant(void *handle, const char *name)
{
    void *found = vg_next_dlsym(handle, name);
    if (found != NULL && vg_holes_note_unwrapped(name, "a variant vramguard does not know (newer driver): not wrapped"))
        vg_log("dlsym(\"%s\"): a variant vramguard does not know (a newer driver?): handed out unwrapped, its "
               "calls are not seen",
               name);
    return found;
}

VG_NO_SANITIZE void *vg_dlsym_route(const char *name, void *handle, void *caller)
{
    void *next = vg_next_dlsym_fn();
    if (next == NULL)
        return (void *)vg_dlsym_unavailable;
    if (name == NULL || name[0] != 'c' || name[1] != 'u')
        return next;
    bool pseudo = handle == RTLD_DEFAULT || handle == RTLD_NEXT;
    if (vg_entry_by_symbol(name) < 0) {
        if (!pseudo && vg_entry_is_unknown_variant(name))
            return (void *)vg_dlsym_unknown_variant;
        vg_entry_note_lookup(name);
        return next;
    }
    /* The shim exports every table name, so in the global scope the caller
     * finds the shim's wrapper, or an interposer's definition ahead of it:
     * both right as they are. Likewise RTLD_NEXT from a caller ahead of the
     * shim. Unless an interposer after the shim replaces dlsym: it answers
     * the global scope with its own hooks, which the wrapper must then stand
     * in for, as for a real handle. */
    if (handle == RTLD_DEFAULT)
        return next == vg_real_dlsym_fn() ? next : (void *)vg_dlsym_wrapped;
    if (handle == RTLD_NEXT && chain_position(caller) < chain_position((void *)vg_dlsym_route))
        return next;
    return (void *)vg_dlsym_wrapped;
}
