#!/usr/bin/env bash
# Plan computation at scale: load + observe-parse + diff + plan + render for 1,000, 10,000 and
# 100,000 declared images (1% drift), medians of RUNS runs. Usage: tests/bench/scale.sh [BUILD]
set -euo pipefail
build=${1:-build}
runs=${RUNS:-3}
for n in 1000 10000 100000; do
    for i in $(seq 1 "$runs"); do "$build/bench_plan" "$n" 1; done > /tmp/imgrecon-scale-$n.txt
    awk -v n="$n" '/total_ms/ {for (i=1;i<=NF;i++) if ($i=="total_ms") t[++k]=$(i+1)}
         /peak_rss_mib/ {r[++j]=$2}
         END {asort(t); asort(r); printf "scale: %6d images  total %8.1f ms (median of %d)  peak RSS %6.1f MiB\n", n, t[int((k+1)/2)], k, r[int((j+1)/2)]}' \
        /tmp/imgrecon-scale-$n.txt
    grep -m1 load_ms /tmp/imgrecon-scale-$n.txt | sed 's/^/        phases (first run): /'
done
