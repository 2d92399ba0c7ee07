# Hardening tests (README "Hardening"): fork safety, fault injection and
# stress programs, and their Check suite (tests/hardening/check_hardening.c,
# make_hardening_suite). Included by the Makefile after tests/tests.mk.
HARDENING_PROGS := $(addprefix $(TEST_DIR)/, prog_forks prog_faults prog_vmm_threads prog_events)

$(TEST_DIR)/prog_forks: $(TEST_DIR)/prog_%: tests/hardening/prog_%.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(FAKE)/libcudart_static_fake.a -L$(FAKE) -lcuda -ldl -lpthread

$(TEST_DIR)/prog_faults $(TEST_DIR)/prog_vmm_threads $(TEST_DIR)/prog_events: $(TEST_DIR)/prog_%: tests/hardening/prog_%.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -Itests/preload -o $@ $< $(DRIVER_FAKE)

PRELOAD_PROGS += $(HARDENING_PROGS)
RUNNER_SRCS += tests/hardening/check_hardening.c
$(TEST_DIR)/check_vramguard: tests/hardening/check_hardening.c
check: $(HARDENING_PROGS)

# make stress: the full sizes (tests/hardening/stress.sh; a few minutes on
# 2 cores). make check runs them scaled down (check_hardening.c).
.PHONY: stress
stress: $(SHIM) fakecuda $(HARDENING_PROGS) $(TEST_DIR)/prog_stress
	tests/hardening/stress.sh $(CURDIR)/$(BUILD)
