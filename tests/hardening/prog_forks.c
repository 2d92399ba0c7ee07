/* Forks while other threads allocate (issue 9 item 11): the fake driver, and
 * the shim when it is preloaded, must leave the child usable.
 *
 *   prog_forks FORKS THREADS [DEADLINE_S]
 *
 * THREADS threads allocate and free without pause (half through the runtime,
 * half through the driver) while the main thread forks FORKS times. Each
 * child allocates through both APIs, keeps (pid % 7 + 1) * 4 KiB of
 * cuMemAlloc memory live and exits normally (so a preloaded shim writes its
 * report). A child that has not exited after DEADLINE_S seconds (default
 * 20) is hung: it is killed and the run stops there. Prints
 * "forks N hung H failed F" and exits 0 only when every child exited 0. */
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static atomic_bool stop;
static CUcontext ctx;

static void *churn(void *arg)
{
    int runtime = (int)(long)arg & 1;
    unsigned n = 0;
    if (!runtime && cuCtxSetCurrent(ctx) != CUDA_SUCCESS)
        return (void *)1L;
    while (!atomic_load(&stop)) {
        size_t size = 512 * (1 + n++ % 64);
        if (runtime) {
            void *p = NULL;
            if (cudaMalloc(&p, size) != cudaSuccess || cudaFree(p) != cudaSuccess)
                return (void *)1L;
        } else {
            CUdeviceptr p = 0;
            if (cuMemAlloc_v2(&p, size) != CUDA_SUCCESS || cuMemFree_v2(p) != CUDA_SUCCESS)
                return (void *)1L;
        }
    }
    return NULL;
}

/* The child: both APIs, one allocation left live for its report. */
static int child(void)
{
    CUdeviceptr keep = 0, tmp = 0;
    void *p = NULL;
    if (cuCtxSetCurrent(ctx) != CUDA_SUCCESS)
        return 2;
    if (cuMemAlloc_v2(&keep, (size_t)(getpid() % 7 + 1) * 4096) != CUDA_SUCCESS)
        return 3;
    if (cuMemAlloc_v2(&tmp, 1024) != CUDA_SUCCESS || cuMemFree_v2(tmp) != CUDA_SUCCESS)
        return 4;
    if (cudaMalloc(&p, 8192) != cudaSuccess || cudaFree(p) != cudaSuccess)
        return 5;
    return 0;
}

/* The child's exit status, or -1 when it is still running at the deadline. */
static int wait_child(pid_t pid, int deadline_s)
{
    struct timespec start, now, pause = {0, 2 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int status = 0;
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (got < 0)
            return 255;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= deadline_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        nanosleep(&pause, NULL);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: prog_forks FORKS THREADS [DEADLINE_S]\n");
        return 2;
    }
    int forks = atoi(argv[1]), threads = atoi(argv[2]), deadline = argc > 3 ? atoi(argv[3]) : 20;
    CUdevice dev;
    if (cuInit(0) != CUDA_SUCCESS || cuDeviceGet(&dev, 0) != CUDA_SUCCESS ||
        cuDevicePrimaryCtxRetain(&ctx, dev) != CUDA_SUCCESS || cuCtxSetCurrent(ctx) != CUDA_SUCCESS ||
        cudaFree(0) != cudaSuccess) {
        fprintf(stderr, "prog_forks: CUDA did not start\n");
        return 2;
    }
    pthread_t tid[64];
    if (threads > 64)
        threads = 64;
    for (int i = 0; i < threads; i++)
        pthread_create(&tid[i], NULL, churn, (void *)(long)i);

    int done = 0, hung = 0, failed = 0;
    for (; done < forks && hung == 0; done++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0)
            exit(child());
        if (pid < 0) {
            failed++;
            break;
        }
        int status = wait_child(pid, deadline);
        if (status < 0) {
            hung++;
            printf("FAIL child %d (fork %d) still running after %d s: killed\n", (int)pid, done + 1, deadline);
        } else if (status != 0) {
            failed++;
            printf("FAIL child %d (fork %d) exited with status %d\n", (int)pid, done + 1, status);
        }
    }
    atomic_store(&stop, true);
    for (int i = 0; i < threads; i++) {
        void *ret = NULL;
        pthread_join(tid[i], &ret);
        if (ret != NULL) {
            failed++;
            printf("FAIL allocating thread %d saw an error\n", i);
        }
    }
    printf("forks %d hung %d failed %d\n", done, hung, failed);
    return hung || failed ? 1 : 0;
}
