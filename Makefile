# vramguard: `make` builds build/libvramguard.so; `make check` runs the tests
# against the fake CUDA driver; `make demo`; `make gpu-test` on a GPU machine.
CUDA_HOME ?= /usr/local/cuda
CC ?= gcc
BUILD := build
PYTHON ?= python3

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
# shim/ is three layers (README "Layout"): intercept -> model <- output.
SHIM_INCLUDES := -Ishim -Ishim/intercept -Ishim/model -Ishim/output -Ipurpose_tags
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g -fPIC -I$(CUDA_HOME)/include
# x86-64: built for Intel CET (IBT, shadow stack) so that a process whose
# every object is marked keeps CET with the shim preloaded (the linker marks
# the .so only when every object is, the trampoline included).
CET_FLAGS := $(if $(filter x86_64,$(shell uname -m)),-fcf-protection=full)
# -fno-tree-slp-vectorize: the table's hot operations (compiled into the
# wrappers, shim/model/table_hot.h) update counters two at a time; GCC's SLP
# vectorizer would pack such pairs into SSE operations dearer than two adds.
SHIM_CFLAGS := $(BASE_CFLAGS) $(SHIM_INCLUDES) $(WARN) $(CET_FLAGS) -fvisibility=hidden -pthread -fno-tree-slp-vectorize
# -Bsymbolic-functions: the shim's own references to its wrappers bind to
# itself; -z now: no lazy binding inside someone else's process.
SHIM_LDFLAGS := -shared -pthread -Wl,-Bsymbolic-functions -Wl,-z,now -Wl,-z,defs -Wl,--no-undefined
SHIM_LIBS := -ldl

SHIM_SRCS := $(wildcard shim/*/*.c)
SHIM_OBJS := $(patsubst shim/%.c,$(BUILD)/shim/%.o,$(SHIM_SRCS)) $(BUILD)/shim/intercept/dlsym_trampoline.o
SHIM := $(BUILD)/libvramguard.so

.PHONY: all check demo gpu-test bench clean install-check-deps
all: $(SHIM)

$(BUILD)/shim/%.o: shim/%.c $(wildcard shim/*/*.h shim/*.def) purpose_tags/vramguard.h
	@mkdir -p $(dir $@)
	$(CC) $(SHIM_CFLAGS) -c $< -o $@

$(BUILD)/shim/intercept/dlsym_trampoline.o: shim/intercept/dlsym_trampoline.S
	@mkdir -p $(dir $@)
	$(CC) $(CET_FLAGS) -c $< -o $@

$(SHIM): $(SHIM_OBJS)
	$(CC) $(SHIM_LDFLAGS) -o $@ $^ $(SHIM_LIBS)

include tests/fakecuda/fakecuda.mk
include tests/tests.mk
include tests/endpoint/endpoint.mk
include tests/gpu/gpu.mk
include scripts/install.mk
include scripts/layers.mk

clean:
	rm -rf $(BUILD)
include tests/hardening/hardening.mk
include tests/fuzz/fuzz.mk
include tests/hardening/sanitize.mk
