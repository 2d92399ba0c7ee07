# Sanitizer builds (README "Hardening"). Included last by the Makefile.
#
#   make check-sanitize   the whole Check suite built with
#                         -fsanitize=address,undefined in build-san/, then the
#                         threaded programs with ThreadSanitizer in build-tsan/;
#                         fails on any finding (each is also left as a log file)
#   make SANITIZE=address,undefined BUILD=build-san ...   any target, instrumented
#
# Shim, fakes and test programs are all instrumented (gcc: the shared
# sanitizer runtimes). The shim's dlsym route stays uninstrumented
# (VG_NO_SANITIZE in shim/intercept/real.h): sanitizer runtimes call dlsym
# before their shadow memory exists.
ifneq ($(SANITIZE),)
SAN_FLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
SHIM_CFLAGS += $(SAN_FLAGS)
SHIM_LDFLAGS += $(SAN_FLAGS)
TEST_CFLAGS += $(SAN_FLAGS)
FAKECUDA_CFLAGS += $(SAN_FLAGS)
endif
ifneq ($(SANITIZE),)
# The C++ program has its own compiler line.
$(TEST_DIR)/prog_cxx: CXX := $(CXX) $(SAN_FLAGS)
endif
