# The plots of bench/run.sh, from the tables bench/collect.py writes.
# gnuplot -e "dir='bench/results/DATE'" bench/plots.gp
set terminal pngcairo size 900,560 noenhanced
set grid
set key top left

set output dir.'/latency.png'
set title 'pairs, open loop: latency against offered rate'
set xlabel 'offered messages/s'
set ylabel 'latency (us, from the scheduled send time)'
set logscale y
plot dir.'/latency.tsv' using 1:3 with linespoints title 'p50', \
     ''                 using 1:4 with linespoints title 'p90', \
     ''                 using 1:5 with linespoints title 'p99', \
     ''                 using 1:6 with linespoints title 'p99.9'

set output dir.'/rss.png'
set title 'idle: node RSS against open connections'
set xlabel 'connections'
set ylabel 'node RSS (MiB)'
unset logscale y
plot dir.'/rss.tsv' using 1:2 with linespoints title 'VmRSS'
