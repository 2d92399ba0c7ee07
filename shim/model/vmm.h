/* VMM facts the outputs show: handles exported to other processes. */
#ifndef VG_VMM_H
#define VG_VMM_H

#include <stdint.h>

/* A handle was exported with cuMemExportToShareableHandle: it may outlive
 * this process's own references in the importing process. */
void vg_vmm_note_exported(void);
uint64_t vg_vmm_exported_handles(void);
void vg_vmm_forget_exported(void);

#endif
