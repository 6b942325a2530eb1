# Speedup bars: each scheduler's throughput over the baseline's, per model and cluster
# size, from the data file `moesched plot speedup --db R.db` writes (docs/PLOTS.md).
# Variables (-e): term, out, data (TSV: group label, then one column per scheduler),
# scheds (space-separated), base (the baseline's name).
eval "set terminal ".term
set output out
set datafile separator "\t"
set datafile missing "NA"
ns = words(scheds)
set title sprintf("Throughput over %s (moesched sweep; 1 = as fast as %s)", base, base)
set ylabel sprintf("speedup over %s (throughput ratio)", base)
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics rotate by -45 scale 0
set grid ytics
set key outside top center horizontal
set yrange [0:*]
set arrow from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 lc rgb "black"
plot for [j = 1:ns] data using (column(j + 1)):xtic(1) title word(scheds, j)
