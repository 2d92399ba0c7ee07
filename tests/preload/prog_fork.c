/* After fork the child owns none of its parent's allocations. */
#include <cuda_runtime_api.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload_common.h"

int main(void)
{
    start("prog_fork");
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
