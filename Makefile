# SPDX-License-Identifier: GPL-2.0-only
# maglevd: GNU Make build. `make help` lists the targets; `V=1` shows the commands.

BUILD     ?= build
CLANG     ?= clang
V         ?= 0
FUZZ_SECONDS ?= 20

# `make install` places; BPFDIR is also compiled into the binaries (src/io/bpfobj.c).
PREFIX    ?= /usr/local
SBINDIR   ?= $(PREFIX)/sbin
BPFDIR    ?= $(PREFIX)/lib/maglevd/bpf
SYSCONFDIR ?= /etc
UNITDIR   ?= $(PREFIX)/lib/systemd/system
MANDIR    ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
INSTALL   ?= install

ifeq ($(V),1)
Q :=
else
Q := @
endif

PKGS      := libxdp libbpf yaml-0.1 libxxhash liburcu liburcu-cds libmnl libmicrohttpd jansson libpcap \
             libsystemd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)
# Only maglevctl's top.c draws on a terminal: only it sees curses, only maglevctl links it.
CURSES_CFLAGS := $(shell pkg-config --cflags ncursesw 2>/dev/null)
CURSES_LIBS := $(shell pkg-config --libs ncursesw 2>/dev/null)
ifeq ($(PKG_LIBS),)
ifeq ($(filter help clean format,$(MAKECMDGOALS)),)
$(warning pkg-config knows not all of: $(PKGS); run scripts/install-deps.sh (as root))
endif
endif
ifeq ($(CURSES_LIBS),)
ifeq ($(filter help clean format,$(MAKECMDGOALS)),)
$(warning pkg-config does not know ncursesw; run scripts/install-deps.sh (as root))
endif
endif

OPT       ?= -O2 -g
# The caller's CFLAGS (dpkg-buildflags' hardening, for one) reach every object, also base and core.
USER_CFLAGS := $(CFLAGS)
WARN      := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
# BASE_CFLAGS is all that base and core are compiled with (plus xxhash's flags for core): the pure
# layers see no library's headers. The rest also sees every library, bpf/ (the BPF programs'
# kernel/user headers, as "bpf/xdp_vip.h") and generated headers.
BASE_CFLAGS = -std=gnu11 $(OPT) $(WARN) -MMD -MP -D_GNU_SOURCE -pthread -Isrc $(SAN_CFLAGS) \
              $(USER_CFLAGS)
CORE_CFLAGS = $(BASE_CFLAGS) $(shell pkg-config --cflags libxxhash 2>/dev/null)
CFLAGS    = $(BASE_CFLAGS) -I. -I$(BUILD)/gen $(PKG_CFLAGS)
LDLIBS    += $(PKG_LIBS) -lm -pthread

# SAN=1: AddressSanitizer + UndefinedBehaviorSanitizer build in build-san/.
ifeq ($(SAN),1)
BUILD     := build-san
OPT       := -O1 -g -fno-omit-frame-pointer
SAN_CFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS   += -fsanitize=address,undefined
endif

# FUZZ=1: clang + libFuzzer instrumentation in build-fuzz/ (use `make fuzz`).
ifeq ($(FUZZ),1)
BUILD     := build-fuzz
CC        := $(CLANG)
OPT       := -O1 -g -fno-omit-frame-pointer
SAN_CFLAGS := -fsanitize=fuzzer-no-link,address,undefined -DMAGLEV_FUZZ
LDFLAGS   += -fsanitize=address,undefined
endif

# One archive per layer, and one per program without its main() (for the tests). A program links
# its own objects and the layers under it, each archive before those it uses.
objs_of    = $(patsubst %.c,$(BUILD)/%.o,$(filter-out %/main.c,$(wildcard src/$(1)/*.c)))
BASE_OBJS  := $(call objs_of,base)
CORE_OBJS  := $(call objs_of,core)
IO_OBJS    := $(call objs_of,io)
CONTROL_OBJS := $(call objs_of,control)
MAGLEVD_OBJS := $(call objs_of,maglevd)
MAGLEVCTL_OBJS := $(call objs_of,maglevctl)
LIB_BASE   := $(BUILD)/libbase.a
LIB_CORE   := $(BUILD)/libcore.a
LIB_IO     := $(BUILD)/libio.a
LIB_CONTROL := $(BUILD)/libcontrol.a
LIB_MAGLEVD := $(BUILD)/libmaglevd.a
LIB_MAGLEVCTL := $(BUILD)/libmaglevctl.a
LAYER_LIBS := $(LIB_IO) $(LIB_CONTROL) $(LIB_CORE) $(LIB_BASE)
ALL_LIBS   := $(LIB_MAGLEVD) $(LIB_MAGLEVCTL) $(LAYER_LIBS)
BINS      := $(BUILD)/maglevd $(BUILD)/maglevctl
TESTS     := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
BENCHES   := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/bench_*.c))
FUZZERS   := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
BPF_OBJS  := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(wildcard bpf/*.bpf.c))
BPF_INSTALL := $(BUILD)/bpf/xdp_vip.bpf.o $(BUILD)/bpf/xdp_fwd.bpf.o $(BUILD)/bpf/xdp_decap.bpf.o \
               $(BUILD)/bpf/hc_tunnel.bpf.o # what the binaries load
BPFOBJ_DIR_H := $(BUILD)/gen/bpfobj_dir.h
MAN_PAGES := docs/man/maglevd.8 docs/man/maglevctl.8 docs/man/maglevd.yaml.5
BASH_COMPLETION := dist/bash-completion/maglevctl
# Every object, for the header dependencies that -MMD writes next to it (%.d).
ALL_OBJS  := $(BASE_OBJS) $(CORE_OBJS) $(IO_OBJS) $(CONTROL_OBJS) $(MAGLEVD_OBJS) \
             $(MAGLEVCTL_OBJS) $(BUILD)/src/maglevd/main.o $(BUILD)/src/maglevctl/main.o \
             $(TESTS:$(BUILD)/tests/%=$(BUILD)/tests/unit/%.o) $(BENCHES:%=%.o) \
             $(FUZZERS:$(BUILD)/fuzz/%=$(BUILD)/tests/fuzz/%.o) $(BPF_OBJS)
BPF_CFLAGS := -O2 -g -target bpf -Wall -Werror -Ibpf
# <linux/bpf.h> needs <asm/types.h>, which Debian keeps under the multiarch include directory.
BPF_CFLAGS += -I/usr/include/$(shell $(CC) -dumpmachine 2>/dev/null)

.PHONY: all programs help check check-layers format-check check-unit check-kernel check-san check-fuzz \
        check-e2e bench demo fuzz fuzzers install uninstall check-install check-man check-package \
        package clean format FORCE
.DEFAULT_GOAL := all

all: $(BINS) $(BPF_OBJS) $(TESTS) $(BENCHES)

# What is installed, and nothing of the tests (the Debian package builds this).
programs: $(BINS) $(BPF_INSTALL)

help:
	@echo 'maglevd make targets:'
	@echo '  all         build maglevd, maglevctl, the XDP programs, unit tests and benchmarks (default)'
	@echo '  programs    only what install installs: maglevd, maglevctl, the XDP programs'
	@echo '  check       everything: layers, format, unit, BPF tests on Debian'"'"'s kernel, unit under'
	@echo '              ASan+UBSan, fuzzers (bounded), man pages, install, Debian package,'
	@echo '              end-to-end (root)'
	@echo '  check-layers  every #include against the layering (scripts/check-layers.sh)'
	@echo '  check-unit  unit tests (cmocka)'
	@echo '  check-kernel  the BPF programs'"'"' unit tests in a VM on Debian 12'"'"'s kernel (qemu;'
	@echo '              KERNEL=linux-image-... for another; scripts/check-kernel.sh)'
	@echo '  check-san   unit tests built with SAN=1 (AddressSanitizer + UBSan)'
	@echo '  check-fuzz  each libFuzzer harness for FUZZ_SECONDS (default 20) seconds'
	@echo '  check-e2e   end-to-end tests in network namespaces (root)'
	@echo '  bench       benchmarks, printed as tables'
	@echo '  demo        namespace topology, traffic through a VIP, results printed (root)'
	@echo '  fuzz        build the libFuzzer harnesses in build-fuzz/ (clang)'
	@echo '  install     maglevd, maglevctl to $$(SBINDIR); BPF objects to $$(BPFDIR); the example'
	@echo '              config to $$(SYSCONFDIR)/maglevd/maglevd.yaml.example; dist/maglevd.service'
	@echo '              to $$(UNITDIR); man pages to $$(MANDIR); bash completion to $$(BASHCOMPDIR)'
	@echo '  uninstall   remove what install put there (not /etc/maglevd/maglevd.yaml)'
	@echo '  check-install  install into a scratch DESTDIR and PREFIX and check the result'
	@echo '  check-man   man pages lint clean and name every option, command and config key'
	@echo '  package     the Debian package (dpkg-buildpackage -us -uc -b), into ..'
	@echo '  check-package  build the package, lintian, install it in a fresh debootstrap root'
	@echo '              and run the installed programs and the demo there (root)'
	@echo '  format      clang-format every C file in place (not the generated fixtures)'
	@echo '  format-check  fail if a C file differs from what clang-format makes of it'
	@echo '  clean       remove build outputs'
	@echo 'variables: V=1 (show commands), SAN=1 (sanitizers), BUILD=dir, CC=compiler,'
	@echo '  FUZZ_SECONDS=20, PREFIX=$(PREFIX), DESTDIR= (staging root for install),'
	@echo '  SBINDIR=$(SBINDIR), BPFDIR=$(BPFDIR), SYSCONFDIR=$(SYSCONFDIR),'
	@echo '  UNITDIR=$(UNITDIR), MANDIR=$(MANDIR), BASHCOMPDIR=$(BASHCOMPDIR)'

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo '  CC      $<')
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# The pure layers: no library's include path, so a stray #include fails to compile.
$(BASE_OBJS): CFLAGS = $(BASE_CFLAGS)
$(CORE_OBJS): CFLAGS = $(CORE_CFLAGS)

$(LIB_BASE): $(BASE_OBJS)
$(LIB_CORE): $(CORE_OBJS)
$(LIB_IO): $(IO_OBJS)
$(LIB_CONTROL): $(CONTROL_OBJS)
$(LIB_MAGLEVD): $(MAGLEVD_OBJS)
$(LIB_MAGLEVCTL): $(MAGLEVCTL_OBJS)
$(ALL_LIBS):
	@$(if $(Q),echo '  AR      $@')
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/maglevd: $(BUILD)/src/maglevd/main.o $(LIB_MAGLEVD) $(LAYER_LIBS)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/src/maglevctl/top.o: CFLAGS += $(CURSES_CFLAGS)

$(BUILD)/maglevctl: $(BUILD)/src/maglevctl/main.o $(LIB_MAGLEVCTL) $(LAYER_LIBS)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CURSES_LIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(ALL_LIBS)
	@mkdir -p $(@D)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(ALL_LIBS)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(ALL_LIBS)
	@mkdir -p $(@D)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c
	@mkdir -p $(@D)
	@$(if $(Q),echo '  BPF     $<')
	$(Q)$(CLANG) $(BPF_CFLAGS) -MMD -MP -c -o $@ $<

# Rewritten only when BPFDIR changes, so `make install PREFIX=/usr` after `make` rebuilds the
# binaries with the right place compiled in, and a plain `make` rebuilds nothing.
$(BPFOBJ_DIR_H): FORCE
	@mkdir -p $(@D)
	$(Q)echo '#define BPFOBJ_DIR_INSTALLED "$(BPFDIR)"' >$@.tmp
	$(Q)if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi
$(BUILD)/src/io/bpfobj.o: $(BPFOBJ_DIR_H)
FORCE:

check: check-layers format-check check-unit check-kernel check-san check-fuzz check-man \
       check-install check-package check-e2e

check-layers:
	$(Q)scripts/check-layers.sh

check-unit: $(TESTS)
	$(Q)scripts/run-unit.sh $(TESTS)

# The tests that run the BPF programs, and the objects, under a Debian kernel in qemu (about 10 s
# with TCG on two cores; the kernel package is downloaded once into $(BUILD)/kernels/).
KERNEL_TESTS := $(BUILD)/tests/test_xdp_vip $(BUILD)/tests/test_xdp_fwd $(BUILD)/tests/test_decap \
                $(BUILD)/tests/test_hc_tunnel
check-kernel: $(KERNEL_TESTS) $(BUILD)/bpf/xdp_vip.bpf.o $(BUILD)/bpf/xdp_fwd.bpf.o \
              $(BUILD)/bpf/xdp_decap.bpf.o $(BUILD)/bpf/hc_tunnel.bpf.o
	$(Q)BUILD=$(BUILD) scripts/check-kernel.sh $(KERNEL)

check-san:
	$(Q)$(MAKE) --no-print-directory SAN=1 check-unit

fuzz:
	$(Q)$(MAKE) --no-print-directory FUZZ=1 fuzzers

fuzzers: $(FUZZERS)

check-fuzz: fuzz
	$(Q)scripts/run-fuzz.sh $(FUZZ_SECONDS) $(patsubst tests/fuzz/%.c,build-fuzz/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

check-e2e: all
	$(Q)tests/e2e/run.sh

bench: all
	$(Q)scripts/run-bench.sh $(BENCHES)

demo: all
	$(Q)scripts/demo.sh

install: programs
	$(INSTALL) -d '$(DESTDIR)$(SBINDIR)' '$(DESTDIR)$(BPFDIR)' '$(DESTDIR)$(SYSCONFDIR)/maglevd' \
		'$(DESTDIR)$(UNITDIR)' '$(DESTDIR)$(MANDIR)/man5' '$(DESTDIR)$(MANDIR)/man8' \
		'$(DESTDIR)$(BASHCOMPDIR)'
	$(INSTALL) -m 0755 $(BINS) '$(DESTDIR)$(SBINDIR)/'
	$(INSTALL) -m 0644 $(BPF_INSTALL) '$(DESTDIR)$(BPFDIR)/'
	$(INSTALL) -m 0644 docs/examples/maglevd.yaml \
		'$(DESTDIR)$(SYSCONFDIR)/maglevd/maglevd.yaml.example'
	sed -e 's|/usr/local/sbin/|$(SBINDIR)/|g' -e 's|/etc/maglevd/|$(SYSCONFDIR)/maglevd/|g' \
		dist/maglevd.service >'$(DESTDIR)$(UNITDIR)/maglevd.service'
	chmod 0644 '$(DESTDIR)$(UNITDIR)/maglevd.service'
	for m in $(MAN_PAGES); do \
		sed -e 's|/usr/lib/maglevd/bpf|$(BPFDIR)|g' -e 's|/etc/maglevd/|$(SYSCONFDIR)/maglevd/|g' \
			"$$m" >'$(DESTDIR)$(MANDIR)'/man$${m##*.}/$${m##*/} && \
		chmod 0644 '$(DESTDIR)$(MANDIR)'/man$${m##*.}/$${m##*/} || exit 1; \
	done
	$(INSTALL) -m 0644 $(BASH_COMPLETION) '$(DESTDIR)$(BASHCOMPDIR)/maglevctl'

check-man: $(BINS)
	$(Q)scripts/check-man.sh

package:
	dpkg-buildpackage -us -uc -b

check-package:
	$(Q)scripts/check-package.sh

check-install:
	$(Q)scripts/check-install.sh

uninstall:
	rm -f $(BINS:$(BUILD)/%='$(DESTDIR)$(SBINDIR)/%') \
		$(BPF_INSTALL:$(BUILD)/bpf/%='$(DESTDIR)$(BPFDIR)/%') \
		'$(DESTDIR)$(SYSCONFDIR)/maglevd/maglevd.yaml.example' \
		'$(DESTDIR)$(UNITDIR)/maglevd.service' \
		$(foreach m,$(MAN_PAGES),'$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m))') \
		'$(DESTDIR)$(BASHCOMPDIR)/maglevctl'
	rmdir '$(DESTDIR)$(BPFDIR)' '$(DESTDIR)$(PREFIX)/lib/maglevd' 2>/dev/null || true

# Every C file but the generated fixtures (the generator's output is data, one value per line).
FORMAT_FILES = $(shell find src tests bench bpf -name '*.[ch]' -not -path 'tests/unit/fixtures/*' | sort)

format:
	$(Q)clang-format -i $(FORMAT_FILES)

format-check:
	$(Q)clang-format --dry-run --Werror $(FORMAT_FILES) && \
	    echo "format: $(words $(FORMAT_FILES)) files as .clang-format has them"

clean:
	rm -rf $(BUILD) build build-san build-fuzz

.SECONDARY:
-include $(ALL_OBJS:.o=.d)
