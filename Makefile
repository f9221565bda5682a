# hcr - build, test and run.
#
#   make            build/hcr and the three libraries (libhcr, libhcr-data,
#                   libhcr-report), static and shared
#   make install    install them, their headers and .pc files, the man page and the bash
#                   completion under PREFIX (/usr/local), staged in DESTDIR;
#                   make uninstall removes them
#   make check      install the test tools (scripts/setup.sh --test), then the
#                   whole test suite, then again under ASan+UBSan (CI runs this)
#   make test       the test suite only (installs nothing)
#   make sanitize   the test suite under ASan+UBSan only
#   make run        install dependencies, build, fetch MNIST, train the reference model
#   make bench      bench/run: training and inference throughput as JSON
#
# Dependencies (Debian): libopenblas-dev (or -openmp-dev), zlib1g-dev,
# libcjson-dev, libcurl4-openssl-dev, libssl-dev, libcairo2-dev, and
# libmicrohttpd-dev for hcr serve. scripts/setup.sh installs them.

CC      ?= gcc
BUILD   ?= build
# CFLAGS/LDFLAGS are the user's (optimisation, sanitizers); the project's
# own flags are in HCR_CFLAGS/HCR_LIBS and always apply.
CFLAGS  ?= -O3 -g
# Warnings are errors for developers and CI (make check, which .ci/run runs,
# or WERROR=1), not in a plain build, where another or a newer compiler's
# new warnings must not stop a user.
ifneq ($(filter check sanitize,$(MAKECMDGOALS)),)
WERROR ?= 1
endif
HCR_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
              -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror) -fopenmp -Iinclude -Isrc -Ithird_party/stb $(shell pkg-config --cflags cairo)
# The libraries of each of the three libraries (include/hcr.h says which
# header is which): libhcr (models, training, images), libhcr-data (files,
# named datasets, downloads), libhcr-report (pictures). HCR_LIBS: all.
CORE_LIBS   := -fopenmp -lopenblas -lcjson -lm -lpthread
DATA_LIBS   := -lcurl -lcrypto -lz
REPORT_LIBS := $(shell pkg-config --libs cairo) -lcjson
HCR_LIBS    = $(REPORT_LIBS) $(DATA_LIBS) $(CORE_LIBS)
# hcr serve's HTTP server (the program only, not a library).
SERVE_LIBS  := $(or $(shell pkg-config --libs libmicrohttpd 2>/dev/null),-lmicrohttpd)

# NO_OPENMP=1: a build without OpenMP (one thread per pass), for the
# ThreadSanitizer run, which cannot see libgomp's synchronisation.
ifeq ($(NO_OPENMP),1)
HCR_CFLAGS := $(filter-out -fopenmp,$(HCR_CFLAGS)) -Wno-unknown-pragmas \
              -Wno-unused-variable -Wno-unused-but-set-variable # thread counts only the pragmas use
CORE_LIBS  := $(filter-out -fopenmp,$(CORE_LIBS))
ifeq ($(findstring clang,$(CC)),clang)
HCR_CFLAGS += -Wno-source-uses-openmp
endif
endif

# Prefer Debian's OpenMP build of OpenBLAS when it is installed, so BLAS and
# hcr's own loops share one thread pool; otherwise whatever -lopenblas finds.
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
BLAS_DIR  := $(wildcard /usr/lib/$(MULTIARCH)/openblas-openmp)
ifneq ($(BLAS_DIR),)
HCR_CFLAGS += -I/usr/include/$(MULTIARCH)/openblas-openmp
CORE_LIBS  += -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR)
endif

# The library's layers (docs/architecture.md; tests/check_layers.sh checks
# that each uses only those its row names), in three libraries by what
# they link: libhcr (core, kernels, nn, vision), libhcr-data, libhcr-report.
CORE_SRC   := $(sort $(foreach d,core kernels nn vision,$(wildcard src/$(d)/*.c)))
DATA_SRC   := $(sort $(wildcard src/data/*.c))
REPORT_SRC := $(sort $(wildcard src/report/*.c))
LIB_SRC    := $(CORE_SRC) $(DATA_SRC) $(REPORT_SRC)
# src/serve/: hcr serve's request handler and its page, a library of the
# program's own (libhcr-serve.a, not installed), over libhcr's public API.
SERVE_SRC  := $(sort $(wildcard src/serve/*.c))
SERVE_OBJ  := $(SERVE_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/serve_page.o
SERVE_LIB  := $(BUILD)/libhcr-serve.a
CLI_SRC    := $(sort $(wildcard cli/*.c))
TEST_SRC   := $(sort $(wildcard tests/test_*.c))
LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/%.o)
# The shared libraries' objects are position-independent; both kinds hide
# every symbol but the public API (the headers make their declarations
# visible) and hcr__* (what libhcr lends its two siblings).
PIC_OBJ    := $(LIB_SRC:%.c=$(BUILD)/pic/%.o)
CLI_OBJ    := $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTS      := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
PUBLIC_H   := $(wildcard include/*.h)
PRIVATE_H  := $(wildcard src/*/*.h)

# The version (hcr.h's HCR_VERSION) and the shared library's names:
# libhcr.so.0.1.0, its soname libhcr.so.0, and libhcr.so for the linker.
VERSION   := $(shell sed -n 's/^.define HCR_VERSION "\(.*\)"/\1/p' include/hcr.h)
SOVERSION := $(firstword $(subst ., ,$(VERSION)))
SONAME    := libhcr.so.$(SOVERSION)

LIBNAMES := hcr hcr-data hcr-report
STATIC   := $(LIBNAMES:%=$(BUILD)/lib%.a)
SHARED   := $(foreach l,$(LIBNAMES),$(BUILD)/lib$(l).so.$(VERSION) $(BUILD)/lib$(l).so.$(SOVERSION) $(BUILD)/lib$(l).so)
# Tests, benchmarks and fuzzers look inside: they link every object as is.
INTERNAL := $(BUILD)/libhcr-internal.a

.PHONY: all test check sanitize tsan run bench clean install uninstall
all: $(BUILD)/hcr $(STATIC) $(SHARED)

$(BUILD)/%.o: %.c $(PUBLIC_H) $(PRIVATE_H) $(wildcard cli/*.h) $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(HCR_CFLAGS) $(if $(filter src/%,$<),-fvisibility=hidden) -c $< -o $@

$(BUILD)/pic/%.o: %.c $(PUBLIC_H) $(PRIVATE_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(HCR_CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@

# stb_image and stb_image_write (third_party/stb): stb's code, stb's
# warnings. UBSan's shift-base check is off there: stb_image_write's JPEG
# bit buffer shifts bits out of the top of an int (stbiw__jpg_writeBits),
# undefined in ISO C but defined by GCC and Clang, and only its low bits
# are used. Shifts by too many places are still caught.
$(BUILD)/src/vision/stb.o $(BUILD)/pic/src/vision/stb.o: HCR_CFLAGS += -w -fno-sanitize=shift-base

# The AVX2 kernels alone are built for AVX2; they run only where the CPU has it.
ifneq ($(filter x86_64% i686% i386%,$(shell $(CC) -dumpmachine)),)
$(BUILD)/src/kernels/avx2.o $(BUILD)/pic/src/kernels/avx2.o: HCR_CFLAGS += -mavx2 -mfma
endif

$(INTERNAL): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# An installed static library is one relocatable object whose hidden
# symbols are made local (objcopy --localize-hidden): a program linking it
# sees only hcr_* and hcr__* names, never model_forward or check_dataset.
define static_lib
$(BUILD)/lib$(1).a: $(2)
	@rm -f $$@ $$@.o
	$(LD) -r $$^ -o $$@.o
	objcopy --localize-hidden $$@.o
	ar rcs $$@ $$@.o
	@rm -f $$@.o
endef
$(eval $(call static_lib,hcr,$(CORE_SRC:%.c=$(BUILD)/%.o)))
$(eval $(call static_lib,hcr-data,$(DATA_SRC:%.c=$(BUILD)/%.o)))
$(eval $(call static_lib,hcr-report,$(REPORT_SRC:%.c=$(BUILD)/%.o)))

# The shared libraries: libhcr-data and libhcr-report link libhcr (their
# RUNPATH names Debian's OpenMP OpenBLAS, as the program's does). -z defs:
# every symbol each uses is found in what it links (not under the
# sanitizers, whose runtime the program brings).
ZDEFS = $(if $(findstring -fsanitize,$(CFLAGS) $(LDFLAGS)),,-Wl,-z,defs)
define shared_lib
$(BUILD)/lib$(1).so.$(VERSION): $(2) $(4)
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,-soname,lib$(1).so.$(SOVERSION) $(ZDEFS) \
	    $(2) -o $$@ $(if $(4),-L$(BUILD) -lhcr) $(3) $(LDLIBS)
$(BUILD)/lib$(1).so.$(SOVERSION) $(BUILD)/lib$(1).so: $(BUILD)/lib$(1).so.$(VERSION)
	ln -sf $$(notdir $$<) $$@
endef
$(eval $(call shared_lib,hcr,$(CORE_SRC:%.c=$(BUILD)/pic/%.o),$$(CORE_LIBS),))
$(eval $(call shared_lib,hcr-data,$(DATA_SRC:%.c=$(BUILD)/pic/%.o),$$(DATA_LIBS) $$(CORE_LIBS),$(BUILD)/libhcr.so))
$(eval $(call shared_lib,hcr-report,$(REPORT_SRC:%.c=$(BUILD)/pic/%.o),$$(REPORT_LIBS) $$(CORE_LIBS),$(BUILD)/libhcr.so))

# The page of hcr serve, built in: src/serve/page.html as a C array
# (serve_page_html in serve.h; od is in coreutils, xxd is not).
$(BUILD)/gen/serve_page.c: src/serve/page.html
	@mkdir -p $(dir $@)
	{ echo '/* generated by the Makefile from src/serve/page.html: do not edit */'; \
	  echo '#include "serve/serve.h"'; \
	  echo 'const unsigned char serve_page_html[] = {'; \
	  od -An -v -tx1 $< | sed -e 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  echo '};'; \
	  echo 'const size_t serve_page_html_len = sizeof serve_page_html;'; } >$@.tmp
	mv $@.tmp $@

$(BUILD)/gen/serve_page.o: $(BUILD)/gen/serve_page.c src/serve/serve.h $(PUBLIC_H)
	$(CC) $(CFLAGS) $(HCR_CFLAGS) -fvisibility=hidden -c $< -o $@

$(SERVE_LIB): $(SERVE_OBJ)
	@rm -f $@
	ar rcs $@ $^

# hcr itself is linked with the installable static libraries (so it uses
# nothing but the public API, and build/hcr runs where it is), and hcr
# serve's own library.
$(BUILD)/hcr: $(CLI_OBJ) $(SERVE_LIB) $(BUILD)/libhcr-report.a $(BUILD)/libhcr-data.a $(BUILD)/libhcr.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(SERVE_LIBS) $(HCR_LIBS) $(LDLIBS)

$(BUILD)/bench_hcr: $(BUILD)/bench/bench_hcr.o $(INTERNAL)
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(HCR_LIBS) $(LDLIBS)

$(BUILD)/bench_kernels: $(BUILD)/bench/bench_kernels.o $(INTERNAL)
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(HCR_LIBS) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/tests/harness.o $(BUILD)/tests/glyphs.o $(INTERNAL)
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(HCR_LIBS) $(LDLIBS)

# The request handler's tests link its library too.
$(BUILD)/tests/test_serve: $(BUILD)/tests/test_serve.o $(BUILD)/tests/harness.o $(BUILD)/tests/glyphs.o \
                           $(SERVE_LIB) $(INTERNAL)
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(HCR_LIBS) $(LDLIBS)

# The letters fixture as a program, for the shell tests.
$(BUILD)/tests/fixture_letters: $(BUILD)/tests/fixture_letters.o $(BUILD)/tests/glyphs.o $(INTERNAL)
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(HCR_LIBS) $(LDLIBS)

# The benchmark programs are built with the tests so that they keep compiling.
# test_install.sh installs this build (make install, into a temporary
# prefix) and builds examples/ against it with the same compiler and flags.
test: $(TESTS) $(BUILD)/hcr $(BUILD)/tests/fixture_letters $(BUILD)/bench_hcr $(BUILD)/bench_kernels \
      $(STATIC) $(SHARED)
	@HCR_BIN=$(BUILD)/hcr HCR_FIXTURE=$(BUILD)/tests/fixture_letters HCR_BUILD=$(BUILD) \
	    HCR_TEST_CC="$(CC)" HCR_TEST_CFLAGS="$(CFLAGS)" HCR_TEST_LDFLAGS="$(LDFLAGS)" \
	    tests/run_all.sh $(TESTS) \
	    tests/check_layers.sh tests/test_cli.sh tests/test_predict.sh tests/test_datasets.sh tests/test_resume.sh tests/test_browser.sh tests/test_serve.sh \
	    tests/test_install.sh

# ------------------------------------------------------------- install
# make install [PREFIX=/usr/local] [DESTDIR=staging root] (and BINDIR,
# LIBDIR, INCLUDEDIR, MANDIR, PKGCONFIGDIR, BASHCOMPDIR); make uninstall
# removes exactly what it installs. Programs build with
#   cc prog.c $(pkg-config --cflags --libs hcr)      (or hcr-data, hcr-report)
PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
DATAROOTDIR  ?= $(PREFIX)/share
MANDIR       ?= $(DATAROOTDIR)/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
BASHCOMPDIR  ?= $(DATAROOTDIR)/bash-completion/completions

# Each library's .pc (from hcr.pc.in): libhcr-data and libhcr-report
# Require hcr. Libs.private, for a static link with the .a files: the
# libraries each was linked with (OpenBLAS with its directory and rpath as
# the build found it: Debian's OpenMP build is not the default
# libopenblas.so.0), the OpenMP runtime named as a library: the one of the
# compiler that built libhcr.a (GCC's libgomp also serves Clang, not the
# other way round). No Requires.private: the headers include none of their
# headers, and pkg-config would add their -I flags to every --cflags, and
# with --static libcurl's own private libraries (-lnghttp2 -lrtmp...),
# whose -dev packages libcurl4-openssl-dev does not install.
PC_OMP  = $(if $(shell $(CC) --version 2>/dev/null | grep -i clang),-fopenmp,-lgomp)
pc_priv = $(strip $(patsubst -fopenmp,$(PC_OMP),$(1)))
# A directory under $(PREFIX) is written relative to ${prefix}.
pc_rel  = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))
PC_hcr_DESC        := Handwritten character recognition: models, training, prediction, images and lines
PC_hcr-data_DESC   := Datasets for hcr: IDX files, datasets by name, verified downloads
PC_hcr-report_DESC := Reports for hcr: curves, confusion matrix, samples and an HTML page
PC_hcr_REQ         :=
PC_hcr-data_REQ    := hcr = $(VERSION)
PC_hcr-report_REQ  := hcr = $(VERSION)
PC_hcr_PRIV         = $(call pc_priv,$(CORE_LIBS))
PC_hcr-data_PRIV    = $(call pc_priv,$(DATA_LIBS))
PC_hcr-report_PRIV  = $(call pc_priv,$(REPORT_LIBS))

$(BUILD)/%.pc: hcr.pc.in include/hcr.h FORCE
	@mkdir -p $(dir $@)
	sed -e 's|@NAME@|$*|' -e 's|@DESCRIPTION@|$(PC_$*_DESC)|' -e 's|@REQUIRES@|$(PC_$*_REQ)|' \
	    -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(call pc_rel,$(LIBDIR))|' \
	    -e 's|@INCLUDEDIR@|$(call pc_rel,$(INCLUDEDIR))|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@LIBS_PRIVATE@|$(PC_$*_PRIV)|' hcr.pc.in > $@.tmp
	mv $@.tmp $@
.PHONY: FORCE
FORCE:

INSTALLED = $(BINDIR)/hcr $(PUBLIC_H:include/%=$(INCLUDEDIR)/%) \
            $(foreach l,$(LIBNAMES),$(LIBDIR)/lib$(l).so.$(VERSION) $(LIBDIR)/lib$(l).so.$(SOVERSION) \
                $(LIBDIR)/lib$(l).so $(LIBDIR)/lib$(l).a $(PKGCONFIGDIR)/$(l).pc) \
            $(MANDIR)/man1/hcr.1 $(BASHCOMPDIR)/hcr

# ldconfig refreshes the loader's cache for a real install as root.
LDCONFIG = if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

install: $(BUILD)/hcr $(STATIC) $(SHARED) $(LIBNAMES:%=$(BUILD)/%.pc)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	    $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR)
	install -m 755 $(BUILD)/hcr $(DESTDIR)$(BINDIR)/hcr
	for l in $(LIBNAMES); do \
	    install -m 755 $(BUILD)/lib$$l.so.$(VERSION) $(DESTDIR)$(LIBDIR)/lib$$l.so.$(VERSION) && \
	    ln -sf lib$$l.so.$(VERSION) $(DESTDIR)$(LIBDIR)/lib$$l.so.$(SOVERSION) && \
	    ln -sf lib$$l.so.$(VERSION) $(DESTDIR)$(LIBDIR)/lib$$l.so && \
	    install -m 644 $(BUILD)/lib$$l.a $(DESTDIR)$(LIBDIR)/lib$$l.a && \
	    install -m 644 $(BUILD)/$$l.pc $(DESTDIR)$(PKGCONFIGDIR)/$$l.pc || exit 1; \
	done
	install -m 644 $(PUBLIC_H) $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 docs/hcr.1 $(DESTDIR)$(MANDIR)/man1/hcr.1
	install -m 644 scripts/hcr-completion.bash $(DESTDIR)$(BASHCOMPDIR)/hcr
	@$(LDCONFIG)

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	@$(LDCONFIG)

SAN_FLAGS := -O2 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
sanitize:
	$(MAKE) BUILD=build/asan WERROR=$(WERROR) CFLAGS="$(SAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" test

# make check first installs what the tests need (scripts/setup.sh --test:
# quick when everything is there; apt-get, through sudo when not root),
# then runs the suite in a new make, which sees the new packages.
check:
	./scripts/setup.sh --test
	$(MAKE) WERROR=$(WERROR) test
	$(MAKE) WERROR=$(WERROR) sanitize

# ThreadSanitizer (clang) on the threaded test: many threads predicting,
# evaluating and reading with one shared model. Built without OpenMP (TSan
# cannot see libgomp's synchronisation), so the threads are the test's.
tsan:
	$(MAKE) BUILD=build/tsan CC=clang NO_OPENMP=1 WERROR=$(WERROR) CFLAGS="-O1 -g -fsanitize=thread" \
	    LDFLAGS="-fsanitize=thread" build/tsan/tests/test_threads
	OPENBLAS_NUM_THREADS=1 TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build/tsan/tests/test_threads

run:
	./scripts/setup.sh
	$(MAKE) all
	./$(BUILD)/hcr train

bench: all $(BUILD)/bench_hcr $(BUILD)/bench_kernels
	bench/run

# make fuzz [FUZZ_SECONDS=60]: the libFuzzer harnesses of tests/fuzz/, built
# with clang and ASan+UBSan in build/fuzz (tests/fuzz/fuzz.mk), each run on
# its committed inputs and then for FUZZ_SECONDS (0: the inputs only); see
# docs/reliability.md.
FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz:
	$(MAKE) -f tests/fuzz/fuzz.mk BUILD=build/fuzz
	tests/fuzz/run.sh build/fuzz $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD)
