/* Fuzz target: every VRAMGUARD_* variable at once (shim/model/config.c),
 * one per input line in the order below; then the report template's %p
 * expansion. */
#include "fuzz_common.h"
#include "config.h"

static const char *const names[] = {
    "VRAMGUARD_POLICY",        "VRAMGUARD_ALLOW",     "VRAMGUARD_FAIL_ON",  "VRAMGUARD_REPORT",
    "VRAMGUARD_LOG",           "VRAMGUARD_LISTEN",    "VRAMGUARD_HEALTH_FAIL_ON", "VRAMGUARD_PURPOSE_RULES",
    "VRAMGUARD_BACKTRACE",     "VRAMGUARD_VRAM_ARGV", "VRAMGUARD_LIMIT",    "VRAMGUARD_LIMIT_MEMINFO",
};
enum { N = sizeof(names) / sizeof(names[0]) };
static char *values[N];
static int n_values;

static const char *get(const char *name)
{
    for (int i = 0; i < n_values; i++)
        if (strcmp(names[i], name) == 0)
            return values[i];
    return NULL;
}

static void warn(const char *message)
{
    if (strlen(message) >= 768) /* config.c formats warnings into 768 bytes */
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + N + 1);
    n_values = fuzz_split(data, size, buf, values, N);
    static struct vg_config cfg;
    vg_config_parse(&cfg, get, warn);
    char path[64];
    vg_expand_path(cfg.report_path, 123456, path, sizeof(path));
    char fail_on[128];
    vg_fail_on_string(cfg.fail_on, fail_on, sizeof(fail_on));
    free(buf);
    return 0;
}
