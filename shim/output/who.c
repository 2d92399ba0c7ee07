#include "who.h"
#include "callers.h"
#include "stacks.h"

#include <stdio.h>
#include <string.h>

/* Not the program's own code: the shim (its wrappers, its runtime entry
 * points between cudart's frames and the program's) and the CUDA runtime. */
static bool passed_over(const struct vg_frame *f)
{
    return f->module != NULL && (f->module->is_self || f->runtime);
}

bool vg_who(struct vg_symbols *s, uint32_t stack, void *caller, struct vg_who *out)
{
    vg_symbols_begin(s);
    *out = (struct vg_who){0};
    void *frames[VG_STACK_FRAMES];
    int n = vg_stack_frames(stack, frames, VG_STACK_FRAMES);
    for (int i = 0; i < n; i++) {
        struct vg_frame f;
        if (!vg_symbols_frame(s, frames[i], &f))
            return false; /* code in no module: nothing to name past it */
        if (!passed_over(&f)) {
            out->at = f;
            return true;
        }
        if (f.runtime && f.function && strncmp(f.function, "cuda", 4) == 0)
            out->via = f.function; /* the API function (cudart's internals are not what the program called) */
    }
    if (n > 0)
        return false; /* the whole stack is the runtime's: deeper than it holds */
    struct vg_frame f;
    if (caller == NULL || !vg_symbols_frame(s, caller, &f) || passed_over(&f))
        return false;
    out->at = f;
    return true;
}

void vg_who_text(const struct vg_who *w, char *out, size_t size)
{
    const struct vg_frame *f = &w->at;
    if (f->function)
        snprintf(out, size, "%s+0x%lx (%s+0x%lx)", f->function, (unsigned long)f->offset, f->module->name,
                 (unsigned long)f->address);
    else
        snprintf(out, size, "%s+0x%lx%s", f->module->name, (unsigned long)f->address,
                 f->module->has_symbols ? ""
                 : f->module->map    ? " (no symbols)"
                                     : " (symbols not read)");
}

void vg_who_or_caller_text(struct vg_symbols *s, uint32_t stack, void *caller, char *out, size_t size)
{
    struct vg_who w;
    struct vg_frame f;
    if (vg_who(s, stack, caller, &w))
        vg_who_text(&w, out, size);
    else if (caller && vg_symbols_frame(s, caller, &f) && f.function)
        snprintf(out, size, "%s+0x%lx (%s+0x%lx)", f.function, (unsigned long)f.offset, f.module->name,
                 (unsigned long)f.address);
    else
        vg_caller_text(caller, true, out, size);
}

void vg_who_json(struct vg_out *o, struct vg_symbols *s, uint32_t stack, void *caller, bool spaced)
{
    struct vg_who w;
    if (!vg_who(s, stack, caller, &w))
        return;
    const char *sep = spaced ? ": " : ":", *comma = spaced ? ", " : ",";
    const struct vg_frame *f = &w.at;
    char function[VG_WHO_NAME_MAX]; /* a C++ name can be long: the line of a journal is bounded */
    if (f->function)
        snprintf(function, sizeof(function), "%s", f->function);
    vg_out_printf(o, "%s\"site\"%s{\"function\"%s", comma, sep, sep);
    vg_out_json_string(o, f->function ? function : NULL);
    if (f->function)
        vg_out_printf(o, "%s\"offset\"%s%lu", comma, sep, (unsigned long)f->offset);
    vg_out_printf(o, "%s\"module\"%s", comma, sep);
    vg_out_json_string(o, f->module->path[0] ? f->module->path : f->module->name);
    vg_out_printf(o, "%s\"address\"%s\"0x%lx\"%s\"symbols\"%s%s", comma, sep, (unsigned long)f->address, comma, sep,
                  f->module->has_symbols ? "true" : "false");
    if (w.via) {
        vg_out_printf(o, "%s\"via\"%s", comma, sep);
        vg_out_json_string(o, w.via);
    }
    vg_out_str(o, "}");
}
