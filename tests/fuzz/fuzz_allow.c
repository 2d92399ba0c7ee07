/* Fuzz target: VRAMGUARD_ALLOW (shim/model/allow.c). Line 1 is the spec,
 * line 2 a module name matched against the compiled rules, line 3 a size
 * (vg_parse_size) and a glob (vg_glob_valid). */
#include "fuzz_common.h"
#include "allow.h"
#include "model.h"

static void bad(const char *rule, const char *why, void *ctx)
{
    (void)ctx;
    if (!rule || !why || !*why)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 3);
    char *p[3] = {"", "", ""};
    fuzz_split(data, size, buf, p, 3);
    struct vg_allowances a;
    vg_allow_compile(p[0], &a, bad, NULL);
    uint64_t n = 0;
    (void)vg_parse_size(p[2], &n);
    (void)vg_glob_valid(p[2]);
    static const int kinds[] = {VG_KIND_HOST_PINNED, VG_KIND_HOST_REGISTERED, VG_KIND_MANAGED, VG_KIND_DEVICE};
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        (void)vg_allow_match(&a, kinds[k], n, p[1]);
        (void)vg_allow_needs_module(&a, kinds[k]);
        char rule[256];
        vg_allow_narrowest(kinds[k], n, p[1], rule, sizeof(rule));
    }
    free(buf);
    return 0;
}
