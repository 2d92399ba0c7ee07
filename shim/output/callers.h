/* Code addresses named for the outputs: "path+0xoff" (the module's file and
 * the offset from its load base) or the module's base name, exactly as
 * dladdr(3) names them. No heap.
 *
 * One address (a log line, a journal event): vg_caller_text asks dladdr.
 * Many addresses (a report, /vram, the OOM breakdown): a struct vg_modules
 * holds one snapshot of the loaded modules (dl_iterate_phdr, taken at the
 * first lookup) that answers every lookup by binary search, so a report
 * costs one walk of the loader's list instead of a dladdr (a symbol-table
 * scan under the loader's lock) per allocation. A snapshot lookup never
 * calls dladdr, even for an address it lacks (a raw address then): the
 * breakdowns look up under their scratch lock, and a thread inside dlopen
 * (holding the loader's lock while a constructor allocates and hits an
 * OOM) can be waiting for that lock. dl_iterate_phdr takes only the
 * loader's list lock, which dlopen does not hold while constructors run. */
#ifndef VG_CALLERS_H
#define VG_CALLERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void vg_caller_text(void *caller, bool offset, char *out, size_t size);

enum { VG_MODULES_MAX = 1024, VG_MODULE_SEGMENTS_MAX = 4096, VG_MODULE_NAMES = 128 * 1024 };

struct vg_module_segment {
    uintptr_t lo, hi; /* [lo, hi): one PT_LOAD segment */
    uint32_t module;
};
struct vg_module_entry {
    uintptr_t base;   /* what dladdr gives as dli_fbase */
    uint32_t name;    /* offsets into names[] */
    uint32_t base_name;
};
/* Large (about 240 KiB): static under a lock, or malloc'd. */
struct vg_modules {
    bool taken;
    bool complete;    /* false: some modules did not fit; they print as raw addresses */
    int n_modules, n_segments;
    size_t names_len;
    struct vg_module_segment seg[VG_MODULE_SEGMENTS_MAX]; /* sorted by address */
    struct vg_module_entry mod[VG_MODULES_MAX];
    char names[VG_MODULE_NAMES];
};

/* Forget the snapshot: the next lookup takes a fresh one. */
void vg_modules_init(struct vg_modules *m);
/* Index of the module holding `addr`, or -1 (no module, or not in the
 * snapshot). */
int vg_modules_find(struct vg_modules *m, const void *addr);
/* The module's base name ("libfoo.so.1"; "(main)" when it has none). */
const char *vg_modules_base_name(const struct vg_modules *m, int index);
/* vg_caller_text through the snapshot (a raw address for what it lacks). */
void vg_modules_caller_text(struct vg_modules *m, void *caller, bool offset, char *out, size_t size);

#endif
