/* VMM bookkeeping kept by the wrappers (hooks_vmm.c). */
#ifndef VG_HOOKS_VMM_H
#define VG_HOOKS_VMM_H

#include <stdbool.h>
#include <stdint.h>

/* Forget every handle and mapping: a fork child owns none of its parent's. */
void vg_vmm_reset_after_fork(void);

/* A sparse or deferred-mapping array was created (deferred: mapped whole),
 * owned by context index `owner`: VMM handles mapped into it with
 * cuMemMapArrayAsync count as mapped while they are. */
void vg_vmm_array_created(uintptr_t array, bool deferred, uint8_t owner);
/* An array was destroyed: the handles mapped into it are unmapped. */
void vg_vmm_array_destroyed(uintptr_t array);
/* Context index `owner` ended: its arrays are gone, and so are the
 * mappings of handles into them. */
void vg_vmm_context_gone(uint8_t owner);

#endif
