/* The exported vramguard_shim_* functions behind purpose_tags/vramguard.h,
 * and the fork handlers. */
#include "vramguard.h"
#include "hooks_modules.h"
#include "allow.h"
#include "contexts.h"
#include "hooks_vmm.h"
#include "process.h"
#include "breakdown.h"
#include "callers.h"
#include "emit.h"
#include "endpoint.h"
#include "events.h"
#include "incidents.h"
#include "forksafe.h"
#include "log.h"
#include "pools.h"
#include "purposes.h"
#include "real.h"
#include "table.h"
#include "trace.h"

#include <cuda.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

EXPORT const char *vramguard_shim_version(void);
EXPORT int vramguard_shim_purpose_push(int purpose, const char *label);
EXPORT int vramguard_shim_purpose_pop(void);
EXPORT int vramguard_shim_usage(struct vramguard_usage *usage);
EXPORT size_t vramguard_shim_report(char *buf, size_t size);
EXPORT int vramguard_shim_verify_residency(void);

_Static_assert(VRAMGUARD_MAX_DEVICES == VG_MAX_DEVICES && VRAMGUARD_KIND_SLOTS == VG_KIND_SLOTS &&
                   VRAMGUARD_PURPOSE_SLOTS == VG_PURPOSE_SLOTS,
               "public and internal dimensions must agree");

EXPORT const char *vramguard_shim_version(void)
{
    return VG_VERSION;
}

EXPORT int vramguard_shim_purpose_push(int purpose, const char *label)
{
    return vg_purpose_push(purpose, label);
}

EXPORT int vramguard_shim_purpose_pop(void)
{
    return vg_purpose_pop();
}

EXPORT int vramguard_shim_usage(struct vramguard_usage *usage)
{
    size_t header = offsetof(struct vramguard_usage, purpose_bytes);
    if (usage == NULL || usage->size < header)
        return -1;
    struct vg_stats *s = malloc(sizeof(*s));
    struct vramguard_usage *u = calloc(1, sizeof(*u));
    if (s == NULL || u == NULL) {
        free(s);
        free(u);
        vg_log("vramguard_usage: out of host memory; no figures (returns -1)");
        return -1;
    }
    vg_table_stats(s);
    struct vg_pool_totals totals;
    vg_pool_totals(&totals, s->device_count);
    u->device_count = (uint32_t)s->device_count;
    for (int d = 0; d < s->device_count && d < VG_MAX_DEVICES; d++) {
        struct vg_charge ch;
        vg_device_charge(s, &totals, d, &ch);
        u->charged_bytes[d] = ch.charged;
        u->pool_reserved_bytes[d] = totals.reserved[d];
        u->graph_reserved_bytes[d] = totals.graph_reserved[d];
    }
    u->violations = vg_violation_count();
    u->oom_events = vg_oom_count();
    for (int d = 0; d < VG_MAX_DEVICES; d++)
        for (int k = 0; k < VG_KIND_SLOTS; k++)
            for (int p = 0; p < VG_PURPOSE_SLOTS; p++) {
                const struct vg_cell *c = &s->cell[d][k][p];
                u->cell[d][k][p] = (struct vramguard_cell){c->live_bytes, c->live_count, c->peak_bytes};
                if (vg_kind_is_vram(k)) {
                    u->vram_bytes += c->live_bytes;
                    u->purpose_bytes[p] += c->live_bytes;
                }
            }
    size_t n = usage->size < sizeof(*u) ? usage->size : sizeof(*u);
    uint64_t caller_size = usage->size;
    memcpy(usage, u, n);
    usage->size = caller_size;
    free(s);
    free(u);
    return 0;
}

EXPORT size_t vramguard_shim_report(char *buf, size_t size)
{
    struct vg_out *o = malloc(sizeof(*o));
    if (o == NULL) {
        static const char none[] = "vramguard: out of host memory: no breakdown\n";
        vg_log("vramguard_report: out of host memory; no breakdown");
        if (buf && size)
            snprintf(buf, size, "%s", none);
        return sizeof(none) - 1;
    }
    vg_out_buffer(o, buf, size);
    vg_breakdown_text(o, "");
    size_t total = o->total;
    free(o);
    return total;
}

EXPORT int vramguard_shim_verify_residency(void)
{
    struct vg_alloc *live = NULL;
    uint64_t expected = vg_table_live_count();
    size_t n = vg_table_snapshot(&live);
    if (n == 0 && expected > 0) {
        vg_log("residency: out of host memory: %llu live allocations not checked (returns -1)",
               (unsigned long long)expected);
        return -1;
    }
    __typeof__(&cuPointerGetAttribute) attr = vg_helper_fn(VG_H_cuPointerGetAttribute);
    int offenders = 0;
    size_t skipped = 0;
    for (size_t i = 0; i < n; i++) {
        /* VMM handles and arrays are not addresses: their location was
         * checked when they were created. */
        if (vg_key_is_handle(&live[i])) {
            skipped++;
            continue;
        }
        unsigned int type = 0, managed = 0;
        CUresult r1 = attr ? attr(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, live[i].ptr) : CUDA_ERROR_NOT_INITIALIZED;
        CUresult r2 = attr ? attr(&managed, CU_POINTER_ATTRIBUTE_IS_MANAGED, live[i].ptr) : CUDA_ERROR_NOT_INITIALIZED;
        if (r1 == CUDA_SUCCESS && r2 == CUDA_SUCCESS && type == CU_MEMORYTYPE_DEVICE && !managed)
            continue;
        offenders++;
        char caller[512], size[32];
        vg_caller_text(live[i].caller, true, caller, sizeof(caller));
        const char *why = r1 != CUDA_SUCCESS || r2 != CUDA_SUCCESS ? "the driver does not know this pointer"
                          : managed                                 ? "managed (unified) memory"
                          : type == CU_MEMORYTYPE_HOST             ? "host memory"
                                                                    : "not device memory";
        vg_log("residency: 0x%llx (%s, kind %s, purpose %s, %s from %s) is not VRAM: %s",
               (unsigned long long)live[i].ptr, vg_format_bytes(live[i].size, size, sizeof(size)),
               vg_kind_name(live[i].kind), vg_purpose_name(live[i].purpose), live[i].api, caller, why);
    }
    free(live);
    vg_log("residency: %zu live allocations checked, %d not in VRAM%s", n - skipped, offenders,
           skipped ? " (VMM handles and arrays: their location was checked when they were created)" : "");
    return offenders;
}

/* ---- fork: the child owns none of its parent's allocations ---------------- */


/* In lock order (forksafe.h). */
static pthread_mutex_t *(*const fork_mutexes[])(void) = {
    vg_breakdown_fork_mutex, vg_budget_fork_mutex, vg_incidents_fork_mutex, vg_events_journal_fork_mutex,
    vg_events_who_fork_mutex, vg_pools_fork_mutex,  vg_labels_fork_mutex, vg_stacks_fork_mutex,   vg_vmm_fork_mutex,
    vg_scopes_fork_mutex, vg_modules_fork_mutex, vg_contexts_fork_mutex,
};
enum { N_FORK_MUTEXES = sizeof(fork_mutexes) / sizeof(fork_mutexes[0]) };

/* The breakdown scratch lock (first) nests around the table's shard locks. */
static void before_fork(void)
{
    vg_trace_fork_prepare(); /* writes the rings first, then holds the trace's locks (leaves) */
    pthread_mutex_lock(fork_mutexes[0]());
    vg_table_fork_prepare();
    for (int i = 1; i < N_FORK_MUTEXES; i++)
        pthread_mutex_lock(fork_mutexes[i]());
}

static void unlock_all(void)
{
    for (int i = N_FORK_MUTEXES - 1; i >= 0; i--)
        pthread_mutex_unlock(fork_mutexes[i]());
}

static void in_parent(void)
{
    vg_table_fork_parent();
    unlock_all();
    vg_trace_fork_parent();
}

static void in_child(void)
{
    vg_table_reset(); /* also releases the shard locks */
    unlock_all();
    vg_trace_fork_child();
    vg_incidents_reset();
    vg_events_reset_after_fork();
    vg_pools_reset_after_fork();
    vg_vmm_reset_after_fork();
    vg_contexts_reset_after_fork();
    vg_allow_reset_after_fork();
    vg_modules_globals_reset_after_fork();
    vg_process_after_fork();
    vg_endpoint_after_fork();
}

/* Registering fork handlers is all the constructor does: no driver, no
 * environment, nothing a compiler inheriting LD_PRELOAD would notice. */
__attribute__((constructor)) static void register_fork_handlers(void)
{
    pthread_atfork(before_fork, in_parent, in_child);
}
