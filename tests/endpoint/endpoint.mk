# Endpoint tests (issue 4): prog_serve, the worker the endpoint suite scrapes,
# and the suite itself (tests/endpoint/check_endpoint.c, make_endpoint_suite).
# Include after tests/tests.mk or before its `check` rule: the explicit
# prerequisite lines below work in either place. The suite uses curl, python3,
# and promtool/prometheus (Debian package `prometheus`); with
# VG_REQUIRE_PROMETHEUS=1 their absence fails the suite instead of skipping.
$(TEST_DIR)/prog_serve: tests/endpoint/prog_serve.c $(PRELOAD_DEPS) $(FAKECUDA_LIBS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(STATIC_FAKE)
PRELOAD_PROGS += $(TEST_DIR)/prog_serve
RUNNER_SRCS += tests/endpoint/check_endpoint.c tests/endpoint/load.c
$(TEST_DIR)/check_vramguard: tests/endpoint/check_endpoint.c tests/endpoint/load.c tests/endpoint/load.h
check: $(TEST_DIR)/prog_serve
# A stand-in NVML (libnvidia-ml.so.1) for the endpoint's NVML figures.
$(TEST_DIR)/nvml/libnvidia-ml.so.1: tests/endpoint/fake_nvml.c
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -fPIC -shared -Wl,-soname,libnvidia-ml.so.1 -o $@ $<
PRELOAD_PROGS += $(TEST_DIR)/nvml/libnvidia-ml.so.1
check: $(TEST_DIR)/nvml/libnvidia-ml.so.1

# make bench-endpoint: /health latency under slowloris and the connection
# cap, requests per second (tests/endpoint/bench_endpoint.sh prints them).
$(TEST_DIR)/endpoint_load: tests/endpoint/endpoint_load.c tests/endpoint/load.c tests/endpoint/load.h
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -O2 -o $@ tests/endpoint/endpoint_load.c tests/endpoint/load.c
.PHONY: bench-endpoint
bench-endpoint: $(SHIM) fakecuda $(TEST_DIR)/prog_serve $(TEST_DIR)/endpoint_load
	LD_LIBRARY_PATH=$(FAKE) tests/endpoint/bench_endpoint.sh $(BUILD) $(SHIM)
