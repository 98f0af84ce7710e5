#!/usr/bin/env bash
# Plots the per-action call timeline of the replace scenario, imgrecon beside the baselines.
# Usage: tests/bench/plot.sh DIR_WITH_timeline-*.tsv OUT.png   (needs gnuplot: apt-get install gnuplot-nox)
set -euo pipefail
dir=$1; out=$2
args=()
i=0
for s in imgrecon serial burst; do
    f="$dir/timeline-$s.tsv"
    [ -f "$f" ] || continue
    # y: one lane per action inside each strategy's band; throttled calls drawn as crosses.
    awk -v base=$((i * 5)) -F'\t' '{
        lane = ($2 == "ListCustomImages") ? 0 : ($2 == "CreateCustomImage") ? 1 : ($2 == "ModifyImageShareStatus") ? 2 : 3;
        print $1, base + lane, ($3 ~ /Throttling/) ? 1 : 0 }' "$f" > "$dir/plot-$s.dat"
    args+=("$s:$((i * 5))")
    i=$((i + 1))
done
{
    echo "set terminal pngcairo size 1200,600 font 'DejaVu Sans,10'"
    echo "set output '$out'"
    echo "set title 'replace15: API calls over time per action (x = throttled)'"
    echo "set xlabel 'seconds since first call'"
    echo "set key outside right"
    printf "set ytics ("
    sep=""
    for a in "${args[@]}"; do
        s=${a%%:*}; b=${a##*:}
        printf "%s'%s List' %d, '%s Create' %d, '%s Share/Unshare' %d, '%s Delete' %d" "$sep" "$s" "$b" "$s" $((b + 1)) "$s" $((b + 2)) "$s" $((b + 3))
        sep=", "
    done
    echo ")"
    printf "plot "
    sep=""
    for a in "${args[@]}"; do
        s=${a%%:*}
        case $s in imgrecon) c='#1b9e77' ;; serial) c='#7570b3' ;; *) c='#d95f02' ;; esac
        printf "%s'%s/plot-%s.dat' using 1:(\$3==0?\$2:1/0) with points pt 7 ps 0.6 lc rgb '%s' title '%s', '%s/plot-%s.dat' using 1:(\$3==1?\$2:1/0) with points pt 2 ps 1 lc rgb '#e7298a' title '%s throttled'" "$sep" "$dir" "$s" "$c" "$s" "$dir" "$s" "$s"
        sep=", "
    done
    echo
} | gnuplot
echo "plot: $out"
