/* An interposer of its own: wraps vg_probe and finds the next definition
 * with dlsym(RTLD_NEXT), which glibc resolves relative to the caller. */
#include <dlfcn.h>
#include <stdio.h>

__attribute__((visibility("default"))) const char *vg_probe(void);
const char *vg_probe(void)
{
    static char out[64];
    const char *(*next)(void) = (const char *(*)(void))dlsym(RTLD_NEXT, "vg_probe");
    if (next == (const char *(*)(void))vg_probe)
        return "recursion";
    snprintf(out, sizeof(out), "b>%s", next ? next() : "(none)");
    return out;
}
