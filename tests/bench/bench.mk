# `make bench`: the shim's cost on the fake driver, with and without it, in
# one run (tests/bench/bench.sh prints the tables; about 4 minutes on 2 cores).
# Included by tests/tests.mk (needs TEST_DIR, FAKE, TEST_CFLAGS, STATIC_FAKE).
#
#   make bench                              against build/libvramguard.so
#   make bench BENCH_SHIM=/path/to/lib.so   against another build of the shim
#   make bench-build                        only the programs
#
# bench.sh's sizes can be changed through the environment (see its header).

BENCH_SHIM ?= $(SHIM)
BENCH_BINS := $(addprefix $(TEST_DIR)/, bench_alloc bench_live bench_render)

$(BENCH_BINS): $(TEST_DIR)/bench_%: tests/bench/bench_%.c tests/bench/bench_common.h purpose_tags/vramguard.h \
		$(FAKECUDA_LIBS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -O2 -o $@ $< $(STATIC_FAKE)

.PHONY: bench bench-build
bench-build: fakecuda $(BENCH_BINS)
bench: $(BENCH_SHIM) bench-build
	LD_LIBRARY_PATH=$(FAKE) tests/bench/bench.sh $(BUILD) $(BENCH_SHIM)
