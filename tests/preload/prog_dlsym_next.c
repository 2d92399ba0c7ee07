/* The shim exports dlsym. Other libraries' own RTLD_NEXT and RTLD_DEFAULT
 * lookups must behave exactly as without it. */
#include <dlfcn.h>

#include "preload_common.h"

const char *vg_probe(void);

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* No CUDA here: this also runs without the shim, as a control. */
    const char *got = vg_probe();
    CHECK("dlsym(RTLD_NEXT) in another library finds the next definition", strcmp(got, "b>a") == 0, "got %s", got);
    const char *lib = argc > 1 ? argv[1] : "libnext_c.so";
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    CHECK("dlopen libnext_c RTLD_LOCAL", h != NULL, "%s", dlerror());
    if (h) {
        int (*sees)(void) = (int (*)(void))dlsym(h, "c_sees_local_scope");
        CHECK("dlsym(RTLD_DEFAULT) from a RTLD_LOCAL library sees its local scope", sees && sees(), "not found");
        CHECK("and the main program does not", dlsym(RTLD_DEFAULT, "vg_local_only") == NULL, "found");
    }
    CHECK("dlsym of an unknown name is NULL", dlsym(RTLD_DEFAULT, "vg_no_such_symbol_anywhere") == NULL, "non-NULL");
    return finish("prog_dlsym_next");
}
