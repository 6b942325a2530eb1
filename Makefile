# moesched build. `make` builds build/moesched and the default cost DB build/cost.db.
# `make test` runs every test; `make bench` the benchmarks; `make fuzz` the fuzzers;
# `make SAN=1 test` builds into build-san/ with AddressSanitizer + UBSan and tests there.

CC      ?= cc
CSTD    := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
WARN    := -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers
OPT     ?= -O2 -g
CFLAGS_ALL = $(CSTD) $(WARN) $(OPT) -I. -DMS_SOURCE_DIR='"$(CURDIR)"' -MMD -MP $(CFLAGS)
LIBS    := -lsqlite3 -lyaml -lcjson -lm -lpthread

ifeq ($(SAN),1)
B        := build-san
OPT      := -O1 -g -fno-omit-frame-pointer
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all
else
B        := build
SANFLAGS :=
endif

# Library sources: every module folder; CUDA files are handled separately.
LIB_DIRS := core ir costdb sim workloads solver exec kernels
LIB_SRC  := $(filter-out %.cu,$(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c)))
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/obj/%.o)
CLI_SRC  := $(wildcard cli/*.c)
CLI_OBJ  := $(CLI_SRC:%.c=$(B)/obj/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(B)/tests/%)
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(B)/bench/%)
PROFILES := $(sort $(wildcard costdb/profiles/*.sql))

NVCC := $(shell command -v nvcc 2>/dev/null)
CU_SRC := $(wildcard kernels/*.cu exec/backend_cuda*.cu)

.PHONY: all test bench fuzz clean demo cuda-note
all: $(B)/moesched $(B)/cost.db cuda-note

cuda-note:
ifeq ($(NVCC),)
	@echo "CUDA: nvcc not found; CUDA kernels and the cuda backend are skipped"
else ifeq ($(CU_SRC),)
	@echo "CUDA: nvcc found at $(NVCC); there are no CUDA sources to build yet"
endif

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(SANFLAGS) -c $< -o $@

$(B)/libmoesched.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/moesched: $(CLI_OBJ) $(B)/libmoesched.a
	$(CC) $(SANFLAGS) $(CLI_OBJ) $(B)/libmoesched.a $(LIBS) -o $@

$(B)/cost.db: $(B)/moesched $(PROFILES)
	$(B)/moesched db build --out $@ $(PROFILES)

$(B)/tests/%: tests/%.c $(B)/libmoesched.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(SANFLAGS) $< $(B)/libmoesched.a $(LIBS) -lcmocka -o $@

$(B)/bench/%: bench/%.c $(B)/libmoesched.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(SANFLAGS) $< $(B)/libmoesched.a $(LIBS) -o $@

test: all $(TEST_BIN)
	@MOESCHED_BUILD=$(B) sh tests/run.sh $(TEST_BIN)

bench: all $(BENCH_BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; $$b || exit 1; done

demo: all
	@mkdir -p out
	$(B)/moesched sim --graph traces/examples/two-layer-dep.tg --topo dgx-h100-1x8 \
	    --trace out/demo-trace.json

# libFuzzer targets (clang), each run FUZZ_SECONDS (default 60). Crashes land in
# build-fuzz/crashes/ and become regression inputs under tests/data/fuzz/.
FUZZ_SECONDS ?= 60
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build-fuzz/%)
FUZZ_FLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g -O1 -I. \
    -DMS_SOURCE_DIR='"$(CURDIR)"' -fsanitize=fuzzer,address,undefined
build-fuzz/%: fuzz/%.c $(LIB_SRC)
	@mkdir -p build-fuzz
	clang $(FUZZ_FLAGS) $< $(LIB_SRC) $(LIBS) -o $@
fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do n=$$(basename $$f); mkdir -p build-fuzz/corpus-$$n build-fuzz/crashes; \
	  echo "== $$n for $(FUZZ_SECONDS) s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build-fuzz/crashes/ \
	      build-fuzz/corpus-$$n fuzz/seeds/$$n || exit 1; done

clean:
	rm -rf build build-san build-fuzz out

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_BIN:=.d) $(BENCH_BIN:=.d)
