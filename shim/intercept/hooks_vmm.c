/* Virtual memory management. Physical memory is charged at cuMemCreate by
 * where it lives (pinned + device location = VRAM; host, host NUMA, managed:
 * not) and uncharged when the driver really frees it: after cuMemRelease
 * (and the release of every cuMemRetainAllocationHandle reference) and the
 * last cuMemUnmap, in either order. A handle exported with
 * cuMemExportToShareableHandle may outlive that in the importing process;
 * this process stops counting it when its own references and mappings are
 * gone (the report counts exported handles). Imported handles are
 * classified by their allocation properties: another process's VRAM is shown
 * as imported and never charged; host or managed memory is decided by the
 * policy like any other. Imports are sized by their first mapping. The table keys
 * a handle as VG_VMM_KEY(handle), apart from addresses. */
#include "allow.h"
#include "hooks_vmm.h"
#include "vmm.h"
#include "wrappers.h"
#include "forksafe.h"
#include "devices.h"
#include "hook_protocol.h"
#include "log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define VG_VMM_KEY(h) ((uintptr_t)(h) | VG_HANDLE_TAG)

struct handle_state {
    CUmemGenericAllocationHandle handle;
    int refs; /* cuMemCreate/import + retains - releases */
    int maps; /* live cuMemMap ranges */
};

struct mapping {
    CUdeviceptr start;
    size_t size;
    CUmemGenericAllocationHandle handle;
};

/* Both sorted (by handle, by start) for binary search; guarded by `lock`,
 * which is never held across a CUDA call. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

pthread_mutex_t *vg_vmm_fork_mutex(void)
{
    return &lock;
}
static struct handle_state *handles;
static size_t n_handles, cap_handles;
static struct mapping *maps;
static size_t n_maps, cap_maps;

static bool reserve(void **array, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t next = *cap ? *cap * 2 : 256;
    while (next < need)
        next *= 2;
    void *grown = realloc(*array, next * elem);
    if (grown == NULL) {
        vg_table_note_untracked(); /* a handle or mapping unseen: the report says its figures are unknown */
        return false;
    }
    *array = grown;
    *cap = next;
    return true;
}

/* Index of `h`, or where it would go. */
static size_t handle_slot(CUmemGenericAllocationHandle h, bool *found)
{
    size_t lo = 0, hi = n_handles;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (handles[mid].handle < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < n_handles && handles[lo].handle == h;
    return lo;
}

/* False when the shim's own memory ran out: the handle is then not tracked
 * (and must not be charged: nothing would ever uncharge it). */
static bool handle_add(CUmemGenericAllocationHandle h)
{
    bool found, added = true;
    pthread_mutex_lock(&lock);
    size_t i = handle_slot(h, &found);
    if (found) {
        handles[i].refs = 1; /* a reused value: the old one was freed unseen */
        handles[i].maps = 0;
    } else if (reserve((void **)&handles, &cap_handles, n_handles + 1, sizeof(*handles))) {
        memmove(&handles[i + 1], &handles[i], (n_handles - i) * sizeof(*handles));
        handles[i] = (struct handle_state){h, 1, 0};
        n_handles++;
    } else {
        added = false;
    }
    pthread_mutex_unlock(&lock);
    return added;
}

static void handle_drop_locked(size_t i)
{
    memmove(&handles[i], &handles[i + 1], (n_handles - i - 1) * sizeof(*handles));
    n_handles--;
}

/* Apply `delta_refs`/`delta_maps` to a known handle. Returns true when the
 * physical memory is now gone (the entry must be uncharged). */
static bool handle_change_locked(CUmemGenericAllocationHandle h, int delta_refs, int delta_maps)
{
    bool found;
    size_t i = handle_slot(h, &found);
    if (!found)
        return false;
    handles[i].refs += delta_refs;
    handles[i].maps += delta_maps;
    if (handles[i].refs <= 0 && handles[i].maps <= 0) {
        handle_drop_locked(i);
        return true;
    }
    return false;
}

static void handle_restore_locked(CUmemGenericAllocationHandle h, int refs, int maps_count)
{
    bool found;
    size_t i = handle_slot(h, &found);
    if (found) {
        handles[i].refs = refs;
        handles[i].maps = maps_count;
    } else if (reserve((void **)&handles, &cap_handles, n_handles + 1, sizeof(*handles))) {
        memmove(&handles[i + 1], &handles[i], (n_handles - i) * sizeof(*handles));
        handles[i] = (struct handle_state){h, refs, maps_count};
        n_handles++;
    }
}

/* An imported handle's entry gets its size from its first mapping (only
 * imports have entries of size 0: cuMemCreate refuses a size of 0). */
static void size_imported(CUmemGenericAllocationHandle h, size_t size)
{
    struct vg_alloc a;
    if (vg_table_lookup(VG_VMM_KEY(h), &a) && a.size == 0 &&
        vg_table_remove(VG_VMM_KEY(h), &a)) {
        a.size = size;
        vg_table_restore(&a);
    }
}

static void retain(CUmemGenericAllocationHandle h)
{
    pthread_mutex_lock(&lock);
    handle_change_locked(h, +1, 0);
    pthread_mutex_unlock(&lock);
}

/* ---- wrappers --------------------------------------------------------------- */

/* False when the shim's own memory ran out: the mapping is then not
 * counted (the handle is uncharged at its release, mapped or not, rather
 * than never). */
static bool mapping_insert_locked(const struct mapping *m)
{
    if (!reserve((void **)&maps, &cap_maps, n_maps + 1, sizeof(*maps)))
        return false;
    size_t i = 0;
    while (i < n_maps && maps[i].start < m->start)
        i++; /* kept sorted by start */
    memmove(&maps[i + 1], &maps[i], (n_maps - i) * sizeof(*maps));
    maps[i] = *m;
    n_maps++;
    return true;
}


/* A handle the driver made but the shim could not record (its own memory
 * ran out: counted by reserve() as untracked): nothing is held for it (an
 * allowance's caps, a charge that nothing would ever take back). */
static void not_tracked(struct vg_call *c, CUresult r)
{
    if (c->allow_rule >= 0)
        vg_allow_give_back(c->kind, c->size);
    c->allow_rule = -1;
    if (c->action == VG_ACTION_WARN)
        vg_event_violation(c, r);
}

static int kind_of_prop(const CUmemAllocationProp *prop)
{
    if (prop == NULL)
        return VG_KIND_HOST_PINNED;
    if (prop->type == CU_MEM_ALLOCATION_TYPE_MANAGED)
        return VG_KIND_MANAGED;
    if (prop->type == CU_MEM_ALLOCATION_TYPE_PINNED && prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE)
        return VG_KIND_VMM;
    return VG_KIND_HOST_PINNED; /* host, host NUMA, or unknown: not VRAM */
}

EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size, const CUmemAllocationProp *prop,
                            unsigned long long flags)
{
    int kind = kind_of_prop(prop);
    int device = kind == VG_KIND_VMM ? prop->location.id : VG_DEVICE_CURRENT;
    __typeof__(&cuMemCreate) real = REAL(cuMemCreate);
    if (real == NULL)
        return vg_missing_real("cuMemCreate");
    struct vg_call c;
    CUresult r;
    if (!vg_call_enter(&c, "cuMemCreate", kind, size, __builtin_return_address(0)) || prop == NULL) {
        r = real(handle, size, prop, flags); /* nested, or the driver's own INVALID_VALUE */
    } else if (!vg_alloc_refused(&c, device, &r)) {
        r = real(handle, size, prop, flags);
        if (r == CUDA_SUCCESS && handle && !handle_add(*handle))
            not_tracked(&c, r);
        else
            vg_alloc_done(&c, r, r == CUDA_SUCCESS && handle ? VG_VMM_KEY(*handle) : 0, size, 0);
    }
    vg_call_leave();
    return r;
}

EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
    __typeof__(&cuMemRelease) real = REAL(cuMemRelease);
    if (real == NULL)
        return vg_missing_real("cuMemRelease");
    struct vg_call c;
    if (!vg_call_enter(&c, "cuMemRelease", VG_KIND_VMM, 0, __builtin_return_address(0))) {
        CUresult r = real(handle);
        vg_call_leave();
        return r;
    }
    /* Uncharge before the driver can free and reuse the handle; undo if it fails. */
    pthread_mutex_lock(&lock);
    bool found;
    size_t i = handle_slot(handle, &found);
    int refs = found ? handles[i].refs : 0, mapped = found ? handles[i].maps : 0;
    /* A handle whose state the shim could not keep is uncharged at its
     * release, mapped or not. */
    bool gone = !found || handle_change_locked(handle, -1, 0);
    pthread_mutex_unlock(&lock);
    struct vg_alloc old;
    bool had = gone && vg_table_remove(VG_VMM_KEY(handle), &old);
    CUresult r = real(handle);
    if (r != CUDA_SUCCESS && found) {
        pthread_mutex_lock(&lock);
        handle_restore_locked(handle, refs, mapped);
        pthread_mutex_unlock(&lock);
        if (had)
            vg_table_restore(&old);
    } else if (had && r == CUDA_SUCCESS) {
        vg_trace_removed(&old, VG_TRACE_FREED);
    }
    vg_call_leave();
    return r;
}

EXPORT CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle,
                         unsigned long long flags)
{
    __typeof__(&cuMemMap) real = REAL(cuMemMap);
    if (real == NULL)
        return vg_missing_real("cuMemMap");
    vg_reached_driver();
    CUresult r = real(ptr, size, offset, handle, flags);
    if (r != CUDA_SUCCESS)
        return r;
    pthread_mutex_lock(&lock);
    bool found;
    handle_slot(handle, &found);
    if (found) {
        struct mapping m = {ptr, size, handle};
        if (mapping_insert_locked(&m))
            handle_change_locked(handle, 0, +1);
    }
    pthread_mutex_unlock(&lock);
    if (found)
        size_imported(handle, size);
    return r;
}

/* Without memory for the undo lists: unmap first, then take out the
 * mappings inside [ptr, ptr+size) one at a time (the table is never entered
 * with `lock` held), uncharging the handles whose last mapping they were. */
static void unmapped_without_undo(CUdeviceptr ptr, size_t size)
{
    for (;;) {
        CUmemGenericAllocationHandle gone = 0;
        bool found = false;
        pthread_mutex_lock(&lock);
        for (size_t i = 0; i < n_maps; i++) {
            if (maps[i].start >= ptr && maps[i].start + maps[i].size <= ptr + size) {
                found = true;
                if (handle_change_locked(maps[i].handle, 0, -1))
                    gone = maps[i].handle;
                memmove(&maps[i], &maps[i + 1], (n_maps - i - 1) * sizeof(*maps));
                n_maps--;
                break;
            }
        }
        pthread_mutex_unlock(&lock);
        if (!found)
            return;
        struct vg_alloc a;
        if (gone && vg_table_remove(VG_VMM_KEY(gone), &a))
            vg_trace_removed(&a, VG_TRACE_VMM_UNMAPPED);
    }
}

EXPORT CUresult cuMemUnmap(CUdeviceptr ptr, size_t size)
{
    __typeof__(&cuMemUnmap) real = REAL(cuMemUnmap);
    if (real == NULL)
        return vg_missing_real("cuMemUnmap");
    vg_reached_driver();
    /* Take out every mapping inside [ptr, ptr+size) and uncharge the handles
     * whose last mapping this was after their release; undo it all if the
     * driver refuses. The undo lists live on the stack up to 64 mappings. */
    enum { ON_STACK = 64 };
    struct mapping removed_stack[ON_STACK], *removed = removed_stack;
    struct vg_alloc freed_stack[ON_STACK], *freed = freed_stack;
    bool had_stack[ON_STACK], *had = had_stack;
    CUmemGenericAllocationHandle gone_stack[ON_STACK], *gone = gone_stack;
    size_t n_removed = 0, n_gone = 0, inside = 0;

    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_maps; i++)
        inside += maps[i].start >= ptr && maps[i].start + maps[i].size <= ptr + size;
    if (inside > ON_STACK) {
        removed = malloc(inside * sizeof(*removed));
        freed = malloc(inside * sizeof(*freed));
        had = malloc(inside * sizeof(*had));
        gone = malloc(inside * sizeof(*gone));
    }
    if (!(removed && freed && had && gone)) {
        pthread_mutex_unlock(&lock);
        free(removed);
        free(freed);
        free(had);
        free(gone);
        CUresult r = real(ptr, size);
        if (r == CUDA_SUCCESS)
            unmapped_without_undo(ptr, size);
        return r;
    }
    for (size_t i = 0; i < n_maps;) {
        if (maps[i].start >= ptr && maps[i].start + maps[i].size <= ptr + size) {
            removed[n_removed++] = maps[i];
            if (handle_change_locked(maps[i].handle, 0, -1))
                gone[n_gone++] = maps[i].handle;
            memmove(&maps[i], &maps[i + 1], (n_maps - i - 1) * sizeof(*maps));
            n_maps--;
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&lock);
    for (size_t k = 0; k < n_gone; k++)
        had[k] = vg_table_remove(VG_VMM_KEY(gone[k]), &freed[k]);

    CUresult r = real(ptr, size);
    if (r != CUDA_SUCCESS) {
        pthread_mutex_lock(&lock);
        for (size_t k = 0; k < n_gone; k++)
            handle_restore_locked(gone[k], 0, 0);
        for (size_t k = 0; k < n_removed; k++)
            if (mapping_insert_locked(&removed[k]))
                handle_change_locked(removed[k].handle, 0, +1);
        pthread_mutex_unlock(&lock);
        for (size_t k = 0; k < n_gone; k++)
            if (had[k])
                vg_table_restore(&freed[k]);
    } else {
        for (size_t k = 0; k < n_gone; k++)
            if (had[k])
                vg_trace_removed(&freed[k], VG_TRACE_VMM_UNMAPPED);
    }
    if (removed != removed_stack) {
        free(removed);
        free(freed);
        free(had);
        free(gone);
    }
    return r;
}

EXPORT CUresult cuMemRetainAllocationHandle(CUmemGenericAllocationHandle *handle, void *addr)
{
    /* Each retained reference needs its own cuMemRelease. */
    FORWARD_AND_LEARN(cuMemRetainAllocationHandle, "cuMemRetainAllocationHandle", real(handle, addr),
                      if (r == CUDA_SUCCESS && handle) retain(*handle));
}

EXPORT CUresult cuMemExportToShareableHandle(void *shareableHandle, CUmemGenericAllocationHandle handle,
                                             CUmemAllocationHandleType handleType, unsigned long long flags)
{
    FORWARD_AND_LEARN(cuMemExportToShareableHandle, "cuMemExportToShareableHandle",
                      real(shareableHandle, handle, handleType, flags),
                      if (r == CUDA_SUCCESS) vg_vmm_note_exported());
}

/* What an imported handle's allocation properties say it is: host or
 * managed memory only when the driver positively says so (a host location
 * or the managed type); a device location, or no answer, keeps it imported
 * (another process's VRAM: shown, not charged). `device` is the location's
 * device, or the calling thread's. */
static int imported_kind(CUmemGenericAllocationHandle h, int *device)
{
    __typeof__(&cuMemGetAllocationPropertiesFromHandle) props_of =
        vg_helper_fn(VG_H_cuMemGetAllocationPropertiesFromHandle);
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof(prop));
    *device = VG_DEVICE_CURRENT;
    if (props_of == NULL || props_of(&prop, h) != CUDA_SUCCESS)
        return VG_KIND_IMPORTED;
    if (prop.type == CU_MEM_ALLOCATION_TYPE_MANAGED)
        return VG_KIND_MANAGED;
    switch (prop.location.type) {
    case CU_MEM_LOCATION_TYPE_HOST:
    case CU_MEM_LOCATION_TYPE_HOST_NUMA:
    case CU_MEM_LOCATION_TYPE_HOST_NUMA_CURRENT:
        return VG_KIND_HOST_PINNED;
    case CU_MEM_LOCATION_TYPE_DEVICE:
        *device = prop.location.id;
        return VG_KIND_IMPORTED;
    default:
        return VG_KIND_IMPORTED;
    }
}

/* An imported handle is classified by its allocation properties: host or
 * managed memory goes through the policy like any other (refused: the
 * handle is released again and the refusal returned; let through: tracked
 * as that kind), another process's VRAM is shown as imported. Its size is
 * learned at its first mapping. */
EXPORT CUresult cuMemImportFromShareableHandle(CUmemGenericAllocationHandle *handle, void *osHandle,
                                               CUmemAllocationHandleType shHandleType)
{
    __typeof__(&cuMemImportFromShareableHandle) real = REAL(cuMemImportFromShareableHandle);
    if (real == NULL)
        return vg_missing_real("cuMemImportFromShareableHandle");
    struct vg_call c;
    CUresult r;
    if (!vg_call_enter(&c, "cuMemImportFromShareableHandle", VG_KIND_IMPORTED, 0, __builtin_return_address(0))) {
        r = real(handle, osHandle, shHandleType);
    } else {
        r = real(handle, osHandle, shHandleType);
        if (r == CUDA_SUCCESS && handle) {
            int device;
            c.kind = imported_kind(*handle, &device);
            CUresult refusal;
            if (vg_alloc_refused(&c, device, &refusal)) {
                /* Not VRAM: give the handle back, then refuse. */
                __typeof__(&cuMemRelease) release = REAL(cuMemRelease);
                if (release == NULL || release(*handle) != CUDA_SUCCESS)
                    vg_log("cannot release the refused imported handle 0x%llx; it stays imported, untracked",
                           (unsigned long long)*handle);
                *handle = 0;
                r = refusal;
            } else if (handle_add(*handle)) {
                vg_alloc_done(&c, r, VG_VMM_KEY(*handle), 0, 0);
            } else {
                not_tracked(&c, r);
            }
        }
    }
    vg_call_leave();
    return r;
}

EXPORT CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment, CUdeviceptr addr,
                                    unsigned long long flags)
{
    FORWARD(cuMemAddressReserve, "cuMemAddressReserve", real(ptr, size, alignment, addr, flags));
}

EXPORT CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size)
{
    FORWARD(cuMemAddressFree, "cuMemAddressFree", real(ptr, size));
}

/* ---- handles mapped into sparse and deferred-mapping arrays ----------------- */

/* An array created with CUDA_ARRAY3D_SPARSE or CUDA_ARRAY3D_DEFERRED_MAPPING
 * has no memory of its own (charged 0: hooks_misc.c): its memory is VMM
 * handles mapped into it with cuMemMapArrayAsync, each counted as one more
 * mapping of its handle. A mapping ends when a map or unmap operation
 * covers it whole (a map replaces what it covers: measured on an H200, a
 * handle mapped over is freed at its release), when its array is destroyed
 * or when the array's context ends. A deferred-mapping array is mapped
 * whole (the driver ignores the subresource); a sparse one by level region
 * or mip tail range: a mapping only partly covered by later operations
 * stays counted until its array is destroyed (the handle is then charged a
 * little longer than the driver holds it, never less). The bookkeeping
 * follows the driver's answer: a refused call changes nothing. */

enum { REGION_WHOLE, REGION_LEVEL, REGION_MIPTAIL };

struct region {
    uintptr_t array; /* CUarray or CUmipmappedArray */
    int what;        /* REGION_* */
    unsigned level, layer;
    uint64_t lo[3], hi[3]; /* LEVEL: x, y, z in [lo, hi); MIPTAIL: bytes [lo[0], hi[0]) */
};

struct array_mapping {
    struct region at;
    CUmemGenericAllocationHandle handle;
    uint64_t id;
};

struct sparse_array {
    uintptr_t array;
    bool deferred;
    uint8_t owner; /* its context (contexts.h): the driver destroys it with it */
};

static struct array_mapping *amaps;
static size_t n_amaps, cap_amaps;
static uint64_t next_amap_id = 1;
static struct sparse_array *sarrays;
static size_t n_sarrays, cap_sarrays;

static struct sparse_array *sparse_find_locked(uintptr_t array)
{
    for (size_t i = 0; i < n_sarrays; i++)
        if (sarrays[i].array == array)
            return &sarrays[i];
    return NULL;
}

static bool covers(const struct region *r, const struct region *m)
{
    if (r->array != m->array)
        return false;
    if (r->what == REGION_WHOLE)
        return true;
    if (r->what != m->what || r->layer != m->layer || (r->what == REGION_LEVEL && r->level != m->level))
        return false;
    int dims = r->what == REGION_LEVEL ? 3 : 1;
    for (int k = 0; k < dims; k++)
        if (m->lo[k] < r->lo[k] || m->hi[k] > r->hi[k])
            return false;
    return true;
}

/* End the mappings `r` covers (but the one numbered `keep`), uncharging
 * the handles whose last mapping (and reference) they were. The table is
 * entered without `lock`, a batch of handles at a time. */
static void unmap_region(const struct region *r, uint64_t keep)
{
    enum { BATCH = 32 };
    CUmemGenericAllocationHandle gone[BATCH];
    size_t n_gone;
    bool more;
    do {
        n_gone = 0;
        more = false;
        pthread_mutex_lock(&lock);
        for (size_t i = 0; i < n_amaps;) {
            if (amaps[i].id == keep || !covers(r, &amaps[i].at)) {
                i++;
                continue;
            }
            if (n_gone == BATCH) {
                more = true;
                break;
            }
            if (handle_change_locked(amaps[i].handle, 0, -1))
                gone[n_gone++] = amaps[i].handle;
            amaps[i] = amaps[--n_amaps];
        }
        pthread_mutex_unlock(&lock);
        for (size_t k = 0; k < n_gone; k++) {
            struct vg_alloc a;
            if (vg_table_remove(VG_VMM_KEY(gone[k]), &a))
                vg_trace_removed(&a, VG_TRACE_VMM_UNMAPPED);
        }
    } while (more);
}

void vg_vmm_array_created(uintptr_t array, bool deferred, uint8_t owner)
{
    struct region all = {.array = array, .what = REGION_WHOLE};
    unmap_region(&all, 0); /* a reused value: the old array was destroyed unseen */
    pthread_mutex_lock(&lock);
    struct sparse_array *a = sparse_find_locked(array);
    if (a == NULL && reserve((void **)&sarrays, &cap_sarrays, n_sarrays + 1, sizeof(*sarrays)))
        a = &sarrays[n_sarrays++];
    if (a) /* else out of memory: its mappings are then read as a sparse array's */
        *a = (struct sparse_array){array, deferred, owner};
    pthread_mutex_unlock(&lock);
}

void vg_vmm_array_destroyed(uintptr_t array)
{
    pthread_mutex_lock(&lock);
    struct sparse_array *a = sparse_find_locked(array);
    if (a)
        *a = sarrays[--n_sarrays];
    bool mapped = n_amaps > 0;
    pthread_mutex_unlock(&lock);
    if (mapped) {
        struct region all = {.array = array, .what = REGION_WHOLE};
        unmap_region(&all, 0);
    }
}

void vg_vmm_context_gone(uint8_t owner)
{
    for (;;) {
        uintptr_t array = 0;
        pthread_mutex_lock(&lock);
        for (size_t i = 0; i < n_sarrays; i++)
            if (sarrays[i].owner == owner) {
                array = sarrays[i].array;
                sarrays[i] = sarrays[--n_sarrays];
                break;
            }
        pthread_mutex_unlock(&lock);
        if (array == 0)
            return;
        struct region all = {.array = array, .what = REGION_WHOLE};
        unmap_region(&all, 0);
    }
}

/* The region one operation names (lock held: it reads whether the array
 * maps whole). */
static struct region region_of_locked(const CUarrayMapInfo *op)
{
    struct region r = {.array = op->resourceType == CU_RESOURCE_TYPE_MIPMAPPED_ARRAY
                                    ? (uintptr_t)op->resource.mipmap
                                    : (uintptr_t)op->resource.array};
    const struct sparse_array *a = sparse_find_locked(r.array);
    if (a && a->deferred) {
        r.what = REGION_WHOLE;
    } else if (op->subresourceType == CU_ARRAY_SPARSE_SUBRESOURCE_TYPE_MIPTAIL) {
        r.what = REGION_MIPTAIL;
        r.layer = op->subresource.miptail.layer;
        r.lo[0] = op->subresource.miptail.offset;
        r.hi[0] = r.lo[0] + op->subresource.miptail.size;
    } else {
        r.what = REGION_LEVEL;
        r.level = op->subresource.sparseLevel.level;
        r.layer = op->subresource.sparseLevel.layer;
        r.lo[0] = op->subresource.sparseLevel.offsetX;
        r.lo[1] = op->subresource.sparseLevel.offsetY;
        r.lo[2] = op->subresource.sparseLevel.offsetZ;
        r.hi[0] = r.lo[0] + op->subresource.sparseLevel.extentWidth;
        r.hi[1] = r.lo[1] + op->subresource.sparseLevel.extentHeight;
        r.hi[2] = r.lo[2] + op->subresource.sparseLevel.extentDepth;
    }
    return r;
}

/* Operations the driver accepted: a map counts one more mapping of a
 * handle the shim tracks and ends what it covers; an unmap ends what it
 * covers. */
static void array_ops_done(const CUarrayMapInfo *ops, unsigned int count)
{
    for (unsigned int i = 0; ops && i < count; i++) {
        const CUarrayMapInfo *op = &ops[i];
        uint64_t keep = 0;
        pthread_mutex_lock(&lock);
        struct region r = region_of_locked(op);
        bool found = false;
        if (op->memOperationType == CU_MEM_OPERATION_TYPE_MAP) {
            CUmemGenericAllocationHandle h = op->memHandle.memHandle;
            handle_slot(h, &found);
            if (found && reserve((void **)&amaps, &cap_amaps, n_amaps + 1, sizeof(*amaps))) {
                keep = next_amap_id++;
                amaps[n_amaps++] = (struct array_mapping){r, h, keep};
                handle_change_locked(h, 0, +1);
            }
        }
        pthread_mutex_unlock(&lock);
        unmap_region(&r, keep);
    }
}

#define MAP_ARRAY(wrapper, api)                                                                   \
    __typeof__(&wrapper) real = REAL(wrapper);                                                    \
    if (real == NULL)                                                                             \
        return vg_missing_real(api);                                                              \
    vg_reached_driver();                                                                          \
    CUresult r = real(mapInfoList, count, hStream);                                               \
    if (r == CUDA_SUCCESS)                                                                        \
        array_ops_done(mapInfoList, count);                                                       \
    return r

EXPORT CUresult cuMemMapArrayAsync(CUarrayMapInfo *mapInfoList, unsigned int count, CUstream hStream)
{
    MAP_ARRAY(cuMemMapArrayAsync, "cuMemMapArrayAsync");
}

EXPORT CUresult cuMemMapArrayAsync_ptsz(CUarrayMapInfo *mapInfoList, unsigned int count, CUstream hStream)
{
    MAP_ARRAY(cuMemMapArrayAsync_ptsz, "cuMemMapArrayAsync_ptsz");
}

void vg_vmm_reset_after_fork(void)
{
    n_handles = n_maps = n_amaps = n_sarrays = 0;
    vg_vmm_forget_exported();
}
