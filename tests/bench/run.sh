#!/usr/bin/env bash
# `make bench`: the convergence benchmark (bench.js) with the settings BENCHMARKS.md records,
# then the plan-scale, idle-cost and HA (etcd failover, shared budget) benchmarks, then the
# replace-scenario plot when gnuplot is installed. Prints numbers; asserts no timing (it fails
# only when a run does not converge or a tool breaks). About 9 minutes on 2 cores.
# Usage: tests/bench/run.sh [BUILD_DIR]
# Settings (environment): BENCH_WINDOW (1s) BENCH_CALLS (10) BENCH_CREATE_DELAY (1s)
#   BENCH_RUNS (3) BENCH_SCENARIOS ("create15 replace15 prune15 spread100 nochange1500")
#   RUNS (3, scale.sh) FLOOR_SIZES ("10000 100000") FLOOR_RUNS (7, bench_load/bench_parse)
#   IDLE_SECONDS (60, idle.sh) BENCH_OUT (BUILD_DIR/bench)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
out=${BENCH_OUT:-$build/bench}
mkdir -p "$out"
scen=()
for s in ${BENCH_SCENARIOS:-create15 replace15 prune15 spread100 nochange1500}; do scen+=(--scenario "$s"); done
start=$(date +%s)
{
    echo "== convergence (tests/bench/bench.js)"
    node "$root/tests/bench/bench.js" --build "$build" --window "${BENCH_WINDOW:-1s}" \
        --calls "${BENCH_CALLS:-10}" --create-delay "${BENCH_CREATE_DELAY:-1s}" \
        --runs "${BENCH_RUNS:-3}" "${scen[@]}" --json "$out/convergence.json" --timeline "$out"
    echo "== load and parse against their floors (bench_load, bench_parse)"
    for n in ${FLOOR_SIZES:-10000 100000}; do
        "$build/bench_load" "$n" "${FLOOR_RUNS:-7}" | tail -2
        "$build/bench_parse" "$n" "${FLOOR_RUNS:-7}" | tail -2
    done
    echo
    echo "== plan scale (tests/bench/scale.sh)"
    bash "$root/tests/bench/scale.sh" "$build"
    echo
    echo "== daemon idle cost (tests/bench/idle.sh)"
    bash "$root/tests/bench/idle.sh" "$build"
    echo
    echo "== HA on etcd (tests/bench/ha.sh)"
    bash "$root/tests/bench/ha.sh" "$build"
    echo
    if command -v gnuplot >/dev/null 2>&1 && [ -f "$out/timeline-imgrecon.tsv" ]; then
        bash "$root/tests/bench/plot.sh" "$out" "$out/replace-timeline.png"
    else
        echo "plot: skipped (gnuplot not installed, or no replace15 timeline)"
    fi
    echo "bench: done in $(( $(date +%s) - start ))s; figures in $out"
} 2>&1 | tee "$out/bench.txt"
exit "${PIPESTATUS[0]}"
