# FinDEP's evaluation in simulation: speedups over PPPipe per (testbed, model, S), from
# DIR/findep.tsv as written by `moesched repro findep --out DIR` (docs/RESULTS.md).
# Render: gnuplot -e "dir='DIR'" plots/findep_speedup.gp   ->   DIR/findep_speedup.png
# (add "; auto=0" inside the -e string for a --quick run)
if (!exists("dir")) dir = "out/repro-findep"
set terminal pngcairo size 1600,600 noenhanced font ",10"
set output dir."/findep_speedup.png"
set datafile separator "\t"
set datafile missing "NA"
set title "FinDEP vs PPPipe in simulation (moesched repro findep; profile sources in findep.tsv)"
set ylabel "speedup over PPPipe (throughput ratio)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -60 scale 0
set grid ytics
set key outside top center horizontal
set yrange [0:*]
set arrow from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 lc rgb "black"
label(tb, model, s) = sprintf("%s %s S=%d", tb, (model eq "deepseek-v2" ? "DSv2" : "Qwen3"), s)
f = dir."/findep.tsv"
# auto = 0 (set by `repro findep --quick`, whose auto-split columns are NA) leaves out
# the auto-split bars
if (!exists("auto")) auto = 1
if (auto) {
    plot f using "speedup_alg1_pppipe":xtic(label(strcol(1), strcol(4), column(6))) \
             title "alg1 / pppipe (best split)", \
         f using "speedup_search_pppipe" title "search / pppipe (best split)", \
         f using "speedup_search_pppipe_split" title "search / pppipe (paper's split)", \
         f using "speedup_auto_search_pppipe" title "search, auto split / pppipe (best split)"
} else {
    plot f using "speedup_alg1_pppipe":xtic(label(strcol(1), strcol(4), column(6))) \
             title "alg1 / pppipe (best split)", \
         f using "speedup_search_pppipe" title "search / pppipe (best split)", \
         f using "speedup_search_pppipe_split" title "search / pppipe (paper's split)"
}
