/* A sample inference worker for `make demo`: loads "weights", sizes a KV
 * cache from what is left, runs a step with scratch buffers, prints the live
 * breakdown, then makes two classic mistakes: it asks for managed memory
 * (refused by vramguard) and for more VRAM than the card has (an OOM, which
 * vramguard explains). It handles both and exits 0. Each step is a function
 * of its own, as in a real worker: vramguard names it (and its file:line)
 * for every allocation it made. */
#include <cuda_runtime_api.h>
#include <stdio.h>

#include "vramguard.h"

#define MiB (1024ull * 1024ull)
/* A frame of its own at any optimisation level, as a real worker's steps have. */
#define STEP __attribute__((noinline)) static

STEP void load_weights(void **layers, int n)
{
    for (int i = 0; i < n; i++) {
        char label[32];
        snprintf(label, sizeof(label), "layer.%d", i);
        VRAMGUARD_PURPOSE_LABEL(VRAMGUARD_WEIGHTS, label)
        cudaMalloc(&layers[i], 64 * MiB);
    }
}

STEP void size_kv_cache(void **kv)
{
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    VRAMGUARD_PURPOSE(VRAMGUARD_KV_CACHE)
    cudaMalloc(kv, free_b / 2); /* half of what is left for the KV cache */
}

STEP void run_step(void **scratch)
{
    VRAMGUARD_PURPOSE(VRAMGUARD_INTERMEDIATE)
    cudaMalloc(scratch, 32 * MiB);
}

STEP void ask_for_unified_memory(void)
{
    void *unified = NULL;
    cudaError_t r = cudaMallocManaged(&unified, 16 * MiB, cudaMemAttachGlobal);
    printf("worker: cudaMallocManaged -> %s (%d)\n", cudaGetErrorName(r), (int)r);
    cudaGetLastError();
}

STEP void grow_kv_cache(void)
{
    void *huge = NULL;
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    VRAMGUARD_PURPOSE(VRAMGUARD_KV_CACHE)
    {
        cudaError_t r = cudaMalloc(&huge, total_b); /* more than is free: out of memory */
        printf("worker: cudaMalloc(%zu MiB) -> %s (%d)\n", (size_t)(total_b / MiB), cudaGetErrorName(r), (int)r);
    }
    cudaGetLastError();
}

int main(void)
{
    void *layers[4] = {0}, *kv = NULL, *scratch = NULL;
    setvbuf(stdout, NULL, _IOLBF, 0);

    load_weights(layers, 4);
    size_kv_cache(&kv);
    run_step(&scratch);

    char text[4096];
    vramguard_report(text, sizeof(text));
    printf("worker: live breakdown from vramguard_report():\n%s", text);

    ask_for_unified_memory();
    grow_kv_cache();

    for (int i = 0; i < 4; i++)
        cudaFree(layers[i]);
    cudaFree(kv);
    cudaFree(scratch);
    printf("worker: done\n");
    return 0;
}
