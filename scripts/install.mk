# `make install` and `make uninstall` (included from the Makefile, after SHIM).
#
#   make install   [PREFIX=/usr/local] [DESTDIR=] [BINDIR= LIBDIR= INCLUDEDIR= MANDIR=
#                  PKGCONFIGDIR= PYTHONDIR= DOCDIR=]
#   make uninstall (the same variables): removes exactly what install put there
#
# Installs (paths under $(DESTDIR)):
#   $(BINDIR)/vramguard                       the CLI's entry script (VERSION and LIBDIR filled in)
#   $(LIBDIR)/vramguard/vramguard_cli/*.py    the CLI's package (the entry script finds it
#                                             relative to itself, else in LIBDIR)
#   $(LIBDIR)/vramguard/libvramguard.so       the shim (the CLI finds it relative to itself)
#   $(INCLUDEDIR)/vramguard.h                 the purpose-tag header
#   $(PKGCONFIGDIR)/vramguard.pc              pkg-config: Cflags, Libs -ldl, variable shimlib
#   $(MANDIR)/man1/vramguard.1                the man page
#   $(PYTHONDIR)/vramguard.py                 the Python module
#   $(DOCDIR)/entry-points.md                 every allocation-related driver entry point,
#                                             wrapped or passed through (the log names it)
# PYTHONDIR defaults to $(PREFIX)/lib/python3/dist-packages: Debian's python3
# finds it there for PREFIX=/usr; for another prefix set PYTHONDIR (e.g. to
# the output of python3 -c 'import site; print(site.getsitepackages()[0])')
# or add the directory to PYTHONPATH.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
PYTHONDIR ?= $(PREFIX)/lib/python3/dist-packages
DOCDIR ?= $(PREFIX)/share/doc/vramguard
INSTALL ?= install

VRAMGUARD_VERSION := $(shell sed -n 's/^\#define VG_VERSION "\(.*\)"/\1/p' shim/model/model.h)

# Paths in the .pc file are written relative to ${prefix} where they can be,
# so that pkg-config --define-prefix can relocate a staged tree.
vg_pc_path = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))

CLI_PACKAGE := $(sort $(wildcard scripts/vramguard_cli/*.py))
CLI_PACKAGE_DIR = $(DESTDIR)$(LIBDIR)/vramguard/vramguard_cli

INSTALLED_FILES = \
	$(DESTDIR)$(BINDIR)/vramguard \
	$(addprefix $(CLI_PACKAGE_DIR)/,$(notdir $(CLI_PACKAGE))) \
	$(DESTDIR)$(LIBDIR)/vramguard/libvramguard.so \
	$(DESTDIR)$(INCLUDEDIR)/vramguard.h \
	$(DESTDIR)$(PKGCONFIGDIR)/vramguard.pc \
	$(DESTDIR)$(MANDIR)/man1/vramguard.1 \
	$(DESTDIR)$(PYTHONDIR)/vramguard.py \
	$(DESTDIR)$(DOCDIR)/entry-points.md

.PHONY: install uninstall
install: $(SHIM) scripts/vramguard $(CLI_PACKAGE) purpose_tags/vramguard.h purpose_tags/python/vramguard.py \
		docs/vramguard.1 docs/vramguard.pc.in docs/entry-points.md
	@test -n "$(VRAMGUARD_VERSION)" || { echo "install: no VG_VERSION in shim/model/model.h" >&2; exit 1; }
	@case "$(PREFIX)" in /*) ;; *) echo "install: PREFIX must be an absolute path" >&2; exit 1;; esac
	@mkdir -p $(BUILD)/install
	sed -e 's|^VERSION = ".*"|VERSION = "$(VRAMGUARD_VERSION)"|' \
	    -e 's|^INSTALLED_LIBRARY = ".*"|INSTALLED_LIBRARY = "$(LIBDIR)/vramguard/libvramguard.so"|' \
	    -e 's|^INSTALLED_PACKAGE = ".*"|INSTALLED_PACKAGE = "$(LIBDIR)/vramguard"|' \
	    scripts/vramguard > $(BUILD)/install/vramguard
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(call vg_pc_path,$(LIBDIR))|g' \
	    -e 's|@INCLUDEDIR@|$(call vg_pc_path,$(INCLUDEDIR))|g' -e 's|@VERSION@|$(VRAMGUARD_VERSION)|g' \
	    docs/vramguard.pc.in > $(BUILD)/install/vramguard.pc
	$(INSTALL) -D -m 0755 $(BUILD)/install/vramguard $(DESTDIR)$(BINDIR)/vramguard
	$(INSTALL) -d $(CLI_PACKAGE_DIR)
	$(INSTALL) -m 0644 $(CLI_PACKAGE) $(CLI_PACKAGE_DIR)/
	$(INSTALL) -D -m 0644 $(SHIM) $(DESTDIR)$(LIBDIR)/vramguard/libvramguard.so
	$(INSTALL) -D -m 0644 purpose_tags/vramguard.h $(DESTDIR)$(INCLUDEDIR)/vramguard.h
	$(INSTALL) -D -m 0644 $(BUILD)/install/vramguard.pc $(DESTDIR)$(PKGCONFIGDIR)/vramguard.pc
	$(INSTALL) -D -m 0644 docs/vramguard.1 $(DESTDIR)$(MANDIR)/man1/vramguard.1
	$(INSTALL) -D -m 0644 purpose_tags/python/vramguard.py $(DESTDIR)$(PYTHONDIR)/vramguard.py
	$(INSTALL) -D -m 0644 docs/entry-points.md $(DESTDIR)$(DOCDIR)/entry-points.md

uninstall:
	rm -f $(INSTALLED_FILES)
	rm -f $(DESTDIR)$(PYTHONDIR)/__pycache__/vramguard.*.pyc
	rm -f $(CLI_PACKAGE_DIR)/__pycache__/*.pyc
	rmdir $(CLI_PACKAGE_DIR)/__pycache__ 2>/dev/null || true
	rmdir $(CLI_PACKAGE_DIR) 2>/dev/null || true
	rmdir $(DESTDIR)$(LIBDIR)/vramguard 2>/dev/null || true
	rmdir $(DESTDIR)$(PYTHONDIR)/__pycache__ 2>/dev/null || true
	rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true
