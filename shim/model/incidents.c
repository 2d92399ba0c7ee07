#include "incidents.h"
#include "forksafe.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

static atomic_ullong violations;
static atomic_ullong ooms;
static atomic_ullong ooms_per_device[VG_MAX_DEVICES];
static atomic_ullong budget_ooms;
static atomic_ullong budget_ooms_per_device[VG_MAX_DEVICES];
static atomic_ullong budget_ooms_at[VG_MAX_DEVICES][VG_BUDGET_SCOPES];

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

pthread_mutex_t *vg_incidents_fork_mutex(void)
{
    return &lock;
}
static struct vg_event violations_kept[VG_EVENTS_KEPT];
static struct vg_event ooms_kept[VG_EVENTS_KEPT];
static int n_violations_kept, n_ooms_kept;
static struct vg_event budget_kept[VG_EVENTS_KEPT];
static int n_budget_kept;
enum { MAX_REJECTION_KEYS = 64 };
static struct vg_rejection rejections[MAX_REJECTION_KEYS];
static int n_rejections;

static void keep(struct vg_event *kept, int *n, const struct vg_event *e)
{
    pthread_mutex_lock(&lock);
    if (*n < VG_EVENTS_KEPT)
        kept[(*n)++] = *e;
    pthread_mutex_unlock(&lock);
}

static void count_rejection(const struct vg_event *e)
{
    pthread_mutex_lock(&lock);
    int i = 0;
    while (i < n_rejections && !(rejections[i].device == e->device && rejections[i].kind == e->kind &&
                                 strcmp(rejections[i].api, e->api) == 0))
        i++;
    if (i == n_rejections && n_rejections < MAX_REJECTION_KEYS)
        rejections[n_rejections++] = (struct vg_rejection){e->device, e->kind, e->api, 0};
    if (i < n_rejections)
        rejections[i].count++;
    pthread_mutex_unlock(&lock);
}

void vg_incident_violation(const struct vg_event *e)
{
    atomic_fetch_add(&violations, 1);
    keep(violations_kept, &n_violations_kept, e);
    if (e->action == VG_ACTION_REJECT)
        count_rejection(e);
}

uint64_t vg_incident_oom(const struct vg_event *e, uint64_t *total)
{
    *total = atomic_fetch_add(&ooms, 1) + 1;
    int d = (e->device >= 0 && e->device < VG_MAX_DEVICES) ? e->device : VG_MAX_DEVICES - 1;
    uint64_t on_device = atomic_fetch_add(&ooms_per_device[d], 1) + 1;
    keep(ooms_kept, &n_ooms_kept, e);
    return on_device;
}

uint64_t vg_incident_budget_oom(const struct vg_event *e, uint64_t *total)
{
    *total = atomic_fetch_add(&budget_ooms, 1) + 1;
    int d = (e->device >= 0 && e->device < VG_MAX_DEVICES) ? e->device : VG_MAX_DEVICES - 1;
    if (e->budget >= 0 && e->budget < VG_BUDGET_SCOPES)
        atomic_fetch_add(&budget_ooms_at[d][e->budget], 1);
    uint64_t on_device = atomic_fetch_add(&budget_ooms_per_device[d], 1) + 1;
    keep(budget_kept, &n_budget_kept, e);
    return on_device;
}

uint64_t vg_budget_oom_count(void)
{
    return atomic_load(&budget_ooms);
}

uint64_t vg_budget_oom_count_at(int device, int scope)
{
    if (device < 0 || device >= VG_MAX_DEVICES || scope < 0 || scope >= VG_BUDGET_SCOPES)
        return 0;
    return atomic_load(&budget_ooms_at[device][scope]);
}

int vg_rejections(struct vg_rejection *out, int max)
{
    pthread_mutex_lock(&lock);
    int n = n_rejections < max ? n_rejections : max;
    memcpy(out, rejections, (size_t)n * sizeof(*out));
    pthread_mutex_unlock(&lock);
    return n;
}

uint64_t vg_violation_count(void)
{
    return atomic_load(&violations);
}

uint64_t vg_oom_count(void)
{
    return atomic_load(&ooms);
}

uint64_t vg_oom_count_device(int device)
{
    if (device < 0 || device >= VG_MAX_DEVICES)
        return 0;
    return atomic_load(&ooms_per_device[device]);
}

static int copy_kept(const struct vg_event *kept, const int *n, struct vg_event *out, int max)
{
    pthread_mutex_lock(&lock);
    int k = *n < max ? *n : max;
    memcpy(out, kept, (size_t)k * sizeof(*out));
    pthread_mutex_unlock(&lock);
    return k;
}

int vg_violations_kept(struct vg_event *out, int max)
{
    return copy_kept(violations_kept, &n_violations_kept, out, max);
}

int vg_budget_ooms_kept(struct vg_event *out, int max)
{
    return copy_kept(budget_kept, &n_budget_kept, out, max);
}

int vg_ooms_kept(struct vg_event *out, int max)
{
    return copy_kept(ooms_kept, &n_ooms_kept, out, max);
}

void vg_incidents_reset(void)
{
    atomic_store(&violations, 0);
    atomic_store(&ooms, 0);
    atomic_store(&budget_ooms, 0);
    for (int i = 0; i < VG_MAX_DEVICES; i++) {
        atomic_store(&ooms_per_device[i], 0);
        atomic_store(&budget_ooms_per_device[i], 0);
        for (int s = 0; s < VG_BUDGET_SCOPES; s++)
            atomic_store(&budget_ooms_at[i][s], 0);
    }
    n_violations_kept = n_ooms_kept = n_rejections = n_budget_kept = 0;
}
