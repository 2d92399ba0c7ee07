/* Who asked for an allocation: the first frame of its stack in the
 * program's own code, past the shim's frames and the CUDA runtime's
 * (symbols.h tells them apart), with the runtime function it called. An
 * allocation without a stack (under VRAMGUARD_BACKTRACE's threshold) has
 * its caller: the return address at the outermost vramguard entry, which
 * is the program's own code through a shared cudart or the driver API, and
 * cudart's inside a static one (then there is no site). No heap. */
#ifndef VG_WHO_H
#define VG_WHO_H

#include "emit.h"
#include "symbols.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { VG_WHO_NAME_MAX = 400 }; /* a function's name in JSON, at most (bytes, with its NUL) */

struct vg_who {
    struct vg_frame at;  /* the site */
    const char *via;     /* the runtime's API function the site called (cudaMalloc...), or NULL */
};

/* The site of an allocation with stack `stack` (0: none) and `caller`.
 * False when none is known. Starts a new stack in `s` (vg_symbols_begin):
 * names of earlier lookups may be gone. */
bool vg_who(struct vg_symbols *s, uint32_t stack, void *caller, struct vg_who *out);
/* "function+0xOFF (module+0xADDR)", "module+0xADDR" (no symbol there),
 * "module+0xADDR (no symbols)" (the module has no symbol table) or
 * "module+0xADDR (symbols not read)" (its file could not be read). */
void vg_who_text(const struct vg_who *w, char *out, size_t size);
/* What the text outputs say an allocation came from: its site, else its
 * caller with the function there ("cudaMalloc+0x1a (prog+0x2b8a)"), else
 * the caller as callers.h names it. */
void vg_who_or_caller_text(struct vg_symbols *s, uint32_t stack, void *caller, char *out, size_t size);
/* The report's "site" object, after `lead` (", " or ","): nothing when
 * there is no site. `spaced`: the report's "key": value style, else the
 * journal's "key":value. */
void vg_who_json(struct vg_out *o, struct vg_symbols *s, uint32_t stack, void *caller, bool spaced);

#endif
