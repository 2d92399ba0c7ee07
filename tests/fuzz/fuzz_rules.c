/* Fuzz target: VRAMGUARD_PURPOSE_RULES (shim/model/rules.c). Line 1 is the
 * spec; a valid one is loaded and asked for the purpose of a few sizes. */
#include "fuzz_common.h"
#include "rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    char *pieces[1];
    fuzz_split(data, size, buf, pieces, 1);
    char err[256];
    if (vg_rules_valid(pieces[0], err, sizeof(err))) {
        vg_rules_load(pieces[0]);
        static const uint64_t sizes[] = {0, 1, 1023, 1024, 1ull << 20, 256ull << 20, UINT64_MAX};
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
            (void)vg_rules_purpose((void *)LLVMFuzzerTestOneInput, sizes[i]);
        vg_rules_load("");
    } else if (memchr(err, '\0', sizeof(err)) == NULL) {
        abort();
    }
    free(buf);
    return 0;
}
