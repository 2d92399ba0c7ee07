# tests/fakecuda/fakecuda.mk - GPU-less CUDA driver/runtime doubles.
#
# Included by the top-level Makefile, run from the repository root.  Expects
# BUILD (build), CUDA_HOME (/usr/local/cuda) and CC; defaults below only apply
# when the includer has not set them.  Every name defined here starts with
# FAKECUDA_ / fakecuda so it cannot collide with the includer's variables.
#
#   make fakecuda          the three artefacts in $(FAKECUDA_LIBS) (+ symlinks)
#   make fakecuda-smoke    build and run the self-checking smoke programs
#   make fakecuda-smoke-quiet  the same, one summary line unless it fails (`make check` runs it)

# Directory of this fragment, as the includer named it (before any other include).
FAKECUDA_SRC := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))

BUILD ?= build
CUDA_HOME ?= /usr/local/cuda

FAKECUDA_DIR := $(BUILD)/fakecuda
FAKECUDA_CFLAGS := -std=c11 -D_GNU_SOURCE -fPIC -Wall -Wextra -O2 -g -I$(CUDA_HOME)/include
# -Bsymbolic: the fakes bind to their own definitions, like the real libraries,
# so a preloaded shim exporting cuMemAlloc_v2/cudaMalloc is never handed back
# as "the real function" by cuGetProcAddress.
FAKECUDA_SOFLAGS := -shared -Wl,-Bsymbolic -Wl,-z,defs

FAKECUDA_LIBS := $(FAKECUDA_DIR)/libcuda.so.1 $(FAKECUDA_DIR)/libcudart.so.13 $(FAKECUDA_DIR)/libcudart_static_fake.a
FAKECUDA_LINKS := $(FAKECUDA_DIR)/libcuda.so $(FAKECUDA_DIR)/libcudart.so $(FAKECUDA_DIR)/v12/libcudart.so.12
FAKECUDA_SMOKE_BINS := $(FAKECUDA_DIR)/fake_smoke $(FAKECUDA_DIR)/fake_smoke_shared $(FAKECUDA_DIR)/fake_interposer.so

.PHONY: fakecuda fakecuda-smoke fakecuda-smoke-quiet fakecuda-clean

fakecuda: $(FAKECUDA_LIBS) $(FAKECUDA_LINKS)

$(FAKECUDA_DIR):
	mkdir -p $@

$(FAKECUDA_DIR)/libcuda.so.1: $(FAKECUDA_SRC)/fake_libcuda.c $(FAKECUDA_SRC)/fakecuda.mk | $(FAKECUDA_DIR)
	$(CC) $(FAKECUDA_CFLAGS) $(FAKECUDA_SOFLAGS) -Wl,-soname,libcuda.so.1 -o $@ $< -lpthread
	ln -sfn libcuda.so.1 $(FAKECUDA_DIR)/libcuda.so

$(FAKECUDA_DIR)/libcuda.so: $(FAKECUDA_DIR)/libcuda.so.1
	ln -sfn libcuda.so.1 $@

# Versioned like the real runtime (symbol version node libcudart.so.N), so a
# library linked against one major binds to that major even when another is
# global. libcudart.so.12 (in its own directory) is the second major.
$(FAKECUDA_DIR)/libcudart.so.13: $(FAKECUDA_SRC)/fake_cudart.c $(FAKECUDA_SRC)/fakecuda.mk | $(FAKECUDA_DIR)
	echo 'libcudart.so.13 { global: cuda*; fakecudart_*; local: *; };' > $(FAKECUDA_DIR)/cudart13.map
	$(CC) $(FAKECUDA_CFLAGS) $(FAKECUDA_SOFLAGS) -Wl,--version-script=$(FAKECUDA_DIR)/cudart13.map -Wl,-soname,libcudart.so.13 -o $@ $< -ldl -lpthread
	ln -sfn libcudart.so.13 $(FAKECUDA_DIR)/libcudart.so

$(FAKECUDA_DIR)/libcudart.so: $(FAKECUDA_DIR)/libcudart.so.13
	ln -sfn libcudart.so.13 $@

$(FAKECUDA_DIR)/v12/libcudart.so.12: $(FAKECUDA_SRC)/fake_cudart.c $(FAKECUDA_SRC)/fakecuda.mk | $(FAKECUDA_DIR)
	mkdir -p $(@D)
	echo 'libcudart.so.12 { global: cuda*; fakecudart_*; local: *; };' > $(@D)/cudart12.map
	$(CC) $(FAKECUDA_CFLAGS) -DFAKECUDART_MAJOR=12 $(FAKECUDA_SOFLAGS) -Wl,--version-script=$(@D)/cudart12.map -Wl,-soname,libcudart.so.12 -o $@ $< -ldl -lpthread
	ln -sfn libcudart.so.12 $(@D)/libcudart.so

$(FAKECUDA_DIR)/fake_cudart_static.o: $(FAKECUDA_SRC)/fake_cudart.c $(FAKECUDA_SRC)/fakecuda.mk | $(FAKECUDA_DIR)
	$(CC) $(FAKECUDA_CFLAGS) -fvisibility=hidden -DFAKECUDART_STATIC -c -o $@ $<

$(FAKECUDA_DIR)/libcudart_static_fake.a: $(FAKECUDA_DIR)/fake_cudart_static.o
	rm -f $@
	$(AR) rcs $@ $^

# Smoke programs: one source, linked once with the static fake cudart
# (-rdynamic, yet no cuda* may be exported) and once with the shared one.
# A stand-in for a preloaded shim (exports cuMemAlloc_v2, cuMemFree_v2, cuInit
# that abort if reached): proves the -Bsymbolic binding in fake_smoke's "preload" scenario.
$(FAKECUDA_DIR)/fake_interposer.so: $(FAKECUDA_SRC)/fake_interposer.c | $(FAKECUDA_DIR)
	$(CC) $(FAKECUDA_CFLAGS) -shared -o $@ $<

$(FAKECUDA_DIR)/fake_smoke: $(FAKECUDA_SRC)/fake_smoke.c $(FAKECUDA_DIR)/libcudart_static_fake.a | $(FAKECUDA_DIR)
	$(CC) $(FAKECUDA_CFLAGS) -rdynamic -o $@ $< $(FAKECUDA_DIR)/libcudart_static_fake.a -ldl -lpthread

$(FAKECUDA_DIR)/fake_smoke_shared: $(FAKECUDA_SRC)/fake_smoke.c $(FAKECUDA_DIR)/libcudart.so.13 $(FAKECUDA_DIR)/libcudart.so | $(FAKECUDA_DIR)
	$(CC) $(FAKECUDA_CFLAGS) -DFAKE_SMOKE_SHARED -o $@ $< -L$(FAKECUDA_DIR) -lcudart -ldl -lpthread

fakecuda-smoke: fakecuda $(FAKECUDA_SMOKE_BINS)
	@for s in cuMemAlloc cuMemAlloc_v2 cuGetProcAddress cuGetProcAddress_v2 cuMemAllocAsync_ptsz cuMemFreeAsync_ptsz \
	  cuMemAllocFromPoolAsync_ptsz cuStreamBeginCapture cuStreamBeginCapture_v2_ptsz cuGraphLaunch_ptsz cuStreamSynchronize_ptsz \
	  cuIpcOpenMemHandle cuIpcOpenMemHandle_v2 cuMemCreate cuMemMap cuArray3DCreate_v2 cuMemGetDefaultMemPool; do \
	  if nm -D --defined-only $(FAKECUDA_DIR)/libcuda.so.1 | awk '{print $$3}' | grep -qx "$$s"; then \
	    echo "PASS nm: libcuda.so.1 exports $$s"; else echo "FAIL nm: libcuda.so.1 lacks $$s"; exit 1; fi; done
	@if nm -D --defined-only $(FAKECUDA_DIR)/fake_smoke | awk '{print $$3}' | grep '^cuda'; then \
	  echo "FAIL nm: static-cudart smoke exports cuda* symbols"; exit 1; \
	else echo "PASS nm: static-cudart smoke (-rdynamic) exports no cuda* symbol"; fi
	@if readelf -rW $(FAKECUDA_DIR)/libcuda.so.1 $(FAKECUDA_DIR)/libcudart.so.13 | awk '{print $$5}' | grep -E '^cu'; then \
	  echo "FAIL readelf: a fake resolves one of its own cu* symbols through a relocation (not -Bsymbolic)"; exit 1; \
	else echo "PASS readelf: no relocation against cu*/cuda* symbols in the fakes (-Bsymbolic)"; fi
	LD_LIBRARY_PATH=$(FAKECUDA_DIR) $(FAKECUDA_DIR)/fake_smoke
	LD_LIBRARY_PATH=$(FAKECUDA_DIR) $(FAKECUDA_DIR)/fake_smoke_shared

# For `make check`: the smoke's few thousand PASS lines go to a log, shown
# whole only when something failed; the summary sums the scenarios' counts.
# It runs again only when the fakes or the smoke changed (smoke.ok): `make
# check-sanitize` calls `make check` once per suite.
fakecuda-smoke-quiet: $(FAKECUDA_DIR)/smoke.ok
$(FAKECUDA_DIR)/smoke.ok: $(FAKECUDA_LIBS) $(FAKECUDA_SMOKE_BINS)
	@rm -f $@
	@if $(MAKE) --no-print-directory fakecuda-smoke > $(FAKECUDA_DIR)/smoke.log 2>&1; then \
	  awk '/^PASS [a-z-]+\/[a-z0-9]+: [0-9]+ passed, 0 failed$$/ { n += $$(NF-3); s++ } \
	    END { printf "PASS fakecuda-smoke: %d checks in %d scenario runs\n", n, s }' $(FAKECUDA_DIR)/smoke.log; \
	  touch $@; \
	else cat $(FAKECUDA_DIR)/smoke.log; echo "FAIL fakecuda-smoke (log: $(FAKECUDA_DIR)/smoke.log)"; exit 1; fi

fakecuda-clean:
	rm -rf $(FAKECUDA_DIR)
