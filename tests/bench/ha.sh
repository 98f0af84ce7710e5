#!/usr/bin/env bash
# HA figures for BENCHMARKS.md: the cost of the shared call budget per API call (bench_pacer:
# file vs etcd) and the failover time (median of RUNS runs): two daemons (lease_ttl TTL) on a
# three-member etcd cluster on loopback, the leader SIGKILLed mid-apply, measured from the kill
# to the standby's "became leader" line and to its first mutating call in the emulator's
# journal. etcd runs with its defaults (fsync on). Asserts nothing; fails only when a run breaks.
# Usage: tests/bench/ha.sh [BUILD_DIR]   Settings: RUNS (5) TTL (2s) CALLS (500)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
runs=${RUNS:-5} ttl=${TTL:-2s} calls=${CALLS:-500}
work=$(mktemp -d /tmp/imgrecon-habench-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
ms() { date +%s%3N; }

# Three etcd members.
cl=() pp=() urls=()
for i in 0 1 2; do cl[$i]=$(port); pp[$i]=$(port); urls[$i]=http://127.0.0.1:${cl[$i]}; done
init="m0=http://127.0.0.1:${pp[0]},m1=http://127.0.0.1:${pp[1]},m2=http://127.0.0.1:${pp[2]}"
for i in 0 1 2; do
    etcd --name m$i --data-dir "$work/m$i" --listen-client-urls "${urls[$i]}" \
        --advertise-client-urls "${urls[$i]}" --listen-peer-urls http://127.0.0.1:${pp[$i]} \
        --initial-advertise-peer-urls http://127.0.0.1:${pp[$i]} --initial-cluster "$init" \
        >"$work/m$i.log" 2>&1 &
    pids+=($!)
done
for _ in $(seq 200); do curl -sf -XPOST "${urls[0]}/v3/kv/range" -d '{"key":"AA=="}' >/dev/null && break; sleep 0.1; done

echo "== shared budget: cost per call ($calls acquire + settle pairs; etcd 3.4, 3 members, fsync on)"
mkdir -p "$work/pacer"
"$build/bench_pacer" "$calls" "$work/pacer" "${urls[@]}"

echo "== failover (lease_ttl $ttl, $runs runs): SIGKILL of the leader mid-apply"
export ALIBABA_CLOUD_ACCESS_KEY_ID=LTAIemulatorDemoKey ALIBABA_CLOUD_ACCESS_KEY_SECRET=emulator-demo-secret
leader_ms=() work_ms=()
for r in $(seq "$runs"); do
    d="$work/run$r"; mkdir -p "$d/m"
    { echo "region: cn-hangzhou"; echo "custom_images:"
      for i in 0 1 2 3 4 5; do printf '  - name: bench-%s\n    instance_id: ace0706b2ac4454d984295a94213abcd\n    system_snapshot_id: s-bp1sys00000001\n' "$r$i"; done; } >"$d/m/a.yaml"
    printf 'owner: bench\nmetrics_listen: null\nquotas: 100\nha:\n  etcd_endpoints: [%s, %s, %s]\n  lease_ttl: %s\n  prefix: /imgrecon-bench/run%s\n' \
        "${urls[0]}" "${urls[1]}" "${urls[2]}" "$ttl" "$r" >"$d/config.yaml"
    "$build/imgrecon-emulator" --listen 127.0.0.1:0 --port-file "$d/port" --rate-limit 2/1s \
        --create-delay 1s --journal "$d/journal.jsonl" >"$d/emu.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do [ -s "$d/port" ] && break; sleep 0.05; done
    ep=http://127.0.0.1:$(cat "$d/port")
    start() { "$build/imgrecon" run -c "$d/config.yaml" --endpoint "$ep" --rate-limit 2/1s \
        --interval 1h --state-dir "$d/s$1" -f "$d/m" >/dev/null 2>"$d/d$1.log" & pids+=($!); last=$!; }
    start 1; a=$last
    for _ in $(seq 200); do grep -q "became leader" "$d/d1.log" && break; sleep 0.02; done
    start 2; b=$last
    for _ in $(seq 200); do grep -q "leader seen" "$d/d2.log" && break; sleep 0.02; done
    for _ in $(seq 500); do [ "$(grep -c CreateCustomImage "$d/journal.jsonl" || true)" -ge 1 ] && break; sleep 0.01; done
    kill -9 "$a"; t0=$(ms); n0=$(wc -l <"$d/journal.jsonl"); wait "$a" 2>/dev/null || true
    until grep -q "became leader" "$d/d2.log"; do sleep 0.01; done; t1=$(ms)
    until tail -n +"$((n0 + 1))" "$d/journal.jsonl" | grep -q -E 'CreateCustomImage|ModifyImage'; do
        [ $(( $(ms) - t0 )) -gt 30000 ] && { echo "run $r: no mutating call from the new leader"; break; }
        sleep 0.01; done; t2=$(ms)
    leader_ms+=($((t1 - t0))); work_ms+=($((t2 - t0)))
    echo "run $r: new leader after $((t1 - t0)) ms, its first mutating call after $((t2 - t0)) ms"
    kill "$b" 2>/dev/null || true; wait "$b" 2>/dev/null || true
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "failover median: new leader $(median "${leader_ms[@]}") ms, first mutating call $(median "${work_ms[@]}") ms (lease_ttl $ttl)"
