/* Fork safety: every mutex of the shim, taken by the fork handlers (api.c)
 * in one order before fork and released in both parent and child, so that
 * a fork landing while another thread (an endpoint scrape, an allocation)
 * holds one cannot leave the child with it locked. The order follows the
 * only nesting there is: breakdown scratch before table. */
#ifndef VG_FORKSAFE_H
#define VG_FORKSAFE_H

#include <pthread.h>

pthread_mutex_t *vg_breakdown_fork_mutex(void);
/* The budget check's scratch (budget.c): taken before the table's locks. */
pthread_mutex_t *vg_budget_fork_mutex(void);
/* The table's shard locks are spin locks: vg_table_fork_prepare/parent
 * (table.h) take and release them all, then the peaks' (their global lock
 * and every thread's block: peaks.h), at the table's place in this order;
 * vg_table_reset releases them in the child. */
pthread_mutex_t *vg_incidents_fork_mutex(void);
pthread_mutex_t *vg_events_journal_fork_mutex(void);
/* Naming an event's site (events.c): before the stack depot's lock. */
pthread_mutex_t *vg_events_who_fork_mutex(void);
pthread_mutex_t *vg_pools_fork_mutex(void);
pthread_mutex_t *vg_labels_fork_mutex(void);
pthread_mutex_t *vg_stacks_fork_mutex(void);
pthread_mutex_t *vg_vmm_fork_mutex(void);
pthread_mutex_t *vg_scopes_fork_mutex(void);
pthread_mutex_t *vg_modules_fork_mutex(void);
pthread_mutex_t *vg_contexts_fork_mutex(void);

#endif
