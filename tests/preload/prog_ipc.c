/* Imported memory across processes: the parent exports a cuMemAlloc
 * allocation (cuIpcGetMemHandle) and a pool allocation
 * (cuMemPoolExportToShareableHandle + cuMemPoolExportPointer); a fresh child
 * process (posix_spawn, so its CUDA is its own) imports both. The child's
 * shim shows them as kind imported and charges nothing for them. */
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload_common.h"

extern char **environ;

static void hex(const void *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", ((const unsigned char *)p)[i]);
}

static void unhex(const char *s, void *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        sscanf(s + 2 * i, "%2x", &v);
        ((unsigned char *)p)[i] = (unsigned char)v;
    }
}

static unsigned long long imported(void)
{
    return kind_bytes(usage(), VRAMGUARD_KIND_IMPORTED);
}

static int child(const char *ipc_hex, const char *ptr_hex)
{
    start("prog_ipc child");
    cudaFree(0);
    CUipcMemHandle h;
    CUmemPoolPtrExportData data;
    unhex(ipc_hex, &h, sizeof(h));
    unhex(ptr_hex, &data, sizeof(data));
    CUdeviceptr p = 0, q = 0;
    CHECK("cuIpcOpenMemHandle", cuIpcOpenMemHandle(&p, h, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS) == CUDA_SUCCESS, "failed");
    CHECK("shown as imported", imported() >= 4 * MiB, "imported %llu", imported());
    CUmemoryPool pool = NULL;
    CHECK("cuMemPoolImportFromShareableHandle",
          cuMemPoolImportFromShareableHandle(&pool, (void *)(uintptr_t)3, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0) ==
              CUDA_SUCCESS, "failed");
    if (pool)
        CHECK("cuMemPoolImportPointer", cuMemPoolImportPointer(&q, pool, &data) == CUDA_SUCCESS, "failed");
    CHECK("both imported", imported() >= 6 * MiB, "imported %llu", imported());
    CHECK("imported memory is not charged", snap().vram == 0 && usage()->charged_bytes[0] == 0, "vram %llu charged %llu",
          snap().vram, (unsigned long long)usage()->charged_bytes[0]);
    if (q)
        cuMemFreeAsync(q, 0);
    cuStreamSynchronize(0);
    CHECK("cuIpcCloseMemHandle", p && cuIpcCloseMemHandle(p) == CUDA_SUCCESS, "failed");
    CHECK("nothing imported left", imported() == 0, "imported %llu", imported());
    return finish("prog_ipc child");
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--child") == 0)
        return child(argv[2], argv[3]);
    start("prog_ipc");
    cudaFree(0);
    CUdeviceptr d = 0, pp = 0;
    CHECK("cuMemAlloc", cuMemAlloc(&d, 4 * MiB) == CUDA_SUCCESS, "failed");
    CUipcMemHandle h;
    CHECK("cuIpcGetMemHandle", cuIpcGetMemHandle(&h, d) == CUDA_SUCCESS, "failed");

    CUmemPoolProps props = {0};
    props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
    props.handleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
    props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    props.location.id = 0;
    CUmemoryPool pool = NULL;
    CHECK("cuMemPoolCreate (exportable)", cuMemPoolCreate(&pool, &props) == CUDA_SUCCESS, "failed");
    CHECK("cuMemAllocFromPoolAsync", cuMemAllocFromPoolAsync(&pp, 2 * MiB, pool, 0) == CUDA_SUCCESS, "failed");
    cuStreamSynchronize(0);
    int fd = -1;
    CHECK("cuMemPoolExportToShareableHandle",
          cuMemPoolExportToShareableHandle(&fd, pool, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0) == CUDA_SUCCESS, "failed");
    CUmemPoolPtrExportData data;
    CHECK("cuMemPoolExportPointer", cuMemPoolExportPointer(&data, pp) == CUDA_SUCCESS, "failed");

    char ipc_hex[2 * sizeof(h) + 1], ptr_hex[2 * sizeof(data) + 1];
    hex(&h, sizeof(h), ipc_hex);
    hex(&data, sizeof(data), ptr_hex);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd, 3);
    char *args[] = {argv[0], "--child", ipc_hex, ptr_hex, NULL};
    pid_t pid;
    fflush(stdout);
    int rc = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    CHECK("spawn the importer", rc == 0, "posix_spawn: %d", rc);
    int status = 1;
    if (rc == 0)
        waitpid(pid, &status, 0);
    CHECK("the importer's checks passed", WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    cuMemFreeAsync(pp, 0);
    cuStreamSynchronize(0);
    cuMemPoolDestroy(pool);
    cuMemFree(d);
    if (fd >= 0)
        close(fd);
    CHECK("exporter: nothing live", snap().vram == 0, "vram %llu", snap().vram);
    return finish("prog_ipc");
}
