/* Fuzz target: the endpoint's HTTP request parser and router
 * (vg_endpoint_respond, shim/output/endpoint_http.c: no socket), with a few live
 * allocations in the table so that /metrics and /vram render something.
 * The answer must be a whole HTTP/1.1 status line. */
#include "fuzz_common.h"
#include "emit.h"
#include "endpoint.h"
#include "model.h"
#include "table.h"

static void setup(void)
{
    static int done;
    if (done++)
        return;
    for (int i = 0; i < 4; i++) {
        struct vg_alloc a;
        memset(&a, 0, sizeof(a));
        a.ptr = 0x1000000u + (uintptr_t)i * 0x100000u;
        a.size = 4096u << i;
        a.api = "cuMemAlloc_v2";
        a.device = (int16_t)(i & 1);
        a.kind = VG_KIND_DEVICE;
        a.purpose = (uint8_t)(i % 4);
        vg_table_insert(&a);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    static char out[1 << 18];
    struct vg_out o;
    vg_out_buffer(&o, out, sizeof(out));
    int status = vg_endpoint_respond((const char *)data, size, &o);
    if (status != 0 && (o.len < 12 || memcmp(out, "HTTP/1.1 ", 9) != 0))
        abort();
    return 0;
}
