/* Fuzz target: VRAMGUARD_LIMIT (shim/model/budget.c). Line 1 is the spec;
 * the compiled budgets are asked about a few allocations. */
#include "fuzz_common.h"
#include "budget.h"

static void bad(const char *entry, const char *why, void *ctx)
{
    (void)ctx;
    if (!entry || !why || !*why)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    char *p[1];
    fuzz_split(data, size, buf, p, 1);
    struct vg_budgets b;
    vg_budget_compile(p[0], &b, bad, NULL);
    if (vg_budget_any(&b))
        for (int dev = -1; dev < 3; dev++)
            for (int purpose = 0; purpose < 4; purpose++)
                (void)vg_budget_exceeded(&b, dev, purpose, 1ull << 30, 1ull << 29, 1ull << 20, UINT64_MAX / 2);
    free(buf);
    return 0;
}
