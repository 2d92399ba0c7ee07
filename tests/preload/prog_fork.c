/* After fork the child owns none of its parent's allocations. */
#include <cuda_runtime_api.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload_common.h"

/* PROG_FORK_FIRST=1: fork before any CUDA call, both processes then use
 * CUDA (the pattern of worker pools): each writes its own report. */
static int fork_first(void)
{
    fflush(stdout);
    pid_t pid = fork();
    void *p = NULL;
    CHECK(pid == 0 ? "child allocates" : "parent allocates", cudaMalloc(&p, (pid == 0 ? 1 : 2) * MiB) == cudaSuccess,
          "failed");
    cudaFree(p);
    if (pid == 0)
        exit(failures ? 1 : 0);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK("child checks passed", WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    printf("parent pid %d child pid %d\n", (int)getpid(), (int)pid);
    return finish("prog_fork");
}

int main(void)
{
    start("prog_fork");
    if (getenv("PROG_FORK_FIRST"))
        return fork_first();
    cudaFree(0);
    void *w = NULL;
    VRAMGUARD_PURPOSE(VRAMGUARD_WEIGHTS)
    CHECK("parent allocates", cudaMalloc(&w, 4 * MiB) == cudaSuccess, "failed");
    unsigned long long parent_vram = snap().vram;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* The child does not use CUDA (a forked CUDA context is unusable). */
        CHECK("child starts with no tracked memory", snap().vram == 0, "vram %llu", snap().vram);
        if (getenv("PROG_FORK_CHILD_LOGS")) { /* a refused allocation: a log line from the child */
            void *h = NULL;
            if (cudaMallocHost(&h, 4096) == cudaSuccess)
                cudaFreeHost(h);
            printf("child pid %d\n", (int)getpid());
        }
        _exit(failures ? 1 : 0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK("child checks passed", WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    CHECK("parent keeps its allocations", snap().vram == parent_vram && parent_vram >= 4 * MiB, "vram %llu",
          snap().vram);
    cudaFree(w);
    return finish("prog_fork");
}
