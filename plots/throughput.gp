# Throughput vs cluster size, one line per scheduler, one panel per model, from the data
# file `moesched plot throughput --db R.db` writes (docs/PLOTS.md). Variables (-e):
# term (terminal and options), out, data (TSV: one block per model, columns gpus then one
# per scheduler, NA where missing), models, scheds and gpus (space-separated lists).
eval "set terminal ".term
set output out
set datafile separator "\t"
set datafile missing "NA"
nm = words(models)
ns = words(scheds)
set multiplot layout 1, nm title "Simulated throughput vs cluster size (moesched sweep)"
set logscale x 2
set logscale y 10
set format y "%.0s%c"
set xlabel "cluster size (GPUs)"
set ylabel "throughput (tokens/s)"
set grid
set key top left
set xtics () nomirror
do for [g in gpus] { set xtics add (g g + 0) }
set xrange [(word(gpus, 1) + 0) / 1.3:(word(gpus, words(gpus)) + 0) * 1.3]
do for [i = 1:nm] {
    set title word(models, i)
    plot for [j = 1:ns] data index (i - 1) using 1:(column(j + 1)) \
        with linespoints lw 2 pt (j + 3) ps 1.2 title word(scheds, j)
}
unset multiplot
