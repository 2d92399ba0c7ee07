# Tests: `make check` builds the fake CUDA, the self-checking preload
# programs and one Check runner, then runs it.
TEST_DIR := $(BUILD)/tests
FAKE := $(BUILD)/fakecuda
TEST_CFLAGS := -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -I$(CUDA_HOME)/include -Ipurpose_tags -Ishim -Ishim/intercept -Ishim/model -Ishim/output
CHECK_FLAGS = $(shell pkg-config --cflags --libs check 2>/dev/null)

PRELOAD_DEPS := tests/preload/preload_common.h purpose_tags/vramguard.h
STATIC_FAKE := $(FAKE)/libcudart_static_fake.a -ldl -lpthread
SHARED_FAKE := -L$(FAKE) -lcudart -ldl -lpthread
DRIVER_FAKE := -L$(FAKE) -lcuda -ldl -lpthread

PRELOAD_PROGS := $(addprefix $(TEST_DIR)/, prog_runtime_static prog_runtime_shared prog_driver prog_legacy \
	prog_threads prog_oom prog_fork prog_rtld_local prog_dlsym_next libcudauser.so \
	libnext_a.so libnext_b.so libnext_c.so libnext_d.so stub_shim.so libmalloc_spy.so)

$(TEST_DIR)/prog_runtime_static: tests/preload/prog_runtime.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(STATIC_FAKE)
$(TEST_DIR)/prog_runtime_shared: tests/preload/prog_runtime.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(SHARED_FAKE)
$(TEST_DIR)/prog_threads $(TEST_DIR)/prog_oom $(TEST_DIR)/prog_fork: $(TEST_DIR)/prog_%: tests/preload/prog_%.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(STATIC_FAKE)
$(TEST_DIR)/prog_driver $(TEST_DIR)/prog_legacy: $(TEST_DIR)/prog_%: tests/preload/prog_%.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(DRIVER_FAKE)
$(TEST_DIR)/libcudauser.so: tests/preload/libcudauser.c $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -fPIC -shared -o $@ $< $(SHARED_FAKE)
$(TEST_DIR)/prog_rtld_local: tests/preload/prog_rtld_local.c $(PRELOAD_DEPS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< -ldl
$(TEST_DIR)/libnext_%.so: tests/preload/libnext_%.c
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -fPIC -shared -o $@ $< -ldl
$(TEST_DIR)/libnext_c.so: tests/preload/libnext_c.c $(TEST_DIR)/libnext_d.so
	$(CC) $(TEST_CFLAGS) -fPIC -shared -o $@ $< -L$(TEST_DIR) -Wl,--no-as-needed -lnext_d -ldl
$(TEST_DIR)/prog_dlsym_next: tests/preload/prog_dlsym_next.c $(TEST_DIR)/libnext_a.so $(TEST_DIR)/libnext_b.so $(PRELOAD_DEPS)
	$(CC) $(TEST_CFLAGS) -o $@ $< -L$(TEST_DIR) -Wl,--no-as-needed -lnext_b -lnext_a -ldl
$(TEST_DIR)/libmalloc_spy.so: tests/preload/libmalloc_spy.c
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -fPIC -shared -o $@ $<
$(TEST_DIR)/stub_shim.so: tests/cli/stub_shim.c
	@mkdir -p $(@D)
	$(CC) -fPIC -shared -o $@ $<

# The Check runner: unit suites link the shim's objects directly.
UNIT_ARCHIVE := $(TEST_DIR)/libvg_units.a
$(UNIT_ARCHIVE): $(filter-out $(BUILD)/shim/intercept/dlsym_trampoline.o,$(SHIM_OBJS))
	@mkdir -p $(@D)
	rm -f $@ && $(AR) rcs $@ $^
RUNNER_SRCS := tests/check_main.c $(wildcard tests/unit/check_*.c) tests/preload/check_preload.c tests/cli/check_cli.c \
	tests/python/check_python.c tests/install/check_install.c
$(TEST_DIR)/check_vramguard: $(RUNNER_SRCS) $(UNIT_ARCHIVE) tests/check_support.h | check-deps
	$(CC) $(TEST_CFLAGS) -o $@ $(RUNNER_SRCS) $(UNIT_ARCHIVE) $(CHECK_FLAGS) -ldl -lpthread

.PHONY: check-deps
check-deps:
	@pkg-config --exists check 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Check is missing: installing it (apt-get install -y check pkg-config python3-jsonschema)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq check pkg-config python3-jsonschema >/dev/null; \
	  else echo "Check is missing. Install it with: sudo apt-get install -y check pkg-config python3-jsonschema"; exit 1; fi; }


# The demo: a sample worker on a 1 GiB fake device under `vramguard run`.
DEMO_DIR := $(BUILD)/demo
$(DEMO_DIR)/demo_worker: tests/demo/demo_worker.c purpose_tags/vramguard.h $(FAKECUDA_LIBS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(STATIC_FAKE)

# The banner prints the very command that runs (it works when pasted).
DEMO_CMD = LD_LIBRARY_PATH=$(FAKE) scripts/vramguard run --report-dir $(DEMO_DIR)/reports -- $(DEMO_DIR)/demo_worker
demo: $(SHIM) fakecuda $(DEMO_DIR)/demo_worker
	@rm -rf $(DEMO_DIR)/reports
	@echo "== make demo: a sample worker on a fake 1 GiB GPU (fake CUDA in $(FAKE)), under vramguard:"
	@echo "$(DEMO_CMD)"
	@$(DEMO_CMD); \
	 status=$$?; echo; \
	 if [ $$status -eq 3 ]; then \
	   echo "demo: ok. vramguard exited 3 because the worker asked for managed memory (a violation):"; \
	   echo "      that is the CI guard failing the build. Reports: $(DEMO_DIR)/reports"; \
	 else echo "demo: unexpected exit status $$status (want 3)"; exit 1; fi

# make bench: the shim's cost on the fake driver (tests/bench/bench.mk). On a
# GPU machine, make gpu-bench (tests/gpu/gpu.mk) measures it on the real one.
include tests/bench/bench.mk

# Two cudart majors: libcudauser12.so links the fake cudart 12.
$(TEST_DIR)/libcudauser12.so: tests/preload/libcudauser.c $(FAKECUDA_LINKS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -fPIC -shared -o $@ $< -L$(FAKE)/v12 -Wl,-rpath,$(abspath $(FAKE)/v12) -lcudart
$(TEST_DIR)/prog_two_majors: tests/preload/prog_two_majors.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(SHARED_FAKE)
PRELOAD_PROGS += $(TEST_DIR)/libcudauser12.so $(TEST_DIR)/prog_two_majors
$(TEST_DIR)/prog_cxx: tests/preload/prog_cxx.cpp purpose_tags/vramguard.h $(FAKECUDA_LIBS)
	$(CXX) -std=c++17 -O1 -g -Wall -Wextra -I$(CUDA_HOME)/include -Ipurpose_tags -o $@ $< $(STATIC_FAKE)
PRELOAD_PROGS += $(TEST_DIR)/prog_cxx


# Issue 3 programs: pools, VMM, arrays/registration/graphs (runtime + driver).
$(TEST_DIR)/prog_pools $(TEST_DIR)/prog_misc: $(TEST_DIR)/prog_%: tests/preload/prog_%.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(FAKE)/libcudart_static_fake.a -L$(FAKE) -lcuda -ldl -lpthread
$(TEST_DIR)/prog_vmm: tests/preload/prog_vmm.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(DRIVER_FAKE)
PRELOAD_PROGS += $(TEST_DIR)/prog_pools $(TEST_DIR)/prog_vmm $(TEST_DIR)/prog_misc

$(TEST_DIR)/prog_multi: tests/preload/prog_multi.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(DRIVER_FAKE)
PRELOAD_PROGS += $(TEST_DIR)/prog_multi

$(TEST_DIR)/prog_ipc: tests/preload/prog_ipc.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(FAKE)/libcudart_static_fake.a -L$(FAKE) -lcuda -ldl -lpthread
PRELOAD_PROGS += $(TEST_DIR)/prog_ipc

$(TEST_DIR)/prog_misc_shared: tests/preload/prog_misc.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	$(CC) $(TEST_CFLAGS) -o $@ $< -L$(FAKE) -lcudart -lcuda -ldl -lpthread
PRELOAD_PROGS += $(TEST_DIR)/prog_misc_shared

$(TEST_DIR)/libattrib_a.so: tests/preload/libattrib_a.c $(FAKECUDA_LINKS)
	$(CC) $(TEST_CFLAGS) -fPIC -shared -o $@ $< $(SHARED_FAKE)
$(TEST_DIR)/libattrib_b.so: tests/preload/libattrib_b.c $(FAKECUDA_LINKS)
	$(CC) $(TEST_CFLAGS) -fPIC -shared -o $@ $< $(DRIVER_FAKE)
$(TEST_DIR)/prog_attrib: tests/preload/prog_attrib.c $(TEST_DIR)/libattrib_a.so $(TEST_DIR)/libattrib_b.so $(PRELOAD_DEPS)
	$(CC) $(TEST_CFLAGS) -o $@ $< -L$(TEST_DIR) -lattrib_a -lattrib_b $(SHARED_FAKE) -lcuda
PRELOAD_PROGS += $(TEST_DIR)/prog_attrib

# The workers `vramguard top` watches in tests/python/test_top.py.
$(TEST_DIR)/top_worker: tests/cli/top_worker.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(STATIC_FAKE)
PRELOAD_PROGS += $(TEST_DIR)/top_worker

# Last, so that every PRELOAD_PROGS += above is in its prerequisites.
# fakecuda-smoke-quiet: the fakes' own smoke (tests/fakecuda), so a fake that drifted from its checks fails here.
check: $(SHIM) fakecuda fakecuda-smoke-quiet $(PRELOAD_PROGS) $(DEMO_DIR)/demo_worker $(TEST_DIR)/check_vramguard
	VG_ROOT=$(CURDIR) VG_BUILD=$(CURDIR)/$(BUILD) VG_CUDA_H=$(CUDA_HOME)/include/cuda.h $(TEST_DIR)/check_vramguard

# ---- Hot-path regression tests (exact totals under stress, device switching,
# ---- stream capture): they pin what a per-thread device cache, learned
# ---- capture state and a sharded table must keep. Static fake cudart, plus
# ---- the driver where the program calls it directly.
$(TEST_DIR)/prog_stress: tests/preload/prog_stress.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(STATIC_FAKE)
$(TEST_DIR)/prog_ctx_switch: tests/preload/prog_ctx_switch.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(FAKE)/libcudart_static_fake.a -L$(FAKE) -lcuda -ldl -lpthread
$(TEST_DIR)/prog_ctx_switch_shared: tests/preload/prog_ctx_switch.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< -L$(FAKE) -lcudart -lcuda -ldl -lpthread
HOTPATH_PROGS := $(TEST_DIR)/prog_stress $(TEST_DIR)/prog_ctx_switch $(TEST_DIR)/prog_ctx_switch_shared
PRELOAD_PROGS += $(HOTPATH_PROGS)
# `check:` above expanded PRELOAD_PROGS when it was read: name them again.
check: $(HOTPATH_PROGS)
# ---- end of the hot-path regression tests

# ---- Issue 8, section 4: the remaining ways around reject. Imports of host
# ---- and managed memory (an exporter without the shim hands its shareable
# ---- handles over a socket) and __managed__ globals of modules and
# ---- libraries (the fake driver's text images). Driver API only.
$(TEST_DIR)/prog_imports $(TEST_DIR)/prog_managed_globals: $(TEST_DIR)/prog_%: tests/preload/prog_%.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(DRIVER_FAKE)
ISSUE8_REJECT_PROGS := $(TEST_DIR)/prog_imports $(TEST_DIR)/prog_managed_globals
PRELOAD_PROGS += $(ISSUE8_REJECT_PROGS)
# `check:` above expanded PRELOAD_PROGS when it was read: name them again.
check: $(ISSUE8_REJECT_PROGS)
# ---- end of issue 8, section 4

# ---- Issue 8, allowances: prog_allow, the program of the CLI's round trip
# ---- (warn -> vramguard suggest -> reject with the suggested --allow,
# ---- tests/preload/check_preload.c), and liballow_helper.so, the same source
# ---- built as a second calling module.
$(TEST_DIR)/liballow_helper.so: tests/preload/prog_allow.c $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -DALLOW_HELPER -fPIC -shared -o $@ $< $(DRIVER_FAKE)
$(TEST_DIR)/prog_allow: tests/preload/prog_allow.c $(TEST_DIR)/liballow_helper.so $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	$(CC) $(TEST_CFLAGS) -o $@ $< -L$(TEST_DIR) -Wl,-rpath,'$$ORIGIN' -lallow_helper $(DRIVER_FAKE)
PRELOAD_PROGS += $(TEST_DIR)/liballow_helper.so $(TEST_DIR)/prog_allow
check: $(TEST_DIR)/liballow_helper.so $(TEST_DIR)/prog_allow
# ---- end of the allowance round trip

# ---- VRAMGUARD_ALLOW rules (issue 8, section 1): a program and a library
# ---- that ask for host memory, so rules can name sizes and modules.
$(TEST_DIR)/libpinned_helper.so: tests/preload/libpinned_helper.c $(FAKECUDA_LINKS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -fPIC -shared -o $@ $< $(DRIVER_FAKE)
$(TEST_DIR)/prog_allow_rules: tests/preload/prog_allow_rules.c $(TEST_DIR)/libpinned_helper.so $(FAKECUDA_LINKS)
	$(CC) $(TEST_CFLAGS) -o $@ $< -L$(TEST_DIR) -lpinned_helper $(DRIVER_FAKE) -Wl,-rpath,$(abspath $(TEST_DIR))
ALLOW_PROGS := $(TEST_DIR)/libpinned_helper.so $(TEST_DIR)/prog_allow_rules
PRELOAD_PROGS += $(ALLOW_PROGS)
check: $(ALLOW_PROGS)
# ---- end of the VRAMGUARD_ALLOW programs

# ---- Issue 8, section 3: VRAM budgets (VRAMGUARD_LIMIT). prog_budget: sync,
# ---- purpose, VMM and stream-ordered allocations against budgets, the
# ---- budget OOM path without heap, VRAMGUARD_LIMIT_MEMINFO. Driver API only.
$(TEST_DIR)/prog_budget: tests/preload/prog_budget.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(DRIVER_FAKE)
PRELOAD_PROGS += $(TEST_DIR)/prog_budget
check: $(TEST_DIR)/prog_budget
# ---- end of the budget programs

# ---- Budgets per device (prog_budget_devices: two fake devices).
$(TEST_DIR)/prog_budget_devices: tests/preload/prog_budget_devices.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(DRIVER_FAKE)
PRELOAD_PROGS += $(TEST_DIR)/prog_budget_devices
check: $(TEST_DIR)/prog_budget_devices

# ---- NVML per device (prog_nvml: two fake devices, the fake NVML).
$(TEST_DIR)/prog_nvml: tests/preload/prog_nvml.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(DRIVER_FAKE)
PRELOAD_PROGS += $(TEST_DIR)/prog_nvml
check: $(TEST_DIR)/prog_nvml

# ---- Issue 9 items 5, 16, 8: bounded log and journal (prog_flood), the
# ---- journal's start line under racing threads (prog_first_race), the
# ---- shim's own allocations failing (libmalloc_fail.so over prog_leaky).
JOURNAL_PROGS := $(TEST_DIR)/prog_flood $(TEST_DIR)/prog_first_race $(TEST_DIR)/prog_leaky $(TEST_DIR)/libmalloc_fail.so
$(TEST_DIR)/prog_flood $(TEST_DIR)/prog_first_race $(TEST_DIR)/prog_leaky: $(TEST_DIR)/prog_%: tests/preload/prog_%.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(DRIVER_FAKE)
$(TEST_DIR)/libmalloc_fail.so: tests/preload/libmalloc_fail.c
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -fPIC -shared -o $@ $< -ldl
PRELOAD_PROGS += $(JOURNAL_PROGS)
check: $(JOURNAL_PROGS)
RUNNER_SRCS += tests/preload/check_outputs.c
$(TEST_DIR)/check_vramguard: tests/preload/check_outputs.c
# ---- end of issue 9 items 5, 16, 8

# ---- Issue 9, the intercept layer: unknown variants (prog_variants, fake
# ---- driver with FAKECUDA_FUTURE_VARIANTS=1), composition with another
# ---- interposer (prog_compose, libinterposer*.so), runtime scopes after
# ---- dlclose (prog_reload).
$(TEST_DIR)/prog_variants: tests/preload/prog_variants.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(DRIVER_FAKE)
$(TEST_DIR)/libinterposer.so: tests/preload/libinterposer.c
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -fPIC -shared -o $@ $< -ldl
$(TEST_DIR)/libinterposer_dlsym.so: tests/preload/libinterposer.c
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -DREPLACE_DLSYM -fPIC -shared -o $@ $< -ldl
$(TEST_DIR)/prog_compose: tests/preload/prog_compose.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS) $(TEST_DIR)/libcudauser.so
	$(CC) $(TEST_CFLAGS) -o $@ $< $(DRIVER_FAKE)
$(TEST_DIR)/libreload_a.so $(TEST_DIR)/libreload_b.so: tests/preload/libreload.c $(FAKECUDA_LINKS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -fPIC -shared -o $@ $< $(DRIVER_FAKE)
$(TEST_DIR)/prog_reload: tests/preload/prog_reload.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS) \
		$(TEST_DIR)/libcudauser12.so $(TEST_DIR)/libreload_a.so $(TEST_DIR)/libreload_b.so
	$(CC) $(TEST_CFLAGS) -o $@ $< $(DRIVER_FAKE)
INTERCEPT_PROGS := $(TEST_DIR)/prog_variants $(TEST_DIR)/libinterposer.so $(TEST_DIR)/libinterposer_dlsym.so \
	$(TEST_DIR)/prog_compose $(TEST_DIR)/prog_reload
PRELOAD_PROGS += $(INTERCEPT_PROGS)
check: $(INTERCEPT_PROGS)
# ---- end of the intercept-layer programs

# ---- Issue 9, accounting: contexts that end (prog_contexts: driver API,
# ---- then cudaDeviceReset through the runtime), sparse and deferred-mapping
# ---- arrays (prog_sparse), the protocol's edge cases (prog_edges: the fake
# ---- driver's callback hook, libmalloc_spy.so). Suite "accounting".
$(TEST_DIR)/prog_contexts: tests/preload/prog_contexts.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(FAKE)/libcudart_static_fake.a -L$(FAKE) -lcuda -ldl -lpthread
$(TEST_DIR)/prog_sparse $(TEST_DIR)/prog_edges: $(TEST_DIR)/prog_%: tests/preload/prog_%.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(DRIVER_FAKE)
ACCOUNTING_PROGS := $(TEST_DIR)/prog_contexts $(TEST_DIR)/prog_sparse $(TEST_DIR)/prog_edges
PRELOAD_PROGS += $(ACCOUNTING_PROGS)
check: $(ACCOUNTING_PROGS)
RUNNER_SRCS += tests/preload/check_accounting.c
$(TEST_DIR)/check_vramguard: tests/preload/check_accounting.c
# ---- end of the accounting programs

# ---- Issue 10, section 1: who allocated it. prog_who: allocations from
# ---- functions of their own through the static fake cudart; the demo
# ---- worker stripped of its symbols.
$(TEST_DIR)/prog_who: tests/preload/prog_who.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(STATIC_FAKE)
$(DEMO_DIR)/demo_worker_stripped: $(DEMO_DIR)/demo_worker
	strip -o $@ $<
WHO_PROGS := $(TEST_DIR)/prog_who $(DEMO_DIR)/demo_worker_stripped
PRELOAD_PROGS += $(WHO_PROGS)
RUNNER_SRCS += tests/preload/check_who.c
$(TEST_DIR)/check_vramguard: tests/preload/check_who.c
check: $(WHO_PROGS)
# ---- end of who allocated it

# ---- Issue 10 section 2: VRAMGUARD_TRACE's writer (prog_trace: known
# ---- workloads; tests/preload/check_trace.c, suite "trace").
$(TEST_DIR)/prog_trace: tests/preload/prog_trace.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(DRIVER_FAKE)
PRELOAD_PROGS += $(TEST_DIR)/prog_trace
check: $(TEST_DIR)/prog_trace
RUNNER_SRCS += tests/preload/check_trace.c
$(TEST_DIR)/check_vramguard: tests/preload/check_trace.c
# ---- end of the trace programs
