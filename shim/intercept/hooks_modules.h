/* Module and library globals (hooks_modules.c). */
#ifndef VG_HOOKS_MODULES_H
#define VG_HOOKS_MODULES_H

/* Forget which globals were seen: a fork child reports its own. */
void vg_modules_globals_reset_after_fork(void);

#endif
