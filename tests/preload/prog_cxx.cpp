// The header from C++: the RAII scope and the macro pop on every exit
// (return, break, exception); without the shim everything is a no-op and
// the program runs normally.
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "vramguard.h"

static int failures;
#define CHECK(name, cond)                                                                          \
    do {                                                                                           \
        std::printf("%s %s\n", (cond) ? "PASS" : "FAIL", name);                                    \
        failures += (cond) ? 0 : 1;                                                                \
    } while (0)

static const unsigned long long MiB = 1024ull * 1024ull;

static unsigned long long purpose_bytes(int p)
{
    static struct vramguard_usage u;
    u.size = sizeof(u);
    return vramguard_usage(&u) == 0 ? u.purpose_bytes[p] : 0;
}

static void *alloc_in_scope_then_throw()
{
    vramguard::scope guard(VRAMGUARD_KV_CACHE, "kv");
    void *p = nullptr;
    cudaMalloc(&p, 1 * MiB);
    throw std::runtime_error("boom");
}

static void *alloc_in_macro_then_return()
{
    VRAMGUARD_PURPOSE(VRAMGUARD_WEIGHTS)
    {
        void *p = nullptr;
        cudaMalloc(&p, 2 * MiB);
        return p;
    }
    return nullptr;
}

int main()
{
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    bool shim = vramguard_loaded();
    std::printf("note: shim %s\n", shim ? "loaded" : "not loaded");
    cudaFree(nullptr);
    void *w = alloc_in_macro_then_return();
    try {
        alloc_in_scope_then_throw();
    } catch (const std::runtime_error &) {
    }
    void *after = nullptr;
    for (int i = 0; i < 3; i++) {
        VRAMGUARD_PURPOSE_LABEL(VRAMGUARD_INTERMEDIATE, "loop")
        {
            if (i == 1)
                break;
        }
    }
    cudaMalloc(&after, 4 * MiB); // every scope is closed: unknown
    if (shim) {
        CHECK("macro + return: weights", purpose_bytes(VRAMGUARD_WEIGHTS) == 2 * MiB);
        CHECK("RAII + exception: kv_cache", purpose_bytes(VRAMGUARD_KV_CACHE) == 1 * MiB);
        CHECK("nothing left pushed: unknown", purpose_bytes(VRAMGUARD_UNKNOWN) == 4 * MiB);
    } else {
        struct vramguard_usage u;
        u.size = sizeof(u);
        CHECK("without the shim: usage reports -1", vramguard_usage(&u) == -1);
        char text[16] = "x";
        CHECK("without the shim: report is empty", vramguard_report(text, sizeof(text)) == 0 && text[0] == '\0');
        CHECK("without the shim: push is a no-op", vramguard_purpose_push(VRAMGUARD_WEIGHTS, "w") == 0);
        CHECK("without the shim: the program runs", w != nullptr && after != nullptr);
    }
    cudaFree(w);
    cudaFree(after);
    std::printf("prog_cxx: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
