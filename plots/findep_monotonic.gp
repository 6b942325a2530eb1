# FinDEP's monotonicity studies in simulation: throughput vs m_a at r1 = 1 and vs r1 at
# m_a = 1 (DeepSeek-V2, 2 layers, best r2 per point), relative to each series' first
# point, from DIR/findep_monotonic.tsv as written by `moesched repro findep --out DIR`.
# Render: gnuplot -e "dir='DIR'" plots/findep_monotonic.gp   ->   DIR/findep_monotonic.png
if (!exists("dir")) dir = "out/repro-findep"
set terminal pngcairo size 1400,550 noenhanced font ",10"
set output dir."/findep_monotonic.png"
set datafile separator "\t"
set key autotitle columnhead
f = dir."/findep_monotonic.tsv"
# series: (study, testbed, seq); values are NaN outside the series
sel(st, tb, s, v) = (strcol(1) eq st && strcol(2) eq tb && column(6) == s) ? v : NaN
set multiplot layout 1,2 title "FinDEP throughput in simulation, relative to the first point (moesched repro findep)"
set grid
set key bottom right
set logscale x 2
set xlabel "m_a (samples per micro-batch per AG GPU), r1 = 1"
set ylabel "throughput / throughput at m_a = 1"
plot for [tb in "C D"] for [s in "2048 4096"] \
     f using (sel("ma", tb, s+0, column(10))):(sel("ma", tb, s+0, column(14))) \
     with linespoints title sprintf("testbed %s, S=%s", tb, s)
set xlabel "r1 (micro-batches), m_a = 1"
set ylabel "throughput / throughput at r1 = 1"
plot for [tb in "C D"] for [s in "2048 4096"] \
     f using (sel("r1", tb, s+0, column(9))):(sel("r1", tb, s+0, column(14))) \
     with linespoints title sprintf("testbed %s, S=%s", tb, s)
unset multiplot
