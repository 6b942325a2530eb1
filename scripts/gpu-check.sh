#!/usr/bin/env bash
# GPU check, for a machine with an NVIDIA GPU and the build dependencies: builds the CUDA
# kernels for CUDA_ARCH (default sm_90), runs build/cuda/check_kernels (every CUDA kernel
# against its CPU reference on random inputs; tolerances in tests/gpu/check_kernels.cu) and
# prints the kernel table, then a short table of the steps last. Logs go under $OUT/gpu-check
# when OUT is set (else out/gpu-check). Exit status: non-zero if any step failed.
#   usage: [CUDA_ARCH=sm_90] [OUT=dir] [JOBS=n] scripts/gpu-check.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

arch=${CUDA_ARCH:-sm_90}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 4)}
logdir=${OUT:-out}/gpu-check
mkdir -p "$logdir"

names=() codes=() secs=()
failed=0
# step NAME CMD...: runs CMD with its output in $logdir/NAME.log, records status and time
step() {
    local name=$1 t0 rc
    shift
    t0=$(date +%s)
    "$@" >"$logdir/$name.log" 2>&1
    rc=$?
    names+=("$name") codes+=("$rc") secs+=($(($(date +%s) - t0)))
    [ "$rc" -eq 0 ] || failed=1
    return "$rc"
}

step device nvidia-smi
step build make -j"$jobs" CUDA_ARCH="$arch" gpu-check-bin
if [ "${codes[1]}" -eq 0 ]; then
    step kernels build/cuda/check_kernels
    echo "== kernel checks (build/cuda/check_kernels, $logdir/kernels.log)"
    cat "$logdir/kernels.log"
else
    echo "== build failed; last lines of $logdir/build.log:"
    tail -n 30 "$logdir/build.log"
fi

# The calibration (microbenchmarks into a `measured` cost-DB profile) and validation
# (simulated vs executed timelines) steps come with the CUDA executor (exec/backend_cuda*);
# they are added here when it exists, after the kernel check.

echo
echo "== gpu-check summary (CUDA_ARCH=$arch, logs in $logdir)"
printf '%-10s %6s %6s  %s\n' step rc sec result
for i in "${!names[@]}"; do
    r=PASS
    [ "${codes[$i]}" -eq 0 ] || r=FAIL
    printf '%-10s %6s %6s  %s\n' "${names[$i]}" "${codes[$i]}" "${secs[$i]}" "$r"
done
exit "$failed"
