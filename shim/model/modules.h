/* The program's loaded modules, by address. */
#ifndef VG_MODULES_H
#define VG_MODULES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* The loaded module whose segments contain `addr` (dl_iterate_phdr): its
 * address range and path (NULL for the main program). False for code in
 * no module (JIT, anonymous mappings). */
struct vg_module {
    uintptr_t lo, hi;
    const char *path;
    bool is_main;
};
bool vg_module_of(void *addr, struct vg_module *out);
/* The address range [lo, hi) of a dl_iterate_phdr entry's loaded segments. */
struct dl_phdr_info;
void vg_module_range(const struct dl_phdr_info *info, uintptr_t *lo, uintptr_t *hi);

/* Modules the process has unloaded so far (dl_iterate_phdr's dlpi_subs), as
 * of the last vg_modules_recount(). Anything cached by address range was
 * true of the modules loaded then: once this moves, another module may be
 * mapped there. Read on hot paths: one load. */
extern _Atomic unsigned long long vg_modules_unloaded;
static inline unsigned long long vg_modules_unloads(void)
{
    return atomic_load_explicit(&vg_modules_unloaded, memory_order_acquire);
}
/* Read dlpi_subs again, after a dlclose (intercept/real.c). */
void vg_modules_recount(void);

/* The base file name of the module holding `addr` ("libcudnn_graph.so.9";
 * the executable's own name for the main program): what VRAMGUARD_ALLOW
 * and VRAMGUARD_PURPOSE_RULES match globs against. Cached per module
 * address range after the first lookup. False for code in no module. */
bool vg_module_name(void *addr, char *out, unsigned long size);
/* Where that cache holds the module of `addr`: a slot in
 * 0..VG_MODULE_SLOTS-1 that stays this module's while vg_modules_unloads()
 * stays the same (what others key their own per-module answers by), or -1
 * when it is not cached (vg_module_name caches it). Lock-free: the slot
 * scan and nothing else. */
enum { VG_MODULE_SLOTS = 64 };
int vg_module_slot(void *addr);

#endif
