# hcr - build, test and run.
#
#   make            build/libhcr.a, build/libhcr.so and build/hcr
#   make install    install them, hcr.h, hcr.pc, the man page and the bash
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
# libcjson-dev, libcurl4-openssl-dev, libssl-dev. scripts/setup.sh installs them.

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
              -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror) -fopenmp -Iinclude -Isrc $(shell pkg-config --cflags cairo) $(shell pkg-config --cflags stb)
HCR_LIBS   := -fopenmp -lopenblas -lcjson -lcurl -lcrypto -lz -lm $(shell pkg-config --libs cairo) $(shell pkg-config --libs stb)

# NO_OPENMP=1: a build without OpenMP (one thread per pass), for the
# ThreadSanitizer run, which cannot see libgomp's synchronisation.
ifeq ($(NO_OPENMP),1)
HCR_CFLAGS := $(filter-out -fopenmp,$(HCR_CFLAGS)) -Wno-unknown-pragmas \
              -Wno-unused-variable -Wno-unused-but-set-variable # thread counts only the pragmas use
HCR_LIBS   := $(filter-out -fopenmp,$(HCR_LIBS))
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
HCR_LIBS   += -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR)
endif

LIB_SRC  := $(sort $(wildcard src/*.c))
CLI_SRC  := $(sort $(wildcard cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
# The shared library's objects: position-independent, and every symbol
# hidden but the public API (hcr.h makes its declarations visible).
PIC_OBJ  := $(LIB_SRC:%.c=$(BUILD)/pic/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

# The version (hcr.h's HCR_VERSION) and the shared library's names:
# libhcr.so.0.1.0, its soname libhcr.so.0, and libhcr.so for the linker.
VERSION   := $(shell sed -n 's/^.define HCR_VERSION "\(.*\)"/\1/p' include/hcr.h)
SOVERSION := $(firstword $(subst ., ,$(VERSION)))
SONAME    := libhcr.so.$(SOVERSION)

.PHONY: all test check sanitize tsan run bench clean install uninstall
all: $(BUILD)/hcr $(BUILD)/libhcr.so $(BUILD)/$(SONAME)

$(BUILD)/%.o: %.c include/hcr.h $(wildcard src/*.h) $(wildcard cli/*.h) $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(HCR_CFLAGS) -c $< -o $@

$(BUILD)/pic/%.o: %.c include/hcr.h $(wildcard src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(HCR_CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@

# The AVX2 kernels alone are built for AVX2; they run only where the CPU has it.
ifneq ($(filter x86_64% i686% i386%,$(shell $(CC) -dumpmachine)),)
$(BUILD)/src/kernels_avx2.o $(BUILD)/pic/src/kernels_avx2.o: HCR_CFLAGS += -mavx2 -mfma
endif

$(BUILD)/libhcr.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The shared library needs the program's libraries (its RUNPATH names
# Debian's OpenMP OpenBLAS, as the program's does). -z defs: every symbol
# it uses is found in them (not under the sanitizers, whose runtime the
# program brings).
$(BUILD)/libhcr.so.$(VERSION): $(PIC_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,-soname,$(SONAME) \
	    $(if $(findstring -fsanitize,$(CFLAGS) $(LDFLAGS)),,-Wl,-z,defs) \
	    $^ -o $@ $(HCR_LIBS) $(LDLIBS)

$(BUILD)/$(SONAME) $(BUILD)/libhcr.so: $(BUILD)/libhcr.so.$(VERSION)
	ln -sf $(notdir $<) $@

# hcr itself is linked with libhcr.a, so that build/hcr runs where it is.
$(BUILD)/hcr: $(CLI_OBJ) $(BUILD)/libhcr.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(HCR_LIBS) $(LDLIBS)

$(BUILD)/bench_hcr: $(BUILD)/bench/bench_hcr.o $(BUILD)/libhcr.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(HCR_LIBS) $(LDLIBS)

$(BUILD)/bench_kernels: $(BUILD)/bench/bench_kernels.o $(BUILD)/libhcr.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(HCR_LIBS) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/tests/harness.o $(BUILD)/tests/glyphs.o $(BUILD)/libhcr.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(HCR_LIBS) $(LDLIBS)

# The letters fixture as a program, for the shell tests.
$(BUILD)/tests/fixture_letters: $(BUILD)/tests/fixture_letters.o $(BUILD)/tests/glyphs.o $(BUILD)/libhcr.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(HCR_LIBS) $(LDLIBS)

# The benchmark programs are built with the tests so that they keep compiling.
# test_install.sh installs this build (make install, into a temporary
# prefix) and builds examples/ against it with the same compiler and flags.
test: $(TESTS) $(BUILD)/hcr $(BUILD)/tests/fixture_letters $(BUILD)/bench_hcr $(BUILD)/bench_kernels \
      $(BUILD)/libhcr.so.$(VERSION) $(BUILD)/libhcr.a
	@HCR_BIN=$(BUILD)/hcr HCR_FIXTURE=$(BUILD)/tests/fixture_letters HCR_BUILD=$(BUILD) \
	    HCR_TEST_CC="$(CC)" HCR_TEST_CFLAGS="$(CFLAGS)" HCR_TEST_LDFLAGS="$(LDFLAGS)" \
	    tests/run_all.sh $(TESTS) \
	    tests/test_cli.sh tests/test_predict.sh tests/test_datasets.sh tests/test_resume.sh tests/test_browser.sh \
	    tests/test_install.sh

# ------------------------------------------------------------- install
# make install [PREFIX=/usr/local] [DESTDIR=staging root] (and BINDIR,
# LIBDIR, INCLUDEDIR, MANDIR, PKGCONFIGDIR, BASHCOMPDIR); make uninstall
# removes exactly what it installs. Programs build with
#   cc prog.c $(pkg-config --cflags --libs hcr)
PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
DATAROOTDIR  ?= $(PREFIX)/share
MANDIR       ?= $(DATAROOTDIR)/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
BASHCOMPDIR  ?= $(DATAROOTDIR)/bash-completion/completions

# hcr.pc's Libs.private, for a static link with libhcr.a: the libraries the
# program is linked with (OpenBLAS with its directory and rpath as the build
# found it: Debian's OpenMP build is not the default libopenblas.so.0), the
# OpenMP runtime named as a library: the one of the compiler that built
# libhcr.a (GCC's libgomp also serves Clang, not the other way round).
# No Requires.private: hcr.h includes none of their headers, and pkg-config
# would add their -I flags to every --cflags, and with --static libcurl's
# own private libraries (-lnghttp2 -lrtmp -lssh2...), whose -dev packages
# libcurl4-openssl-dev does not install, so the link would fail.
PC_OMP       = $(if $(shell $(CC) --version 2>/dev/null | grep -i clang),-fopenmp,-lgomp)
PC_LIBS_PRIV = $(patsubst -fopenmp,$(PC_OMP),$(HCR_LIBS))
# A directory under $(PREFIX) is written relative to ${prefix}.
pc_rel = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))

$(BUILD)/hcr.pc: hcr.pc.in include/hcr.h FORCE
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(call pc_rel,$(LIBDIR))|' \
	    -e 's|@INCLUDEDIR@|$(call pc_rel,$(INCLUDEDIR))|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@LIBS_PRIVATE@|$(strip $(PC_LIBS_PRIV))|' hcr.pc.in > $@.tmp
	mv $@.tmp $@
.PHONY: FORCE
FORCE:

INSTALLED = $(BINDIR)/hcr $(LIBDIR)/libhcr.so.$(VERSION) $(LIBDIR)/$(SONAME) \
            $(LIBDIR)/libhcr.so $(LIBDIR)/libhcr.a $(INCLUDEDIR)/hcr.h \
            $(PKGCONFIGDIR)/hcr.pc $(MANDIR)/man1/hcr.1 $(BASHCOMPDIR)/hcr

# ldconfig refreshes the loader's cache for a real install as root.
LDCONFIG = if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

install: $(BUILD)/hcr $(BUILD)/libhcr.so.$(VERSION) $(BUILD)/libhcr.a $(BUILD)/hcr.pc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	    $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR)
	install -m 755 $(BUILD)/hcr $(DESTDIR)$(BINDIR)/hcr
	install -m 755 $(BUILD)/libhcr.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libhcr.so.$(VERSION)
	ln -sf libhcr.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf libhcr.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libhcr.so
	install -m 644 $(BUILD)/libhcr.a $(DESTDIR)$(LIBDIR)/libhcr.a
	install -m 644 include/hcr.h $(DESTDIR)$(INCLUDEDIR)/hcr.h
	install -m 644 $(BUILD)/hcr.pc $(DESTDIR)$(PKGCONFIGDIR)/hcr.pc
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
