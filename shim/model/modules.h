/* The program's loaded modules, by address. */
#ifndef VG_MODULES_H
#define VG_MODULES_H

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

/* The base file name of the module holding `addr` ("libcudnn_graph.so.9";
 * the executable's own name for the main program): what VRAMGUARD_ALLOW
 * and VRAMGUARD_PURPOSE_RULES match globs against. Cached per module
 * address range after the first lookup. False for code in no module. */
bool vg_module_name(void *addr, char *out, unsigned long size);

#endif
