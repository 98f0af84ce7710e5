#!/usr/bin/env bash
# Plan computation at scale: load + observe-parse + diff + plan + render for 1,000, 10,000 and
# 100,000 declared images (1% drift), medians of RUNS runs (default 3), on the wall clock and in
# CPU time. "total" leaves out reading the answer files ("read"); "total+read" compares with runs
# from before issue 17 item 4, whose parse column included it. Each run also times the floors of
# load and parse (libyaml alone, json_loadb alone) on its own inputs; x_floor is the total over
# their sum. The load is spec_load's, on one thread per CPU once the manifests hold 1 MiB (10,000
# images and up), so its wall clock can drop below its single-threaded floor; the cpu row counts
# every thread.
# Usage: tests/bench/scale.sh [BUILD]   (SCALE_SIZES="1000 10000" to choose the sizes)
# Plain POSIX awk (Debian's mawk has no asort): medians come from sort -n.
set -euo pipefail
build=${1:-build}
runs=${RUNS:-3}
sizes=${SCALE_SIZES:-1000 10000 100000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# median FILE FIELD: the median of the value that follows FIELD on each line that has it.
median() {
    awk -v f="$2" '{for (i = 1; i < NF; i++) if ($i == f) print $(i + 1)}' "$1" | sort -n |
        awk '{v[NR] = $1} END {if (NR == 0) print "?"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

echo "scale: bench_plan N 1 (15 images per region, 1% drift), median of $runs runs; times in ms"
echo "scale: parse starts from the answers in memory; read (the files into memory) is not in total"
# row FILE PREFIX: one table row, wall clock (PREFIX "") or CPU time (PREFIX "cpu_").
row() {
    printf '%8s %8s %8s %8s %8s %8s %8s %10s %8s %8s %6s %9s' \
        "$(median "$1" "${2}load_ms")" "$(median "$1" "${2}observe_read_ms")" \
        "$(median "$1" "${2}observe_parse_ms")" "$(median "$1" "${2}plan_ms")" \
        "$(median "$1" "${2}render_text_ms")" "$(median "$1" "${2}render_json_ms")" \
        "$(median "$1" "${2}total_ms")" "$(median "$1" "${2}total_with_read_ms")" \
        "$(median "$1" "${2}floor_load_ms")" "$(median "$1" "${2}floor_parse_ms")" \
        "$(median "$1" "${2}total_per_floors")" "$(median "$1" "${2}plan_nofp_ms")"
}
echo "scale: f_load, f_parse: the floors (libyaml alone, json_loadb alone) in the same run;"
echo "scale: x_floor: total / (f_load + f_parse), which moves much less with the machine's speed"
echo "scale: plan_nofp: the plan as apply and the daemon build it (no fingerprints; not in total)"
printf 'scale: %5s %8s %8s %8s %8s %8s %8s %8s %8s %10s %8s %8s %6s %9s %9s %7s\n' clock images \
    load read parse plan text json total total+read f_load f_parse x_floor plan_nofp "peak_MiB" \
    steps
for n in $sizes; do
    for _ in $(seq 1 "$runs"); do "$build/bench_plan" "$n" 1; done > "$tmp/$n.txt"
    printf 'scale: %5s %8d %s %9s %7s\n' wall "$n" "$(row "$tmp/$n.txt" "")" \
        "$(median "$tmp/$n.txt" peak_rss_mib)" "$(median "$tmp/$n.txt" steps)"
    printf 'scale: %5s %8d %s\n' cpu "$n" "$(row "$tmp/$n.txt" cpu_)"
done
