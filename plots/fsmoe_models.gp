# FSMoE's real-model evaluation in simulation: speedups of fsmoe over tutel and dsmoe per
# (cluster, model), from DIR/fsmoe_models.tsv as written by `moesched repro fsmoe --out DIR`
# (docs/TRAINING.md, docs/RESULTS.md).
# Render: gnuplot -e "dir='DIR'" plots/fsmoe_models.gp   ->   DIR/fsmoe_models.png
if (!exists("dir")) dir = "out/repro-fsmoe"
if (!exists("auto")) auto = 1
set terminal pngcairo size 1000,600 noenhanced font ",10"
set output dir."/fsmoe_models.png"
set datafile separator "\t"
set title "FSMoE on real models in simulation (moesched repro fsmoe)"
set ylabel "speedup of fsmoe (step-time ratio)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -30 scale 0
set grid ytics
set key outside top center horizontal
set yrange [0:*]
set arrow from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 lc rgb "black"
f = dir."/fsmoe_models.tsv"
plot f using "speedup_tutel":xtic(sprintf("%s %s", strcol(1), strcol(2))) title "fsmoe / tutel", \
     f using "speedup_dsmoe" title "fsmoe / dsmoe"
