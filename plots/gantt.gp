# Gantt chart of a trace: one row per (rank, stream), one box per task coloured by its kind
# (from the task label), from the data file `moesched plot gantt --trace T.json` writes
# (docs/PLOTS.md). Variables (-e): term, out, data (TSV: start, end, row, kind index,
# kind), kinds (space-separated), nrows, ylabels (gnuplot ytics list), xunit, title.
eval "set terminal ".term
set output out
set datafile separator "\t"
set title title
set xlabel sprintf("time (%s)", xunit)
eval "set ytics (".ylabels.")"
set ytics scale 0 font ",8"
set yrange [nrows - 0.5:-0.5]
set xrange [0:*]
set grid xtics
set key outside right top
set style fill solid 0.9 noborder
nk = words(kinds)
plot data using (($1 + $2) / 2):3:(($2 - $1) / 2):(0.4):4 with boxxyerror lc variable notitle, \
     for [k = 1:nk] NaN with boxes lc k title word(kinds, k)
