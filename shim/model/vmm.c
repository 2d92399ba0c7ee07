#include "vmm.h"

#include <stdatomic.h>

static atomic_ullong exported_handles;

void vg_vmm_note_exported(void)
{
    atomic_fetch_add(&exported_handles, 1);
}

uint64_t vg_vmm_exported_handles(void)
{
    return atomic_load(&exported_handles);
}

void vg_vmm_forget_exported(void)
{
    atomic_store(&exported_handles, 0);
}
