/* make bench: what the shim's reports cost with a large live set (bench.sh
 * runs it with and without LD_PRELOAD; FAKECUDA_VRAM_BYTES must be large).
 *
 *   bench_render render L REPS SOCK
 *       L live allocations (4 KiB to 64 KiB, the four purposes and untagged),
 *       then, from a second thread, REPS times `GET /vram HTTP/1.0` and
 *       `GET /metrics HTTP/1.0` on the shim's own endpoint (SOCK: the unix
 *       socket path with %p for this pid, as given in VRAMGUARD_LISTEN=unix:;
 *       "-" to skip), each timed from connect to the end of the response;
 *       REPS times vramguard_report() (the public API, found with dlsym) into
 *       a buffer large enough for the whole text; last, two allocations
 *       larger than the device's free memory: the first out-of-memory failure
 *       (the shim writes its full breakdown to VRAMGUARD_LOG) and the second
 *       (one line), each timed. Prints "key value" lines, times in ms
 *       (medians), sizes in bytes; -1 where there is nothing to measure.
 *       Exit status 3 when the shim is loaded but the endpoint did not
 *       answer or vramguard_report() gave nothing.
 *
 *   bench_render exit L REPS SHIM DIR
 *       REPS rounds of three child processes (the order rotates), each making
 *       L live allocations as above and exiting: without the shim, with
 *       LD_PRELOAD=SHIM, and with the shim and VRAMGUARD_REPORT=DIR/... . The
 *       time is from just before the child's exit() (sent through a pipe) to
 *       waitpid() returning in the parent. Prints the median per variant and
 *       the report's size.
 */
#include "bench_common.h"
#include "vramguard.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

enum { MAX_REPS = 64 };

/* L allocations of 4..64 KiB, purposes in turn (one in five untagged), as a
 * serving process might hold. Kept live until exit. */
static void populate(long live)
{
    static const int purpose[5] = {VRAMGUARD_WEIGHTS, VRAMGUARD_KV_CACHE, VRAMGUARD_INTERMEDIATE, VRAMGUARD_UNKNOWN, -1};
    for (long i = 0; i < live; i++) {
        int pu = purpose[i % 5];
        char label[32];
        snprintf(label, sizeof label, "layer.%ld", i % 64);
        if (pu >= 0)
            vramguard_purpose_push(pu, pu == VRAMGUARD_WEIGHTS ? label : NULL);
        CUdeviceptr p;
        CUresult r = drv_alloc(&p, (size_t)4096 << (i % 5));
        if (pu >= 0)
            vramguard_purpose_pop();
        if (r != CUDA_SUCCESS) {
            fprintf(stderr, "bench_render: allocation %ld of %ld failed (FAKECUDA_VRAM_BYTES?)\n", i, live);
            exit(2);
        }
    }
}

/* ---- the endpoint, from a client thread --------------------------------- */

struct client {
    char path[108];
    int reps;
    double vram_ms[MAX_REPS], metrics_ms[MAX_REPS];
    double vram_bytes, metrics_bytes;
    int failed;
};

/* GET `what` over the unix socket; returns ms from connect to EOF, -1 on
 * failure (connection refused for up to 3 s while the endpoint starts). */
static double get(const char *path, const char *what, double *bytes)
{
    static char buf[1 << 16];
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    char req[128];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\n\r\n", what);
    for (int tries = 0; tries < 300; tries++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        double t0 = now_ns();
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            close(fd);
            usleep(10000);
            continue;
        }
        double got = 0;
        int ok = write(fd, req, (size_t)n) == n;
        ssize_t k;
        while (ok && (k = read(fd, buf, sizeof buf)) != 0) {
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0) {
                ok = 0;
                break;
            }
            if (got == 0 && strncmp(buf, "HTTP/1.1 200", 12) != 0 && strncmp(buf, "HTTP/1.0 200", 12) != 0)
                ok = 0;
            got += (double)k;
        }
        double t = (now_ns() - t0) / 1e6;
        close(fd);
        *bytes = got;
        return ok ? t : -1;
    }
    return -1;
}

static void *client_thread(void *arg)
{
    struct client *c = arg;
    for (int r = 0; r < c->reps && !c->failed; r++) {
        c->vram_ms[r] = get(c->path, "/vram", &c->vram_bytes);
        c->metrics_ms[r] = get(c->path, "/metrics", &c->metrics_bytes);
        c->failed = c->vram_ms[r] < 0 || c->metrics_ms[r] < 0;
    }
    return NULL;
}

static int render(long live, int reps, const char *sock)
{
    if (reps < 1 || reps > MAX_REPS)
        return 2;
    populate(live);

    struct client c = {.reps = reps};
    if (strcmp(sock, "-") != 0) {
        /* the path template's %p is this process */
        const char *pp = strstr(sock, "%p");
        if (pp)
            snprintf(c.path, sizeof c.path, "%.*s%d%s", (int)(pp - sock), sock, (int)getpid(), pp + 2);
        else
            snprintf(c.path, sizeof c.path, "%s", sock);
        pthread_t th;
        pthread_create(&th, NULL, client_thread, &c);
        pthread_join(th, NULL);
    }
    if (c.path[0] && !c.failed) {
        printf("vram_ms %.3f\nvram_bytes %.0f\n", median(c.vram_ms, reps), c.vram_bytes);
        printf("metrics_ms %.3f\nmetrics_bytes %.0f\n", median(c.metrics_ms, reps), c.metrics_bytes);
    } else {
        if (c.path[0])
            fprintf(stderr, "bench_render: no answer from %s\n", c.path);
        printf("vram_ms -1\nvram_bytes -1\nmetrics_ms -1\nmetrics_bytes -1\n");
    }

    size_t need = vramguard_report(NULL, 0);
    char *text = need ? malloc(need + 1) : NULL;
    double t[MAX_REPS];
    for (int r = 0; text && r < reps; r++) {
        double t0 = now_ns();
        vramguard_report(text, need + 1);
        t[r] = (now_ns() - t0) / 1e6;
    }
    printf("report_ms %.3f\nreport_bytes %.0f\n", text ? median(t, reps) : -1.0, text ? (double)need : -1.0);
    free(text);

    /* out of memory: more than the device has free, twice */
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    double oom[2];
    for (int i = 0; i < 2; i++) {
        CUdeviceptr p;
        double t0 = now_ns();
        CUresult r = drv_alloc(&p, free_b + ((size_t)1 << 30));
        oom[i] = (now_ns() - t0) / 1e6;
        if (r != CUDA_ERROR_OUT_OF_MEMORY) {
            fprintf(stderr, "bench_render: expected CUDA_ERROR_OUT_OF_MEMORY, got %d\n", (int)r);
            return 2;
        }
    }
    printf("oom_first_ms %.4f\noom_second_ms %.4f\n", oom[0], oom[1]);
    /* with the shim, a missing endpoint answer or report is a failure */
    return vramguard_loaded() && ((c.path[0] && c.failed) || !need) ? 3 : 0;
}

/* ---- exit -------------------------------------------------------------- */

static int exit_child(long live, int fd)
{
    populate(live);
    double t = now_ns();
    if (write(fd, &t, sizeof t) != (ssize_t)sizeof t)
        return 2;
    exit(0); /* destructors and atexit handlers: where a report is written */
}

/* One child of variant v (0: no shim, 1: shim, 2: shim + report): the time
 * from its exit() to waitpid(), in ms; *report_bytes for variant 2. */
static double one_exit(int v, long live, const char *shim, const char *dir, double *report_bytes)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        char lv[32], fd[16], report[4200];
        snprintf(lv, sizeof lv, "%ld", live);
        snprintf(fd, sizeof fd, "%d", pfd[1]);
        snprintf(report, sizeof report, "%s/exit.%%p.json", dir);
        unsetenv("LD_PRELOAD");
        unsetenv("VRAMGUARD_REPORT");
        setenv("VRAMGUARD_LOG", "/dev/null", 1);
        if (v >= 1)
            setenv("LD_PRELOAD", shim, 1);
        if (v == 2)
            setenv("VRAMGUARD_REPORT", report, 1);
        execl("/proc/self/exe", "bench_render", "exitchild", lv, fd, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    double t_exit = 0, ms = -1;
    ssize_t k = read(pfd[0], &t_exit, sizeof t_exit);
    int status = 0;
    waitpid(pid, &status, 0);
    double t_end = now_ns();
    close(pfd[0]);
    if (k == (ssize_t)sizeof t_exit && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        ms = (t_end - t_exit) / 1e6;
    if (v == 2) {
        char path[4200];
        struct stat st;
        snprintf(path, sizeof path, "%s/exit.%d.json", dir, (int)pid);
        *report_bytes = stat(path, &st) == 0 ? (double)st.st_size : -1;
        if (*report_bytes < 0)
            ms = -1; /* no report: nothing measured */
        unlink(path);
        snprintf(path, sizeof path, "%s/exit.%d.json.journal", dir, (int)pid);
        unlink(path);
    }
    return ms;
}

static int exit_parent(long live, int reps, const char *shim, const char *dir)
{
    if (reps < 1 || reps > MAX_REPS)
        return 2;
    double t[3][MAX_REPS], bytes = -1;
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < 3; i++) {
            int v = (r + i) % 3;
            if ((t[v][r] = one_exit(v, live, shim, dir, &bytes)) < 0) {
                fprintf(stderr, "bench_render: exit variant %d failed\n", v);
                return 2;
            }
        }
    printf("exit_none_ms %.3f\nexit_shim_ms %.3f\nexit_report_ms %.3f\nexit_report_bytes %.0f\n", median(t[0], reps),
           median(t[1], reps), median(t[2], reps), bytes);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "render") == 0) {
        bench_driver_init();
        return render(atol(argv[2]), atoi(argv[3]), argv[4]);
    }
    if (argc == 4 && strcmp(argv[1], "exitchild") == 0) {
        bench_driver_init();
        return exit_child(atol(argv[2]), atoi(argv[3]));
    }
    if (argc == 6 && strcmp(argv[1], "exit") == 0)
        return exit_parent(atol(argv[2]), atoi(argv[3]), argv[4], argv[5]);
    fprintf(stderr, "usage: bench_render render LIVE REPS SOCK|- | exit LIVE REPS SHIM DIR\n");
    return 2;
}
