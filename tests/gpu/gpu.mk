# `make gpu-test`: the same preload programs built against the REAL CUDA
# (static cudart by default as nvcc links it, -cudart shared, and the driver
# API), then run by tests/gpu/run_gpu_tests.sh on a machine with a GPU. No
# Check there. `make gpu-build` only builds (it needs nvcc, not a GPU).
NVCC ?= $(CUDA_HOME)/bin/nvcc
GPU_DIR := $(BUILD)/gpu
GPU_CFLAGS := -std=c11 -D_GNU_SOURCE -O1 -g -Wall -I$(CUDA_HOME)/include -Ipurpose_tags -Itests/preload
GPU_STATIC := prog_runtime_static prog_threads prog_oom prog_fork prog_stress
GPU_STATIC_DRIVER := prog_pools prog_misc prog_ipc prog_contexts
GPU_BINS := $(addprefix $(GPU_DIR)/, $(GPU_STATIC) prog_runtime_shared prog_driver prog_legacy prog_rtld_local \
	prog_dlsym_next libcudauser.so libnext_a.so libnext_b.so libnext_c.so libnext_d.so lib/libcudart.so.13 \
	$(GPU_STATIC_DRIVER) prog_vmm prog_multi prog_pools_shared prog_misc_shared prog_sparse)

$(GPU_DIR)/%.o: tests/preload/%.c $(PRELOAD_DEPS)
	@mkdir -p $(@D)
	$(CC) $(GPU_CFLAGS) -c -o $@ $<
$(GPU_DIR)/prog_runtime_static: $(GPU_DIR)/prog_runtime.o
	$(NVCC) -o $@ $<                      # nvcc's default: static cudart
$(GPU_DIR)/prog_threads $(GPU_DIR)/prog_oom $(GPU_DIR)/prog_fork $(GPU_DIR)/prog_stress: $(GPU_DIR)/prog_%: $(GPU_DIR)/prog_%.o
	$(NVCC) -o $@ $<
$(GPU_DIR)/prog_runtime_shared: $(GPU_DIR)/prog_runtime.o
	$(NVCC) -cudart shared -o $@ $<
$(addprefix $(GPU_DIR)/,$(GPU_STATIC_DRIVER)): $(GPU_DIR)/prog_%: $(GPU_DIR)/prog_%.o
	$(NVCC) -o $@ $< -L$(CUDA_HOME)/lib64/stubs -lcuda      # static cudart + the driver API
$(GPU_DIR)/prog_pools_shared $(GPU_DIR)/prog_misc_shared: $(GPU_DIR)/prog_%_shared: $(GPU_DIR)/prog_%.o
	$(NVCC) -cudart shared -o $@ $< -L$(CUDA_HOME)/lib64/stubs -lcuda
$(GPU_DIR)/prog_driver $(GPU_DIR)/prog_legacy $(GPU_DIR)/prog_vmm $(GPU_DIR)/prog_multi $(GPU_DIR)/prog_sparse: $(GPU_DIR)/prog_%: $(GPU_DIR)/prog_%.o
	$(CC) -o $@ $< -L$(CUDA_HOME)/lib64/stubs -lcuda -ldl
$(GPU_DIR)/libcudauser.so: tests/preload/libcudauser.c
	@mkdir -p $(@D)
	$(CC) $(GPU_CFLAGS) -fPIC -shared -o $@ $< -L$(CUDA_HOME)/lib64 -lcudart
$(GPU_DIR)/prog_rtld_local: $(GPU_DIR)/prog_rtld_local.o
	$(CC) -o $@ $< -ldl
$(GPU_DIR)/libnext_%.so: tests/preload/libnext_%.c
	@mkdir -p $(@D)
	$(CC) $(GPU_CFLAGS) -fPIC -shared -o $@ $< -ldl
$(GPU_DIR)/libnext_c.so: tests/preload/libnext_c.c $(GPU_DIR)/libnext_d.so
	$(CC) $(GPU_CFLAGS) -fPIC -shared -o $@ $< -L$(GPU_DIR) -Wl,--no-as-needed -lnext_d -ldl
$(GPU_DIR)/prog_dlsym_next: $(GPU_DIR)/prog_dlsym_next.o $(GPU_DIR)/libnext_a.so $(GPU_DIR)/libnext_b.so
	$(CC) -o $@ $< -L$(GPU_DIR) -Wl,--no-as-needed -lnext_b -lnext_a -ldl
# The shared-cudart programs find this copy, so the GPU machine needs only a driver.
$(GPU_DIR)/lib/libcudart.so.13:
	@mkdir -p $(@D)
	cp -L $(CUDA_HOME)/lib64/libcudart.so.13 $@

.PHONY: gpu-build gpu-test
gpu-build: $(SHIM) $(GPU_BINS)
gpu-test: gpu-build
	tests/gpu/run_gpu_tests.sh $(BUILD)
# make gpu-bench: the shim's cost per allocation on the real GPU (one case per
# process, with and without the shim; tests/gpu/gpu_bench.sh). Static cudart.
$(GPU_DIR)/gpu_bench: tests/gpu/gpu_bench.c
	@mkdir -p $(@D)
	$(CC) $(GPU_CFLAGS) -Wextra -O2 -c -o $(GPU_DIR)/gpu_bench.o $<
	$(NVCC) -o $@ $(GPU_DIR)/gpu_bench.o
gpu-build: $(GPU_DIR)/gpu_bench
.PHONY: gpu-bench
gpu-bench: $(SHIM) $(GPU_DIR)/gpu_bench
	tests/gpu/gpu_bench.sh $(BUILD)
$(GPU_DIR)/prog_cxx: tests/preload/prog_cxx.cpp purpose_tags/vramguard.h
	@mkdir -p $(@D)
	$(NVCC) -std=c++17 -Ipurpose_tags -o $@ $<
gpu-build: $(GPU_DIR)/prog_cxx
# Issue 8, section 4: a __managed__ global (static cudart, as nvcc links it).
$(GPU_DIR)/managed_global: tests/gpu/managed_global.cu
	@mkdir -p $(@D)
	$(NVCC) -o $@ $<
gpu-build: $(GPU_DIR)/managed_global
