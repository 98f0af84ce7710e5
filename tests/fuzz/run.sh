#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs each for SECONDS (default 30),
# seeded from the examples. Usage: tests/fuzz/run.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-fuzz}
secs=${2:-30}
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DIMGRECON_FUZZ=ON -DIMGRECON_SANITIZE=ON \
      -DIMGRECON_TESTS=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" -j "$(nproc)" --target fuzz_manifest fuzz_config fuzz_response fuzz_urlencoded fuzz_escape >/dev/null
corpus=$build/fuzz-corpus
mkdir -p "$corpus"/{manifest,config,response,urlencoded,escape}
cp "$root"/examples/manifests/*.yaml "$root"/examples/invalid/*.yaml "$corpus/manifest/" 2>/dev/null || true
cp "$root"/examples/config.yaml "$corpus/config/" 2>/dev/null || true
cp "$root"/tests/fuzz/seeds/response/* "$corpus/response/" 2>/dev/null || true
cp "$root"/tests/fuzz/seeds/urlencoded/* "$corpus/urlencoded/" 2>/dev/null || true
cp "$root"/tests/fuzz/seeds/escape/* "$corpus/escape/" 2>/dev/null || true
total=0
for t in manifest config response urlencoded escape; do
    out=$("$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 \
          -artifact_prefix="$build/" "$corpus/$t" 2>&1) || { echo "$out" | tail -30; echo "fuzz_$t: CRASH"; exit 1; }
    execs=$(echo "$out" | grep -o 'Done [0-9]* runs' | grep -o '[0-9]*' || echo 0)
    total=$((total + execs))
    echo "fuzz_$t: $execs executions in ${secs}s, no crash"
done
echo "fuzz: $total executions in total"
