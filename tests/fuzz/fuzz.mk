# fuzz.mk - builds the libFuzzer harnesses of tests/fuzz/ (make fuzz runs
# this; see docs/reliability.md).
#
#   make -f tests/fuzz/fuzz.mk [BUILD=build/fuzz]     build every harness
#
# It includes the project's Makefile for the sources and flags, and builds
# the library again with clang, the sanitizers and libFuzzer's coverage
# instrumentation, without OpenMP (one thread: runs are reproducible and
# libFuzzer needs no thread-safe harness). stb_image, built into the
# library (src/vision/stb.c), is instrumented with it.
#
# A harness is tests/fuzz/fuzz_<name>.c defining LLVMFuzzerTestOneInput;
# it becomes $(BUILD)/fuzz_<name>.

BUILD ?= build/fuzz
# Fixed whatever the caller's make passes down: fuzzing needs exactly these.
override CC     := clang
override CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
                   -fno-sanitize-recover=all
override LDFLAGS :=
# No OpenMP (the Makefile's NO_OPENMP=1): the pragmas are ignored.
override NO_OPENMP := 1
include Makefile
.DEFAULT_GOAL := fuzz-build

# Nor warned about: the thread counts that only their clauses use.
HCR_CFLAGS += -Wno-unused-variable -Wno-unused-but-set-variable

FUZZ_SRC  := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/%)
FUZZ_LINK := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all

.PHONY: fuzz-build
fuzz-build: $(FUZZ_BINS)

$(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/tests/fuzz/%.o): tests/fuzz/fuzz_common.h

$(BUILD)/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(INTERNAL)
	$(CC) $(CFLAGS) $(FUZZ_LINK) $^ -o $@ $(HCR_LIBS) $(LDLIBS)

# hcr serve's handler is in a library of the program's own.
$(BUILD)/fuzz_serve: $(BUILD)/tests/fuzz/fuzz_serve.o $(SERVE_LIB) $(INTERNAL)
	$(CC) $(CFLAGS) $(FUZZ_LINK) $^ -o $@ $(HCR_LIBS) $(LDLIBS)

# The seed corpora (committed; rewrite them only on purpose):
#   make -f tests/fuzz/fuzz.mk fuzz-seeds
.PHONY: fuzz-seeds
fuzz-seeds: $(BUILD)/make_seeds
	tests/fuzz/make_seeds.sh $(BUILD)/make_seeds

$(BUILD)/make_seeds: $(BUILD)/tests/fuzz/make_seeds.o $(INTERNAL)
	$(CC) $(CFLAGS) -fsanitize=address,undefined $^ -o $@ $(HCR_LIBS) $(LDLIBS)
