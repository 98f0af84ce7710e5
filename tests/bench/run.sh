#!/usr/bin/env bash
# `make bench`: the convergence benchmark (bench.js) with the settings BENCHMARKS.md records,
# then the plan-scale and idle-cost benchmarks. Usage: tests/bench/run.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
out=${BENCH_OUT:-$build/bench}
mkdir -p "$out"
node "$root/tests/bench/bench.js" --build "$build" --window 2s --calls 10 --create-delay 1s \
     --runs "${BENCH_RUNS:-3}" --json "$out/convergence.json" --timeline "$out"
if [ -x "$root/tests/bench/scale.sh" ]; then bash "$root/tests/bench/scale.sh" "$build"; fi
if [ -x "$root/tests/bench/idle.sh" ]; then bash "$root/tests/bench/idle.sh" "$build"; fi
if command -v gnuplot >/dev/null 2>&1 && [ -f "$out/timeline-imgrecon.tsv" ]; then
    bash "$root/tests/bench/plot.sh" "$out" "$root/tests/bench/replace-timeline.png"
fi
