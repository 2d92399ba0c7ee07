/* 8 threads allocating and freeing concurrently, each under its own
 * purpose: exact totals at the end. */
#include <cuda_runtime_api.h>
#include <pthread.h>

#include "preload_common.h"

enum { THREADS = 8, ITERATIONS = 2000, KEEP_EVERY = 10 };

struct worker {
    int id;
    int purpose;
    unsigned long long kept_bytes;
    void *kept[ITERATIONS / KEEP_EVERY + 1];
    int n_kept;
    int errors;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    cudaSetDevice(0);
    vramguard_purpose_push(w->purpose, NULL);
    for (int i = 0; i < ITERATIONS; i++) {
        void *p = NULL;
        size_t size = (size_t)((i * 7 + w->id) % 13 + 1) * 4096;
        if (cudaMalloc(&p, size) != cudaSuccess) {
            w->errors++;
            continue;
        }
        if (i % KEEP_EVERY == 0) {
            w->kept[w->n_kept++] = p;
            w->kept_bytes += size;
        } else if (cudaFree(p) != cudaSuccess) {
            w->errors++;
        }
    }
    vramguard_purpose_pop();
    return NULL;
}

int main(void)
{
    start("prog_threads");
    cudaFree(0);
    struct snapshot s0 = snap();
    static struct worker workers[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        workers[i].id = i;
        workers[i].purpose = i % 4;
        pthread_create(&t[i], NULL, work, &workers[i]);
    }
    unsigned long long expect[4] = {0};
    int errors = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        expect[workers[i].purpose] += workers[i].kept_bytes;
        errors += workers[i].errors;
    }
    CHECK("no CUDA errors", errors == 0, "%d errors", errors);
    struct snapshot s1 = snap();
    for (int p = 0; p < 4; p++) {
        char name[64];
        snprintf(name, sizeof(name), "purpose %d live bytes exact", p);
        CHECK(name, s1.purpose[p] - s0.purpose[p] == expect[p], "got %llu want %llu", s1.purpose[p] - s0.purpose[p],
              expect[p]);
    }
    for (int i = 0; i < THREADS; i++)
        for (int k = 0; k < workers[i].n_kept; k++)
            cudaFree(workers[i].kept[k]);
    CHECK("all freed", snap().vram == s0.vram, "vram %llu vs %llu", snap().vram, s0.vram);
    return finish("prog_threads");
}
