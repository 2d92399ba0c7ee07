# Sanitizer builds (README "Hardening"). Included last by the Makefile.
#
#   make check-sanitize   the whole Check suite built with
#                         -fsanitize=address,undefined in build-san/ (shim,
#                         fakes, test programs, runner), then the threaded
#                         programs built with -fsanitize=thread in build-tsan/
#                         run under the shim; fails on any finding. Findings
#                         are logged to build-san/san-logs/ (one file each)
#   make check-sanitize SAN_SUITES="table hardening"   only those Check suites
#   make SANITIZE=address,undefined BUILD=build-san TARGET   any target, instrumented
#
# gcc's shared sanitizer runtimes. The shim's dlsym route stays
# uninstrumented (VG_NO_SANITIZE, shim/intercept/real.h): sanitizer runtimes
# call dlsym before their shadow memory exists. A preloaded instrumented
# shim precedes libasan in the library list, which ASan would refuse
# (verify_asan_link_order=0): nothing the shim exports is intercepted.
# allocator_may_return_null=1: tests of a host out-of-memory ask for more
# than ASan's allocator serves, and expect NULL, as from glibc.
ifneq ($(SANITIZE),)
SAN_FLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
SHIM_CFLAGS += $(SAN_FLAGS)
SHIM_LDFLAGS += $(SAN_FLAGS)
TEST_CFLAGS += $(SAN_FLAGS)
FAKECUDA_CFLAGS += $(SAN_FLAGS)
# The C++ program has its own compiler line.
$(TEST_DIR)/prog_cxx: CXX := $(CXX) $(SAN_FLAGS)
# Other interposers stand in for third-party libraries, not for code under
# test: left uninstrumented (one replaces dlsym, which a sanitizer runtime
# calls before its shadow memory exists).
$(TEST_DIR)/libinterposer.so $(TEST_DIR)/libinterposer_dlsym.so: TEST_CFLAGS := $(filter-out $(SAN_FLAGS),$(TEST_CFLAGS))
# The static fake cudart too: ASan's per-object constructor (.text.startup)
# would put the runtime's object ahead of the program's code, and the shim
# tells the static runtime's frames by their object file.
$(FAKECUDA_DIR)/fake_cudart_static.o: FAKECUDA_CFLAGS := $(filter-out $(SAN_FLAGS),$(FAKECUDA_CFLAGS))
endif

SAN_LOGS := $(CURDIR)/build-san/san-logs
SAN_ENV := VG_SANITIZE=1 \
	ASAN_OPTIONS=verify_asan_link_order=0:allocator_may_return_null=1:log_path=$(SAN_LOGS)/asan:log_exe_name=1:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1:log_path=$(SAN_LOGS)/ubsan:log_exe_name=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/hardening/lsan.supp:print_suppressions=0 \
	TSAN_OPTIONS=log_path=$(SAN_LOGS)/tsan:log_exe_name=1
TSAN_PROGS := prog_threads prog_stress prog_vmm_threads prog_forks
TSAN_RUN := LD_PRELOAD=$(CURDIR)/build-tsan/libvramguard.so LD_LIBRARY_PATH=build-tsan/fakecuda

# SAN_SUITES="table hardening ...": only these Check suites (default: all).
SAN_SUITES ?=

.PHONY: check-sanitize
check-sanitize:
	rm -rf $(SAN_LOGS) && mkdir -p $(SAN_LOGS)
	@set -e; for suite in $(or $(SAN_SUITES),all); do \
	  [ $$suite = all ] || export CK_RUN_SUITE=$$suite; \
	  $(SAN_ENV) $(MAKE) BUILD=build-san SANITIZE=address,undefined check; done
	$(MAKE) BUILD=build-tsan SANITIZE=thread build-tsan/libvramguard.so fakecuda $(addprefix build-tsan/tests/,$(TSAN_PROGS))
	$(SAN_ENV) $(TSAN_RUN) build-tsan/tests/prog_threads >/dev/null 2>&1
	$(SAN_ENV) $(TSAN_RUN) FAKECUDA_VRAM_BYTES=1099511627776 \
	  VRAMGUARD_LISTEN=unix:$(CURDIR)/build-tsan/stress.sock build-tsan/tests/prog_stress >/dev/null 2>&1
	$(SAN_ENV) $(TSAN_RUN) FAKECUDA_VRAM_BYTES=1099511627776 build-tsan/tests/prog_vmm_threads 16 5000 >/dev/null 2>&1
	$(SAN_ENV) $(TSAN_RUN) VRAMGUARD_LOG=/dev/null build-tsan/tests/prog_forks 10 4 60 >/dev/null 2>&1
	@found=$$(grep -l -E 'ERROR: |runtime error|CHECK failed|WARNING: ThreadSanitizer' $(SAN_LOGS)/* 2>/dev/null); \
	if [ -n "$$found" ]; then echo "check-sanitize: findings in:"; echo "$$found"; exit 1; fi; \
	echo "check-sanitize: no sanitizer finding (ASan+UBSan: Check suites $(or $(SAN_SUITES),all); TSan: $(TSAN_PROGS))"
