/* The data model shared by every module: kinds of memory, purposes, and one
 * tracked allocation. Dimensions are fixed so that later kinds slot in
 * without changing the report's shape or the public usage struct. */
#ifndef VG_MODEL_H
#define VG_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#define VG_EXPORT __attribute__((visibility("default")))
#define VG_VERSION "0.1.0"

enum { VG_MAX_DEVICES = 16, VG_KIND_SLOTS = 8, VG_PURPOSE_SLOTS = 8 };

/* Where memory lives and how it was obtained. VRAM kinds: device, pool,
 * vmm, array. Imported memory belongs to another process or device and is
 * shown, not charged. */
enum vg_kind {
    VG_KIND_DEVICE = 0,          /* cuMemAlloc*, pitch */
    VG_KIND_HOST_PINNED = 1,     /* cuMemAllocHost*, cuMemHostAlloc, host pools, host cuMemCreate */
    VG_KIND_MANAGED = 2,         /* cuMemAllocManaged, managed pools and cuMemCreate */
    VG_KIND_POOL = 3,            /* stream-ordered allocations from device pools (live bytes) */
    VG_KIND_VMM = 4,             /* cuMemCreate physical memory on a device */
    VG_KIND_ARRAY = 5,           /* CUDA arrays and mipmapped arrays */
    VG_KIND_HOST_REGISTERED = 6, /* cuMemHostRegister */
    VG_KIND_IMPORTED = 7,        /* IPC, imported handles and pools, external memory */
    VG_KIND_COUNT = 8
};

/* VRAM this process owns (device pools count by their reserve, see table.h). */
static inline int vg_kind_is_vram(int kind)
{
    return kind == VG_KIND_DEVICE || kind == VG_KIND_POOL || kind == VG_KIND_VMM || kind == VG_KIND_ARRAY;
}

/* Values match VRAMGUARD_* in purpose_tags/vramguard.h. */
enum vg_purpose {
    VG_PURPOSE_UNKNOWN = 0,
    VG_PURPOSE_WEIGHTS = 1,
    VG_PURPOSE_KV_CACHE = 2,
    VG_PURPOSE_INTERMEDIATE = 3,
    VG_PURPOSE_COUNT = 4
};

/* One live allocation. `api` and `label` point to static or interned
 * strings that live as long as the process. */
struct vg_alloc {
    uintptr_t ptr;
    uint64_t size;
    const char *api;
    void *caller;      /* return address at the outermost vramguard entry */
    int16_t device;
    uint8_t kind;
    uint8_t purpose;
    uint16_t label;    /* index into the label pool, 0 = none */
    uint16_t pool;     /* index in the pool registry (pools.h), 0 = none */
    uint8_t owner;     /* the context that owns it (contexts.h), 0 = none known */
    uint32_t stack;    /* VRAMGUARD_BACKTRACE: id in the stack depot (stacks.h), 0 = none */
    bool allowed;      /* let through by a VRAMGUARD_ALLOW rule (allow.h) */
};

/* Table keys: device and host addresses, or handles (CUarray,
 * CUmipmappedArray, and VMM allocation handles, which carry bit 63 to keep
 * them apart from addresses). */
#define VG_HANDLE_TAG ((uintptr_t)1 << 63)
static inline int vg_key_is_handle(const struct vg_alloc *a)
{
    return (a->ptr & VG_HANDLE_TAG) != 0 || a->kind == VG_KIND_ARRAY;
}
static inline uintptr_t vg_key_value(const struct vg_alloc *a)
{
    return a->ptr & ~VG_HANDLE_TAG;
}

const char *vg_kind_name(int kind);
const char *vg_purpose_name(int purpose);
int vg_purpose_from_name(const char *name); /* -1 if unknown */

#endif
