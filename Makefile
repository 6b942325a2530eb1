# moesched build. `make` builds build/moesched and the default cost DB build/cost.db.
# `make test` runs every test; `make bench` the benchmarks; `make fuzz` the fuzzers;
# `make SAN=1 test` builds into build-san/ with AddressSanitizer + UBSan and tests there.

CC      ?= cc
CSTD    := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
WARN    := -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers
OPT     ?= -O2 -g
CFLAGS_ALL = $(CSTD) $(WARN) $(OPT) -I. -DMS_SOURCE_DIR='"$(CURDIR)"' -MMD -MP $(CFLAGS)
LIBS    := -lsqlite3 -lyaml -lcjson -lm -lpthread

# Open MPI (the executors' ranks) and OpenBLAS (the host backend's GEMMs), from pkg-config.
# Without MPI the build still works; exec/calibrate/validate then say MPI is missing
# (exec/ex_mpi.h holds the stubs). OpenBLAS is required.
MPI_PC  := $(shell pkg-config --exists ompi-c 2>/dev/null && echo ompi-c || \
                   (pkg-config --exists mpi 2>/dev/null && echo mpi))
ifneq ($(MPI_PC),)
MPI_CFLAGS := -DHAVE_MPI $(shell pkg-config --cflags $(MPI_PC))
MPI_LIBS   := $(shell pkg-config --libs $(MPI_PC))
endif
BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS   := $(or $(shell pkg-config --libs openblas 2>/dev/null),-lopenblas)
CFLAGS_ALL += $(MPI_CFLAGS) $(BLAS_CFLAGS)
LIBS    += $(MPI_LIBS) $(BLAS_LIBS)

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

# CUDA: where nvcc exists (on PATH, or /usr/local/cuda/bin), the plain build compiles
# kernels/*.cu and exec/backend_cuda*.cu into build/cuda/ for CUDA_ARCH (default sm_80 and
# sm_90; e.g. `make CUDA_ARCH=sm_90 gpu-check-bin`) and links build/cuda/check_kernels
# (tests/gpu/check_kernels.cu + the kernels + the CPU references from libmoesched.a).
# SAN=1 skips CUDA (sanitizers do not apply to nvcc objects); the plain build covers it.
NVCC := $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))
CU_SRC := $(wildcard kernels/*.cu exec/backend_cuda*.cu)
CUDA_ARCH ?= sm_80 sm_90
NVCCFLAGS ?= -O2 -lineinfo
CUDA_GENCODE = $(foreach a,$(CUDA_ARCH),-gencode arch=compute_$(a:sm_%=%),code=$(a))
NVCC_ALL = -std=c++17 $(NVCCFLAGS) $(CUDA_GENCODE) -I. $(MPI_CFLAGS) -Xcompiler -Wall,-Wextra -Werror all-warnings
CUDA_B := build/cuda
CU_OBJ := $(CU_SRC:%.cu=$(CUDA_B)/%.o)
K_CU_OBJ := $(filter $(CUDA_B)/kernels/%,$(CU_OBJ))
GPU_CHECK := $(CUDA_B)/check_kernels
CUDA_LIBS := -lcublas -lcudart
CUDA_TARGETS :=
# The cuda backend (exec/backend_cuda*.cu) is linked into build/moesched itself where nvcc
# exists (CUDA=0 opts out); cli/ is then compiled with -DHAVE_CUDA so that exec's backend
# lookup sees it (exec/backend_cuda.h holds the stub for builds without it). Tests link
# libmoesched.a only and never need the CUDA runtime. cuBLAS is not on moesched's link
# line: exec/backend_cuda_blas.cu loads it on first use, so that commands other than
# `--backend cuda` do not pay its ~0.4 s load at every start.
CUDA ?= 1
CUDA_HOME := $(patsubst %/bin/nvcc,%,$(realpath $(NVCC)))
EX_CU_OBJ := $(filter $(CUDA_B)/exec/%,$(CU_OBJ))
MOESCHED_CUDA_OBJ :=
MOESCHED_CUDA_LIBS :=
ifneq ($(NVCC),)
ifneq ($(SAN),1)
ifneq ($(CU_SRC),)
CUDA_TARGETS := $(CU_OBJ) $(GPU_CHECK)
endif
ifeq ($(CUDA),1)
ifneq ($(EX_CU_OBJ),)
MOESCHED_CUDA_OBJ := $(EX_CU_OBJ) $(K_CU_OBJ)
MOESCHED_CUDA_LIBS := -L$(CUDA_HOME)/lib64 -L$(CUDA_HOME)/lib -Wl,-rpath,$(CUDA_HOME)/lib64 \
    -Wl,-rpath,$(CUDA_HOME)/lib -lnccl -lcudart -lstdc++ -ldl
$(B)/obj/cli/%.o: CFLAGS += -DHAVE_CUDA -DHAVE_NCCL
CLI_DEFS := -DHAVE_CUDA -DHAVE_NCCL
endif
endif
endif
endif

.PHONY: all test bench fuzz clean demo cuda-note gpu-check-bin cuda-flags
all: $(B)/moesched $(B)/cost.db cuda-note $(CUDA_TARGETS)

cuda-note:
ifeq ($(NVCC),)
	@echo "CUDA: nvcc not found; CUDA kernels and the cuda backend are skipped"
else ifeq ($(CU_SRC),)
	@echo "CUDA: nvcc found at $(NVCC); there are no CUDA sources to build yet"
else ifeq ($(SAN),1)
	@echo "CUDA: not built under SAN=1 (nvcc objects are not sanitized); the plain build compiles it"
endif

gpu-check-bin:
ifeq ($(NVCC),)
	@echo "gpu-check-bin: nvcc not found" >&2; exit 1
else
	@$(MAKE) --no-print-directory SAN= $(GPU_CHECK)
endif

# rebuilds the CUDA objects when the nvcc flags (CUDA_ARCH, NVCCFLAGS) change
$(CUDA_B)/nvcc-flags: cuda-flags
	@mkdir -p $(dir $@)
	@echo '$(NVCC) $(NVCC_ALL)' | cmp -s - $@ || echo '$(NVCC) $(NVCC_ALL)' > $@

$(CUDA_B)/%.o: %.cu $(CUDA_B)/nvcc-flags
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_ALL) -MMD -MP -c $< -o $@

$(GPU_CHECK): $(CUDA_B)/tests/gpu/check_kernels.o $(K_CU_OBJ) build/libmoesched.a
	$(NVCC) $(CUDA_GENCODE) $^ $(LIBS) $(CUDA_LIBS) -o $@

# cli/ objects are rebuilt when the CUDA defines they were compiled with change.
$(B)/cli-flags: cuda-flags
	@mkdir -p $(dir $@)
	@echo '$(CLI_DEFS)' | cmp -s - $@ || echo '$(CLI_DEFS)' > $@
$(CLI_OBJ): $(B)/cli-flags

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(SANFLAGS) -c $< -o $@

$(B)/libmoesched.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/moesched: $(CLI_OBJ) $(B)/libmoesched.a $(MOESCHED_CUDA_OBJ)
	$(CC) $(SANFLAGS) $(CLI_OBJ) $(MOESCHED_CUDA_OBJ) $(B)/libmoesched.a $(LIBS) \
	    $(MOESCHED_CUDA_LIBS) -o $@

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
	@sh scripts/demo.sh $(B)

# libFuzzer targets (clang), each run FUZZ_SECONDS (default 60). Crashes land in
# build-fuzz/crashes/ and become regression inputs under tests/data/fuzz/.
FUZZ_SECONDS ?= 60
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build-fuzz/%)
FUZZ_FLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g -O1 -I. \
    -DMS_SOURCE_DIR='"$(CURDIR)"' $(MPI_CFLAGS) $(BLAS_CFLAGS) -fsanitize=fuzzer,address,undefined
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
-include $(CU_OBJ:.o=.d) $(CUDA_B)/tests/gpu/check_kernels.d
