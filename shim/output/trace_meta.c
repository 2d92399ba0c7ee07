/* VRAMGUARD_TRACE's metadata frames (trace.h; what the trace files share:
 * trace_internal.h): the loaded modules' address ranges, the labels' text,
 * the devices and the sites of the stacks records name, each written again
 * only when it changed, so that a reader can name the callers. */
#include "config.h"
#include "devices.h"
#include "emit.h"
#include "purposes.h"
#include "symbols.h"
#include "trace_internal.h"
#include "who.h"

#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Under vg_trace_meta_lock: what was written. */
static unsigned long long modules_adds = ~0ULL, modules_subs = ~0ULL;
static int labels_written = 1; /* labels below this were written */
static bool last_label_written;
static uint32_t devices_written; /* bit d: device d's info was written */
static uint64_t stacks_written[STACK_WORDS];

struct module_walk {
    struct vg_out *o;
    int n;
    unsigned long long adds, subs;
};

static int module_one(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct module_walk *w = arg;
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
        w->adds = info->dlpi_adds;
        w->subs = info->dlpi_subs;
    }
    if (w->o == NULL)
        return 1; /* the counters only */
    bool main_program = w->n == 0;
    uintptr_t lowest = UINTPTR_MAX;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_LOAD && info->dlpi_phdr[i].p_vaddr < lowest)
            lowest = info->dlpi_phdr[i].p_vaddr;
    if (lowest == UINTPTR_MAX)
        return 0;
    char exe[VG_PATH_MAX];
    const char *path = info->dlpi_name;
    if (main_program || path == NULL || path[0] == '\0') {
        ssize_t n = main_program ? readlink("/proc/self/exe", exe, sizeof(exe) - 1) : -1;
        exe[n > 0 ? n : 0] = '\0';
        path = exe;
    }
    /* base: what dladdr calls the module's base (the offsets every output
     * prints are from it); bias: address - bias is the ELF virtual address. */
    vg_out_printf(w->o, "%s{\"path\":", w->n ? "," : "");
    vg_out_json_string(w->o, path);
    vg_out_printf(w->o, ",\"main\":%s,\"base\":%llu,\"bias\":%llu,\"ranges\":[", main_program ? "true" : "false",
                  (unsigned long long)(info->dlpi_addr + lowest), (unsigned long long)info->dlpi_addr);
    int k = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD)
            vg_out_printf(w->o, "%s[%llu,%llu]", k++ ? "," : "", (unsigned long long)(info->dlpi_addr + ph->p_vaddr),
                          (unsigned long long)(info->dlpi_addr + ph->p_vaddr + ph->p_memsz));
    }
    vg_out_str(w->o, "]}");
    w->n++;
    return 0;
}

/* The sites of the stacks records named since the last stacks frame
 * (who.h: the first frame in the program's own code, past the shim's and
 * the CUDA runtime's), named from the modules' symbol tables here, off the
 * allocation path. Under vg_trace_meta_lock. */
static void write_stacks(void)
{
    uint64_t fresh[STACK_WORDS];
    bool any = false;
    for (int i = 0; i < STACK_WORDS; i++) {
        fresh[i] = atomic_load_explicit(&vg_trace_stacks_seen[i], memory_order_relaxed) & ~stacks_written[i];
        any = any || fresh[i];
    }
    if (!any)
        return;
    struct vg_symbols *symbols = malloc(sizeof(*symbols));
    struct vg_out o;
    if (symbols == NULL || !vg_out_growable(&o, 4096, 4u << 20)) {
        free(symbols);
        return;
    }
    vg_symbols_init(symbols);
    vg_out_str(&o, "{\"stacks\":[");
    int k = 0;
    for (int i = 0; i < STACK_WORDS; i++)
        for (uint64_t bits = fresh[i]; bits; bits &= bits - 1) {
            uint32_t id = (uint32_t)(i * 64 + __builtin_ctzll(bits));
            vg_out_printf(&o, "%s{\"id\":%u", k++ ? "," : "", id);
            vg_who_json(&o, symbols, id, NULL, false);
            vg_out_str(&o, "}");
        }
    vg_out_str(&o, "]}");
    vg_symbols_done(symbols);
    free(symbols);
    pthread_mutex_lock(&vg_trace_lock);
    if (o.error == 0 && vg_trace_write_json(FRAME_STACKS, o.buf, o.len, false))
        for (int i = 0; i < STACK_WORDS; i++)
            stacks_written[i] |= fresh[i];
    pthread_mutex_unlock(&vg_trace_lock);
    free(o.buf);
}

/* Frames of metadata that changed since they were last written: modules
 * (dl_iterate_phdr's load and unload counts moved), labels, devices. Built
 * outside vg_trace_lock (the loader's lock is not taken under ours), one
 * caller at a time (the writer, exit, the start). */
pthread_mutex_t vg_trace_meta_lock = PTHREAD_MUTEX_INITIALIZER;
void vg_trace_write_metadata(void)
{
    pthread_mutex_lock(&vg_trace_meta_lock);
    struct module_walk counts = {0};
    dl_iterate_phdr(module_one, &counts);
    struct vg_out o;
    if (counts.adds != modules_adds || counts.subs != modules_subs) {
        if (vg_out_growable(&o, 16384, 8u << 20)) {
            struct module_walk w = {&o, 0, 0, 0};
            vg_out_str(&o, "{\"modules\":[");
            dl_iterate_phdr(module_one, &w);
            vg_out_str(&o, "]}");
            pthread_mutex_lock(&vg_trace_lock);
            if (o.error == 0 && vg_trace_write_json(FRAME_MODULES, o.buf, o.len, false)) {
                modules_adds = w.adds;
                modules_subs = w.subs;
            }
            pthread_mutex_unlock(&vg_trace_lock);
            free(o.buf);
        }
    }
    int count = vg_label_count();
    const char *last = vg_label_text(VG_LABEL_POOL - 1);
    bool last_new = !last_label_written && last && last[0];
    if ((count > labels_written || last_new) && vg_out_growable(&o, 4096, 1u << 20)) {
        vg_out_printf(&o, "{\"labels\":{");
        int k = 0;
        for (int i = labels_written; i < count; i++) {
            vg_out_printf(&o, "%s\"%d\":", k++ ? "," : "", i);
            vg_out_json_string(&o, vg_label_text((uint16_t)i));
        }
        if (last_new) {
            vg_out_printf(&o, "%s\"%d\":", k++ ? "," : "", VG_LABEL_POOL - 1);
            vg_out_json_string(&o, last);
        }
        vg_out_str(&o, "}}");
        pthread_mutex_lock(&vg_trace_lock);
        if (o.error == 0 && vg_trace_write_json(FRAME_LABELS, o.buf, o.len, false)) {
            labels_written = count;
            last_label_written = last_label_written || last_new;
        }
        pthread_mutex_unlock(&vg_trace_lock);
        free(o.buf);
    }
    uint32_t known = 0;
    struct vg_device_info info;
    for (int d = 0; d < vg_table_device_count() && d < VG_MAX_DEVICES; d++)
        if (vg_device_info(d, &info) && info.known)
            known |= 1u << d;
    if ((known & ~devices_written) && vg_out_growable(&o, 1024, 64u << 10)) {
        vg_out_str(&o, "{\"devices\":[");
        int k = 0;
        for (int d = 0; d < VG_MAX_DEVICES; d++) {
            if (!(known & (1u << d)) || !vg_device_info(d, &info))
                continue;
            vg_out_printf(&o, "%s{\"device\":%d,\"name\":", k++ ? "," : "", d);
            vg_out_json_string(&o, info.name);
            vg_out_printf(&o, ",\"total_bytes\":%llu,\"uuid\":", (unsigned long long)info.total_bytes);
            vg_out_json_string(&o, info.uuid);
            vg_out_str(&o, "}");
        }
        vg_out_str(&o, "]}");
        pthread_mutex_lock(&vg_trace_lock);
        if (o.error == 0 && vg_trace_write_json(FRAME_DEVICES, o.buf, o.len, false))
            devices_written |= known;
        pthread_mutex_unlock(&vg_trace_lock);
        free(o.buf);
    }
    write_stacks();
    pthread_mutex_unlock(&vg_trace_meta_lock);
}


void vg_trace_meta_forget(void)
{
    modules_adds = modules_subs = ~0ULL;
    labels_written = 1;
    last_label_written = false;
    devices_written = 0;
    memset(stacks_written, 0, sizeof(stacks_written));
}
