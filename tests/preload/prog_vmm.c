/* Virtual memory management: physical memory charged at cuMemCreate by its
 * location, uncharged only after cuMemRelease and the last cuMemUnmap (in
 * either order), several maps of one handle, retain by an interior address,
 * host-located cuMemCreate refused, export and import. The shim's figure is
 * compared with the change in cuMemGetInfo. */
#include <cuda.h>
#include <unistd.h>

#include "preload_common.h"

static unsigned long long vmm_live(const struct vramguard_usage *u)
{
    unsigned long long sum = 0;
    for (int d = 0; d < VRAMGUARD_MAX_DEVICES; d++)
        for (int p = 0; p < VRAMGUARD_PURPOSE_SLOTS; p++)
            sum += u->cell[d][VRAMGUARD_KIND_VMM][p].live_bytes;
    return sum;
}

static unsigned long long device_used(void)
{
    size_t f = 0, t = 0;
    cuMemGetInfo(&f, &t);
    return (unsigned long long)(t - f);
}

int main(void)
{
    start("prog_vmm");
    CUdevice dev;
    CUcontext ctx;
    cuInit(0);
    cuDeviceGet(&dev, 0);
    cuDevicePrimaryCtxRetain(&ctx, dev);
    cuCtxSetCurrent(ctx);

    CUmemAllocationProp prop = {0};
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = 0;
    prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
    size_t gran = 0;
    CHECK("granularity", cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM) ==
                             CUDA_SUCCESS && gran > 0, "failed");
    size_t size = 4 * gran;
    unsigned long long used0 = device_used();
    unsigned long long live0 = vmm_live(usage());

    CUmemGenericAllocationHandle h = 0, again = 0;
    VRAMGUARD_PURPOSE_LABEL(VRAMGUARD_WEIGHTS, "vmm-segment")
    CHECK("cuMemCreate on the device", cuMemCreate(&h, size, &prop, 0) == CUDA_SUCCESS, "failed");
    CHECK("charged at create", vmm_live(usage()) - live0 == size, "got %llu want %zu", vmm_live(usage()) - live0, size);
    long long diff = (long long)(device_used() - used0) - (long long)size;
    CHECK("agrees with cuMemGetInfo within the granularity", diff > -(long long)gran && diff < (long long)gran,
          "cuMemGetInfo moved %lld bytes more than the shim's figure", diff);
    CHECK("a live VMM handle is no residency offender", vramguard_verify_residency() == 0, "offenders");
    CHECK("purpose weights", usage()->purpose_bytes[VRAMGUARD_WEIGHTS] >= size, "got %llu",
          (unsigned long long)usage()->purpose_bytes[VRAMGUARD_WEIGHTS]);

    CUdeviceptr va1 = 0, va2 = 0;
    CHECK("cuMemAddressReserve x2", cuMemAddressReserve(&va1, size, 0, 0, 0) == CUDA_SUCCESS &&
                                        cuMemAddressReserve(&va2, size, 0, 0, 0) == CUDA_SUCCESS, "failed");
    CHECK("cuMemMap twice", cuMemMap(va1, size, 0, h, 0) == CUDA_SUCCESS && cuMemMap(va2, size, 0, h, 0) == CUDA_SUCCESS,
          "failed");
    CUmemAccessDesc access = {{CU_MEM_LOCATION_TYPE_DEVICE, 0}, CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
    cuMemSetAccess(va1, size, &access, 1);
    cuMemSetAccess(va2, size, &access, 1);
    CHECK("still one charge for two maps", vmm_live(usage()) - live0 == size, "got %llu", vmm_live(usage()) - live0);

    CHECK("cuMemRetainAllocationHandle(interior address)",
          cuMemRetainAllocationHandle(&again, (void *)(uintptr_t)(va2 + gran + 123)) == CUDA_SUCCESS && again == h,
          "failed or another handle");
    CHECK("cuMemRelease (the create reference) before unmapping", cuMemRelease(h) == CUDA_SUCCESS, "failed");
    CHECK("released but mapped: still charged", vmm_live(usage()) - live0 == size, "got %llu", vmm_live(usage()) - live0);
    CHECK("cuMemRelease (the retained reference)", cuMemRelease(again) == CUDA_SUCCESS, "failed");
    CHECK("unmap the first range", cuMemUnmap(va1, size) == CUDA_SUCCESS, "failed");
    CHECK("one map left: still charged", vmm_live(usage()) - live0 == size, "got %llu", vmm_live(usage()) - live0);
    CHECK("unmap the last range", cuMemUnmap(va2, size) == CUDA_SUCCESS, "failed");
    CHECK("released and unmapped: uncharged", vmm_live(usage()) == live0, "got %llu", vmm_live(usage()) - live0);
    cuMemAddressFree(va1, size);
    cuMemAddressFree(va2, size);

    /* One cuMemUnmap over many mappings (more than the shim keeps on its stack). */
    enum { MANY = 70 };
    CUdeviceptr va = 0;
    CHECK("reserve a range for many handles", cuMemAddressReserve(&va, MANY * gran, 0, 0, 0) == CUDA_SUCCESS, "failed");
    int mapped = 0;
    for (int i = 0; i < MANY; i++) {
        CUmemGenericAllocationHandle hi;
        if (cuMemCreate(&hi, gran, &prop, 0) != CUDA_SUCCESS)
            break;
        if (cuMemMap(va + (CUdeviceptr)i * gran, gran, 0, hi, 0) == CUDA_SUCCESS)
            mapped++;
        cuMemRelease(hi); /* the mapping keeps it alive */
    }
    CHECK("70 handles mapped and released: all still charged", mapped == MANY && vmm_live(usage()) - live0 == MANY * gran,
          "mapped %d, charged %llu", mapped, vmm_live(usage()) - live0);
    CHECK("one cuMemUnmap over all of them", cuMemUnmap(va, MANY * gran) == CUDA_SUCCESS, "failed");
    CHECK("all uncharged", vmm_live(usage()) == live0, "left %llu", vmm_live(usage()) - live0);
    cuMemAddressFree(va, MANY * gran);

    /* Host-located physical memory through a "device" API. */
    struct snapshot v0 = snap();
    CUmemAllocationProp host = prop;
    host.location.type = CU_MEM_LOCATION_TYPE_HOST_NUMA;
    host.location.id = 0;
    host.requestedHandleTypes = CU_MEM_HANDLE_TYPE_NONE;
    size_t hgran = gran;
    cuMemGetAllocationGranularity(&hgran, &host, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
    CUmemGenericAllocationHandle hh = 0;
    CUresult r = cuMemCreate(&hh, hgran, &host, 0);
    CUresult want = expect_pinned_ok() ? CUDA_SUCCESS : CUDA_ERROR_NOT_PERMITTED;
    CHECK("cuMemCreate(host NUMA) per policy", r == want, "got %d want %d", r, want);
    if (r == CUDA_SUCCESS) {
        CHECK("counted as host_pinned", snap().pinned - v0.pinned == hgran, "got %llu", snap().pinned - v0.pinned);
        cuMemRelease(hh);
        CHECK("released", snap().pinned == v0.pinned, "left %llu", snap().pinned - v0.pinned);
    }

    /* Export, then import in this process: shown as imported, not charged. */
    CUmemGenericAllocationHandle e = 0, imported = 0;
    CHECK("cuMemCreate exportable", cuMemCreate(&e, gran, &prop, 0) == CUDA_SUCCESS, "failed");
    int fd = -1;
    r = cuMemExportToShareableHandle(&fd, e, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0);
    CHECK("cuMemExportToShareableHandle", r == CUDA_SUCCESS && fd >= 0, "got %d", r);
    unsigned long long vram_before_import = snap().vram;
    r = cuMemImportFromShareableHandle(&imported, (void *)(uintptr_t)fd, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
    CHECK("cuMemImportFromShareableHandle", r == CUDA_SUCCESS, "got %d", r);
    CHECK("an import is not charged", snap().vram == vram_before_import, "vram moved by %llu",
          snap().vram - vram_before_import);
    if (r == CUDA_SUCCESS)
        cuMemRelease(imported);
    if (fd >= 0)
        close(fd);
    cuMemRelease(e);
    CHECK("all VMM memory uncharged", vmm_live(usage()) == live0, "left %llu", vmm_live(usage()) - live0);
    return finish("prog_vmm");
}
