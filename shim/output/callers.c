#include "callers.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static void format(const char *name, uintptr_t base, void *caller, bool offset, char *out, size_t size)
{
    if (name[0] == '\0')
        name = "(main)";
    if (offset)
        snprintf(out, size, "%s+0x%lx", name, (unsigned long)((uintptr_t)caller - base));
    else
        snprintf(out, size, "%s", base_name(name));
}

void vg_caller_text(void *caller, bool offset, char *out, size_t size)
{
    Dl_info info;
    if (caller && dladdr(caller, &info) && info.dli_fname)
        format(info.dli_fname, (uintptr_t)info.dli_fbase, caller, offset, out, size);
    else
        snprintf(out, size, caller ? "%p" : "(unknown)", caller);
}

/* ---- the snapshot -------------------------------------------------------- */

void vg_modules_init(struct vg_modules *m)
{
    m->taken = false;
}

static uint32_t add_name(struct vg_modules *m, const char *s)
{
    size_t n = strlen(s) + 1;
    if (m->names_len + n > sizeof(m->names))
        return UINT32_MAX;
    memcpy(m->names + m->names_len, s, n);
    m->names_len += n;
    return (uint32_t)(m->names_len - n);
}

/* One loaded object: its PT_LOAD segments and its name as dladdr gives it
 * (glibc names the main program, whose link-map name is empty, by argv[0];
 * the first object dl_iterate_phdr reports is the main program). */
static int take_one(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct vg_modules *m = arg;
    int loads = 0;
    uintptr_t lowest = UINTPTR_MAX;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_LOAD) {
            loads++;
            if (info->dlpi_phdr[i].p_vaddr < lowest)
                lowest = info->dlpi_phdr[i].p_vaddr;
        }
    if (loads == 0)
        return 0;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    if (m->n_modules == 0 && name[0] == '\0' && program_invocation_name)
        name = program_invocation_name;
    if (m->n_modules == VG_MODULES_MAX || m->n_segments + loads > VG_MODULE_SEGMENTS_MAX) {
        m->complete = false;
        return 0;
    }
    uint32_t at = add_name(m, name);
    if (at == UINT32_MAX) {
        m->complete = false;
        return 0;
    }
    struct vg_module_entry *e = &m->mod[m->n_modules];
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    /* dladdr's dli_fbase is the start of the object's mapping. */
    e->base = info->dlpi_addr + (lowest & ~(page - 1));
    e->name = at;
    e->base_name = at + (uint32_t)(base_name(m->names + at) - (m->names + at));
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || ph->p_memsz == 0)
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        m->seg[m->n_segments++] = (struct vg_module_segment){lo, lo + ph->p_memsz, (uint32_t)m->n_modules};
    }
    m->n_modules++;
    return 0;
}

/* Heapsort of the segments by address: qsort may allocate, and this runs on
 * the OOM path. */
static void sift(struct vg_module_segment *s, int start, int end)
{
    int root = start;
    while (2 * root + 1 < end) {
        int child = 2 * root + 1;
        if (child + 1 < end && s[child].lo < s[child + 1].lo)
            child++;
        if (s[root].lo >= s[child].lo)
            return;
        struct vg_module_segment t = s[root];
        s[root] = s[child];
        s[child] = t;
        root = child;
    }
}

static void sort_segments(struct vg_module_segment *s, int n)
{
    for (int i = n / 2 - 1; i >= 0; i--)
        sift(s, i, n);
    for (int end = n - 1; end > 0; end--) {
        struct vg_module_segment t = s[0];
        s[0] = s[end];
        s[end] = t;
        sift(s, 0, end);
    }
}

static void take(struct vg_modules *m)
{
    m->taken = true;
    m->complete = true;
    m->n_modules = m->n_segments = 0;
    m->names_len = 0;
    int saved = errno;
    dl_iterate_phdr(take_one, m);
    errno = saved;
    sort_segments(m->seg, m->n_segments);
}

int vg_modules_find(struct vg_modules *m, const void *addr)
{
    if (!m->taken)
        take(m);
    uintptr_t a = (uintptr_t)addr;
    int lo = 0, hi = m->n_segments; /* the last segment starting at or below a */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (m->seg[mid].lo <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || a >= m->seg[lo - 1].hi)
        return -1;
    return (int)m->seg[lo - 1].module;
}

const char *vg_modules_base_name(const struct vg_modules *m, int index)
{
    const char *name = m->names + m->mod[index].name;
    return name[0] ? m->names + m->mod[index].base_name : "(main)";
}

void vg_modules_caller_text(struct vg_modules *m, void *caller, bool offset, char *out, size_t size)
{
    int i = caller ? vg_modules_find(m, caller) : -1;
    if (i >= 0)
        format(m->names + m->mod[i].name, m->mod[i].base, caller, offset, out, size);
    else /* not in the snapshot (or it had no room): never dladdr here, see callers.h */
        snprintf(out, size, caller ? "%p" : "(unknown)", caller);
}
