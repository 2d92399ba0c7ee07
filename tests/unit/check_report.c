/* Unit tests for the report emitters (shim/output/report.c, shim/output/breakdown.c), the output sink
 * (shim/output/emit.c) and events (shim/output/events.c). No CUDA driver is involved:
 * allocations are put straight into the table and violations are raised by
 * calling vg_event_violation() with a filled struct vg_call.
 *
 * vg_config() reads the real environment once per process; Check forks every
 * test, so each test sets VRAMGUARD_* before its first vg_config() call. */
#include "breakdown.h"
#include "log.h"
#include "config.h"
#include "emit.h"
#include "events.h"
#include "incidents.h"
#include "purposes.h"
#include "repeats.h"
#include "report.h"
#include "table.h"

#include <check.h>
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PYTHON "/usr/bin/python3"

/* ---- per-test scratch directory, log file and helpers --------------------- */

static char tmpdir[256];
static char log_path[512];

static void setup(void)
{
    static const char *const vars[] = {"VRAMGUARD_POLICY", "VRAMGUARD_ALLOW", "VRAMGUARD_FAIL_ON",
                                       "VRAMGUARD_REPORT", "VRAMGUARD_LOG"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/vg_unit_report.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(log_path, sizeof(log_path), "%s/log.txt", tmpdir);
    setenv("VRAMGUARD_LOG", log_path, 1);
    /* The shim is linked into this runner: its own frames cannot be told
     * from the program's, so no stacks here (tests/preload/check_who.c
     * has them, under LD_PRELOAD). */
    setenv("VRAMGUARD_BACKTRACE", "0", 1);
}

static void teardown(void)
{
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        char p[1024];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(tmpdir);
}

/* Read a whole file into a static buffer ("" if it does not exist). */
static const char *slurp(const char *path)
{
    static char buf[1 << 20];
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f)
        return buf;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* Run argv[0] with argv; the exit status, or -1 if it did not exit. */
static int run(char *const argv[])
{
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* python3 -c CODE ARG...: 0 when the code ran without an exception. */
static int python(const char *code, const char *a1, const char *a2)
{
    char *argv[] = {(char *)PYTHON, (char *)"-c", (char *)code, (char *)a1, (char *)a2, NULL};
    if (a1 == NULL)
        argv[3] = NULL;
    return run(argv);
}

#define ck_assert_python(code, a1, a2)                                                             \
    ck_assert_msg(python((code), (a1), (a2)) == 0, "python check failed (traceback on stderr)")

static int json_valid(const char *path)
{
    return python("import json,sys; json.load(open(sys.argv[1], encoding='utf-8'))", path, NULL);
}

static struct vg_alloc mk(uintptr_t ptr, uint64_t size, int device, int kind, int purpose, const char *label)
{
    struct vg_alloc a;
    memset(&a, 0, sizeof(a));
    a.ptr = ptr;
    a.size = size;
    a.api = kind == VG_KIND_HOST_PINNED ? "cuMemHostAlloc" : "cuMemAlloc_v2";
    a.caller = NULL;
    a.device = (int16_t)device;
    a.kind = (uint8_t)kind;
    a.purpose = (uint8_t)purpose;
    a.label = vg_label_intern(label);
    return a;
}

static void insert(uintptr_t ptr, uint64_t size, int device, int kind, int purpose, const char *label)
{
    struct vg_alloc a = mk(ptr, size, device, kind, purpose, label);
    ck_assert(vg_table_insert(&a));
}

/* A code address inside this test binary, used as a caller. */
static void caller_anchor(void)
{
}

/* The wrappers call vg_config() (policy decision) before raising an event,
 * which also opens VRAMGUARD_LOG; do the same. */
static struct vg_call managed_call(void)
{
    ck_assert_ptr_nonnull(vg_config());
    struct vg_call c;
    memset(&c, 0, sizeof(c));
    c.api = "cudaMallocManaged";
    c.driver_api = "cuMemAllocManaged";
    void (*fn)(void) = caller_anchor;
    char *code;
    memcpy(&code, &fn, sizeof(code)); /* a code address, without a pedantic cast */
    c.caller = code + 4;
    c.device = 0;
    c.kind = VG_KIND_MANAGED;
    c.size = 3u << 20; /* 3 MiB */
    c.purpose = VG_PURPOSE_KV_CACHE;
    c.label = vg_label_intern("kv.layer3");
    c.action = VG_ACTION_REJECT;
    return c;
}

/* Render the JSON report into `path`; returns the text. */
static const char *report_to_file(const char *path)
{
    static char buf[1 << 20];
    struct vg_out o;
    vg_out_buffer(&o, buf, sizeof(buf));
    vg_report_json(&o);
    ck_assert_msg(o.total < sizeof(buf), "report truncated (%zu bytes)", o.total);
    ck_assert_uint_eq(o.len, o.total);
    ck_assert_uint_eq(strlen(buf), o.total);
    write_file(path, buf, o.len);
    return buf;
}

static const char *pid_string(void)
{
    static char s[24];
    snprintf(s, sizeof(s), "%d", (int)getpid());
    return s;
}

static void path_in_tmp(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", tmpdir, name);
}

static const char *validator(void)
{
    static const char *const candidates[] = {"tests/cli/validate_report.py", "../tests/cli/validate_report.py"};
    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++)
        if (access(candidates[i], R_OK) == 0)
            return candidates[i];
    return NULL;
}

/* ---- vg_out ---------------------------------------------------------------- */

START_TEST(test_out_buffer_truncation)
{
    char buf[12];
    memset(buf, '#', sizeof(buf));
    struct vg_out o;
    vg_out_buffer(&o, buf, 8); /* only the first 8 bytes are ours */
    ck_assert_int_eq(buf[0], '\0');
    vg_out_str(&o, "hello");
    ck_assert_str_eq(buf, "hello");
    ck_assert_uint_eq(o.len, 5);
    vg_out_str(&o, " world");
    ck_assert_str_eq(buf, "hello w"); /* 7 bytes + NUL */
    ck_assert_uint_eq(o.len, 7);
    ck_assert_uint_eq(o.total, 11);
    vg_out_printf(&o, "%d-%s", 123, "xyz");
    ck_assert_str_eq(buf, "hello w");
    ck_assert_uint_eq(o.total, 18);
    vg_out_mem(&o, "ab\0cd", 5);
    ck_assert_uint_eq(o.total, 23);
    /* never past the given size */
    for (int i = 8; i < 12; i++)
        ck_assert_int_eq(buf[i], '#');
}
END_TEST

START_TEST(test_out_buffer_tiny_and_null)
{
    char one = 'x';
    struct vg_out o;
    vg_out_buffer(&o, &one, 1);
    ck_assert_int_eq(one, '\0');
    vg_out_str(&o, "abc");
    ck_assert_int_eq(one, '\0');
    ck_assert_uint_eq(o.len, 0);
    ck_assert_uint_eq(o.total, 3);

    /* a NULL buffer of size 0 only counts (like snprintf(NULL, 0, ...)) */
    vg_out_buffer(&o, NULL, 0);
    vg_out_str(&o, "0123456789");
    vg_out_printf(&o, "%05d", 42);
    ck_assert_uint_eq(o.total, 15);
    ck_assert_uint_eq(o.len, 0);
}
END_TEST

START_TEST(test_out_printf_long_counts_total)
{
    /* `total` is the length the output would have needed, whatever the
     * length of one formatted piece (emit.h). */
    static char big[3000], arg[2001];
    memset(arg, 'q', 2000);
    arg[2000] = '\0';
    struct vg_out o;
    vg_out_buffer(&o, big, sizeof(big));
    vg_out_printf(&o, "<%s>", arg);
    ck_assert_uint_eq(o.total, 2002);
    ck_assert_uint_eq(strlen(big), 2002);
    ck_assert_int_eq(big[2001], '>');
}
END_TEST

/* The growable sink (the endpoint's bodies): one render whatever the size,
 * and no further than its limit. */
START_TEST(test_out_growable)
{
    struct vg_out o;
    ck_assert(vg_out_growable(&o, 16, 1 << 20));
    for (int i = 0; i < 10000; i++)
        vg_out_printf(&o, "line %05d\n", i);
    static char arg[3001];
    memset(arg, 'q', 3000);
    vg_out_printf(&o, "<%s>", arg); /* longer than vg_out_printf's stack buffer */
    ck_assert_uint_eq(o.total, 10000 * 11 + 3002);
    ck_assert_uint_eq(o.len, o.total);
    ck_assert_uint_gt(o.size, o.len);
    ck_assert_uint_eq(strlen(o.buf), o.total);
    ck_assert(memcmp(o.buf + 9999 * 11, "line 09999\n<qqq", 15) == 0);
    free(o.buf);

    /* Past the limit: truncated like a fixed buffer, `total` still counts. */
    ck_assert(vg_out_growable(&o, 8, 100));
    for (int i = 0; i < 30; i++)
        vg_out_str(&o, "0123456789");
    vg_out_printf(&o, "%s", arg);
    ck_assert_uint_eq(o.size, 100);
    ck_assert_uint_eq(o.len, 99);
    ck_assert_uint_eq(strlen(o.buf), 99);
    ck_assert_uint_eq(o.total, 300 + 3000);
    free(o.buf);
}
END_TEST

START_TEST(test_out_fd_sink_chunks)
{
    char path[512];
    path_in_tmp(path, sizeof(path), "fd_sink.txt");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    static struct vg_out o;
    vg_out_fd(&o, fd);
    /* 10000 lines: far more than one 4096-byte chunk */
    for (int i = 0; i < 10000; i++)
        vg_out_printf(&o, "line %05d\n", i);
    vg_out_flush(&o);
    ck_assert_uint_eq(o.total, 10000 * 11);
    close(fd);
    const char *text = slurp(path);
    ck_assert_uint_eq(strlen(text), 10000 * 11);
    char expect[16];
    for (int i = 0; i < 10000; i += 997) {
        snprintf(expect, sizeof(expect), "line %05d\n", i);
        ck_assert(memcmp(text + (size_t)i * 11, expect, 11) == 0);
    }
}
END_TEST

START_TEST(test_out_json_string_escapes)
{
    char buf[256];
    struct vg_out o;

    vg_out_buffer(&o, buf, sizeof(buf));
    vg_out_json_string(&o, NULL);
    ck_assert_str_eq(buf, "null");

    vg_out_buffer(&o, buf, sizeof(buf));
    vg_out_json_string(&o, "");
    ck_assert_str_eq(buf, "\"\"");

    vg_out_buffer(&o, buf, sizeof(buf));
    vg_out_json_string(&o, "plain text/with:stuff");
    ck_assert_str_eq(buf, "\"plain text/with:stuff\"");

    vg_out_buffer(&o, buf, sizeof(buf));
    vg_out_json_string(&o, "say \"hi\" \\ back");
    ck_assert_str_eq(buf, "\"say \\\"hi\\\" \\\\ back\"");
    ck_assert_uint_eq(o.total, strlen(buf));

    /* control characters: no raw byte below 0x20 may remain, and a JSON
     * parser must give back the original text */
    const char raw[] = "a\nb\tc\rd\x01" "e\x1f" "f\x7f" "g";
    vg_out_buffer(&o, buf, sizeof(buf));
    vg_out_json_string(&o, raw);
    for (const unsigned char *p = (const unsigned char *)buf; *p; p++)
        ck_assert_msg(*p >= 0x20, "raw control byte 0x%02x in %s", *p, buf);
    ck_assert_int_eq(buf[0], '"');
    ck_assert_int_eq(buf[strlen(buf) - 1], '"');

    char lit[512], orig[512];
    path_in_tmp(lit, sizeof(lit), "literal.json");
    path_in_tmp(orig, sizeof(orig), "original.txt");
    write_file(lit, buf, strlen(buf));
    write_file(orig, raw, strlen(raw));
    ck_assert_python("import json,sys\n"
                            "v = json.load(open(sys.argv[1]))\n"
                            "w = open(sys.argv[2], newline='').read()\n"
                            "assert v == w, (v, w)\n",
                            lit, orig);
}
END_TEST

START_TEST(test_out_json_string_invalid_utf8)
{
    /* JSON text must be UTF-8 (RFC 8259 section 8.1): a stray Latin-1 byte
     * (a label, argv or exe path from the program) must not make the
     * literal undecodable. */
    char buf[64];
    struct vg_out o;
    vg_out_buffer(&o, buf, sizeof(buf));
    vg_out_json_string(&o, "caf\xe9 \xc3\xa9t\xc3");
    char lit[512];
    path_in_tmp(lit, sizeof(lit), "latin1.json");
    write_file(lit, buf, strlen(buf));
    ck_assert_python("import json,sys\n"
                     "v = json.loads(open(sys.argv[1], 'rb').read().decode('utf-8'))\n"
                     "assert v.startswith('caf') and '\\u00e9t' in v, ascii(v)\n",
                     lit, NULL);
}
END_TEST

/* ---- text report ------------------------------------------------------------ */

struct row {
    int device;
    char kind[32], purpose[32], live[40], peak[40];
    unsigned long long count;
};

/* Parse the per-cell rows of a text breakdown whose lines start with `prefix`. */
static int parse_rows(const char *text, const char *prefix, struct row *rows, int max)
{
    int n = 0, device = -100;
    size_t pl = strlen(prefix);
    const char *line = text;
    while (*line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char l[1024];
        snprintf(l, sizeof(l), "%.*s", (int)len, line);
        ck_assert_msg(strncmp(l, prefix, pl) == 0, "line without the prefix: %s", l);
        const char *rest = l + pl;
        int d;
        if (sscanf(rest, "device %d (", &d) == 1) {
            device = d;
        } else {
            struct row r;
            char lu[16], pu[16];
            if (sscanf(rest, "%31s %31s %15s %15s %llu %15s %15s", r.kind, r.purpose, r.live, lu, &r.count,
                       r.peak, pu) == 7) {
                strcat(r.live, " ");
                strcat(r.live, lu);
                strcat(r.peak, " ");
                strcat(r.peak, pu);
                r.device = device;
                ck_assert_int_lt(n, max);
                rows[n++] = r;
            }
        }
        line = end ? end + 1 : line + len;
    }
    return n;
}

static const struct row *find_row(const struct row *rows, int n, int device, const char *kind,
                                  const char *purpose)
{
    for (int i = 0; i < n; i++)
        if (rows[i].device == device && strcmp(rows[i].kind, kind) == 0 && strcmp(rows[i].purpose, purpose) == 0)
            return &rows[i];
    return NULL;
}

START_TEST(test_report_text_cells)
{
    insert(0x10000000, 1 << 20, 0, VG_KIND_DEVICE, VG_PURPOSE_WEIGHTS, "layer.0");
    insert(0x10100000, 1 << 20, 0, VG_KIND_DEVICE, VG_PURPOSE_WEIGHTS, NULL);
    insert(0x10200000, 3 << 20, 0, VG_KIND_DEVICE, VG_PURPOSE_KV_CACHE, NULL);
    insert(0x20000000, 4096, 0, VG_KIND_HOST_PINNED, VG_PURPOSE_UNKNOWN, NULL);
    insert(0x30000000, 512, 1, VG_KIND_DEVICE, VG_PURPOSE_INTERMEDIATE, NULL);
    /* two weights buffers freed again: count 1, live 1 MiB, peak 3 MiB */
    insert(0x10300000, 1 << 20, 0, VG_KIND_DEVICE, VG_PURPOSE_WEIGHTS, NULL);
    ck_assert(vg_table_remove(0x10300000, NULL));
    ck_assert(vg_table_remove(0x10100000, NULL));

    static char buf[65536];
    struct vg_out o;
    vg_out_buffer(&o, buf, sizeof(buf));
    vg_breakdown_text(&o, "T> ");
    ck_assert_uint_eq(o.total, strlen(buf));
    ck_assert_ptr_nonnull(strstr(buf, "violations 0"));

    struct row rows[32];
    int n = parse_rows(buf, "T> ", rows, 32);
    ck_assert_int_eq(n, 4);
    const struct row *r = find_row(rows, n, 0, "device", "weights");
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->count, 1);
    ck_assert_str_eq(r->live, "1.0 MiB");
    ck_assert_str_eq(r->peak, "3.0 MiB"); /* three were live at once */
    r = find_row(rows, n, 0, "device", "kv_cache");
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->count, 1);
    ck_assert_str_eq(r->live, "3.0 MiB");
    r = find_row(rows, n, 0, "host_pinned", "unknown");
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->count, 1);
    ck_assert_str_eq(r->live, "4.0 KiB");
    r = find_row(rows, n, 1, "device", "intermediate");
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->count, 1);
    ck_assert_str_eq(r->live, "512 B");

    /* device 0's charged VRAM excludes pinned memory: 1 + 3 MiB now (no
     * pools, no graphs); the peak was 3 (weights) + 3 (kv_cache) MiB */
    ck_assert_ptr_nonnull(strstr(buf, "charged VRAM 4.0 MiB (live 4.0 MiB, pool cache 0 B, graph pool 0 B), peak live 6.0 MiB"));
    /* the largest allocations are listed, largest first, with the label */
    const char *kv = strstr(buf, "0x10200000");
    const char *w = strstr(buf, "0x10000000");
    ck_assert_ptr_nonnull(kv);
    ck_assert_ptr_nonnull(w);
    ck_assert(kv < w);
    ck_assert_ptr_nonnull(strstr(buf, "\"layer.0\""));
    ck_assert_ptr_null(strstr(buf, "0x10100000")); /* freed: not listed */
}
END_TEST

START_TEST(test_report_text_truncates_in_small_buffer)
{
    insert(0x10000000, 1 << 20, 0, VG_KIND_DEVICE, VG_PURPOSE_WEIGHTS, NULL);
    static char full[65536];
    struct vg_out o;
    vg_out_buffer(&o, full, sizeof(full));
    vg_breakdown_text(&o, "");
    size_t need = o.total;
    ck_assert_uint_gt(need, 40);

    char small[41];
    memset(small, '#', sizeof(small));
    vg_out_buffer(&o, small, 40);
    vg_breakdown_text(&o, "");
    ck_assert_uint_eq(o.total, need); /* same length needed */
    ck_assert_uint_eq(strlen(small), 39);
    ck_assert(strncmp(small, full, 39) == 0);
    ck_assert_int_eq(small[40], '#');
}
END_TEST

/* ---- JSON report -------------------------------------------------------------- */

START_TEST(test_report_json_pass)
{
    insert(0x10000000, 1 << 20, 0, VG_KIND_DEVICE, VG_PURPOSE_WEIGHTS, "layer.0");
    insert(0x10200000, 3 << 20, 0, VG_KIND_DEVICE, VG_PURPOSE_KV_CACHE, NULL);
    insert(0x30000000, 512, 1, VG_KIND_DEVICE, VG_PURPOSE_INTERMEDIATE, NULL);
    char path[512];
    path_in_tmp(path, sizeof(path), "report.json");
    const char *text = report_to_file(path);
    ck_assert_ptr_nonnull(strstr(text, "\"schema\": \"vramguard.report/v1\""));
    ck_assert_int_eq(json_valid(path), 0);
    ck_assert_python("import json,sys\n"
                            "d = json.load(open(sys.argv[1]))\n"
                            "s = d['summary']\n"
                            "assert s['status'] == 'pass', s\n"
                            "assert s['reasons'] == [], s\n"
                            "assert s['violations'] == 0 and s['oom_events'] == 0, s\n"
                            "assert d['config']['policy'] == 'reject', d['config']\n"
                            "assert d['config']['fail_on'] == ['violation'], d['config']\n"
                            "assert d['config']['allow'] == [], d['config']\n"
                            "l = d['live_at_exit']\n"
                            "assert l['count'] == 3 and l['bytes'] == 4*2**20 + 512, l\n"
                            "sizes = [a['size'] for a in l['allocations']]\n"
                            "assert sizes == [3*2**20, 2**20, 512], sizes\n"
                            "a = l['allocations'][1]\n"
                            "assert a['label'] == 'layer.0' and a['purpose'] == 'weights', a\n"
                            "assert a['address'] == '0x10000000' and a['kind'] == 'device', a\n"
                            "assert l['allocations'][0]['label'] is None\n"
                            "assert [x['device'] for x in d['devices']] == [0, 1], d['devices']\n"
                            "u = {(r['kind'], r['purpose']): r for r in d['devices'][0]['usage']}\n"
                            "assert set(u) == {('device','weights'), ('device','kv_cache')}, u\n"
                            "assert u[('device','kv_cache')]['live_bytes'] == 3*2**20\n"
                            "assert d['devices'][0]['peak_vram_bytes'] == 4*2**20\n"
                            "assert d['violations'] == {'count': 0, 'recorded': []}, d['violations']\n"
                            "import os\n"
                            "assert d['process']['pid'] == int(sys.argv[2]), d['process']\n",
                            path, pid_string());
}
END_TEST

/* This process's log prefix followed by `what`: "vramguard[PID]: what". */
static const char *prefixed(const char *what)
{
    static char buf[256];
    snprintf(buf, sizeof(buf), "vramguard[%d]: %s", (int)getpid(), what);
    return buf;
}

/* The first log line that starts with the prefix and `start`, copied to a
 * static buffer. */
static const char *log_line(const char *start)
{
    static char line[2048];
    const char *text = slurp(log_path);
    start = prefixed(start);
    size_t sl = strlen(start);
    for (const char *p = text; *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len >= sl && strncmp(p, start, sl) == 0) {
            snprintf(line, sizeof(line), "%.*s", (int)len, p);
            return line;
        }
        p = end ? end + 1 : p + len;
    }
    return NULL;
}

START_TEST(test_report_json_fail_after_violation)
{
    /* VRAMGUARD_FAIL_ON unset: the default is violation */
    insert(0x10000000, 1 << 20, 0, VG_KIND_DEVICE, VG_PURPOSE_WEIGHTS, NULL);
    struct vg_call c = managed_call();
    vg_event_violation(&c, CUDA_ERROR_NOT_SUPPORTED);
    ck_assert_uint_eq(vg_violation_count(), 1);
    struct vg_event kept[4];
    ck_assert_int_eq(vg_violations_kept(kept, 4), 1);
    ck_assert_str_eq(kept[0].api, "cudaMallocManaged");
    ck_assert_uint_eq(kept[0].size, 3u << 20);
    ck_assert_int_eq(kept[0].result, CUDA_ERROR_NOT_SUPPORTED);

    char path[512];
    path_in_tmp(path, sizeof(path), "report.json");
    const char *text = report_to_file(path);
    ck_assert_ptr_nonnull(strstr(text, "\"schema\": \"vramguard.report/v1\""));
    ck_assert_int_eq(json_valid(path), 0);
    ck_assert_python("import json,sys\n"
                            "d = json.load(open(sys.argv[1]))\n"
                            "s = d['summary']\n"
                            "assert s['status'] == 'fail', s\n"
                            "assert s['reasons'] == ['violation'], s\n"
                            "assert s['violations'] == 1, s\n"
                            "v = d['violations']\n"
                            "assert v['count'] == 1 and len(v['recorded']) == 1, v\n"
                            "e = v['recorded'][0]\n"
                            "assert e['api'] == 'cudaMallocManaged', e\n"
                            "assert e['kind'] == 'managed' and e['size'] == 3*2**20, e\n"
                            "assert e['purpose'] == 'kv_cache' and e['label'] == 'kv.layer3', e\n"
                            "assert e['action'] == 'rejected' and e['result'] == 801, e\n"
                            "assert e['device'] == 0 and '+0x' in e['caller'], e\n",
                            path, NULL);

    /* the log line */
    const char *line = log_line("violation: ");
    ck_assert_msg(line != NULL, "no violation line in the log: %s", slurp(log_path));
    ck_assert_ptr_nonnull(strstr(line, "cudaMallocManaged"));
    ck_assert_ptr_nonnull(strstr(line, "3145728"));
    ck_assert_ptr_nonnull(strstr(line, "kv_cache"));
    ck_assert_ptr_nonnull(strstr(line, "kv.layer3"));
    /* the caller as module+offset, computed here with dladdr */
    Dl_info info;
    ck_assert(dladdr(c.caller, &info) != 0);
    char off[64];
    snprintf(off, sizeof(off), "+0x%lx", (unsigned long)((uintptr_t)c.caller - (uintptr_t)info.dli_fbase));
    ck_assert_msg(strstr(line, off) != NULL, "caller %s not in: %s", off, line);
    /* every log line carries the prefix, with the pid */
    const char *all = slurp(log_path), *prefix = prefixed("");
    for (const char *p = all; *p;) {
        ck_assert_msg(strncmp(p, prefix, strlen(prefix)) == 0, "log line without prefix %s: %s", prefix, p);
        const char *end = strchr(p, '\n');
        p = end ? end + 1 : p + strlen(p);
    }
}
END_TEST

/* Reports rendered by several threads while events are being recorded (a
 * /vram scrape during the exit report): each report keeps its violations and
 * its OOM events apart. A violation entry carries "action"; an OOM never. */
enum { RACE_READERS = 8, RACE_REPORTS = 100, RACE_EVENTS = 30 };

static int count_between(const char *from, const char *to, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(from, needle); p && p < to; p = strstr(p + 1, needle))
        n++;
    return n;
}

static const char *lists_mixed(const char *report)
{
    const char *v = strstr(report, "\"violations\": {");
    const char *o = v ? strstr(v, "\"oom_events\": {") : NULL;
    const char *end = o ? strstr(o, "]}") : NULL;
    if (end == NULL)
        return "no violations and oom_events lists";
    int v_entries = count_between(v, o, "{\"time\":"), v_actions = count_between(v, o, "\"action\":");
    if (v_entries == 0 || count_between(o, end, "{\"time\":") == 0)
        return "a list is empty";
    if (v_entries != v_actions)
        return "an OOM event in the violations list";
    if (count_between(o, end, "\"action\":") != 0)
        return "a violation in the oom_events list";
    return NULL;
}

static void raise_both(int n)
{
    for (int i = 0; i < n; i++) {
        struct vg_call c = managed_call();
        vg_event_violation(&c, CUDA_ERROR_NOT_PERMITTED);
        c.kind = VG_KIND_DEVICE;
        c.api = "cudaMalloc";
        c.driver_api = "cuMemAlloc_v2";
        c.action = VG_ACTION_ALLOW;
        vg_event_oom(&c, CUDA_ERROR_OUT_OF_MEMORY);
    }
}

static void *race_writer(void *arg)
{
    (void)arg;
    raise_both(RACE_EVENTS);
    return NULL;
}

static void *race_reader(void *arg)
{
    const char **why = arg;
    enum { SIZE = 1 << 20 };
    char *buf = malloc(SIZE);
    for (int i = 0; buf && i < RACE_REPORTS && *why == NULL; i++) {
        struct vg_out o;
        vg_out_buffer(&o, buf, SIZE);
        vg_report_json(&o);
        *why = o.total < SIZE ? lists_mixed(buf) : "report truncated";
    }
    free(buf);
    return NULL;
}

START_TEST(test_concurrent_reports_keep_lists_apart)
{
    raise_both(2);
    pthread_t writer, readers[RACE_READERS];
    const char *why[RACE_READERS] = {0};
    ck_assert_int_eq(pthread_create(&writer, NULL, race_writer, NULL), 0);
    for (int i = 0; i < RACE_READERS; i++)
        ck_assert_int_eq(pthread_create(&readers[i], NULL, race_reader, &why[i]), 0);
    pthread_join(writer, NULL);
    for (int i = 0; i < RACE_READERS; i++) {
        pthread_join(readers[i], NULL);
        ck_assert_msg(why[i] == NULL, "reader %d: %s", i, why[i]);
    }
    ck_assert_uint_eq(vg_violation_count(), 2 + RACE_EVENTS);
    ck_assert_uint_eq(vg_oom_count(), 2 + RACE_EVENTS);
}
END_TEST

/* Outside text with newlines or escape codes never forges a log line: vg_log
 * and the OOM breakdown's labels print control characters as '?'. */
START_TEST(test_log_lines_cannot_be_forged)
{
    const char *evil = "kv\nvramguard: forged\x1b[2J";
    insert(0x10000000, 1 << 20, 0, VG_KIND_DEVICE, VG_PURPOSE_KV_CACHE, evil);
    struct vg_call c = managed_call();
    c.kind = VG_KIND_DEVICE;
    c.label = vg_label_intern(evil);
    vg_event_oom(&c, CUDA_ERROR_OUT_OF_MEMORY); /* the first: with the breakdown */
    vg_log("VRAMGUARD_POLICY=\"%s\" is not valid", "warn\nvramguard: exit: forged too");
    const char *all = slurp(log_path);
    ck_assert_msg(strstr(all, "==== out of memory on device 0"), "%s", all);
    ck_assert_msg(strstr(all, "\"kv?vramguard: forged?[2J\""), "%s", all);
    ck_assert_msg(strstr(all, "warn?vramguard: exit: forged too"), "%s", all);
    const char *prefix = prefixed("");
    for (const char *p = all; *p;) {
        ck_assert_msg(strncmp(p, "vramguard: forged", 17) != 0 && strncmp(p, "vramguard: exit: forged", 23) != 0,
                      "a forged line: %s", all);
        ck_assert_msg(strncmp(p, prefix, strlen(prefix)) == 0, "a line without the prefix %s: %s", prefix, all);
        ck_assert_msg(strchr(p, '\x1b') == NULL || strchr(p, '\x1b') > strchr(p, '\n'), "an escape code: %s", all);
        const char *end = strchr(p, '\n');
        p = end ? end + 1 : p + strlen(p);
    }
}
END_TEST

/* The report file keeps the command line; /vram's rendering leaves it out
 * (VRAMGUARD_VRAM_ARGV unset). */
START_TEST(test_served_report_omits_argv)
{
    ck_assert_ptr_nonnull(vg_config());
    static char buf[1 << 20];
    struct vg_out o;
    vg_out_buffer(&o, buf, sizeof(buf));
    vg_report_json(&o);
    ck_assert_msg(strstr(buf, "\"argv\": [\"") && !strstr(buf, "argv_omitted"), "%.600s", buf);
    vg_out_buffer(&o, buf, sizeof(buf));
    vg_report_json_served(&o);
    ck_assert_msg(strstr(buf, "\"argv\": [], \"argv_omitted\": true,"), "%.600s", buf);
}
END_TEST

START_TEST(test_report_json_fail_on_none_passes)
{
    setenv("VRAMGUARD_FAIL_ON", "none", 1);
    setenv("VRAMGUARD_POLICY", "warn", 1);
    struct vg_call c = managed_call();
    c.action = VG_ACTION_WARN;
    vg_event_violation(&c, CUDA_SUCCESS);
    char path[512];
    path_in_tmp(path, sizeof(path), "report.json");
    report_to_file(path);
    ck_assert_python("import json,sys\n"
                            "d = json.load(open(sys.argv[1]))\n"
                            "s = d['summary']\n"
                            "assert s['status'] == 'pass' and s['reasons'] == [], s\n"
                            "assert s['violations'] == 1, s\n"
                            "assert d['config']['fail_on'] == [] and d['config']['policy'] == 'warn', d['config']\n"
                            "assert d['violations']['recorded'][0]['action'] == 'allowed'\n"
                            "assert d['violations']['recorded'][0]['result'] == 0\n",
                            path, NULL);
    const char *line = log_line("violation: ");
    ck_assert_ptr_nonnull(line);
    ck_assert_ptr_nonnull(strstr(line, "VRAMGUARD_POLICY=warn"));
}
END_TEST

START_TEST(test_report_json_fail_on_leak)
{
    setenv("VRAMGUARD_FAIL_ON", "violation,leak", 1);
    setenv("VRAMGUARD_ALLOW", "pinned", 1);
    insert(0x10000000, 1000, 2, VG_KIND_DEVICE, VG_PURPOSE_KV_CACHE, NULL);
    insert(0x20000000, 24, 2, VG_KIND_HOST_PINNED, VG_PURPOSE_UNKNOWN, NULL);
    char path[512];
    path_in_tmp(path, sizeof(path), "report.json");
    report_to_file(path);
    ck_assert_python("import json,sys\n"
                            "d = json.load(open(sys.argv[1]))\n"
                            "s = d['summary']\n"
                            "assert s['status'] == 'fail' and s['reasons'] == ['leak'], s\n"
                            "assert s['leaked_allocations'] == 2 and s['leaked_bytes'] == 1024, s\n"
                            "assert d['config']['fail_on'] == ['violation', 'leak'], d['config']\n"
                            "assert d['config']['allow'] == ['pinned'], d['config']\n"
                            "assert len(d['devices']) == 3, d['devices']\n"
                            "assert d['devices'][0]['usage'] == [] and d['devices'][1]['usage'] == []\n"
                            "assert d['devices'][2]['peak_vram_bytes'] == 1000\n",
                            path, NULL);
    /* all freed: no leak, pass */
    ck_assert(vg_table_remove(0x10000000, NULL));
    ck_assert(vg_table_remove(0x20000000, NULL));
    report_to_file(path);
    ck_assert_python("import json,sys\n"
                            "d = json.load(open(sys.argv[1]))\n"
                            "assert d['summary']['status'] == 'pass', d['summary']\n"
                            "assert d['live_at_exit'] == {'count': 0, 'bytes': 0, 'allocations': []}\n"
                            "r = d['devices'][2]['usage']\n"
                            "assert len(r) == 2 and all(x['live_bytes'] == 0 and x['frees'] == 1 for x in r), r\n",
                            path, NULL);
}
END_TEST

START_TEST(test_report_json_schema_validation)
{
    const char *v = validator();
    if (v == NULL) {
        /* tests/cli/validate_report.py absent: nothing to validate against */
        ck_assert_ptr_null(v);
        return;
    }
    setenv("VRAMGUARD_FAIL_ON", "violation,oom,leak", 1);
    insert(0x10000000, 1 << 20, 0, VG_KIND_DEVICE, VG_PURPOSE_WEIGHTS, "w\"eird\\label");
    insert(0x10200000, 77, 3, VG_KIND_DEVICE, VG_PURPOSE_INTERMEDIATE, "tab\there");
    struct vg_call c = managed_call();
    vg_event_violation(&c, CUDA_ERROR_NOT_SUPPORTED);
    c.kind = VG_KIND_HOST_PINNED;
    c.api = "cuMemHostAlloc";
    c.driver_api = c.api; /* called straight through the driver API */
    c.purpose = VG_PURPOSE_UNKNOWN;
    c.label = 0;
    c.caller = NULL;
    vg_event_violation(&c, CUDA_ERROR_NOT_PERMITTED);
    char path[512];
    path_in_tmp(path, sizeof(path), "report.json");
    report_to_file(path);
    char *argv[] = {(char *)PYTHON, (char *)v, path, NULL};
    ck_assert_int_eq(run(argv), 0);
    /* and the validator is not a rubber stamp: a broken copy fails */
    const char *text = slurp(path);
    static char broken[1 << 20];
    snprintf(broken, sizeof(broken), "%s", text);
    char *st = strstr(broken, "\"status\": \"fail\"");
    ck_assert_ptr_nonnull(st);
    memcpy(st, "\"status\": \"pass\"", 16);
    char bad[512];
    path_in_tmp(bad, sizeof(bad), "broken.json");
    write_file(bad, broken, strlen(broken));
    char *argv2[] = {(char *)PYTHON, (char *)v, bad, NULL};
    ck_assert_int_ne(run(argv2), 0);
}
END_TEST

START_TEST(test_violation_journal_line)
{
    char report_tmpl[512];
    snprintf(report_tmpl, sizeof(report_tmpl), "%s/vg.%%p.json", tmpdir);
    setenv("VRAMGUARD_REPORT", report_tmpl, 1);
    char expect[512];
    snprintf(expect, sizeof(expect), "%s/vg.%d.json", tmpdir, (int)getpid());
    ck_assert_str_eq(vg_report_path(), expect);

    struct vg_call c = managed_call();
    vg_event_violation(&c, CUDA_ERROR_NOT_SUPPORTED);
    vg_event_violation(&c, CUDA_ERROR_NOT_SUPPORTED);
    char journal[600];
    snprintf(journal, sizeof(journal), "%s.journal", expect);
    ck_assert_python("import json,sys\n"
                            "lines = open(sys.argv[1]).read().splitlines()\n"
                            "assert len(lines) == 3, lines\n"
                            "assert json.loads(lines[0])['event'] == 'start', lines[0]\n"
                            "for l in lines[1:]:\n"
                            "    e = json.loads(l)\n"
                            "    assert e['event'] == 'violation' and e['pid'] == int(sys.argv[2]), e\n"
                            "    assert e['api'] == 'cudaMallocManaged' and e['size'] == 3*2**20, e\n"
                            "    assert e['label'] == 'kv.layer3' and e['action'] == 'rejected', e\n",
                            journal, pid_string());
    const char *v = validator();
    if (v) {
        char *argv[] = {(char *)PYTHON, (char *)v, journal, NULL};
        ck_assert_int_eq(run(argv), 0);
    }
}
END_TEST

/* The log is the outputs': loading the configuration writes nothing; the
 * first event opens VRAMGUARD_LOG and writes the configuration's warnings
 * there first. */
START_TEST(test_log_opened_by_the_outputs)
{
    setenv("VRAMGUARD_POLICY", "bogus", 1);
    struct vg_call c = managed_call(); /* vg_config() */
    ck_assert_str_eq(slurp(log_path), "");
    vg_event_violation(&c, CUDA_ERROR_NOT_SUPPORTED);
    const char *log = slurp(log_path);
    char want[128];
    snprintf(want, sizeof(want), "%s", prefixed("VRAMGUARD_POLICY=\"bogus\" is not valid"));
    const char *warning = strstr(log, want);
    const char *event = strstr(log, prefixed("violation: cudaMallocManaged"));
    ck_assert_msg(warning && event && warning < event, "%s", log);
    ck_assert_ptr_null(strstr(warning + 30, "VRAMGUARD_POLICY=")); /* once */
}
END_TEST

/* Budget OOMs from more call sites than the shim tells apart: the journal
 * lines of their overflow group say "budget": null, so that a reader (the
 * CLI) counts them as budget OOMs, not as the device's OOMs. */
START_TEST(test_budget_overflow_group_journaled_as_budget)
{
    char report_tmpl[512];
    snprintf(report_tmpl, sizeof(report_tmpl), "%s/vg.%%p.json", tmpdir);
    setenv("VRAMGUARD_REPORT", report_tmpl, 1);
    struct vg_call c = managed_call();
    c.api = c.driver_api = "cuMemAlloc_v2";
    c.kind = VG_KIND_DEVICE;
    char *site = (char *)c.caller;
    struct vg_budget_hit hit = {VG_BUDGET_TOTAL, 1u << 20, 0, 3u << 20};
    for (int s = 0; s < VG_REPEATS_GROUPS + 8; s++) {
        c.caller = site + s;
        for (int k = 0; k < VG_REPEATS_SHOWN + 2; k++)
            vg_event_budget_oom(&c, &hit);
    }
    vg_events_at_exit();
    char journal[600];
    snprintf(journal, sizeof(journal), "%s/vg.%d.json.journal", tmpdir, (int)getpid());
    ck_assert_python("import json,sys\n"
                     "ev = [json.loads(l) for l in open(sys.argv[1])]\n"
                     "ooms = [e for e in ev if e['event'] == 'oom' or e.get('of') == 'oom']\n"
                     "assert ooms and all('budget' in e for e in ooms), [e for e in ooms if 'budget' not in e]\n"
                     "other = [e for e in ooms if e['event'] in ('suppressing', 'suppressed') and 'api' not in e]\n"
                     "assert other and all(e['budget'] is None for e in other), other\n",
                     journal, NULL);
    const char *v = validator();
    if (v) {
        char *argv[] = {(char *)PYTHON, (char *)v, journal, NULL};
        ck_assert_int_eq(run(argv), 0);
    }
}
END_TEST

START_TEST(test_report_write_atomic)
{
    char report_tmpl[512];
    snprintf(report_tmpl, sizeof(report_tmpl), "%s/r.%%p.json", tmpdir);
    setenv("VRAMGUARD_REPORT", report_tmpl, 1);
    insert(0x10000000, 4096, 0, VG_KIND_DEVICE, VG_PURPOSE_WEIGHTS, NULL);
    ck_assert(vg_report_write());
    char expect[512];
    snprintf(expect, sizeof(expect), "%s/r.%d.json", tmpdir, (int)getpid());
    ck_assert_int_eq(access(expect, R_OK), 0);
    ck_assert_int_eq(json_valid(expect), 0);
    ck_assert_ptr_nonnull(strstr(slurp(expect), "\"schema\": \"vramguard.report/v1\""));
    /* nothing but the report (and the log) is left in the directory */
    DIR *d = opendir(tmpdir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int others = 0;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && strcmp(e->d_name, "log.txt") != 0 && strstr(expect, e->d_name) == NULL)
            others++;
    closedir(d);
    ck_assert_int_eq(others, 0);
}
END_TEST

START_TEST(test_report_write_without_path)
{
    ck_assert_str_eq(vg_report_path(), "");
    ck_assert(!vg_report_write());
}
END_TEST

START_TEST(test_report_json_escaped_labels_valid)
{
    insert(0x10000000, 100, 0, VG_KIND_DEVICE, VG_PURPOSE_WEIGHTS, "quote\" back\\ nl\n ctl\x01 end");
    char path[512];
    path_in_tmp(path, sizeof(path), "report.json");
    report_to_file(path);
    ck_assert_int_eq(json_valid(path), 0);
    ck_assert_python("import json,sys\n"
                            "d = json.load(open(sys.argv[1]))\n"
                            "l = d['live_at_exit']['allocations'][0]['label']\n"
                            "assert l == 'quote\" back\\\\ nl\\n ctl\\x01 end', repr(l)\n",
                            path, NULL);
}
END_TEST

START_TEST(test_report_json_truncated_utf8_label_valid)
{
    /* A label longer than VG_LABEL_MAX-1 bytes whose cut falls inside a
     * multi-byte UTF-8 character: the report must still be valid JSON
     * (RFC 8259 requires UTF-8). */
    char label[VG_LABEL_MAX + 8];
    memset(label, 'a', VG_LABEL_MAX - 2);
    strcpy(label + VG_LABEL_MAX - 2, "\xc3\xa9\xc3\xa9"); /* "éé" straddles the cut */
    insert(0x10000000, 100, 0, VG_KIND_DEVICE, VG_PURPOSE_WEIGHTS, label);
    char path[512];
    path_in_tmp(path, sizeof(path), "report.json");
    report_to_file(path);
    ck_assert_msg(json_valid(path) == 0, "report with a truncated UTF-8 label is not valid JSON");
}
END_TEST

Suite *make_report_suite(void)
{
    Suite *s = suite_create("report");
    TCase *out = tcase_create("emit");
    tcase_add_checked_fixture(out, setup, teardown);
    tcase_add_test(out, test_out_buffer_truncation);
    tcase_add_test(out, test_out_buffer_tiny_and_null);
    tcase_add_test(out, test_out_printf_long_counts_total);
    tcase_add_test(out, test_out_growable);
    tcase_add_test(out, test_out_fd_sink_chunks);
    tcase_add_test(out, test_out_json_string_escapes);
    tcase_add_test(out, test_out_json_string_invalid_utf8);
    suite_add_tcase(s, out);

    TCase *text = tcase_create("text");
    tcase_add_checked_fixture(text, setup, teardown);
    tcase_add_test(text, test_report_text_cells);
    tcase_add_test(text, test_report_text_truncates_in_small_buffer);
    suite_add_tcase(s, text);

    TCase *json = tcase_create("json");
    tcase_add_checked_fixture(json, setup, teardown);
    tcase_set_timeout(json, 30);
    tcase_add_test(json, test_report_json_pass);
    tcase_add_test(json, test_report_json_fail_after_violation);
    tcase_add_test(json, test_concurrent_reports_keep_lists_apart);
    tcase_add_test(json, test_log_lines_cannot_be_forged);
    tcase_add_test(json, test_served_report_omits_argv);
    tcase_add_test(json, test_report_json_fail_on_none_passes);
    tcase_add_test(json, test_report_json_fail_on_leak);
    tcase_add_test(json, test_report_json_schema_validation);
    tcase_add_test(json, test_violation_journal_line);
    tcase_add_test(json, test_log_opened_by_the_outputs);
    tcase_add_test(json, test_report_write_atomic);
    tcase_add_test(json, test_budget_overflow_group_journaled_as_budget);
    tcase_add_test(json, test_report_write_without_path);
    tcase_add_test(json, test_report_json_escaped_labels_valid);
    tcase_add_test(json, test_report_json_truncated_utf8_label_valid);
    suite_add_tcase(s, json);
    return s;
}
