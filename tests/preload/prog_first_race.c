/* Threads racing to the process's first CUDA call, each refused (issue 9
 * item 16): whichever thread gets there first, the journal's start line
 * comes before every violation. The CLI keeps the events after the last
 * start line (a reused pid appends a new run to an old journal), so a
 * violation written before it would be lost and a killed process pass.
 *
 * It forks PROG_RACE_CHILDREN children (default 300) one after another;
 * each starts PROG_RACE_THREADS threads (default 10: no more than the shim writes of a group) that wait on a barrier
 * and then ask for host memory (refused), then dies without writing a
 * report (_exit: no destructors), leaving its journal only. The parent
 * never calls CUDA. */
#include <cuda.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload_common.h"

static pthread_barrier_t barrier;

static void *racer(void *arg)
{
    (void)arg;
    void *p = NULL;
    pthread_barrier_wait(&barrier);
    CUresult r = cuMemAllocHost(&p, 4096);
    return (void *)(intptr_t)(r == CUDA_ERROR_NOT_PERMITTED);
}

static int child(int threads)
{
    pthread_t t[64];
    pthread_barrier_init(&barrier, NULL, (unsigned)threads);
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, racer, NULL);
    int refused = 0;
    for (int i = 0; i < threads; i++) {
        void *ok = NULL;
        pthread_join(t[i], &ok);
        refused += ok != NULL;
    }
    _exit(refused == threads ? 0 : 1);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int children = atoi(env_or("PROG_RACE_CHILDREN", "300"));
    int threads = atoi(env_or("PROG_RACE_THREADS", "10"));
    if (threads > 64)
        threads = 64;
    int refused_everywhere = 0;
    for (int i = 0; i < children; i++) {
        pid_t pid = fork();
        if (pid == 0)
            child(threads);
        int st = 0;
        waitpid(pid, &st, 0);
        refused_everywhere += WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    CHECK("every thread of every child refused", refused_everywhere == children, "%d of %d children",
          refused_everywhere, children);
    return finish("prog_first_race");
}
