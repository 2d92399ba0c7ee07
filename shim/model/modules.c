/* Loaded modules by address (dl_iterate_phdr): no CUDA, no output. */
#include "modules.h"

#include <link.h>
#include <stddef.h>

struct range_query {
    uintptr_t addr;
    struct vg_module *out;
};

static int find_range(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct range_query *q = data;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        uintptr_t end = start + ph->p_memsz;
        if (start < lo) lo = start;
        if (end > hi) hi = end;
    }
    if (q->addr < lo || q->addr >= hi)
        return 0;
    q->out->lo = lo;
    q->out->hi = hi;
    q->out->is_main = info->dlpi_name == NULL || info->dlpi_name[0] == '\0';
    q->out->path = q->out->is_main ? NULL : info->dlpi_name;
    return 1;
}

bool vg_module_of(void *addr, struct vg_module *out)
{
    struct range_query q = {.addr = (uintptr_t)addr, .out = out};
    return dl_iterate_phdr(find_range, &q) != 0;
}

