#include "repeats.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

enum { SLOTS = 256 }; /* VG_REPEATS_GROUPS used at most: probes stay short */

struct slot {
    bool used;
    struct vg_repeat_group group;
    uint64_t seen;           /* events of the group */
    uint64_t pending;        /* suppressed since the last summary */
    uint64_t max_size;
    struct timespec since;   /* realtime of the first pending one */
    time_t period_start;     /* monotonic seconds: when the pending ones began */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[SLOTS];
static int used_slots;
enum { KINDS = 8 };
/* The groups that found the table full: one per type and kind. */
static struct slot other[VG_REPEAT_TYPES * KINDS];
#define OTHERS (VG_REPEAT_TYPES * KINDS)
static atomic_ullong suppressed[VG_REPEAT_TYPES];

static bool same(const struct vg_repeat_group *a, const struct vg_repeat_group *b)
{
    return a->type == b->type && a->api == b->api && a->caller == b->caller && a->kind == b->kind &&
           a->device == b->device && a->action == b->action && a->budget == b->budget && a->result == b->result;
}

static uint64_t hash(const struct vg_repeat_group *g)
{
    uint64_t h = (uint64_t)(uintptr_t)g->caller * UINT64_C(0x9E3779B97F4A7C15);
    h ^= (uint64_t)(uintptr_t)g->api + ((uint64_t)g->type << 8) + ((uint64_t)g->kind << 16) +
         ((uint64_t)(unsigned)g->device << 24) + ((uint64_t)g->action << 40) + ((uint64_t)(g->budget + 1) << 44) +
         ((uint64_t)g->result << 48);
    return h * UINT64_C(0xBF58476D1CE4E5B9);
}

/* The group's slot; the type's overflow group when the table is full. */
static struct slot *find_locked(const struct vg_repeat_group *g)
{
    unsigned i = (unsigned)(hash(g) >> 56) % SLOTS;
    for (int probes = 0; probes < SLOTS; probes++, i = (i + 1) % SLOTS) {
        if (!slots[i].used) {
            if (used_slots >= VG_REPEATS_GROUPS)
                break;
            slots[i] = (struct slot){.used = true, .group = *g};
            used_slots++;
            return &slots[i];
        }
        if (same(&slots[i].group, g))
            return &slots[i];
    }
    int kind = g->kind >= 0 && g->kind < KINDS ? g->kind : 0;
    struct slot *o = &other[g->type * KINDS + kind];
    o->group.type = g->type;
    o->group.kind = kind;
    return o;
}

static void take_locked(struct slot *s, struct vg_repeat_summary *out)
{
    *out = (struct vg_repeat_summary){s->group, s >= other && s < other + OTHERS, s->pending, s->max_size,
                                      s->since};
    s->pending = 0;
    s->max_size = 0;
}

void vg_repeat_admit(const struct vg_repeat_group *g, uint64_t size, const struct timespec *when, time_t mono_s,
                     struct vg_repeat_decision *out)
{
    memset(out, 0, sizeof(*out));
    int type = g->type >= 0 && g->type < VG_REPEAT_TYPES ? g->type : VG_REPEAT_VIOLATION;
    struct vg_repeat_group key = *g;
    key.type = type;
    pthread_mutex_lock(&lock);
    struct slot *s = find_locked(&key);
    out->other = s >= other && s < other + OTHERS;
    if (++s->seen <= VG_REPEATS_SHOWN) {
        out->write = true;
        pthread_mutex_unlock(&lock);
        return;
    }
    out->first_held = s->seen == VG_REPEATS_SHOWN + 1;
    if (s->pending == 0) {
        s->since = *when;
        s->period_start = mono_s;
    }
    s->pending++;
    if (size > s->max_size)
        s->max_size = size;
    atomic_fetch_add(&suppressed[type], 1);
    if (mono_s - s->period_start >= VG_REPEATS_PERIOD_S) {
        out->summary_due = true;
        take_locked(s, &out->summary);
    }
    pthread_mutex_unlock(&lock);
}

bool vg_repeat_take_pending(struct vg_repeat_summary *out)
{
    bool found = false;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < SLOTS + OTHERS && !found; i++) {
        struct slot *s = i < SLOTS ? &slots[i] : &other[i - SLOTS];
        if (s->pending > 0) {
            take_locked(s, out);
            found = true;
        }
    }
    pthread_mutex_unlock(&lock);
    return found;
}

uint64_t vg_repeat_suppressed(int type)
{
    return type >= 0 && type < VG_REPEAT_TYPES ? atomic_load(&suppressed[type]) : 0;
}

void vg_repeat_reset(void)
{
    pthread_mutex_init(&lock, NULL);
    memset(slots, 0, sizeof(slots));
    memset(other, 0, sizeof(other));
    used_slots = 0;
    for (int t = 0; t < VG_REPEAT_TYPES; t++)
        atomic_store(&suppressed[t], 0);
}
