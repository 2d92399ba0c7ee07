/* VMM bookkeeping kept by the wrappers (hooks_vmm.c). */
#ifndef VG_HOOKS_VMM_H
#define VG_HOOKS_VMM_H

/* Forget every handle and mapping: a fork child owns none of its parent's. */
void vg_vmm_reset_after_fork(void);

#endif
