# Predicted vs measured time per task, coloured by task kind, with the y = x line, from the
# data file `moesched plot validate --tasks T.tsv` writes (docs/PLOTS.md). Variables (-e):
# term, out, data (TSV: predicted_us, measured_us, kind index, kind), kinds, logscale
# (1 when every time is positive), title.
eval "set terminal ".term
set output out
set datafile separator "\t"
set title title
set xlabel "predicted (simulated) time per task (us)"
set ylabel "measured time per task (us)"
set grid
set key top left
set size ratio -1
if (logscale) { set logscale xy 10; set format xy "%.0f" }
set autoscale fix
set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05
nk = words(kinds)
plot for [k = 1:nk] data using 1:($3 == k ? $2 : NaN) with points pt 7 ps 0.8 lc k title word(kinds, k), \
     x with lines dt 2 lc rgb "black" title "y = x"
