# hcr - build, test and run.
#
#   make            build/libhcr.a and build/hcr
#   make check      the whole test suite, then again under ASan+UBSan (CI runs this)
#   make test       the test suite only
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
HCR_CFLAGS := $(filter-out -fopenmp,$(HCR_CFLAGS)) -Wno-unknown-pragmas
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
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all test check sanitize tsan run bench clean
all: $(BUILD)/hcr

$(BUILD)/%.o: %.c include/hcr.h $(wildcard src/*.h) $(wildcard cli/*.h) $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(HCR_CFLAGS) -c $< -o $@

# The AVX2 kernels alone are built for AVX2; they run only where the CPU has it.
ifneq ($(filter x86_64% i686% i386%,$(shell $(CC) -dumpmachine)),)
$(BUILD)/src/kernels_avx2.o: HCR_CFLAGS += -mavx2 -mfma
endif

$(BUILD)/libhcr.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

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
test: $(TESTS) $(BUILD)/hcr $(BUILD)/tests/fixture_letters $(BUILD)/bench_hcr $(BUILD)/bench_kernels
	@HCR_BIN=$(BUILD)/hcr HCR_FIXTURE=$(BUILD)/tests/fixture_letters tests/run_all.sh $(TESTS) \
	    tests/test_cli.sh tests/test_predict.sh tests/test_datasets.sh tests/test_resume.sh tests/test_browser.sh

SAN_FLAGS := -O2 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
sanitize:
	$(MAKE) BUILD=build/asan WERROR=$(WERROR) CFLAGS="$(SAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" test

check: test sanitize

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
