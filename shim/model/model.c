#include "model.h"
#include <string.h>

static const char *const kind_names[VG_KIND_COUNT] = {
    "device", "host_pinned", "managed", "pool", "vmm", "array", "host_registered", "imported",
};
static const char *const purpose_names[VG_PURPOSE_COUNT] = {"unknown", "weights", "kv_cache",
                                                            "intermediate"};

const char *vg_kind_name(int kind)
{
    return (kind >= 0 && kind < VG_KIND_COUNT) ? kind_names[kind] : "invalid";
}

const char *vg_purpose_name(int purpose)
{
    return (purpose >= 0 && purpose < VG_PURPOSE_COUNT) ? purpose_names[purpose] : "invalid";
}

int vg_purpose_from_name(const char *name)
{
    for (int i = 0; name && i < VG_PURPOSE_COUNT; i++)
        if (strcmp(name, purpose_names[i]) == 0)
            return i;
    return -1;
}
