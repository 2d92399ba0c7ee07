/* The context registry (contexts.h): small fixed arrays, scanned under one
 * mutex. Only context changes reach it (a thread whose context changed, a
 * context made or destroyed), never an allocation. */
#include "contexts.h"
#include "forksafe.h"

#include <pthread.h>
#include <string.h>

enum { GREEN_SLOTS = 64 };

struct green {
    void *green, *ctx;
    int device;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *created[VG_CONTEXT_SLOTS];  /* by index, from VG_CONTEXT_FIRST_CREATED */
static void *primary[VG_MAX_DEVICES];    /* by device */
static struct green greens[GREEN_SLOTS]; /* green == NULL: free */

pthread_mutex_t *vg_contexts_fork_mutex(void)
{
    return &lock;
}

static int created_index_locked(void *ctx)
{
    for (int i = VG_CONTEXT_FIRST_CREATED; i < VG_CONTEXT_SLOTS; i++)
        if (created[i] == ctx)
            return i;
    return 0;
}

uint8_t vg_context_created(void *ctx)
{
    if (ctx == NULL)
        return VG_CONTEXT_NONE;
    pthread_mutex_lock(&lock);
    int i = created_index_locked(ctx); /* a handle value seen again: its old context was destroyed unseen */
    for (int k = VG_CONTEXT_FIRST_CREATED; i == 0 && k < VG_CONTEXT_SLOTS; k++)
        if (created[k] == NULL)
            i = k;
    if (i)
        created[i] = ctx;
    pthread_mutex_unlock(&lock);
    return (uint8_t)i;
}

void vg_context_primary_seen(void *ctx, int device)
{
    if (ctx == NULL || device < 0 || device >= VG_MAX_DEVICES)
        return;
    pthread_mutex_lock(&lock);
    primary[device] = ctx;
    pthread_mutex_unlock(&lock);
}

void vg_context_green_seen(void *green, void *ctx, int device)
{
    if (green == NULL)
        return;
    pthread_mutex_lock(&lock);
    struct green *slot = NULL;
    for (int i = 0; i < GREEN_SLOTS; i++) {
        if (greens[i].green == green) {
            slot = &greens[i];
            break;
        }
        if (slot == NULL && greens[i].green == NULL)
            slot = &greens[i];
    }
    if (slot) { /* more green contexts than slots: the rest own nothing known (index 0) */
        if (slot->green != green)
            *slot = (struct green){green, NULL, device};
        if (ctx)
            slot->ctx = ctx;
        if (device >= 0)
            slot->device = device;
    }
    pthread_mutex_unlock(&lock);
}

int vg_context_green_forget(void *green)
{
    int device = -1;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < GREEN_SLOTS; i++)
        if (green && greens[i].green == green) {
            device = greens[i].device;
            greens[i] = (struct green){0};
        }
    pthread_mutex_unlock(&lock);
    return device;
}

/* Device of a primary or green context handle, -1 if neither (lock held). */
static int shared_device_locked(void *ctx)
{
    for (int d = 0; d < VG_MAX_DEVICES; d++)
        if (primary[d] == ctx)
            return d;
    for (int i = 0; i < GREEN_SLOTS; i++)
        if (greens[i].green && greens[i].ctx == ctx)
            return greens[i].device;
    return -1;
}

uint8_t vg_context_owner_of(void *ctx)
{
    if (ctx == NULL)
        return VG_CONTEXT_NONE;
    pthread_mutex_lock(&lock);
    int i = created_index_locked(ctx);
    uint8_t owner = i ? (uint8_t)i : vg_context_primary(shared_device_locked(ctx));
    pthread_mutex_unlock(&lock);
    return owner;
}

uint8_t vg_context_destroyed(void *ctx)
{
    if (ctx == NULL)
        return VG_CONTEXT_NONE;
    pthread_mutex_lock(&lock);
    int i = created_index_locked(ctx);
    if (i)
        created[i] = NULL;
    pthread_mutex_unlock(&lock);
    return (uint8_t)i;
}

int vg_context_device_of(void *ctx)
{
    if (ctx == NULL)
        return -1;
    pthread_mutex_lock(&lock);
    int d = shared_device_locked(ctx);
    pthread_mutex_unlock(&lock);
    return d;
}

void vg_contexts_reset_after_fork(void)
{
    /* A fork child has no CUDA context of its parent's. */
    memset(created, 0, sizeof(created));
    memset(primary, 0, sizeof(primary));
    memset(greens, 0, sizeof(greens));
}
