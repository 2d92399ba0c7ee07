/* Loaded RTLD_LOCAL with its dependency libnext_a: dlsym(RTLD_DEFAULT) from
 * here searches this library's local scope too, as glibc defines it. */
#include <dlfcn.h>
#include <stddef.h>

__attribute__((visibility("default"))) int c_sees_local_scope(void);
int c_sees_local_scope(void)
{
    return dlsym(RTLD_DEFAULT, "vg_local_only") != NULL;
}
