#!/usr/bin/env bash
# GPU check, for a machine with an NVIDIA GPU and the build dependencies (run as root is
# fine: mpirun's allow-run-as-root settings are set here). Under 8 minutes on one GPU:
#   device    nvidia-smi
#   build     make for CUDA_ARCH (default sm_90): build/moesched with the cuda backend,
#             build/cuda/check_kernels
#   kernels   every CUDA kernel against its CPU reference on random inputs of several shapes
#             (tolerances in tests/gpu/check_kernels.cu), the kernel table printed
#   graph     a 2-rank FinDEP graph (deepseek-v2-lite, 2 layers, ag = eg = 1, seq 512, r1 = 2
#             micro-batches of 2 samples, r2 = 2 expert chunks) on a generated
#             h200:nodes=1,gpus=2 topology
#   calibrate mpirun -np 1 moesched calibrate --backend cuda into a copy of the default cost
#             DB ($logdir/cost-gpu.db), plus the graph's own shapes (--shapes); compute only
#             (comm needs >= 2 GPUs)
#   validate  mpirun -np 2 moesched validate --backend cuda on that graph with that DB: the two
#             ranks share the one GPU through separate streams (comm then goes through the
#             cuda backend's MPI proxy: NCCL refuses two ranks on one GPU, docs/CUDA.md)
# then a short table of the steps last. A step whose command does not exist in this build is
# reported SKIP (and one that depends on a failed or skipped step too), never PASS. Logs go
# under $OUT/gpu-check when OUT is set (else out/gpu-check). Exit status: non-zero if a step
# failed.
#   usage: [CUDA_ARCH=sm_90] [OUT=dir] [JOBS=n] [CALIB_QUICK=1] [MODEL=deepseek-v2-lite]
#          scripts/gpu-check.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

arch=${CUDA_ARCH:-sm_90}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 4)}
logdir=${OUT:-out}/gpu-check
model=${MODEL:-deepseek-v2-lite}
mkdir -p "$logdir"
logdir=$(cd "$logdir" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# one GPU, a few ranks: no core binding (each rank runs proxy and polling threads)
MPIRUN=(mpirun --bind-to none --oversubscribe)

names=() results=() codes=() secs=() notes=()
failed=0
# record NAME RESULT RC SECS NOTE
record() {
    names+=("$1") results+=("$2") codes+=("$3") secs+=("$4") notes+=("$5")
    [ "$2" = FAIL ] && failed=1
    return 0
}
# step NAME LIMIT_S CMD...: runs CMD (killed after LIMIT_S seconds) with its output in
# $logdir/NAME.log; records PASS/FAIL, exit status and time. Returns CMD's status.
step() {
    local name=$1 limit=$2 t0 rc note=""
    shift 2
    t0=$(date +%s)
    if declare -F "$1" >/dev/null; then
        "$@" >"$logdir/$name.log" 2>&1 # a shell function limits its own commands
    else
        timeout --kill-after=10 "$limit" "$@" >"$logdir/$name.log" 2>&1
    fi
    rc=$?
    [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && note="timed out after ${limit}s"
    if [ "$rc" -eq 0 ]; then
        record "$name" PASS 0 $(($(date +%s) - t0)) "$note"
    else
        record "$name" FAIL "$rc" $(($(date +%s) - t0)) "${note:-see $logdir/$name.log}"
    fi
    return "$rc"
}
skip() { record "$1" SKIP - 0 "$2"; }
# note LINE: replaces the last step's note (a result worth seeing in the table)
note() { [ -n "$1" ] && notes[${#notes[@]} - 1]=$1; return 0; }
# has_cmd SUB: the built moesched knows subcommand SUB
has_cmd() { [ -x build/moesched ] && build/moesched "$1" --help >/dev/null 2>&1; }

step device 60 nvidia-smi

# cli/ must be compiled with HAVE_CUDA to see the cuda backend; objects left by a build from
# before the backend existed are not rebuilt by make (the flag is not a dependency)
cli_sees_cuda() {
    local o
    for o in build/obj/cli/cmd_{exec,calibrate,validate}.o; do
        [ -f "$o" ] && [ "$(nm "$o" 2>/dev/null | grep -c ' ex_backend_cuda$')" -gt 0 ] || return 1
    done
}
build_all() {
    timeout --kill-after=10 360 make -j"$jobs" CUDA_ARCH="$arch" || return
    if [ -f build/cuda/exec/backend_cuda.o ] && command -v nm >/dev/null 2>&1 &&
        ! cli_sees_cuda; then
        echo "gpu-check: rebuilding cli/ objects compiled before the cuda backend existed"
        rm -f build/obj/cli/cmd_{exec,calibrate,validate}.o
        timeout --kill-after=10 120 make -j"$jobs" CUDA_ARCH="$arch"
    fi
}

built=0
if step build 480 build_all; then
    built=1
else
    echo "== build failed; last lines of $logdir/build.log:"
    tail -n 30 "$logdir/build.log"
fi

if [ "$built" = 1 ] && [ -x build/cuda/check_kernels ]; then
    step kernels 180 build/cuda/check_kernels
    note "$(grep -m1 '^check_kernels: [0-9]* comparisons' "$logdir/kernels.log")"
    echo "== kernel checks (build/cuda/check_kernels, $logdir/kernels.log)"
    cat "$logdir/kernels.log"
else
    skip kernels "no build/cuda/check_kernels (build failed or nvcc missing)"
fi

# the cuda backend is in build/moesched only where the build found nvcc
cuda_in=0
if [ "$built" = 1 ] && command -v nm >/dev/null 2>&1; then
    cli_sees_cuda && cuda_in=1
elif [ "$built" = 1 ]; then
    cuda_in=1 # cannot tell without nm: the steps below say so themselves if it is missing
fi
have_mpi=0
command -v mpirun >/dev/null 2>&1 && have_mpi=1

graph=$logdir/findep.tg
topo=h200:nodes=1,gpus=2
graph_ok=0
if [ "$built" = 1 ] && has_cmd graph; then
    step graph 60 build/moesched graph --workload dep --sched findep --model "$model" \
        --layers 2 --ag 1 --eg 1 --seq 512 --r1 2 --ma 2 --r2 2 --topo "$topo" --out "$graph" &&
        graph_ok=1
else
    skip graph "no 'moesched graph' in this build"
fi

db=$logdir/cost-gpu.db
calib_ok=0
if [ "$built" != 1 ]; then
    skip calibrate "build failed"
elif ! has_cmd calibrate; then
    skip calibrate "no 'moesched calibrate' in this build"
elif [ "$cuda_in" != 1 ]; then
    skip calibrate "cli/ does not see the cuda backend (no nvcc at build time, or CUDA=0)"
elif [ "$have_mpi" != 1 ]; then
    skip calibrate "mpirun not found"
else
    rm -f "$db"
    cp build/cost.db "$db" 2>/dev/null
    calib=("${MPIRUN[@]}" -np 1 build/moesched calibrate --backend cuda --db "$db")
    [ "${CALIB_QUICK:-0}" = 1 ] && calib+=(--quick)
    [ "$graph_ok" = 1 ] && calib+=(--shapes "$graph")
    step calibrate 270 "${calib[@]}" && calib_ok=1
    [ "$calib_ok" = 1 ] && note "$(grep -m1 -o '[0-9]* measurements, [0-9]* compute fits' \
        "$logdir/calibrate.log") into $db"
    echo "== calibration ($logdir/calibrate.log), last lines:"
    tail -n 25 "$logdir/calibrate.log"
fi

if [ "$built" != 1 ]; then
    skip validate "build failed"
elif ! has_cmd validate; then
    skip validate "no 'moesched validate' in this build"
elif [ "$cuda_in" != 1 ] || [ "$have_mpi" != 1 ]; then
    skip validate "no cuda backend or no mpirun"
elif [ "$graph_ok" != 1 ]; then
    skip validate "no graph (the graph step did not pass)"
elif [ "$calib_ok" != 1 ]; then
    skip validate "no measured profile (the calibrate step did not pass)"
else
    step validate 150 "${MPIRUN[@]}" -np 2 build/moesched validate --backend cuda --db "$db" \
        --graph "$graph" --topo "$topo" --trace "$logdir/validate-trace.json" \
        --tasks "$logdir/validate-tasks.tsv" &&
        note "$(awk '/^predicted makespan/ {p = $3} /^measured makespan/ {m = $3}
            /^makespan error/ {e = $3}
            END {if (e != "") printf "predicted %s us, measured %s us, error %s %%", p, m, e}' \
            "$logdir/validate.log")"
    echo "== validation ($logdir/validate.log):"
    cat "$logdir/validate.log"
fi

echo
echo "== gpu-check summary (CUDA_ARCH=$arch, logs in $logdir)"
printf '%-10s %-5s %5s %5s  %s\n' step result rc sec note
for i in "${!names[@]}"; do
    printf '%-10s %-5s %5s %5s  %s\n' "${names[$i]}" "${results[$i]}" "${codes[$i]}" \
        "${secs[$i]}" "${notes[$i]}"
done
exit "$failed"
