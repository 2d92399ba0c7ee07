/* Who allocated it (issue 10, section 1): every output names the function
 * (and, through the CLI, the file:line) of the program's own code that
 * asked, past the CUDA runtime's frames (static cudart included) and the
 * shim's; stacks are taken where they pay; stripped binaries say so.
 *
 * "symbols": the symbolizer in this process (the runner links the shim's
 * objects). "programs": the demo worker (built with -g), a stripped copy of
 * it, prog_who (static fake cudart, one function per allocation, lines
 * marked "who:NAME") and prog_attrib (shared cudart and the driver API),
 * under the shim and under scripts/vramguard. */
#include "../check_support.h"

#include "stacks.h"
#include "symbols.h"
#include "who.h"

#include <check.h>
#include <gnu/libc-version.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Suite *make_who_suite(void);

/* ---- helpers ------------------------------------------------------------------ */

static char *output_of(const char *const *argv, const char *const *env, int preload, int *status)
{
    char out[700];
    snprintf(out, sizeof(out), "%s/cmd.out", vg_test_tmpdir());
    int st = vg_test_run(argv, env, preload, out);
    if (status)
        *status = st;
    return vg_test_read(out);
}

/* A shell command run from the repository root (paths print relative to it). */
static char *shell(const char *cmd, int *status)
{
    char full[4000];
    snprintf(full, sizeof(full), "cd '%s' && %s", vg_test_root(), cmd);
    const char *argv[] = {"/bin/sh", "-c", full, NULL};
    return output_of(argv, NULL, 0, status);
}

/* The line number of the first line of `source` (relative to the root)
 * holding `mark`. */
static int line_of(const char *source, const char *mark)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/%s", vg_test_root(), source);
    char *text = vg_test_read_raw(path);
    const char *at = strstr(text, mark);
    ck_assert_msg(at != NULL, "%s has no line with %s", source, mark);
    int line = 1;
    for (const char *p = text; p < at; p++)
        line += *p == '\n';
    free(text);
    return line;
}

/* The one file in `dir` whose name starts with `prefix` and ends with `suffix`. */
static void file_in(const char *dir, const char *prefix, const char *suffix, char *out, size_t size)
{
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "no directory %s", dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name), sl = strlen(suffix);
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && len >= sl && strcmp(e->d_name + len - sl, suffix) == 0) {
            snprintf(out, size, "%s/%s", dir, e->d_name);
            n++;
        }
    }
    closedir(d);
    ck_assert_msg(n == 1, "%d files %s*%s in %s", n, prefix, suffix, dir);
}

/* python3 -c CODE ARG...: exit status 0 (its output in the failure message). */
static void python_ok(const char *code, const char *arg1, const char *arg2)
{
    const char *argv[] = {"/usr/bin/python3", "-c", code, arg1, arg2, NULL};
    int st = 0;
    char *text = output_of(argv, NULL, 0, &st);
    ck_assert_msg(st == 0, "python check failed (%d):\n%s\n--- code ---\n%s", st, text, code);
    free(text);
}

static void valid_report(const char *report)
{
    char validator[700];
    snprintf(validator, sizeof(validator), "%s/tests/cli/validate_report.py", vg_test_root());
    const char *argv[] = {"/usr/bin/python3", validator, report, NULL};
    int st = 0;
    char *text = output_of(argv, NULL, 0, &st);
    ck_assert_msg(st == 0, "%s does not match the schema:\n%s", report, text);
    free(text);
}

/* build/tests/PROG ARG under the shim, its report in DIR/r.json: the
 * program's output and the shim's log in *out and *log. */
static void run_under_shim(const char *prog, const char *arg, const char *env1, char *dir, size_t dir_size,
                           char **out, char **log)
{
    snprintf(dir, dir_size, "%s", vg_test_tmpdir());
    char path[700], report[800], logenv[800], o[760];
    snprintf(path, sizeof(path), "%s/tests/%s", vg_test_build(), prog);
    snprintf(report, sizeof(report), "VRAMGUARD_REPORT=%s/r.json", dir);
    snprintf(logenv, sizeof(logenv), "VRAMGUARD_LOG=%s/shim.log", dir);
    snprintf(o, sizeof(o), "%s/out.txt", dir);
    const char *env[] = {report, logenv, env1, NULL};
    const char *argv[] = {path, arg, NULL};
    int st = vg_test_run(argv, env, 1, o);
    *out = vg_test_read(o);
    char l[760];
    snprintf(l, sizeof(l), "%s/shim.log", dir);
    *log = vg_test_read(l);
    ck_assert_msg(st == 0, "%s exited %d\n%s\n%s", prog, st, *out, *log);
}

/* ---- the symbolizer, in this process ------------------------------------------ */

__attribute__((noinline)) static void *here(void)
{
    return __builtin_return_address(0);
}

/* Beside the program's own functions, as nvcc puts them: crt/host_runtime.h
 * and nvcc's link.stub define local __cudaUnregisterBinaryUtil & co. in the
 * program's objects. On the H200 (run 15) that made main "cudart's code"
 * and every site of a static-cudart program libc's __libc_start_call_main. */
__attribute__((noinline, used)) static void __cudaUnregisterBinaryUtilLike(void)
{
    __asm__ volatile("");
}

__attribute__((noinline)) static void *a_function_of_ours(void)
{
    void *pc = here();
    __asm__ volatile("" ::: "memory"); /* keep the call a call, not a tail jump */
    return pc;
}

START_TEST(runtime_names)
{
    /* CUDA 13's libcudart_static.a: cudaXxx and libcudart_static_<sha1> only
     * (nm, 1 703 functions); earlier releases: __cudart123, cudart::... */
    static const char *const runtime[] = {"cudaMalloc", "cudaMallocAsync",
                                          "libcudart_static_0053c1d33059ebe986009dc8a76c61eb6412a2c3", "__cudart1234",
                                          "__cudaRegisterFatBinary", "_ZN6cudart12globalState4initEv", "cudart_internal"};
    static const char *const program[] = {"main", "load_weights", "cuda_helper", "cudaless", "_ZN5torch3fooEv",
                                          "c10_cuda_malloc", "cuMemAlloc_v2", "libcudart_static"};
    for (size_t i = 0; i < sizeof(runtime) / sizeof(runtime[0]); i++)
        ck_assert_msg(vg_symbols_runtime_name(runtime[i]), "%s is the runtime's", runtime[i]);
    for (size_t i = 0; i < sizeof(program) / sizeof(program[0]); i++)
        ck_assert_msg(!vg_symbols_runtime_name(program[i]), "%s is not the runtime's", program[i]);
}
END_TEST

/* A local function of this program (in .symtab only) and one of libc's
 * (.dynsym) are named, with the address as in the file; the caller of an
 * allocation without a stack is its site when it is the program's code. */
START_TEST(functions_named_from_the_files)
{
    struct vg_symbols *s = malloc(sizeof(*s));
    vg_symbols_init(s);
    struct vg_frame f;
    void *pc = a_function_of_ours();
    ck_assert(vg_symbols_frame(s, pc, &f));
    ck_assert_ptr_nonnull(f.module);
    ck_assert_msg(f.function && strcmp(f.function, "a_function_of_ours") == 0, "%s", f.function);
    ck_assert(f.module->is_main && f.module->has_symbols && !f.runtime && !f.module->is_self);
    ck_assert_uint_eq(f.address, (uintptr_t)pc - f.module->bias);
    ck_assert_msg(strstr(f.module->path, "check_vramguard") != NULL, "%s", f.module->path);

    /* not qsort: sanitizer runtimes interpose it */
    ck_assert(vg_symbols_frame(s, (char *)&gnu_get_libc_version + 1, &f));
    ck_assert_msg(f.function && strcmp(f.function, "gnu_get_libc_version") == 0 && f.offset == 1, "%s", f.function);
    ck_assert_msg(strstr(f.module->name, "libc.so") != NULL, "%s", f.module->name);

    ck_assert(!vg_symbols_frame(s, NULL, &f));

    struct vg_who w;
    ck_assert(vg_who(s, 0, pc, &w));
    char text[600];
    vg_who_text(&w, text, sizeof(text));
    ck_assert_msg(strncmp(text, "a_function_of_ours+0x", 21) == 0 && strstr(text, "check_vramguard+0x"), "%s", text);
    ck_assert(!vg_who(s, 0, NULL, &w));
    vg_symbols_done(s);
    free(s);
}
END_TEST

/* ---- programs --------------------------------------------------------------------- */

/* The demo worker under `vramguard run`: its own functions, not cudart's
 * cudaMalloc (which every allocation used to name, build/demo/demo_worker
 * +0x2b5a), in vramguard_report(), the refusal, the OOM breakdown, the
 * report and its journal; file:line in the CLI's summaries. */
START_TEST(demo_names_its_functions_and_lines)
{
    char dir[600], cmd[3000];
    snprintf(dir, sizeof(dir), "%s/reports", vg_test_tmpdir());
    snprintf(cmd, sizeof(cmd),
             "env -u LD_PRELOAD -u VRAMGUARD_LIBRARY -u VRAMGUARD_LOG -u VRAMGUARD_LOG_LEVEL -u VRAMGUARD_BACKTRACE "
             "LD_LIBRARY_PATH='%s/fakecuda' /usr/bin/python3 scripts/vramguard run --report-dir '%s' -- "
             "'%s/demo/demo_worker' 2>'%s.err'",
             vg_test_build(), dir, vg_test_build(), dir);
    int st = 0;
    char *out = shell(cmd, &st);
    char errpath[700];
    snprintf(errpath, sizeof(errpath), "%s.err", dir);
    char *err = vg_test_read(errpath);
    ck_assert_msg(st == 3, "exit %d\n%s\n%s", st, out, err);

    /* vramguard_report(), on the worker's stdout */
    ck_assert_int_eq(vg_test_count(out, "cuMemAlloc_v2 from load_weights+0x"), 4);
    ck_assert_int_eq(vg_test_count(out, "cuMemAlloc_v2 from size_kv_cache+0x"), 1);
    ck_assert_int_eq(vg_test_count(out, "cuMemAlloc_v2 from run_step+0x"), 1);
    ck_assert_int_eq(vg_test_count(out, "from cudaMalloc"), 0);
    /* the shim's log: the refusal and the OOM breakdown */
    ck_assert_msg(strstr(err, "violation: cuMemAllocManaged of 16.0 MiB (16777216 bytes), kind managed, device 0, "
                              "purpose unknown, from ask_for_unified_memory+0x"),
                  "%s", err);
    const char *oom = strstr(err, "==== out of memory on device 0");
    ck_assert_msg(oom != NULL, "%s", err);
    ck_assert_msg(strstr(oom, "failed request: cuMemAlloc_v2 of 1.0 GiB (1073741824 bytes), kind device, purpose "
                              "kv_cache, from grow_kv_cache+0x"),
                  "%s", oom);
    ck_assert_int_eq(vg_test_count(oom, "cuMemAlloc_v2 from load_weights+0x"), 4);
    ck_assert_int_eq(vg_test_count(oom, "from cudaMalloc"), 0);
    /* the CLI's summary: file:line */
    int oom_line = line_of("tests/demo/demo_worker.c", "cudaMalloc(&huge");
    int managed_line = line_of("tests/demo/demo_worker.c", "cudaMallocManaged(&unified");
    char want_oom[200], want_managed[200];
    snprintf(want_oom, sizeof(want_oom), "at grow_kv_cache (tests/demo/demo_worker.c:%d) via cudaMalloc, result 2",
             oom_line);
    snprintf(want_managed, sizeof(want_managed),
             "at ask_for_unified_memory (tests/demo/demo_worker.c:%d) via cudaMallocManaged, action rejected",
             managed_line);
    ck_assert_msg(strstr(err, want_oom) && strstr(err, want_managed), "want %s\nand %s\nin:\n%s", want_oom,
                  want_managed, err);

    /* the report and the journal */
    char report[800], journal[800];
    file_in(dir, "vramguard.", ".json", report, sizeof(report));
    file_in(dir, "vramguard.", ".journal", journal, sizeof(journal));
    valid_report(report);
    char exe[700];
    snprintf(exe, sizeof(exe), "%s/demo/demo_worker", vg_test_build());
    python_ok("import json,os,sys\n"
              "d=json.load(open(sys.argv[1]))\n"
              "o=d['oom_events']['recorded'][0]['site']\n"
              "assert o['function']=='grow_kv_cache' and o['via']=='cudaMalloc' and o['symbols'] is True, o\n"
              "assert os.path.samefile(o['module'], sys.argv[2]), o\n"
              "v=d['violations']['recorded'][0]['site']\n"
              "assert v['function']=='ask_for_unified_memory' and v['via']=='cudaMallocManaged', v\n"
              "j=[json.loads(l) for l in open(sys.argv[1]+'.journal')]\n"
              "assert [e['site']['function'] for e in j if 'site' in e]==['ask_for_unified_memory','grow_kv_cache'], j\n",
              report, exe);

    /* vramguard report: of the directory, of the journal alone, as Markdown */
    free(out);
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 scripts/vramguard report '%s' 2>&1", dir);
    out = shell(cmd, &st);
    ck_assert_msg(st == 3 && strstr(out, want_oom) && strstr(out, want_managed), "exit %d\n%s", st, out);
    free(out);
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 scripts/vramguard report '%s' 2>&1", journal);
    out = shell(cmd, &st);
    ck_assert_msg(st == 3 && strstr(out, want_oom), "exit %d\n%s", st, out);
    free(out);
    /* without addr2line (nor eu-addr2line) on PATH: the shim's function+offset */
    snprintf(cmd, sizeof(cmd), "env PATH=/nonexistent /usr/bin/python3 scripts/vramguard report '%s' 2>&1", dir);
    out = shell(cmd, &st);
    ck_assert_msg(st == 3 && strstr(out, "at grow_kv_cache+0x") && strstr(out, " (demo_worker+0x") &&
                      strstr(out, ") via cudaMalloc, result 2") && !strstr(out, "demo_worker.c:"),
                  "exit %d\n%s", st, out);
    free(out);
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 scripts/vramguard report --markdown '%s' 2>/dev/null", dir);
    out = shell(cmd, &st);
    snprintf(want_oom, sizeof(want_oom), "`grow_kv_cache (tests/demo/demo_worker.c:%d) via cudaMalloc`", oom_line);
    ck_assert_msg(strstr(out, want_oom), "%s", out);
    free(out);
    free(err);
}
END_TEST

/* A stripped copy of the demo: no symbol table to tell cudart from the
 * program, so module+address, said plainly. */
START_TEST(stripped_binary_says_no_symbols)
{
    char dir[600], path[700], report[800], logenv[800], o[760];
    snprintf(dir, sizeof(dir), "%s", vg_test_tmpdir());
    snprintf(path, sizeof(path), "%s/demo/demo_worker_stripped", vg_test_build());
    snprintf(report, sizeof(report), "VRAMGUARD_REPORT=%s/r.json", dir);
    snprintf(logenv, sizeof(logenv), "VRAMGUARD_LOG=%s/shim.log", dir);
    snprintf(o, sizeof(o), "%s/out.txt", dir);
    const char *env[] = {report, logenv, NULL};
    const char *argv[] = {path, NULL};
    ck_assert_int_eq(vg_test_run(argv, env, 1, o), 0);
    char l[760];
    snprintf(l, sizeof(l), "%s/shim.log", dir);
    char *log = vg_test_read(l);
    const char *failed = strstr(log, "failed request: ");
    ck_assert_msg(failed != NULL, "%s", log);
    char line[600];
    snprintf(line, sizeof(line), "%.*s", (int)strcspn(failed, "\n"), failed);
    ck_assert_msg(strstr(line, "from ") && strstr(line, "demo_worker_stripped+0x") && strstr(line, " (no symbols)"),
                  "%s", line);
    char *out = vg_test_read(o);
    ck_assert_int_eq(vg_test_count(out, " (no symbols)\n"), 6); /* vramguard_report(): the 6 live allocations */
    snprintf(report, sizeof(report), "%s/r.json", dir);
    valid_report(report);
    python_ok("import json,sys\n"
              "s=json.load(open(sys.argv[1]))['oom_events']['recorded'][0]['site']\n"
              "assert s['symbols'] is False and s['function'] is None and 'via' not in s, s\n"
              "assert s['module'].endswith('/demo_worker_stripped'), s\n",
              report, NULL);
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 scripts/vramguard report --fail-on oom '%s' 2>&1", report);
    int st = 0;
    char *text = shell(cmd, &st);
    ck_assert_msg(st == 3 && strstr(text, "oom: cuMemAlloc_v2 size 1.0 GiB") && strstr(text, ", at demo_worker_stripped+0x") &&
                      strstr(text, " (no symbols), result 2"),
                  "%s", text);
    free(text);
    free(out);
    free(log);
}
END_TEST

/* The static (fake) cudart: each allocation names its own function,
 * including through an internal function of cudart's (cudaMallocArray's
 * libcudart_static_array_3d, named as CUDA 13 names them); the 64 KiB one and the stream-ordered one (a pool's
 * cache serves those in about the time of a stack walk) have no stack by
 * default (their caller, cudart's function, is named as what it is);
 * VRAMGUARD_BACKTRACE=1 gives them their site, 0 takes every stack away; a
 * refusal gets a stack whatever its size. The CLI prints file:line for the leaks. */
START_TEST(static_cudart_sites)
{
    char dir[600], *out, *log;
    run_under_shim("prog_who", "managed", NULL, dir, sizeof(dir), &out, &log);
    ck_assert_msg(strstr(out, "cuArray3DCreate_v2 from alloc_array+0x") &&
                      strstr(out, "cuMemAlloc_v2 from alloc_device+0x") &&
                      strstr(out, "cuMemAllocPitch_v2 from alloc_pitched+0x") && strstr(out, "cuMemAlloc_v2 from cudaMalloc+0x") &&
                      strstr(out, "cuMemAllocAsync from cudaMallocAsync+0x"),
                  "%s", out);
    ck_assert_msg(strstr(log, "from ask_managed+0x"), "%s", log);
    char report[800];
    snprintf(report, sizeof(report), "%s/r.json", dir);
    valid_report(report);
    python_ok("import json,sys\n"
              "d=json.load(open(sys.argv[1]))\n"
              "site={(a['api'],a['size']):a.get('site',{}).get('function') for a in d['live_at_exit']['allocations']}\n"
              "assert site=={('cuArray3DCreate_v2',4<<20):'alloc_array',('cuMemAlloc_v2',2<<20):'alloc_device',\n"
              "              ('cuMemAllocPitch_v2',2<<20):'alloc_pitched',('cuMemAlloc_v2',64<<10):None,\n"
              "              ('cuMemAllocAsync',2<<20):None}, site\n"
              "for a in d['live_at_exit']['allocations']:\n"
              "  if a['size']==64<<10 or a['kind']=='pool': assert 'stack' not in a and 'site' not in a, a\n"
              "assert d['violations']['recorded'][0]['site']['function']=='ask_managed'\n",
              report, NULL);
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 scripts/vramguard report --fail-on leak '%s' 2>&1", report);
    int st = 0;
    char *text = shell(cmd, &st);
    static const char *const steps[] = {"alloc_device", "alloc_pitched", "alloc_array"};
    for (int i = 0; i < 3; i++) {
        char mark[40], want[200];
        snprintf(mark, sizeof(mark), "who:%s ", steps[i]);
        snprintf(want, sizeof(want), "at %s (tests/preload/prog_who.c:%d)", steps[i],
                 line_of("tests/preload/prog_who.c", mark));
        ck_assert_msg(strstr(text, want), "want %s in:\n%s", want, text);
    }
    free(text);
    free(out);
    free(log);

    run_under_shim("prog_who", "managed", "VRAMGUARD_BACKTRACE=1", dir, sizeof(dir), &out, &log);
    ck_assert_msg(strstr(out, "cuMemAlloc_v2 from alloc_small+0x") && strstr(out, "cuMemAllocAsync from alloc_async+0x") &&
                      !strstr(out, "from cudaMalloc"),
                  "%s", out);
    free(out);
    free(log);

    run_under_shim("prog_who", "managed", "VRAMGUARD_BACKTRACE=0", dir, sizeof(dir), &out, &log);
    snprintf(report, sizeof(report), "%s/r.json", dir);
    python_ok("import json,sys\n"
              "d=json.load(open(sys.argv[1]))\n"
              "live=d['live_at_exit']['allocations']\n"
              "assert len(live)==5 and not any('stack' in a or 'site' in a for a in live), live\n"
              "assert 'site' not in d['violations']['recorded'][0], d['violations']\n",
              report, NULL);
    ck_assert_msg(strstr(log, "from cudaMallocManaged+0x"), "%s", log);
    free(out);
    free(log);
}
END_TEST

/* A shared cudart (through the shim's runtime entry point, libattrib_a) and
 * the driver API (libattrib_b): the library functions that asked, with or
 * without a stack (their return address is the program's own code). */
START_TEST(shared_cudart_and_driver_sites)
{
    static const char *const modes[] = {NULL, "VRAMGUARD_BACKTRACE=0"};
    for (int m = 0; m < 2; m++) {
        char dir[600], *out, *log;
        run_under_shim("prog_attrib", NULL, modes[m], dir, sizeof(dir), &out, &log);
        char report[800];
        snprintf(report, sizeof(report), "%s/r.json", dir);
        valid_report(report);
        python_ok("import json,sys\n"
                  "live=json.load(open(sys.argv[1]))['live_at_exit']['allocations']\n"
                  "f={(a['site']['function'],a['site']['module'].rsplit('/',1)[1],a['site'].get('via')) for a in live}\n"
                  "assert f=={('attrib_a_alloc','libattrib_a.so','cudaMalloc' if sys.argv[2]=='stack' else None),\n"
                  "           ('attrib_b_alloc','libattrib_b.so',None)}, f\n",
                  report, m == 0 ? "stack" : "caller");
        free(out);
        free(log);
    }
}
END_TEST

Suite *make_who_suite(void)
{
    Suite *s = suite_create("who");
    TCase *u = tcase_create("symbols");
    tcase_add_test(u, runtime_names);
    tcase_add_test(u, functions_named_from_the_files);
    suite_add_tcase(s, u);
    TCase *t = tcase_create("programs");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, demo_names_its_functions_and_lines);
    tcase_add_test(t, stripped_binary_says_no_symbols);
    tcase_add_test(t, static_cudart_sites);
    tcase_add_test(t, shared_cudart_and_driver_sites);
    suite_add_tcase(s, t);
    return s;
}
