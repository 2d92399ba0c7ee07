/* Who allocated it: untagged allocations from two libraries (one through
 * the runtime, one through the driver) are attributed to each library's
 * module; VRAMGUARD_PURPOSE_RULES gives them purposes without changing them.
 * Prints the shim's text breakdown for the harness to check. */
#include <cuda.h>
#include <cuda_runtime_api.h>

#include "preload_common.h"

void *attrib_a_alloc(size_t size);
CUdeviceptr attrib_b_alloc(size_t size);

int main(void)
{
    start("prog_attrib");
    cudaFree(0);
    struct snapshot s0 = snap();
    void *a = attrib_a_alloc(3 * MiB);
    CUdeviceptr b_big = attrib_b_alloc(5 * MiB), b_small = attrib_b_alloc(1 * MiB);
    CHECK("allocations from both libraries", a && b_big && b_small, "failed");
    struct snapshot s1 = snap();
    if (getenv("VRAMGUARD_PURPOSE_RULES")) {
        /* libattrib_a*=intermediate,>=4M=weights */
        CHECK("module rule: libattrib_a -> intermediate",
              s1.purpose[VRAMGUARD_INTERMEDIATE] - s0.purpose[VRAMGUARD_INTERMEDIATE] == 3 * MiB, "got %llu",
              s1.purpose[VRAMGUARD_INTERMEDIATE] - s0.purpose[VRAMGUARD_INTERMEDIATE]);
        CHECK("size rule: >=4M -> weights", s1.purpose[VRAMGUARD_WEIGHTS] - s0.purpose[VRAMGUARD_WEIGHTS] == 5 * MiB,
              "got %llu", s1.purpose[VRAMGUARD_WEIGHTS] - s0.purpose[VRAMGUARD_WEIGHTS]);
        CHECK("no rule: unknown", s1.purpose[VRAMGUARD_UNKNOWN] - s0.purpose[VRAMGUARD_UNKNOWN] == 1 * MiB, "got %llu",
              s1.purpose[VRAMGUARD_UNKNOWN] - s0.purpose[VRAMGUARD_UNKNOWN]);
        VRAMGUARD_PURPOSE(VRAMGUARD_KV_CACHE)
        {
            void *tagged = attrib_a_alloc(2 * MiB);
            CHECK("a pushed purpose wins over the rules", snap().purpose[VRAMGUARD_KV_CACHE] == 2 * MiB, "got %llu",
                  snap().purpose[VRAMGUARD_KV_CACHE]);
            cudaFree(tagged);
        }
    } else {
        CHECK("all untagged", s1.purpose[VRAMGUARD_UNKNOWN] - s0.purpose[VRAMGUARD_UNKNOWN] == 9 * MiB, "got %llu",
              s1.purpose[VRAMGUARD_UNKNOWN] - s0.purpose[VRAMGUARD_UNKNOWN]);
    }
    char text[16384];
    vramguard_report(text, sizeof(text));
    printf("%s", text);
    int rc = finish("prog_attrib");
    /* Left live on purpose: the exit report lists them by module too. */
    return rc;
}
