# FSMoE's layer grid in simulation: sorted speedups of fsmoe over tutel and dsmoe on the
# two clusters, from DIR/fsmoe_grid_sorted.tsv as written by `moesched repro fsmoe --out DIR`
# (docs/TRAINING.md, docs/RESULTS.md).
# Render: gnuplot -e "dir='DIR'" plots/fsmoe_grid.gp   ->   DIR/fsmoe_grid.png
if (!exists("dir")) dir = "out/repro-fsmoe"
if (!exists("auto")) auto = 1
set terminal pngcairo size 1200,600 noenhanced font ",10"
set output dir."/fsmoe_grid.png"
set datafile separator "\t"
set title "FSMoE layer grid in simulation: speedup of fsmoe per grid point, sorted (moesched repro fsmoe)"
set xlabel "fraction of grid points"
set ylabel "speedup (step-time ratio)"
set grid
set key top left
set yrange [0.95:*]
f = dir."/fsmoe_grid_sorted.tsv"
plot f using "fraction":"A100_vs_tutel" with lines lw 2 title "A100 200Gb/s: over tutel", \
     f using "fraction":"A100_vs_dsmoe" with lines lw 2 dashtype 2 title "A100 200Gb/s: over dsmoe", \
     f using "fraction":"H100_vs_tutel" with lines lw 2 title "H100 400Gb/s: over tutel", \
     f using "fraction":"H100_vs_dsmoe" with lines lw 2 dashtype 2 title "H100 400Gb/s: over dsmoe"
