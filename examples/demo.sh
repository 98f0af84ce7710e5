#!/usr/bin/env bash
# `make demo`: starts the emulator with its built-in demo account on a free loopback port, then
# runs validate, plan and apply of examples/manifests against it, and a second plan that must
# show no changes. Then the brownfield walkthrough (README.md "Bring an existing account under
# management"): import the account, review, apply (only the console-made `hand-made` image is
# adopted, in place), and a plan that must show no changes. Everything happens on 127.0.0.1 and
# in a temporary state directory.
set -euo pipefail
build=${1:-build}
# IMGRECON_WRAP runs every imgrecon command under a wrapper (CI: valgrind).
read -r -a wrap <<<"${IMGRECON_WRAP:-}"
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
emu_pid=""
cleanup() {
    [ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null && wait "$emu_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

"${wrap[@]}" "$build/imgrecon" validate -f "$root/examples/manifests"

"$build/imgrecon-emulator" --listen 127.0.0.1:0 --port-file "$tmp/port" --rate-limit 10/2s \
    --create-delay 1s --journal "$tmp/emulator.jsonl" &
emu_pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
[ -s "$tmp/port" ] || { echo "demo: the emulator did not start" >&2; exit 1; }
endpoint="http://127.0.0.1:$(cat "$tmp/port")"
echo "demo: emulator at $endpoint (demo account LTAIemulatorDemoKey)"

export ALIBABA_CLOUD_ACCESS_KEY_ID=LTAIemulatorDemoKey
export ALIBABA_CLOUD_ACCESS_KEY_SECRET=emulator-demo-secret
common=(--endpoint "$endpoint" --state-dir "$tmp/state" --rate-limit 10/2s -f "$root/examples/manifests")

echo; echo "== imgrecon plan"
"${wrap[@]}" "$build/imgrecon" plan "${common[@]}"
echo; echo "== imgrecon apply --auto-approve"
"${wrap[@]}" "$build/imgrecon" apply "${common[@]}" --auto-approve
echo; echo "== imgrecon plan (again: nothing left to do)"
"${wrap[@]}" "$build/imgrecon" plan "${common[@]}" --detailed-exitcode
session=(--endpoint "$endpoint" --state-dir "$tmp/state" --rate-limit 10/2s)
echo; echo "== brownfield: imgrecon import (the whole account as manifests)"
"${wrap[@]}" "$build/imgrecon" import "${session[@]}" --region cn-hangzhou --region cn-shanghai \
    --out "$tmp/imported"
echo; echo "== review: $tmp/imported/cn-hangzhou.yaml"
cat "$tmp/imported/cn-hangzhou.yaml"
echo; echo "== imgrecon apply -f imported (adopts hand-made in place; creates and deletes nothing)"
"${wrap[@]}" "$build/imgrecon" apply "${session[@]}" -f "$tmp/imported" --auto-approve
echo; echo "== imgrecon plan -f imported (again: nothing left to do)"
"${wrap[@]}" "$build/imgrecon" plan "${session[@]}" -f "$tmp/imported" --detailed-exitcode
echo; echo "demo: $(wc -l <"$tmp/emulator.jsonl") API calls reached the emulator, $(grep -c Throttling "$tmp/emulator.jsonl" || true) throttled"
