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

static void handle_add(CUmemGenericAllocationHandle h)
{
    bool found;
    pthread_mutex_lock(&lock);
    size_t i = handle_slot(h, &found);
    if (found) {
        handles[i].refs = 1; /* a reused value: the old one was freed unseen */
        handles[i].maps = 0;
    } else if (reserve((void **)&handles, &cap_handles, n_handles + 1, sizeof(*handles))) {
        memmove(&handles[i + 1], &handles[i], (n_handles - i) * sizeof(*handles));
        handles[i] = (struct handle_state){h, 1, 0};
        n_handles++;
    }
    pthread_mutex_unlock(&lock);
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

void vg_vmm_reset_after_fork(void)
{
    n_handles = n_maps = 0;
    vg_vmm_forget_exported();
}

static void retain(CUmemGenericAllocationHandle h)
{
    pthread_mutex_lock(&lock);
    handle_change_locked(h, +1, 0);
    pthread_mutex_unlock(&lock);
}

/* ---- wrappers --------------------------------------------------------------- */

static void mapping_insert_locked(const struct mapping *m)
{
    if (!reserve((void **)&maps, &cap_maps, n_maps + 1, sizeof(*maps)))
        return;
    size_t i = 0;
    while (i < n_maps && maps[i].start < m->start)
        i++; /* kept sorted by start */
    memmove(&maps[i + 1], &maps[i], (n_maps - i) * sizeof(*maps));
    maps[i] = *m;
    n_maps++;
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
        if (r == CUDA_SUCCESS && handle)
            handle_add(*handle);
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
    bool gone = found && handle_change_locked(handle, -1, 0);
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
        mapping_insert_locked(&m);
        handle_change_locked(handle, 0, +1);
    }
    pthread_mutex_unlock(&lock);
    if (found)
        size_imported(handle, size);
    return r;
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
    bool ok = removed && freed && had && gone;
    if (!ok)
        vg_table_note_untracked(); /* the unmap goes unseen */
    for (size_t i = 0; ok && i < n_maps;) {
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
        for (size_t k = 0; k < n_removed; k++) {
            mapping_insert_locked(&removed[k]);
            handle_change_locked(removed[k].handle, 0, +1);
        }
        pthread_mutex_unlock(&lock);
        for (size_t k = 0; k < n_gone; k++)
            if (had[k])
                vg_table_restore(&freed[k]);
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
            } else {
                handle_add(*handle);
                vg_alloc_done(&c, r, VG_VMM_KEY(*handle), 0, 0);
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
