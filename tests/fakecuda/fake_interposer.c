/*
 * fake_interposer.c - a stand-in for a preloaded shim, used only by
 * fake_smoke's "preload" scenario.  It exports driver symbols under their
 * real names; because the fakes are linked with -Wl,-Bsymbolic, neither
 * cuGetProcAddress nor the fakes' internal calls may ever reach these.
 */
#include <cuda.h>

#include <stdlib.h>
#include <unistd.h>

static void die(const char *what)
{
    (void)!write(2, what, __builtin_strlen(what));
    abort();
}

CUresult CUDAAPI cuMemAlloc(CUdeviceptr *dptr, size_t bytesize) /* = cuMemAlloc_v2 */
{
    (void)dptr, (void)bytesize;
    die("fake_interposer: cuMemAlloc_v2 reached through symbol interposition\n");
    return CUDA_ERROR_UNKNOWN;
}

CUresult CUDAAPI cuMemFree(CUdeviceptr dptr) /* = cuMemFree_v2 */
{
    (void)dptr;
    die("fake_interposer: cuMemFree_v2 reached through symbol interposition\n");
    return CUDA_ERROR_UNKNOWN;
}

CUresult CUDAAPI cuInit(unsigned int flags)
{
    (void)flags;
    die("fake_interposer: cuInit reached through symbol interposition\n");
    return CUDA_ERROR_UNKNOWN;
}
