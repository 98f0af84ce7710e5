#!/usr/bin/env bash
# Conformance: the official Alibaba Cloud SDKs from npm drive every SWAS operation (and ECS
# DescribeImages/DeleteImage) against the real emulator and assert results and error codes;
# @alicloud/credentials checks the emulator's STS and instance metadata answers (sts.js).
# With IMGRECON_BIN, verify_requests.js also re-signs every request `imgrecon api` sends (V1 and
# V3, GET and POST) with the SDKs' own signing code and asserts it matches what imgrecon sent.
# usage: run.sh EMULATOR_BIN [IMGRECON_BIN]
# Exit 0 when every check passed, 1 when one failed, 77 (ctest SKIP) when npm cannot reach
# its registry.
set -uo pipefail
emu=${1:?usage: run.sh EMULATOR_BIN [IMGRECON_BIN]}
imgrecon=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "SKIP: node/npm not installed; the SDK conformance test did not run" >&2
    exit 77
fi
need_install=0
for p in @alicloud/pop-core @alicloud/swas-open20200601 @alicloud/openapi-client \
    @alicloud/credentials; do
    [ -f "node_modules/$p/package.json" ] || need_install=1
done
if [ "$need_install" = 1 ]; then
    if ! timeout 600 npm install --no-audit --no-fund --no-save --loglevel=error \
        @alicloud/pop-core @alicloud/swas-open20200601 @alicloud/openapi-client \
        @alicloud/credentials; then
        echo "" >&2
        echo "########################################################################" >&2
        echo "SKIP: npm registry unreachable; the official SDK conformance test did NOT run" >&2
        echo "########################################################################" >&2
        exit 77
    fi
fi

tmp=$(mktemp -d)
emu_pid=""
cleanup() {
    if [ -n "$emu_pid" ]; then
        kill -TERM "$emu_pid" 2>/dev/null
        wait "$emu_pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

"$emu" --listen 127.0.0.1:0 --port-file "$tmp/port" --rate-limit 10/1s --create-delay 200ms \
    --metadata ecsrole \
    --journal "$tmp/journal.jsonl" 2>"$tmp/emulator.log" &
emu_pid=$!
for _ in $(seq 1 200); do
    [ -s "$tmp/port" ] && break
    kill -0 "$emu_pid" 2>/dev/null || break
    sleep 0.05
done
if [ ! -s "$tmp/port" ]; then
    echo "conformance: the emulator did not start" >&2
    cat "$tmp/emulator.log" >&2
    exit 1
fi
port=$(cat "$tmp/port")

passed=0
failed=0
for run in scenario.js:popcore-get scenario.js:popcore-post scenario.js:swas-v3 scenario.js:swas-v2 \
    scenario_more.js:popcore-get scenario_more.js:popcore-post scenario_more.js:swas-v3 \
    scenario_more.js:swas-v2; do
    out=$(timeout 300 node "${run%%:*}" "$port" "${run#*:}" 2>&1)
    rc=$?
    echo "$out"
    line=$(printf '%s\n' "$out" | grep -oE '[0-9]+ passed, [0-9]+ failed' | tail -1)
    p=$(printf '%s' "$line" | awk '{print $1}')
    f=$(printf '%s' "$line" | awk '{print $3}')
    [ -n "$p" ] || p=0
    [ -n "$f" ] || f=1
    [ "$rc" = 0 ] || [ "$f" != 0 ] || f=1
    passed=$((passed + p))
    failed=$((failed + f))
done

# STS and instance metadata through the official @alicloud/credentials providers.
out=$(timeout 300 node sts.js "$port" 2>&1)
rc=$?
echo "$out"
line=$(printf '%s\n' "$out" | grep -oE '^[0-9]+ passed, [0-9]+ failed' | tail -1)
p=$(printf '%s' "$line" | awk '{print $1}')
f=$(printf '%s' "$line" | awk '{print $3}')
[ -n "$p" ] || p=0
[ -n "$f" ] || f=1
[ "$rc" = 0 ] || [ "$f" != 0 ] || f=1
passed=$((passed + p))
failed=$((failed + f))

# imgrecon's own requests, re-signed with the SDKs' code (a capture server of its own).
if [ -n "$imgrecon" ]; then
    out=$(timeout 300 node verify_requests.js "$imgrecon" 2>&1)
    rc=$?
    echo "$out"
    line=$(printf '%s\n' "$out" | grep -oE '^[0-9]+ passed, [0-9]+ failed' | tail -1)
    p=$(printf '%s' "$line" | awk '{print $1}')
    f=$(printf '%s' "$line" | awk '{print $3}')
    [ -n "$p" ] || p=0
    [ -n "$f" ] || f=1
    [ "$rc" = 0 ] || [ "$f" != 0 ] || f=1
    passed=$((passed + p))
    failed=$((failed + f))
else
    echo "note: no IMGRECON_BIN given; imgrecon's requests were not verified against the SDKs"
fi

# The journal must never carry signatures or secrets.
if grep -qE '"Signature"|emulator-demo-secret|not-the-secret|eyJconformance' "$tmp/journal.jsonl"; then
    echo "not ok - journal carries a signature or a secret"
    failed=$((failed + 1))
else
    echo "ok - journal has $(wc -l <"$tmp/journal.jsonl") lines and no signature or secret"
    passed=$((passed + 1))
fi

if kill -TERM "$emu_pid" && wait "$emu_pid"; then
    echo "ok - emulator exited 0 on SIGTERM"
    passed=$((passed + 1))
else
    echo "not ok - emulator did not exit 0 on SIGTERM"
    failed=$((failed + 1))
fi
emu_pid=""

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
