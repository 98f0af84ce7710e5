#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs each for SECONDS (default 30),
# seeded from its corpus. The targets and their seed files come from the build
# (tests/fuzz/CMakeLists.txt writes targets.txt and <target>.corpus), not from this script.
# Usage: tests/fuzz/run.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-fuzz}
secs=${2:-30}
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DIMGRECON_FUZZ=ON -DIMGRECON_SANITIZE=ON \
      -DIMGRECON_TESTS=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null
mapfile -t targets < <(grep -v '^$' "$build/tests/fuzz/targets.txt")
[ "${#targets[@]}" -gt 0 ] || { echo "fuzz: no targets in $build/tests/fuzz/targets.txt"; exit 1; }
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}" >/dev/null
total=0
for t in "${targets[@]}"; do
    corpus=$build/fuzz-corpus/$t
    mkdir -p "$corpus"
    while IFS= read -r seed; do
        [ -n "$seed" ] && cp "$seed" "$corpus/"
    done < "$build/tests/fuzz/$t.corpus"
    out=$("$build/tests/fuzz/$t" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 \
          -artifact_prefix="$build/" "$corpus" 2>&1) || { echo "$out" | tail -30; echo "$t: CRASH"; exit 1; }
    execs=$(echo "$out" | grep -o 'Done [0-9]* runs' | grep -o '[0-9]*' || echo 0)
    # The coverage counters libFuzzer found: a few dozen means only the target file was
    # instrumented, not the code under test, and the run was blind.
    counters=$(echo "$out" | grep -o 'Loaded [0-9]* modules *([0-9]* inline' | grep -o '([0-9]*' |
               tr -d '(' | head -1)
    cov=$(echo "$out" | grep -o 'cov: [0-9]*' | tail -1 | grep -o '[0-9]*' || echo 0)
    if [ "${counters:-0}" -lt "${FUZZ_MIN_COUNTERS:-100}" ]; then
        echo "$t: only ${counters:-0} coverage counters: the code under test is not instrumented"
        exit 1
    fi
    total=$((total + execs))
    echo "$t: $execs executions in ${secs}s, no crash; coverage $cov of $counters counters"
done
echo "fuzz: $total executions in total"
