/* Loaded modules by address (dl_iterate_phdr): no CUDA, no output. */
#include "modules.h"
#include "forksafe.h"

#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

_Atomic unsigned long long vg_modules_unloaded;

static int read_subs(struct dl_phdr_info *info, size_t size, void *data)
{
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs))
        *(unsigned long long *)data = info->dlpi_subs;
    return 1; /* the counters are the same in every entry */
}

void vg_modules_recount(void)
{
    unsigned long long subs = 0;
    dl_iterate_phdr(read_subs, &subs);
    if (subs != atomic_load_explicit(&vg_modules_unloaded, memory_order_relaxed))
        atomic_store_explicit(&vg_modules_unloaded, subs, memory_order_release);
}


/* ---- base names, cached per module range ---------------------------------- */

struct named_range {
    uintptr_t lo, hi;
    char name[128];
};
enum { NAMED_MAX = 64 };
static struct named_range named[NAMED_MAX];
static atomic_int n_named;
static pthread_mutex_t named_lock = PTHREAD_MUTEX_INITIALIZER;

pthread_mutex_t *vg_modules_fork_mutex(void)
{
    return &named_lock;
}

bool vg_module_name(void *addr, char *out, unsigned long size)
{
    uintptr_t a = (uintptr_t)addr;
    int n = atomic_load_explicit(&n_named, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (a >= named[i].lo && a < named[i].hi) {
            snprintf(out, size, "%s", named[i].name);
            return true;
        }
    struct vg_module m;
    if (addr == NULL || !vg_module_of(addr, &m))
        return false;
    char exe[512] = "";
    const char *path = m.path;
    if (path == NULL) {
        ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        exe[len > 0 ? len : 0] = '\0';
        path = exe;
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, size, "%s", base);
    pthread_mutex_lock(&named_lock);
    n = atomic_load_explicit(&n_named, memory_order_relaxed);
    if (n < NAMED_MAX) {
        named[n].lo = m.lo;
        named[n].hi = m.hi;
        snprintf(named[n].name, sizeof(named[n].name), "%s", base);
        atomic_store_explicit(&n_named, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&named_lock);
    return true;
}
