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

void vg_module_range(const struct dl_phdr_info *info, uintptr_t *lo, uintptr_t *hi)
{
    *lo = UINTPTR_MAX;
    *hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        uintptr_t end = start + ph->p_memsz;
        if (start < *lo)
            *lo = start;
        if (end > *hi)
            *hi = end;
    }
}

static int find_range(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct range_query *q = data;
    uintptr_t lo, hi;
    vg_module_range(info, &lo, &hi);
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

/* Read without a lock on the allocation path (allowance rules that name a
 * module). After an unload the slots are refilled from the first, as the
 * runtime scopes are (intercept/real.c): the sequence number is odd while
 * a slot is written and has changed once it was; the name is copied in
 * words, so a torn copy is caught by the number and thrown away. */
enum { NAMED_MAX = VG_MODULE_SLOTS, NAME_WORDS = 16 };
struct named_range {
    atomic_uint seq;
    _Atomic uintptr_t lo, hi;
    _Atomic uint64_t name[NAME_WORDS]; /* the base name, NUL-padded */
};
static struct named_range named[NAMED_MAX];
static atomic_int n_named;
static _Atomic unsigned long long named_unloads; /* vg_modules_unloads() when filled */
static pthread_mutex_t named_lock = PTHREAD_MUTEX_INITIALIZER;

pthread_mutex_t *vg_modules_fork_mutex(void)
{
    return &named_lock;
}

/* The slot of the cached range holding `a`, -1 when none is (not looked
 * up yet, or cached before the last unload); its name's words into `words`
 * when not NULL, read under the same sequence number. */
static int cached_slot(uintptr_t a, uint64_t *words)
{
    if (vg_modules_unloads() != atomic_load_explicit(&named_unloads, memory_order_acquire))
        return -1;
    int n = atomic_load_explicit(&n_named, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        struct named_range *r = &named[i];
        unsigned seq = atomic_load_explicit(&r->seq, memory_order_acquire);
        if (a < atomic_load_explicit(&r->lo, memory_order_relaxed) ||
            a >= atomic_load_explicit(&r->hi, memory_order_relaxed))
            continue;
        for (int w = 0; words && w < NAME_WORDS; w++)
            words[w] = atomic_load_explicit(&r->name[w], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if ((seq & 1) == 0 && atomic_load_explicit(&r->seq, memory_order_relaxed) == seq)
            return i;
    }
    return -1;
}

int vg_module_slot(void *addr)
{
    return cached_slot((uintptr_t)addr, NULL);
}

static bool cached_name(uintptr_t a, char *out, unsigned long size)
{
    uint64_t words[NAME_WORDS];
    if (cached_slot(a, words) < 0)
        return false;
    char name[sizeof(words)];
    memcpy(name, words, sizeof(words));
    name[sizeof(name) - 1] = '\0';
    snprintf(out, size, "%s", name);
    return true;
}

/* Under named_lock. */
static void fill_named(struct named_range *r, const struct vg_module *m, const char *base)
{
    uint64_t words[NAME_WORDS] = {0};
    size_t len = strnlen(base, sizeof(words) - 1);
    memcpy(words, base, len);
    unsigned seq = atomic_load_explicit(&r->seq, memory_order_relaxed);
    atomic_store_explicit(&r->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&r->lo, m->lo, memory_order_relaxed);
    atomic_store_explicit(&r->hi, m->hi, memory_order_relaxed);
    for (int w = 0; w < NAME_WORDS; w++)
        atomic_store_explicit(&r->name[w], words[w], memory_order_relaxed);
    atomic_store_explicit(&r->seq, seq + 2, memory_order_release);
}

bool vg_module_name(void *addr, char *out, unsigned long size)
{
    uintptr_t a = (uintptr_t)addr;
    if (cached_name(a, out, size))
        return true;
    unsigned long long unloads = vg_modules_unloads();
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
    /* Not kept when a module was unloaded meanwhile. */
    if (vg_modules_unloads() == unloads) {
        if (atomic_load_explicit(&named_unloads, memory_order_relaxed) != unloads) {
            atomic_store_explicit(&n_named, 0, memory_order_relaxed);
            atomic_store_explicit(&named_unloads, unloads, memory_order_release);
        }
        char again[8];
        int n = atomic_load_explicit(&n_named, memory_order_relaxed);
        if (n < NAMED_MAX && !cached_name(a, again, sizeof(again))) {
            fill_named(&named[n], &m, base);
            atomic_store_explicit(&n_named, n + 1, memory_order_release);
        }
    }
    pthread_mutex_unlock(&named_lock);
    return true;
}
