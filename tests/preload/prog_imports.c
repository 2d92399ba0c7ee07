/* Imported memory is classified, not trusted (issue 8, section 4). An
 * exporter process WITHOUT the shim (this program, re-executed with
 * LD_PRELOAD removed, so that it may make host memory) creates and exports:
 *   - VMM handles: host-NUMA located, device located, and (fake driver
 *     only: fakecuda_vmm_share_fd) a managed one;
 *   - pool allocations: from a host-NUMA pool, a managed pool and a device
 *     pool;
 * and sends their shareable handles over a socket (SCM_RIGHTS). This
 * process, under the shim, imports each one. Host memory must be refused
 * with CUDA_ERROR_NOT_PERMITTED and managed memory with
 * CUDA_ERROR_NOT_SUPPORTED under `reject` (the handle released, the pointer
 * freed: nothing left in the driver), let through as violations under
 * `warn`, tracked as their kind under `off`; device memory stays `imported`.
 * The expectations follow VRAMGUARD_POLICY and VRAMGUARD_ALLOW. */
#include <cuda.h>
#include <dlfcn.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload_common.h"

extern char **environ;

enum { FD_VMM_HOST, FD_VMM_DEVICE, FD_VMM_MANAGED, FD_POOL_HOST, FD_POOL_MANAGED, FD_POOL_DEVICE, N_FDS };
enum { PTR_HOST, PTR_MANAGED, PTR_DEVICE, N_PTRS };

struct message {
    int have[N_FDS];                    /* which fds follow, in this order */
    CUmemPoolPtrExportData ptr[N_PTRS]; /* the pool allocations */
    size_t gran;
};

#define SIZE_VMM (2 * MiB)
#define SIZE_PTR (1 * MiB)

static void context(void)
{
    CUdevice dev;
    CUcontext ctx;
    cuInit(0);
    cuDeviceGet(&dev, 0);
    cuDevicePrimaryCtxRetain(&ctx, dev);
    cuCtxSetCurrent(ctx);
}

/* ---- the exporter (no shim) --------------------------------------------------- */

static int export_vmm(CUmemLocationType type, size_t size, CUmemGenericAllocationHandle *h)
{
    CUmemAllocationProp prop = {0};
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = type;
    prop.location.id = 0;
    prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
    int fd = -1;
    if (cuMemCreate(h, size, &prop, 0) != CUDA_SUCCESS ||
        cuMemExportToShareableHandle(&fd, *h, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0) != CUDA_SUCCESS)
        return -1;
    return fd;
}

static int export_pool(CUmemAllocationType type, CUmemLocationType loc, CUmemoryPool *pool, CUdeviceptr *p,
                       CUmemPoolPtrExportData *data)
{
    CUmemPoolProps props = {0};
    props.allocType = type;
    props.handleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
    props.location.type = loc;
    props.location.id = 0;
    int fd = -1;
    if (cuMemPoolCreate(pool, &props) != CUDA_SUCCESS ||
        cuMemAllocFromPoolAsync(p, SIZE_PTR, *pool, 0) != CUDA_SUCCESS || cuStreamSynchronize(0) != CUDA_SUCCESS ||
        cuMemPoolExportToShareableHandle(&fd, *pool, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0) != CUDA_SUCCESS ||
        cuMemPoolExportPointer(data, *p) != CUDA_SUCCESS)
        return -1;
    return fd;
}

static int exporter(int sock)
{
    context();
    struct message m;
    memset(&m, 0, sizeof(m));
    CUmemAllocationProp prop = {0};
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    cuMemGetAllocationGranularity(&m.gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
    size_t vmm = m.gran > SIZE_VMM ? m.gran : SIZE_VMM;
    int fds[N_FDS], n = 0;
    CUmemGenericAllocationHandle hh = 0, hd = 0;
    CUmemoryPool pools[N_PTRS] = {0};
    CUdeviceptr ptrs[N_PTRS] = {0};
    int got[N_FDS];
    got[FD_VMM_HOST] = export_vmm(CU_MEM_LOCATION_TYPE_HOST_NUMA, vmm, &hh);
    got[FD_VMM_DEVICE] = export_vmm(CU_MEM_LOCATION_TYPE_DEVICE, vmm, &hd);
    /* cuMemCreate makes no managed handle (cuda.h): the fake driver can write
     * one as another process's driver would export it. */
    int (*share)(int, int, int, unsigned long long) =
        (int (*)(int, int, int, unsigned long long))dlsym(RTLD_DEFAULT, "fakecuda_vmm_share_fd");
    got[FD_VMM_MANAGED] = share ? share(CU_MEM_ALLOCATION_TYPE_MANAGED, CU_MEM_LOCATION_TYPE_DEVICE, 0, vmm) : -1;
    got[FD_POOL_HOST] = export_pool(CU_MEM_ALLOCATION_TYPE_PINNED, CU_MEM_LOCATION_TYPE_HOST_NUMA, &pools[PTR_HOST],
                                    &ptrs[PTR_HOST], &m.ptr[PTR_HOST]);
    got[FD_POOL_MANAGED] = export_pool(CU_MEM_ALLOCATION_TYPE_MANAGED, CU_MEM_LOCATION_TYPE_DEVICE,
                                       &pools[PTR_MANAGED], &ptrs[PTR_MANAGED], &m.ptr[PTR_MANAGED]);
    got[FD_POOL_DEVICE] = export_pool(CU_MEM_ALLOCATION_TYPE_PINNED, CU_MEM_LOCATION_TYPE_DEVICE,
                                      &pools[PTR_DEVICE], &ptrs[PTR_DEVICE], &m.ptr[PTR_DEVICE]);
    for (int i = 0; i < N_FDS; i++)
        if ((m.have[i] = got[i] >= 0))
            fds[n++] = got[i];

    char control[CMSG_SPACE(sizeof(int) * N_FDS)];
    memset(control, 0, sizeof(control));
    struct iovec iov = {&m, sizeof(m)};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n > 0) {
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    }
    if (sendmsg(sock, &msg, 0) != (ssize_t)sizeof(m))
        return 1;
    char done;
    if (read(sock, &done, 1) != 1) /* the importer has given everything back */
        return 1;
    for (int i = 0; i < N_PTRS; i++) {
        if (ptrs[i])
            cuMemFreeAsync(ptrs[i], 0);
        cuStreamSynchronize(0);
        if (pools[i])
            cuMemPoolDestroy(pools[i]);
    }
    if (hh)
        cuMemRelease(hh);
    if (hd)
        cuMemRelease(hd);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return 0;
}

/* ---- the importer (under the shim) ----------------------------------------------- */

static unsigned long long (*live_handles)(void);
static unsigned long long (*live_ranges)(void);

/* What this configuration does with host and with managed memory. */
static int host_refused(void)
{
    return policy_rejects() && !pinned_allowed();
}
static int managed_refused(void)
{
    return policy_rejects();
}

/* Map an imported handle, as a program would, so that its entry is sized. */
static CUdeviceptr map_handle(CUmemGenericAllocationHandle h, size_t size)
{
    CUdeviceptr va = 0;
    if (cuMemAddressReserve(&va, size, 0, 0, 0) != CUDA_SUCCESS)
        return 0;
    if (cuMemMap(va, size, 0, h, 0) != CUDA_SUCCESS) {
        cuMemAddressFree(va, size);
        return 0;
    }
    return va;
}

static void unmap_release(CUmemGenericAllocationHandle h, CUdeviceptr va, size_t size)
{
    if (va) {
        cuMemUnmap(va, size);
        cuMemAddressFree(va, size);
    }
    cuMemRelease(h);
}

/* Import one VMM handle of `kind` and check what the shim made of it. */
static int import_vmm(const char *what, int fd, int kind, int refused, CUresult refusal, size_t size)
{
    char name[160];
    unsigned long long handles0 = live_handles ? live_handles() : 0;
    unsigned long long bytes0 = kind_bytes(usage(), kind), v0 = snap().violations;
    CUmemGenericAllocationHandle h = 0;
    CUresult r = cuMemImportFromShareableHandle(&h, (void *)(uintptr_t)fd, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
    int violation = kind != VRAMGUARD_KIND_IMPORTED &&
                    (kind == VRAMGUARD_KIND_MANAGED ? expect_managed_violation() : expect_pinned_violation());
    if (refused) {
        snprintf(name, sizeof(name), "%s: import refused with %d", what, (int)refusal);
        CHECK(name, r == refusal && h == 0, "got %d, handle 0x%llx", (int)r, (unsigned long long)h);
        if (live_handles) {
            snprintf(name, sizeof(name), "%s: the refused handle was released", what);
            CHECK(name, live_handles() == handles0, "%llu live handles, %llu before", live_handles(), handles0);
        }
        snprintf(name, sizeof(name), "%s: one violation", what);
        CHECK(name, snap().violations - v0 == 1, "%llu", snap().violations - v0);
        return r == refusal;
    }
    snprintf(name, sizeof(name), "%s: import let through", what);
    CHECK(name, r == CUDA_SUCCESS && h != 0, "got %d", (int)r);
    if (r != CUDA_SUCCESS)
        return 0;
    CUdeviceptr va = map_handle(h, size);
    snprintf(name, sizeof(name), "%s: tracked as kind %d once mapped", what, kind);
    CHECK(name, va != 0 && kind_bytes(usage(), kind) - bytes0 == size, "mapped at 0x%llx, %llu bytes of kind %d", (unsigned long long)va,
          kind_bytes(usage(), kind) - bytes0, kind);
    snprintf(name, sizeof(name), "%s: %s", what, violation ? "one violation" : "no violation");
    CHECK(name, snap().violations - v0 == (unsigned long long)violation, "%llu", snap().violations - v0);
    CHECK("imported memory is not charged", usage()->charged_bytes[0] == 0, "charged %llu",
          (unsigned long long)usage()->charged_bytes[0]);
    unmap_release(h, va, size);
    snprintf(name, sizeof(name), "%s: gone after release", what);
    CHECK(name, kind_bytes(usage(), kind) == bytes0, "%llu bytes of kind %d", kind_bytes(usage(), kind), kind);
    return 1;
}

/* Import one pool allocation (from the pool imported from `fd`). */
static void import_pointer(const char *what, int fd, CUmemPoolPtrExportData *data, int kind, int refused,
                           CUresult refusal)
{
    char name[160];
    CUmemoryPool pool = NULL;
    snprintf(name, sizeof(name), "%s: cuMemPoolImportFromShareableHandle", what);
    CHECK(name, cuMemPoolImportFromShareableHandle(&pool, (void *)(uintptr_t)fd, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR,
                                                   0) == CUDA_SUCCESS, "failed");
    if (pool == NULL)
        return;
    unsigned long long ranges0 = live_ranges ? live_ranges() : 0;
    unsigned long long bytes0 = kind_bytes(usage(), kind), v0 = snap().violations;
    int violation = kind != VRAMGUARD_KIND_IMPORTED &&
                    (kind == VRAMGUARD_KIND_MANAGED ? expect_managed_violation() : expect_pinned_violation());
    CUdeviceptr p = 0;
    CUresult r = cuMemPoolImportPointer(&p, pool, data);
    if (refused) {
        snprintf(name, sizeof(name), "%s: import refused with %d", what, (int)refusal);
        CHECK(name, r == refusal && p == 0, "got %d, pointer 0x%llx", (int)r, (unsigned long long)p);
        if (live_ranges) {
            snprintf(name, sizeof(name), "%s: the refused pointer was freed", what);
            CHECK(name, live_ranges() == ranges0, "%llu live ranges, %llu before", live_ranges(), ranges0);
        }
        snprintf(name, sizeof(name), "%s: one violation", what);
        CHECK(name, snap().violations - v0 == 1, "%llu", snap().violations - v0);
    } else {
        snprintf(name, sizeof(name), "%s: import let through", what);
        CHECK(name, r == CUDA_SUCCESS && p != 0, "got %d", (int)r);
        snprintf(name, sizeof(name), "%s: tracked as kind %d", what, kind);
        CHECK(name, kind_bytes(usage(), kind) - bytes0 == SIZE_PTR, "%llu bytes of kind %d",
              kind_bytes(usage(), kind) - bytes0, kind);
        snprintf(name, sizeof(name), "%s: %s", what, violation ? "one violation" : "no violation");
        CHECK(name, snap().violations - v0 == (unsigned long long)violation, "%llu", snap().violations - v0);
        if (p) {
            cuMemFreeAsync(p, 0);
            cuStreamSynchronize(0);
        }
        snprintf(name, sizeof(name), "%s: gone after the free", what);
        CHECK(name, kind_bytes(usage(), kind) == bytes0, "%llu bytes of kind %d", kind_bytes(usage(), kind), kind);
    }
    cuMemPoolDestroy(pool);
}

static int importer(const char *self)
{
    start("prog_imports");
    context();
    live_handles = (unsigned long long (*)(void))dlsym(RTLD_DEFAULT, "fakecuda_vmm_live_handles");
    live_ranges = (unsigned long long (*)(void))dlsym(RTLD_DEFAULT, "fakecuda_live_ranges");

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        printf("FAIL socketpair\n");
        return 1;
    }
    /* The exporter: this program without the shim (it makes host memory). */
    char *env[512];
    int ne = 0;
    for (char **e = environ; *e && ne < 510; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) != 0)
            env[ne++] = *e;
    env[ne] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
    char *args[] = {(char *)self, "--exporter", NULL};
    pid_t pid;
    fflush(stdout);
    int rc = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, args, env);
    posix_spawn_file_actions_destroy(&fa);
    CHECK("spawn the exporter (without the shim)", rc == 0, "posix_spawn: %d", rc);
    if (rc != 0)
        return finish("prog_imports");
    close(sv[1]);

    struct message m;
    char control[CMSG_SPACE(sizeof(int) * N_FDS)];
    struct iovec iov = {&m, sizeof(m)};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)};
    ssize_t got = recvmsg(sv[0], &msg, MSG_CMSG_CLOEXEC);
    CHECK("received the exporter's handles", got == (ssize_t)sizeof(m), "recvmsg: %zd", got);
    int fds[N_FDS];
    for (int i = 0; i < N_FDS; i++)
        fds[i] = -1;
    struct cmsghdr *c = got == (ssize_t)sizeof(m) ? CMSG_FIRSTHDR(&msg) : NULL;
    if (c && c->cmsg_type == SCM_RIGHTS) {
        int *in = (int *)CMSG_DATA(c), k = 0;
        for (int i = 0; i < N_FDS; i++)
            if (m.have[i])
                fds[i] = in[k++];
    }
    size_t vmm = m.gran > SIZE_VMM ? m.gran : SIZE_VMM;
    CHECK("host-NUMA VMM handle exported", fds[FD_VMM_HOST] >= 0, "no fd");
    CHECK("device VMM handle exported", fds[FD_VMM_DEVICE] >= 0, "no fd");
    CHECK("host-NUMA pool exported", fds[FD_POOL_HOST] >= 0, "no fd");
    CHECK("device pool exported", fds[FD_POOL_DEVICE] >= 0, "no fd");

    if (fds[FD_VMM_HOST] >= 0)
        import_vmm("host-NUMA VMM handle", fds[FD_VMM_HOST], VRAMGUARD_KIND_HOST_PINNED, host_refused(),
                   CUDA_ERROR_NOT_PERMITTED, vmm);
    if (fds[FD_VMM_MANAGED] >= 0)
        import_vmm("managed VMM handle", fds[FD_VMM_MANAGED], VRAMGUARD_KIND_MANAGED, managed_refused(),
                   CUDA_ERROR_NOT_SUPPORTED, vmm);
    else
        printf("SKIP managed VMM handle: no fakecuda_vmm_share_fd (a real driver makes none)\n");
    if (fds[FD_VMM_DEVICE] >= 0)
        import_vmm("device VMM handle", fds[FD_VMM_DEVICE], VRAMGUARD_KIND_IMPORTED, 0, CUDA_SUCCESS, vmm);
    if (fds[FD_POOL_HOST] >= 0)
        import_pointer("host-NUMA pool pointer", fds[FD_POOL_HOST], &m.ptr[PTR_HOST], VRAMGUARD_KIND_HOST_PINNED,
                       host_refused(), CUDA_ERROR_NOT_PERMITTED);
    if (fds[FD_POOL_MANAGED] >= 0)
        import_pointer("managed pool pointer", fds[FD_POOL_MANAGED], &m.ptr[PTR_MANAGED], VRAMGUARD_KIND_MANAGED,
                       managed_refused(), CUDA_ERROR_NOT_SUPPORTED);
    else
        printf("SKIP managed pool pointer: the driver exports no managed pool\n");
    if (fds[FD_POOL_DEVICE] >= 0)
        import_pointer("device pool pointer", fds[FD_POOL_DEVICE], &m.ptr[PTR_DEVICE], VRAMGUARD_KIND_IMPORTED, 0,
                       CUDA_SUCCESS);
    CHECK("nothing imported left", kind_bytes(usage(), VRAMGUARD_KIND_IMPORTED) == 0 &&
                                       kind_bytes(usage(), VRAMGUARD_KIND_HOST_PINNED) == 0 &&
                                       kind_bytes(usage(), VRAMGUARD_KIND_MANAGED) == 0,
          "imported %llu host %llu managed %llu", kind_bytes(usage(), VRAMGUARD_KIND_IMPORTED),
          kind_bytes(usage(), VRAMGUARD_KIND_HOST_PINNED), kind_bytes(usage(), VRAMGUARD_KIND_MANAGED));

    for (int i = 0; i < N_FDS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (write(sv[0], "x", 1) != 1)
        printf("note: the exporter is gone\n");
    int status = 1;
    waitpid(pid, &status, 0);
    CHECK("the exporter finished cleanly", WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    return finish("prog_imports");
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--exporter") == 0)
        return exporter(3);
    return importer(argv[0]);
}
