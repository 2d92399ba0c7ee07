# Fuzzing (README "Hardening"): a libFuzzer target per parser of outside
# input, and a mutation loop for the CLI's report and journal reader.
#
#   make fuzz          clang + libFuzzer (build-fuzz/): each target runs
#                      FUZZ_RUNS executions (default 10 million) from its
#                      corpus; new inputs land in build-fuzz/corpus/; then
#                      the CLI reader the same number of times
#   make fuzz-replay   every committed input once (the same clang targets:
#                      seconds; CI runs it)
#   make fuzz-merge    tests/fuzz/corpus/ becomes the fewest inputs of it and
#                      build-fuzz/corpus/ that cover the same edges
FUZZ_TARGETS := config rules allow budget http
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_RUNS ?= 10000000
FUZZ_JOBS ?= 1
FUZZ_DEPS := tests/fuzz/fuzz_common.h $(UNIT_ARCHIVE)

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_DEPS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -fsanitize=fuzzer -o $@ $< $(UNIT_ARCHIVE) -ldl -lpthread

.PHONY: fuzz fuzz-bins fuzz-replay fuzz-merge
fuzz-bins: $(addprefix $(FUZZ_DIR)/fuzz_,$(FUZZ_TARGETS))

FUZZ_MAKE = $(MAKE) BUILD=build-fuzz CC=clang SANITIZE=address,undefined,fuzzer-no-link fuzz-bins

fuzz:
	$(FUZZ_MAKE)
	@set -e; for t in $(FUZZ_TARGETS); do mkdir -p build-fuzz/corpus/$$t; \
	  echo "== fuzz_$$t: $(FUZZ_RUNS) executions"; \
	  build-fuzz/fuzz/fuzz_$$t -runs=$(FUZZ_RUNS) -print_final_stats=1 -max_len=4096 -artifact_prefix=build-fuzz/ \
	    build-fuzz/corpus/$$t tests/fuzz/corpus/$$t 2>&1 | grep -E '^(stat::number_of_executed_units|stat::new_units_added|#[0-9]+ +DONE)|ERROR|SUMMARY'; done
	$(PYTHON) tests/fuzz/fuzz_cli.py --runs $(FUZZ_RUNS) --jobs $(FUZZ_JOBS) --corpus tests/fuzz/corpus/cli

fuzz-merge:
	@set -e; for t in $(FUZZ_TARGETS); do rm -rf build-fuzz/merged/$$t; mkdir -p build-fuzz/merged/$$t; \
	  build-fuzz/fuzz/fuzz_$$t -merge=1 -use_counters=0 build-fuzz/merged/$$t tests/fuzz/corpus/$$t build-fuzz/corpus/$$t 2>&1 | \
	    grep -E 'MERGE-OUTER: [0-9]+ new files'; \
	  rm -f tests/fuzz/corpus/$$t/*; cp build-fuzz/merged/$$t/* tests/fuzz/corpus/$$t/; done
fuzz-replay:
	$(FUZZ_MAKE) >/dev/null
	@set -e; for t in $(FUZZ_TARGETS); do \
	  out=$$(build-fuzz/fuzz/fuzz_$$t -runs=0 -artifact_prefix=build-fuzz/ tests/fuzz/corpus/$$t 2>&1) || \
	    { echo "$$out" | tail -30; echo "fuzz_$$t: a committed input fails"; exit 1; }; \
	  echo "fuzz_$$t: $$(ls tests/fuzz/corpus/$$t | wc -l) inputs replayed"; done
	$(PYTHON) tests/fuzz/fuzz_cli.py --replay --corpus tests/fuzz/corpus/cli
