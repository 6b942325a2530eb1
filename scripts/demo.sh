#!/bin/sh
# `make demo`: the default what-if study. Simulates one FinDEP schedule (trace + Gantt
# chart), sweeps docs/examples/demo.yaml (DeepSeek-V2 and Qwen3-235B-A22B, 8 -> 256 H100
# GPUs, naive / pppipe / findep / search) into out/demo.db, draws the plots into out/ and
# prints a summary table. Usage: sh scripts/demo.sh [BUILD_DIR]  (after `make all`).
set -eu
B=${1:-build}
M="$B/moesched"
OUT=out
SPEC=docs/examples/demo.yaml
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
[ -x "$M" ] || { echo "demo: $M is missing; run make first" >&2; exit 1; }
start=$(date +%s)
mkdir -p "$OUT"

echo "== 1. one schedule: FinDEP, DeepSeek-V2 (2 layers), 8 x H100 (4 attention + 4 expert GPUs)"
"$M" sim --workload dep --sched findep --model deepseek-v2 --layers 2 --topo h100:nodes=1 \
    --ag 4 --eg 4 --seq 4096 --r1 2 --ma 1 --r2 2 --trace "$OUT/demo-trace.json"
"$M" plot gantt --trace "$OUT/demo-trace.json" --out "$OUT/demo-gantt.png"

echo
echo "== 2. the what-if study: $SPEC ($JOBS parallel jobs)"
echo "   settings, chosen to stay well under 2 minutes on 2 cores (see the spec): 2 layers per"
echo "   model (depth-reduced), prefill of 4096-token samples, 4 samples per micro-batch,"
echo "   ag = eg = GPUs/2 held fixed, analytic network; the solvers choose r1, r2, order"
rm -f "$OUT/demo.db" "$OUT/demo.db-wal" "$OUT/demo.db-shm"
if ! "$M" sweep "$SPEC" --db "$OUT/demo.db" --jobs "$JOBS" --point-timeout 120; then
    # the solvers stop at a wall-clock budget, so a heavily loaded machine can fail a
    # point; run those once more, one at a time
    echo "   some points failed; running them again one at a time"
    "$M" sweep "$SPEC" --db "$OUT/demo.db" --jobs 1 --retry-failed --point-timeout 120 || true
fi

echo
echo "== 3. plots"
"$M" plot throughput --db "$OUT/demo.db" --out "$OUT/demo-throughput.png"
"$M" plot speedup --db "$OUT/demo.db" --base pppipe --out "$OUT/demo-speedup.png"

echo
echo "== 4. summary: simulated prefill throughput, million tokens/s (from $OUT/demo-throughput.tsv)"
awk -F '\t' '
    /^# model / { model = $0; sub(/^# model /, "", model); sub(/:.*/, "", model); next }
    /^# gpus/ { n = NF; for (i = 2; i <= NF; i++) h[i] = $i
                printf "\n%-16s %6s", model, "GPUs"
                for (i = 2; i <= n; i++) printf " %9s", h[i]
                printf " %14s\n", "search/pppipe"; next }
    /^[0-9]/ { printf "%-16s %6d", "", $1; pp = se = ""
               for (i = 2; i <= n; i++) {
                   if ($i == "NA") printf " %9s", "failed"; else printf " %9.2f", $i / 1e6
                   if (h[i] == "pppipe") pp = $i; if (h[i] == "search") se = $i }
               if (pp != "" && pp != "NA" && se != "" && se != "NA") printf " %14.3f", se / pp
               else printf " %14s", "-"
               printf "\n" }' "$OUT/demo-throughput.tsv"

end=$(date +%s)
echo
echo "demo finished in $((end - start)) s. Results: $OUT/demo.db (every point's argv and output;"
echo "moesched sweep resumes it), plots: $OUT/demo-throughput.png $OUT/demo-speedup.png"
echo "$OUT/demo-gantt.png, trace: $OUT/demo-trace.json (open in https://ui.perfetto.dev)"
