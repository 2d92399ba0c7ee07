#include "threads.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

/* What the new thread reads before it says it runs. `state`: 0 while
 * starting, RUNNING once it has read fn and arg, GIVEN_UP when the starter
 * stopped waiting; whichever of the two moves it second frees it. */
struct start {
    void *(*fn)(void *);
    void *arg;
    atomic_int state;
};
enum { STARTING, RUNNING, GIVEN_UP };

static void *trampoline(void *p)
{
    struct start *s = p;
    void *(*fn)(void *) = s->fn;
    void *arg = s->arg;
    int expected = STARTING;
    if (!atomic_compare_exchange_strong(&s->state, &expected, RUNNING))
        free(s); /* the starter gave up waiting */
    return fn(arg);
}

int vg_thread_start(pthread_t *out, size_t stack, void *(*fn)(void *), void *arg)
{
    struct start *s = malloc(sizeof(*s));
    if (!s)
        return ENOMEM;
    s->fn = fn;
    s->arg = arg;
    atomic_init(&s->state, STARTING);
    sigset_t all, old;
    sigfillset(&all);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (stack)
        pthread_attr_setstacksize(&attr, stack);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* inherited by the new thread */
    int rc = pthread_create(out, &attr, trampoline, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(s);
        return rc;
    }
    for (int i = 0; i < 20000 && atomic_load(&s->state) == STARTING; i++)
        nanosleep(&(struct timespec){0, 50000}, NULL);
    int expected = STARTING;
    if (!atomic_compare_exchange_strong(&s->state, &expected, GIVEN_UP))
        free(s); /* it runs: it no longer reads it */
    return 0;
}
