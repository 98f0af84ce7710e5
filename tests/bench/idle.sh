#!/usr/bin/env bash
# Idle cost of the daemon: RSS (and USS, PSS) and CPU time over IDLE_SECONDS (default 60) between
# cycles, and its peak RSS (VmHWM) after a cycle over 1,500 images (100 regions x 15) against the
# emulator.
# Usage: tests/bench/idle.sh [BUILD]
# IDLE_WRAP runs the daemon under a tool, e.g. IDLE_WRAP="valgrind --tool=massif
# --massif-out-file=/tmp/massif.out" (the figures are then the tool's process).
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
idle=${IDLE_SECONDS:-60}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

# Fixture and manifests: 100 regions x 15 images, all converged (a no-change cycle).
{
    echo "accounts:"
    echo "  - {access_key_id: LTAIidleBench, access_key_secret: idle-bench-secret, user_id: 1}"
    echo "regions:"
    for r in $(seq -w 0 99); do
        echo "  - region: cn-idle-$r"
        echo "    servers:"
        for s in 0 1 2 3 4; do
            echo "      - {instance_id: ace0706b2ac4454d984295a9420$r$s, name: s$s, status: Running, system_snapshots: [s-$r-$s]}"
        done
        echo "    custom_images:"
        for i in $(seq -w 0 14); do
            echo "      - {image_id: m-idle$r$i, name: img-$i, instance_id: ace0706b2ac4454d984295a9420${r}0, system_snapshot_id: s-$r-0, status: \"1\", in_share: false, tags: {imgrecon/owner: default}}"
        done
    done
} > "$tmp/fixture.yaml"
mkdir -p "$tmp/manifests"
for r in $(seq -w 0 99); do
    echo "---"
    echo "region: cn-idle-$r"
    echo "custom_images:"
    for i in $(seq -w 0 14); do
        echo "  - {name: img-$i, instance_id: ace0706b2ac4454d984295a9420${r}0, system_snapshot_id: s-$r-0}"
    done
done > "$tmp/manifests/all.yaml"

"$build/imgrecon-emulator" --listen 127.0.0.1:0 --port-file "$tmp/port" --fixture "$tmp/fixture.yaml" \
    --rate-limit 1000/1s >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
cat > "$tmp/config.yaml" <<YAML
metrics_listen: null
interval: 1h
YAML
ALIBABA_CLOUD_ACCESS_KEY_ID=LTAIidleBench ALIBABA_CLOUD_ACCESS_KEY_SECRET=idle-bench-secret \
    ${IDLE_WRAP:-} "$build/imgrecon" run -c "$tmp/config.yaml" --endpoint "http://127.0.0.1:$(cat "$tmp/port")" \
    --state-dir "$tmp/state" --rate-limit 1000/1s -f "$tmp/manifests" -q 2>"$tmp/daemon.log" &
dpid=$!
pids+=($dpid)
# The first cycle is over when status.json counts one cycle and the daemon is idle again
# (bounded wait: 120 s).
ok=
for _ in $(seq 1 1200); do
    if grep -q '"cycles": *[1-9]' "$tmp/state/status.json" 2>/dev/null &&
        grep -q '"state": *"idle"' "$tmp/state/status.json"; then ok=1; break; fi
    kill -0 "$dpid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$ok" ]; then
    echo "idle: the first cycle did not finish" >&2
    cat "$tmp/daemon.log" >&2
    exit 1
fi
grep -q '"result": *"ok"' "$tmp/state/status.json" && grep -q '"drift": *0' "$tmp/state/status.json" ||
    { echo "idle: the cycle did not end ok with no drift:" >&2; cat "$tmp/state/status.json" >&2; exit 1; }
ticks=$(getconf CLK_TCK)
cpu_ms() { awk -v t="$ticks" '{print int(($14 + $15) * 1000 / t)}' "/proc/$dpid/stat"; }
field() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$dpid/status"; }
ms_of() { node -e 'const s=require(process.argv[1]); console.log(Date.parse(s.cycle_end) - Date.parse(s.cycle_start))' "$tmp/state/status.json"; }
hwm=$(field VmHWM)
cycle_cpu=$(cpu_ms)
cycle_ms=$(ms_of 2>/dev/null || echo "?")
cpu0=$(cpu_ms)
rss0=$(field VmRSS)
csw0=$(( $(field voluntary_ctxt_switches) + $(field nonvoluntary_ctxt_switches) ))
sleep "$idle"
cpu1=$(cpu_ms)
rss1=$(field VmRSS)
csw1=$(( $(field voluntary_ctxt_switches) + $(field nonvoluntary_ctxt_switches) ))
echo "idle: cycle over 1,500 images in 100 regions (no change, List at 1000/1s): ${cycle_ms} ms, CPU since start ${cycle_cpu} ms, peak RSS (VmHWM) $((hwm / 1024)).$(( (hwm % 1024) * 10 / 1024 )) MiB"
echo "idle: over ${idle}s between cycles: CPU $((cpu1 - cpu0)) ms, RSS $((rss0 / 1024)).$(( (rss0 % 1024) * 10 / 1024 )) -> $((rss1 / 1024)).$(( (rss1 % 1024) * 10 / 1024 )) MiB, $((csw1 - csw0)) wakeups (context switches)"
mib() { echo "$(($1 / 1024)).$(( ($1 % 1024) * 10 / 1024 ))"; }
# Where the resident pages are: each mapping of 64 KiB or more (libraries by file name).
awk '/^[0-9a-f]+-[0-9a-f]+ / {n = NF >= 6 ? $6 : "[anonymous]"} /^Rss:/ {r[n] += $2}
     END {for (n in r) if (r[n] >= 64) printf "idle:   %6d KiB %s\n", r[n], n}' "/proc/$dpid/smaps" |
    sort -k2 -nr
echo "idle: RSS after the idle time: anonymous (heap, stacks) $(mib "$(field RssAnon)") MiB, file-backed (code of the binary and its libraries) $(mib "$(field RssFile)") MiB, shared memory $(mib "$(field RssShmem)") MiB; threads $(field Threads)"
# What the daemon costs the machine on its own: the pages no other process maps (USS: private
# clean and dirty) and its proportional share of the shared ones (PSS), from smaps_rollup.
roll() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$dpid/smaps_rollup"; }
uss=$(( $(roll Private_Clean) + $(roll Private_Dirty) ))
echo "idle: unique to the daemon (USS) $(mib "$uss") MiB, proportional share (PSS) $(mib "$(roll Pss)") MiB, shared with other processes $(mib "$(( $(roll Shared_Clean) + $(roll Shared_Dirty) ))") MiB"
